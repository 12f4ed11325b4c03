"""One setup line for Python 3.10 to 3.13, and a clear message for the wrong d2l (issue 12)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = "python -m pip install -r requirements.txt && python -m pip install --no-deps d2l==1.0.3"


def test_readme_ci_and_requirements_give_the_same_setup_line():
    for name in ("README.md", ".ci/run", "requirements.txt"):
        assert SETUP in (ROOT / name).read_text(), name


def test_requires_python_admits_3_10_to_3_13():
    from packaging.specifiers import SpecifierSet
    spec = re.search(r'^requires-python = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert all(f"3.{minor}" in SpecifierSet(spec.group(1)) for minor in (10, 11, 12, 13))
    assert "3.9" not in SpecifierSet(spec.group(1))                    # torch 2.14 needs 3.10


def test_the_chinese_books_d2l_is_named_in_one_line(tmp_path):
    """d2l-zh installs d2l 0.17.x (train_ch6, no Classifier): importing d2l_ext says so."""
    (tmp_path / "d2l").mkdir()
    (tmp_path / "d2l" / "__init__.py").write_text('__version__ = "0.17.6"\n')
    run = subprocess.run([sys.executable, "-c", "import d2l_ext"], cwd=tmp_path, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: d2l_ext needs d2l 1.0.3")
    assert "has d2l 0.17.6" in last and "separate environment" in last
