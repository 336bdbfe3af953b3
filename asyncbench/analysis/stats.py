"""Statistics on per-repeat summaries: spread, bootstrap intervals, rank tests.

Pure functions on sequences of floats, no I/O, deterministic (bootstrap uses a
seeded generator) so reports and gate verdicts are reproducible from a results
file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from functools import lru_cache
from statistics import fmean, median, stdev


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample std dev / mean); None below 2 values."""
    if len(values) < 2:
        return None
    m = fmean(values)
    if m == 0:
        return None
    return stdev(values) / m


def bootstrap_ratio_ci(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 12345,
    statistic: str = "median",
) -> tuple[float, float, float] | None:
    """Ratio of medians (or means) of two independent samples with a percentile
    bootstrap confidence interval: (point, low, high).

    Returns None when either side is empty or the denominator is zero. With a
    single value on each side the interval collapses to the point; callers must
    say so rather than present it as a confidence interval.
    """
    if not numerator or not denominator:
        return None
    stat = median if statistic == "median" else fmean
    d0 = stat(denominator)
    if d0 == 0:
        return None
    point = stat(numerator) / d0
    rng = random.Random(seed)
    n, m = len(numerator), len(denominator)
    ratios = []
    for _ in range(resamples):
        a = [numerator[rng.randrange(n)] for _ in range(n)]
        b = [denominator[rng.randrange(m)] for _ in range(m)]
        db = stat(b)
        if db != 0:
            ratios.append(stat(a) / db)
    if not ratios:
        return None
    ratios.sort()
    alpha = (1.0 - confidence) / 2.0
    lo = ratios[max(0, math.floor(alpha * len(ratios)))]
    hi = ratios[min(len(ratios) - 1, math.ceil((1 - alpha) * len(ratios)) - 1)]
    return point, lo, hi


@lru_cache(maxsize=256)
def _u_distribution(n: int, m: int) -> tuple[int, ...]:
    """Counts of arrangements giving each U statistic (0..n*m) for sizes n, m.

    Exact null distribution of Mann-Whitney U without ties, by the classic
    recurrence f(n, m, u) = f(n-1, m, u-m) + f(n, m-1, u).
    """
    # dp[i][j] is a list of counts for U in 0..i*j
    prev_row: list[list[int]] = [[1] for _ in range(m + 1)]  # i = 0
    for i in range(1, n + 1):
        row: list[list[int]] = [[1]]  # j = 0
        for j in range(1, m + 1):
            size = i * j + 1
            counts = [0] * size
            a = prev_row[j]  # f(i-1, j, u - j)
            for u, c in enumerate(a):
                counts[u + j] += c
            b = row[j - 1]  # f(i, j-1, u)
            for u, c in enumerate(b):
                counts[u] += c
            row.append(counts)
        prev_row = row
    return tuple(prev_row[m])


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U test of H1: values in x tend to be greater than y.

    Returns (U, p). U counts pairs (xi, yj) with xi > yj, ties as 1/2. The
    p-value is exact (enumerated null distribution) when there are no ties and
    both samples have at most 30 values, otherwise the normal approximation
    with tie correction and continuity correction.

    Hand-written rather than scipy.stats.mannwhitneyu: scipy's exact and
    asymptotic p-values differ from these in the last digits (a few ulps),
    which would move the gate's recorded numbers without any gain.
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("both samples need at least one value")
    u = 0.0
    for xi in x:
        for yj in y:
            if xi > yj:
                u += 1.0
            elif xi == yj:
                u += 0.5
    combined = list(x) + list(y)
    has_ties = len(set(combined)) < len(combined)
    if not has_ties and n <= 30 and m <= 30:
        dist = _u_distribution(n, m)
        total = sum(dist)
        k = math.ceil(u - 1e-9)
        p = sum(dist[k:]) / total
        return u, p
    # normal approximation with tie correction
    nt = n + m
    tie_term = 0.0
    counts: dict[float, int] = {}
    for v in combined:
        counts[v] = counts.get(v, 0) + 1
    for t in counts.values():
        tie_term += t**3 - t
    mu = n * m / 2.0
    var = n * m / 12.0 * ((nt + 1) - tie_term / (nt * (nt - 1)))
    if var <= 0:
        return u, 1.0 if u <= mu else 0.0
    z = (u - mu - 0.5) / math.sqrt(var)
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    return u, p


def min_p_value(n: int, m: int) -> float:
    """The smallest one-sided p-value a rank test can reach with n and m values."""
    return 1.0 / math.comb(n + m, n)


def _doubled_midranks(values: Sequence[float]) -> list[int]:
    # Imported here: scipy.stats takes about a second to import and only the
    # gate ranks anything.
    from scipy.stats import rankdata

    # Midranks are multiples of 1/2; doubling them keeps the exact enumeration
    # below in integers.
    return [round(2 * float(r)) for r in rankdata(values, method="average")]


def mann_whitney_greater_exact(x: Sequence[float], y: Sequence[float], *, max_total: int = 40) -> tuple[float, float]:
    """One-sided Mann-Whitney U (H1: x tends to be greater than y), exact even with ties.

    Without ties this is `mann_whitney_greater`. With ties (common for latency
    percentiles read from a histogram with bounded relative error) the normal
    approximation is poor at the 6-10 repeats per side the gate works with, so
    the p-value is the exact permutation probability of a rank sum at least as
    large as the observed one, conditional on the observed tie pattern
    (midranks), enumerated by dynamic programming over subsets. Above
    `max_total` values in all it falls back to the normal approximation, which
    is adequate at those sizes.

    scipy.stats.mannwhitneyu(method="exact") makes no correction for ties (it
    uses the no-ties null distribution), which is why this is hand-written.
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("both samples need at least one value")
    combined = list(x) + list(y)
    if len(set(combined)) == len(combined) or n + m > max_total:
        return mann_whitney_greater(x, y)
    ranks2 = _doubled_midranks(combined)
    observed = sum(ranks2[:n])
    u = observed / 2.0 - n * (n + 1) / 2.0
    total = sum(ranks2)
    # ways[k][s]: number of k-subsets of the values seen so far whose doubled
    # rank sum is s. Python ints, so counts never overflow.
    ways = [[0] * (total + 1) for _ in range(n + 1)]
    ways[0][0] = 1
    for seen, r in enumerate(ranks2, start=1):
        for k in range(min(n, seen), 0, -1):
            src, dst = ways[k - 1], ways[k]
            for s in range(total - r, -1, -1):
                c = src[s]
                if c:
                    dst[s + r] += c
    row = ways[n]
    p = sum(row[observed:]) / math.comb(n + m, n)
    return u, min(1.0, p)


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (reject hypothesis i iff adjusted[i] <= alpha).

    Rejecting where adjusted <= alpha is Holm's step-down at family level
    alpha, for every alpha; the adjusted value is what a report shows next to
    the raw p so a reader can see how the correction moved it.
    """
    k = len(p_values)
    order = sorted(range(k), key=lambda i: p_values[i])
    adjusted = [1.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Used for false-alarm and detection rates measured over a handful of
    trials, where the plain normal interval would go below 0 or above 1.
    """
    if trials <= 0:
        return (0.0, 1.0)
    # Imported here: scipy.stats takes about a second to import, and only the
    # gate's accuracy study needs it; every report would pay for it otherwise.
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # at 0 or n successes the bound is exactly 0 or 1; floating point leaves dust
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return (lo, hi)
