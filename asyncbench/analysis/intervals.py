"""Intervals from slices: the block-paired log-ratio t-interval, Welch's
interval for arms that never shared a block, and the mean of an arm's slices.

Why these and not a bootstrap over repeats: with three repeats a percentile
bootstrap returns the min-max range whatever the confidence asked for (issue
#10). A t-interval on log throughputs over many short slices means what it
says; pairing by block keeps the comparison inside the same stretch of the
machine's (fast-moving) speed.

Pure functions, no I/O, deterministic. scipy.stats is imported lazily: it
takes about a second and a report of a run without cells should not pay it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, stdev
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncbench.model.results import Cell

# A t-interval from two blocks has one degree of freedom: t is 12.7 at 95%,
# wide enough to be useless and too fragile to call an interval. No claim below.
MIN_BLOCKS = 3
# The first blocks of a group choose the best arm of each side ("best async
# vs best sync"); the blocks after them estimate the ratio of the chosen pair.
# Choosing and estimating on the same slices would favour whichever arm was
# lucky; on separate ones the interval needs no correction. A group with too
# few later blocks (version-1 results: 3 repeats) falls back to choosing on
# every block with a Bonferroni-corrected interval.
PILOT_BLOCKS = 2


@dataclass(frozen=True)
class Interval:
    """A ratio (or an arm's mean) with its interval at `confidence`.

    `n` is the number of blocks paired (Welch: the smaller side's slices) and
    `m` the number of candidate pairs the interval is corrected for.
    """

    point: float
    lo: float
    hi: float
    n: int
    m: int = 1
    confidence: float = 0.95

    @property
    def precision(self) -> float:
        """Half-width on the log scale as a fraction: (hi/lo)^(1/2) - 1."""
        return precision(self.lo, self.hi)


def precision(lo: float, hi: float) -> float:
    if lo <= 0:
        return math.inf
    return math.sqrt(hi / lo) - 1.0


def _t(confidence: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, df))


def corrected(confidence: float, m: int) -> float:
    """Bonferroni: each of m candidate intervals at 1 - alpha/m, so the
    simultaneous coverage (and so the chosen pair's) is at least `confidence`."""
    return 1.0 - (1.0 - confidence) / max(1, m)


def block_throughputs(cell: Cell) -> dict[int, float]:
    """Throughput per block: the usable slices (positive throughput) of one arm.

    A version-1 repeat is its own block (repeats ran in interleaved rounds).
    Two slices of one arm in one block (a retried slice) are averaged.
    """
    by: dict[int, list[float]] = {}
    for r in cell.repeats:
        if r.throughput_rps > 0:
            b = r.block if r.block is not None else r.index
            by.setdefault(b, []).append(r.throughput_rps)
    return {b: fmean(v) for b, v in by.items()}


def pilot_mean(cell: Cell) -> float | None:
    """Mean throughput over the pilot blocks: what the best arm is chosen by."""
    xs = [x for b, x in block_throughputs(cell).items() if b < PILOT_BLOCKS]
    return fmean(xs) if xs else None


def after_pilot(blocks: Mapping[int, float]) -> dict[int, float]:
    return {b: x for b, x in blocks.items() if b >= PILOT_BLOCKS}


def paired_log_ratio(
    num: Mapping[int, float], den: Mapping[int, float], *, confidence: float = 0.95, m: int = 1
) -> Interval | None:
    """Ratio num/den over the blocks both have: exp(mean d ± t·sd/√n), d = ln num - ln den.

    None below MIN_BLOCKS common blocks.
    """
    common = sorted(set(num) & set(den))
    if len(common) < MIN_BLOCKS:
        return None
    d = [math.log(num[b]) - math.log(den[b]) for b in common]
    n = len(d)
    mean = fmean(d)
    half = _t(corrected(confidence, m), n - 1) * stdev(d) / math.sqrt(n)
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, m, confidence)


def welch_log_ratio(
    num: Sequence[float], den: Sequence[float], *, confidence: float = 0.95, m: int = 1
) -> Interval | None:
    """Ratio of geometric means of two independent samples, Welch's t-interval on logs.

    For arms that never ran in the same block (different groups: json against
    json-noindex), where pairing by block number would pair nothing real.
    """
    a = [math.log(x) for x in num if x > 0]
    b = [math.log(x) for x in den if x > 0]
    if len(a) < MIN_BLOCKS or len(b) < MIN_BLOCKS:
        return None
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    mean = fmean(a) - fmean(b)
    if se == 0:
        return Interval(math.exp(mean), math.exp(mean), math.exp(mean), min(len(a), len(b)), m, confidence)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = _t(corrected(confidence, m), df) * se
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), min(len(a), len(b)), m, confidence)


def mean_interval(values: Sequence[float], *, confidence: float = 0.95) -> Interval | None:
    """Mean of values with its t-interval; None below two values."""
    if len(values) < 2:
        return None
    mean = fmean(values)
    half = _t(confidence, len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values), 1, confidence)
