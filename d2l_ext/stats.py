"""Comparing two configurations: the one convention every table and notebook uses.

Each run is one seed; a seed fixes the initialization and the batch order, and every row of
an experiment runs the same seeds on the same split. Runs of one seed are therefore *paired*:
the difference is taken seed by seed and its t interval (``paired``) removes what two rows
share. Rows without two common seeds fall back to Welch's interval with Welch-Satterthwaite
degrees of freedom (``welch``). ``compare`` picks between the two.

Convention: a row is reported as mean ± SD over its n seeds; a difference as the mean
difference with its 95% interval. An interval clear of zero is a difference "clear of zero
at 95% (n seeds)"; one that contains zero means that no difference was detected, and its
ends say how large one could still be ("at most X points either way"), never that the two
are equal. The intervals cover seed-to-seed noise only: the 500 training images are one
fixed draw, so a difference may still belong to that draw.

For two models on the same test images, ``mcnemar`` counts the images exactly one of them
gets right and tests whether they split evenly (the exact binomial form of McNemar's test).
"""
import math
import statistics
from dataclasses import dataclass

__all__ = ["Comparison", "t_quantile", "paired", "welch", "compare", "mcnemar", "verdict"]


def t_quantile(df, q=0.975):
    """Student's t quantile for ``df`` (possibly fractional) degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(q, df))


@dataclass(frozen=True)
class Comparison:
    """``a − b``: the mean difference, its 95% interval (``low``, ``high``; None with too
    few seeds), the seeds it rests on, and how it was computed."""
    diff: float
    low: float | None
    high: float | None
    n: int
    method: str            # "paired" or "Welch"
    df: float | None = None

    @property
    def clear_of_zero(self):
        return self.low is not None and (self.low > 0 or self.high < 0)

    @property
    def at_most(self):
        """The largest difference, either way, that the interval still allows."""
        return None if self.low is None else max(-self.low, self.high)


def paired(a, b):
    """``a − b`` over the seeds both dicts (seed -> accuracy) share, with a paired t interval."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: {sorted(a)} and {sorted(b)}")
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return Comparison(mean, None, None, len(diffs), "paired")
    half = t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Comparison(mean, mean - half, mean + half, len(diffs), "paired", len(diffs) - 1)


def welch(a, b):
    """``mean(a) − mean(b)`` for two lists of accuracies, with Welch's interval (degrees of
    freedom by Welch-Satterthwaite, not rounded)."""
    if not a or not b:
        raise ValueError(f"need at least one value on each side, got {len(a)} and {len(b)}")
    diff = statistics.mean(a) - statistics.mean(b)
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return Comparison(diff, None, None, n, "Welch")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return Comparison(diff, diff, diff, n, "Welch", math.inf)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(df) * math.sqrt(va + vb)
    return Comparison(diff, diff - half, diff + half, n, "Welch", df)


def compare(a, b):
    """``a − b`` for two dicts seed -> accuracy: paired where they share two seeds or more,
    Welch over all their seeds otherwise."""
    if len(set(a) & set(b)) >= 2:
        return paired(a, b)
    return welch(list(a.values()), list(b.values()))


def verdict(c, unit=100, digits=1):
    """The words the series uses for a comparison (differences in points when ``unit``=100)."""
    if c.low is None:
        return f"too few seeds for an interval ({c.n})"
    if c.clear_of_zero:
        return f"clear of zero at 95% ({c.n} seeds, {c.method})"
    return (f"no detectable difference ({c.n} seeds, {c.method}); at most "
            f"{unit * c.at_most:.{digits}f} points either way")


def mcnemar(correct_a, correct_b):
    """Exact McNemar test for two models on the same images: ``correct_a``/``correct_b`` are
    per-image booleans (or 0/1). Returns (only a right, only b right, two-sided p-value)."""
    if len(correct_a) != len(correct_b):
        raise ValueError(f"the two models were scored on {len(correct_a)} and "
                         f"{len(correct_b)} images: McNemar needs the same images")
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return only_a, only_b, 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return only_a, only_b, min(1.0, 2 * tail)
