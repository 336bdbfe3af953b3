"""One summary per cell, computed once: every reader (verdicts, gate, charts,
report, CSV, terminal) takes its medians, spread, CPU per request, labels and
flags from here instead of recomputing them.

`Cell.summary` builds it on first use and keeps it on the (frozen) cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING

from asyncbench.analysis.stats import cv
from asyncbench.model import flags

if TYPE_CHECKING:
    from asyncbench.model.results import Cell

ParamsKey = tuple[tuple[str, int], ...]


def params_key(params: dict[str, int]) -> ParamsKey:
    """Parameters in a stable order: how cells with the same parameters group."""
    return tuple(sorted(params.items()))


def params_label(params: dict[str, int] | ParamsKey, sep: str = ", ") -> str:
    """ "calls=3, delay_ms=50": the one way a parameter set is written."""
    items = params_key(params) if isinstance(params, dict) else params
    return sep.join(f"{k}={v}" for k, v in items)


def users_label(n: int) -> str:
    return f"{n:,} user" if n == 1 else f"{n:,} users"


def _median(values: list[float]) -> float | None:
    return float(median(values)) if values else None


@dataclass(frozen=True)
class CellSummary:
    key: str  # stable identity across runs: setup/workload/variant/u<users>,k=v
    name: str  # "setup / variant at N users, k=v", as a reader says it
    arm: str  # "setup / variant"
    params: ParamsKey
    params_label: str
    repeats: int
    rps: float | None  # median throughput over repeats
    rps_min: float | None
    rps_max: float | None
    rps_cv: float | None
    p50_ms: float | None  # medians over repeats of each percentile
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_ms_per_request: float | None  # median over repeats
    rss_peak_mb: float | None  # peak over repeats
    generator_cpu_peak_percent: float | None
    requests: int
    failures: int
    flags: tuple[str, ...]  # flags.codes(cell)
    flagged: bool
    excluded: bool  # left out of verdicts (flags.POLICY)
    lower_bound: bool  # its throughput is a lower bound (generator-bound)


def summarize(cell: Cell) -> CellSummary:
    reps = cell.repeats
    rps = [r.throughput_rps for r in reps]
    # server CPU seconds per 1,000 requests = milliseconds per request
    cpu = [x for x in (r.cpu_s_per_1k_requests for r in reps) if x is not None]
    label = params_label(cell.params)
    arm = f"{cell.setup} / {cell.variant}"
    return CellSummary(
        key=cell.key,
        name=f"{arm} at {users_label(cell.users)}" + (f", {label}" if label else ""),
        arm=arm,
        params=params_key(cell.params),
        params_label=label,
        repeats=len(reps),
        rps=_median(rps),
        rps_min=min(rps) if rps else None,
        rps_max=max(rps) if rps else None,
        rps_cv=cv(rps),
        p50_ms=_median([r.latency.p50_ms for r in reps]),
        p90_ms=_median([r.latency.p90_ms for r in reps]),
        p95_ms=_median([r.latency.p95_ms for r in reps]),
        p99_ms=_median([r.latency.p99_ms for r in reps]),
        cpu_ms_per_request=_median(cpu),
        rss_peak_mb=max((r.server_rss_peak_mb for r in reps), default=None),
        generator_cpu_peak_percent=max((r.generator_cpu_peak_percent for r in reps), default=None),
        requests=sum(r.requests for r in reps),
        failures=sum(r.failure_count for r in reps),
        flags=tuple(flags.codes(cell)),
        flagged=flags.is_flagged(cell),
        excluded=flags.is_excluded(cell),
        lower_bound=flags.is_lower_bound(cell),
    )
