"""Do the intervals mean what they say? Coverage of A/A ratios.

An A/A run measures the same arm under two names (two servers of the same
setup, e.g. `gthread-a` and `gthread-b`): the true ratio of their throughputs
is 1. Over many groups, a nominal 95% interval should contain 1 in about 95%
of them, and a 99% interval, computed from the same slices, should be wider
and contain 1 more often. This module pairs the twins of an A/A run and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncbench.analysis.intervals import Interval, block_throughputs, paired_log_ratio
from asyncbench.analysis.stats import wilson_interval
from asyncbench.model.results import Cell, Run

A_SUFFIX, B_SUFFIX = "-a", "-b"


@dataclass(frozen=True)
class AAPair:
    """One A/A ratio: the same setup, workload, variant and load under two names."""

    setup: str  # the name without its -a/-b suffix
    workload: str
    variant: str
    users: int
    params: tuple[tuple[str, int], ...]
    intervals: dict[float, Interval]  # confidence -> interval of a/b

    def covers(self, confidence: float) -> bool:
        iv = self.intervals[confidence]
        return iv.lo <= 1.0 <= iv.hi


@dataclass(frozen=True)
class Coverage:
    confidence: float
    pairs: int
    covered: int
    wilson: tuple[float, float]  # 95% interval of the coverage itself
    mean_precision: float  # the intervals' mean half-width (fraction)

    @property
    def rate(self) -> float:
        return self.covered / self.pairs if self.pairs else 0.0


def aa_pairs(run: Run, confidences: Sequence[float] = (0.95, 0.99)) -> list[AAPair]:
    """Every twin pair of the run with at least 3 common blocks."""
    by_key: dict[tuple[str, str, str, int, tuple[tuple[str, int], ...]], Cell] = {
        (c.setup, c.workload, c.variant, c.users, tuple(sorted(c.params.items()))): c
        for c in run.cells
        if c.status == "ok"
    }
    out: list[AAPair] = []
    for (setup, workload, variant, users, params), a in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        if not setup.endswith(A_SUFFIX):
            continue
        base = setup[: -len(A_SUFFIX)]
        b = by_key.get((base + B_SUFFIX, workload, variant, users, params))
        if b is None:
            continue
        ivs: dict[float, Interval] = {}
        for conf in confidences:
            iv = paired_log_ratio(block_throughputs(a), block_throughputs(b), confidence=conf)
            if iv is not None:
                ivs[conf] = iv
        if len(ivs) == len(confidences):
            out.append(AAPair(base, workload, variant, users, params, ivs))
    return out


def coverage(pairs: Sequence[AAPair], confidence: float) -> Coverage:
    covered = sum(p.covers(confidence) for p in pairs)
    lo, hi = wilson_interval(covered, len(pairs)) if pairs else (0.0, 1.0)
    widths = [p.intervals[confidence].precision for p in pairs]
    return Coverage(
        confidence=confidence,
        pairs=len(pairs),
        covered=covered,
        wilson=(lo, hi),
        mean_precision=sum(widths) / len(widths) if widths else float("nan"),
    )
