"""d2l_ext.stats against scipy.stats on known inputs."""
import math

import pytest
from scipy import stats as sp

from d2l_ext import stats

A = {0: 0.712, 1: 0.726, 2: 0.721, 3: 0.705, 4: 0.730}
B = {0: 0.697, 1: 0.702, 2: 0.699, 3: 0.690, 4: 0.711}


def _p_at(c, shift, paired):
    """scipy's two-sided p-value for 'a − b = shift' (0.05 exactly at the interval's ends)."""
    a = [A[s] - shift for s in sorted(A)]
    b = [B[s] for s in sorted(B)]
    return (sp.ttest_rel(a, b) if paired else sp.ttest_ind(a, b, equal_var=False)).pvalue


def test_paired_interval_is_scipys():
    c = stats.paired(A, B)
    assert c.method == "paired" and c.n == 5 and c.df == 4
    assert c.diff == pytest.approx(0.019)
    assert _p_at(c, c.low, paired=True) == pytest.approx(0.05)
    assert _p_at(c, c.high, paired=True) == pytest.approx(0.05)
    assert (c.low, c.high) == pytest.approx((0.013956, 0.024044), abs=1e-6)   # by hand: t(4) s/sqrt(5)


def test_welch_interval_and_degrees_of_freedom_are_scipys():
    c = stats.welch(list(A.values()), list(B.values()))
    assert c.method == "Welch" and not c.df.is_integer()
    assert _p_at(c, c.low, paired=False) == pytest.approx(0.05)
    assert _p_at(c, c.high, paired=False) == pytest.approx(0.05)
    # Pairing removes what the seeds share: the paired interval is narrower here.
    assert c.high - c.low > 1.5 * (stats.paired(A, B).high - stats.paired(A, B).low)


def test_compare_pairs_shared_seeds_and_falls_back_to_welch():
    assert stats.compare(A, B).method == "paired"
    assert stats.compare({0: .7, 1: .72, 2: .71}, {5: .69, 6: .70}).method == "Welch"
    c = stats.compare(A, {0: .69, 1: .70, 2: .70})           # 5 seeds against 3: pairs 3
    assert (c.method, c.n) == ("paired", 3)


def test_verdict_words():
    assert stats.verdict(stats.paired(A, B)) == "clear of zero at 95% (5 seeds, paired)"
    c = stats.paired({0: .70, 1: .72, 2: .71}, {0: .71, 1: .70, 2: .71})
    assert c.low < 0 < c.high
    assert stats.verdict(c) == (f"no detectable difference (3 seeds, paired); at most "
                                f"{100 * max(-c.low, c.high):.1f} points either way")
    assert stats.verdict(stats.paired({0: .7}, {0: .6})).startswith("too few seeds")


@pytest.mark.parametrize("only_a,only_b", [(10, 3), (0, 7), (25, 25), (40, 61)])
def test_mcnemar_is_the_exact_binomial_test(only_a, only_b):
    both = 50
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * 9
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * 9
    got_a, got_b, p = stats.mcnemar(a, b)
    assert (got_a, got_b) == (only_a, only_b)
    assert p == pytest.approx(sp.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def test_mcnemar_needs_the_same_images():
    with pytest.raises(ValueError, match="3 and 2 images"):
        stats.mcnemar([1, 0, 1], [1, 1])
    assert stats.mcnemar([1, 1], [1, 1]) == (0, 0, 1.0)


def test_no_shared_seed_is_an_error():
    with pytest.raises(ValueError, match="no seed in common"):
        stats.paired({0: .5}, {1: .5})
    assert math.isinf(stats.welch([.5, .5], [.4, .4]).df)
