"""What several test files share: the offline copy of Fashion-MNIST the tests read."""
import pytest

import d2l_ext.data as D


@pytest.fixture(scope="session")
def offline_fashion_mnist():
    """Skip, saying how to get it, unless Fashion-MNIST reads from Debian's copy (the tests
    pass ``root="/nonexistent"`` and ``download=False``: they never reach for the network)."""
    try:
        D.load_fashion_mnist("/nonexistent", False, download=False)   # the small test file
    except FileNotFoundError:
        pytest.skip(f"no offline Fashion-MNIST in {D.DEBIAN_FASHION_MNIST}: "
                    f"sudo apt-get install dataset-fashion-mnist")
