"""One summary per cell, computed once: every reader (verdicts, gate, charts,
report, CSV, terminal) takes its throughput, spread, CPU per request,
percentiles, labels and flags from here instead of recomputing them.

A cell's repeats are its slices (version 2: one short window per block;
version 1: one long window per repeat). Throughput is the mean of the slices
with a 95% t-interval; CPU per request comes from totals; percentiles come
from the merged histogram with their sample count, or in version-1 files
(no histogram) from the median of the repeats' percentiles. The server's own
counters (thread hops, Django's connects, the database's connections) are
per request from totals over the slices that have them (total / total, like
CPU: a short slice weighs what its requests weigh).

`Cell.summary` builds it on first use and keeps it on the (frozen) cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean, median
from typing import TYPE_CHECKING, Any

from asyncbench.analysis.intervals import mean_interval
from asyncbench.analysis.stats import cv
from asyncbench.model import flags
from asyncbench.model.histogram import Histogram

if TYPE_CHECKING:
    from asyncbench.model.results import Cell

ParamsKey = tuple[tuple[str, int], ...]

# A p99 read from fewer samples rests on its ten largest values or fewer:
# shown (marked), never compared.
THIN_P99_SAMPLES = 1000


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
    repeats: int  # slices (version 1: repeats)
    blocks: int  # distinct blocks the slices ran in
    rps: float | None  # mean throughput over slices
    rps_lo: float | None  # its 95% t-interval (None below two slices)
    rps_hi: float | None
    rps_min: float | None
    rps_max: float | None
    rps_cv: float | None  # per slice
    p50_ms: float | None  # from the merged histogram (version 1: medians over repeats)
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    latency_samples: int  # requests the percentiles rest on
    p99_thin: bool  # fewer than THIN_P99_SAMPLES: shown, marked, never compared
    cpu_ms_per_request: float | None  # total server CPU / total requests
    cpu_lo: float | None  # 95% interval from the per-slice values
    cpu_hi: float | None
    rss_peak_mb: float | None  # peak over slices
    generator_cpu_peak_percent: float | None
    requests: int
    failures: int
    flags: tuple[str, ...]  # flags.codes(cell)
    flagged: bool
    excluded: bool  # left out of verdicts (flags.POLICY)
    lower_bound: bool  # its throughput is a lower bound (generator-bound)
    # From the server's counters (Repeat.server_counters), None when no slice has them:
    served: int | None = None  # requests that reached Django in the windows (the server's count)
    sync_to_async_per_request: float | None = None
    async_to_sync_per_request: float | None = None
    django_connects_per_1k: float | None = None  # connection_created (PostgreSQL's pool: checkouts)
    # connections the database server saw opened, per 1,000 served requests (None on SQLite)
    db_connections_per_1k: float | None = None
    # How long a sync_to_async call waited for its thread to start it (µs, mean per hop)
    thread_wait_us_per_hop: float | None = None
    # The event loop's lag (ASGI): mean over the sampler's wake-ups, and the
    # largest in any window (ms); None under WSGI (no loop) or without counters
    loop_lag_mean_ms: float | None = None
    loop_lag_max_ms: float | None = None
    # The cyclic GC's pauses per request (µs)
    gc_pause_us_per_request: float | None = None
    # of which full (oldest-generation) collections, and how long one took on
    # average (ms: every such pause stops the whole process); None when not counted
    gc_full_pause_us_per_request: float | None = None
    gc_full_ms_each: float | None = None

    @property
    def hops_per_request(self) -> float | None:
        """Thread hops: sync_to_async and async_to_sync calls per request."""
        if self.sync_to_async_per_request is None or self.async_to_sync_per_request is None:
            return None
        return self.sync_to_async_per_request + self.async_to_sync_per_request


def _percentiles(cell: Cell) -> tuple[list[float | None], int]:
    """p50, p90, p95, p99 in ms and the sample count they rest on."""
    if cell.histogram is not None:
        h = Histogram.from_dict(cell.histogram)
        ps = [h.percentile(q) for q in (50, 90, 95, 99)]
        return [p / 1000.0 if p is not None else None for p in ps], h.count
    reps = cell.repeats
    # Version 1: each repeat's percentiles came from its own histogram; their
    # median is what earlier reports showed. The samples are all requests.
    ps = [_median([getattr(r.latency, a) for r in reps]) for a in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")]
    return ps, sum(r.latency.count for r in reps)


def _cpu(cell: Cell) -> tuple[float | None, float | None, float | None]:
    # slices whose server CPU was not measured (None) are left out, never read as 0
    reps = [r for r in cell.repeats if r.requests > 0 and r.server_cpu_s is not None]
    requests = sum(r.requests for r in reps)
    if not requests:
        return None, None, None
    # server CPU seconds per 1,000 requests = milliseconds per request
    point = sum(r.server_cpu_s or 0.0 for r in reps) / requests * 1000.0
    per = mean_interval([(r.server_cpu_s or 0.0) / r.requests * 1000.0 for r in reps])
    if per is None:
        return point, None, None
    # The half-width comes from the slices' spread; the point from totals (a
    # slow slice with few requests must not weigh as much as a full one).
    half = (per.hi - per.lo) / 2.0
    return point, max(0.0, point - half), point + half


def _counted(cell: Cell) -> dict[str, Any]:
    """The counters per request, from totals over the slices that have them
    (CellSummary's fields of the same names; none when no slice has them)."""
    reps = [r for r in cell.repeats if r.server_counters is not None]
    # an HTTP request or a WebSocket message answered: one of the two is 0 in a cell
    served = sum(
        (r.server_counters or {}).get("requests", 0) + (r.server_counters or {}).get("ws_messages", 0) for r in reps
    )
    if not reps:
        return {}

    def total(name: str) -> int:
        return sum((r.server_counters or {}).get(name, 0) for r in reps)

    s2a, lag_samples = total("sync_to_async"), total("loop_lag_samples")
    lagged = [r for r in reps if (r.server_counters or {}).get("loop_lag_samples", 0) > 0]

    def per(name: str, scale: float = 1.0) -> float | None:
        total = sum((r.server_counters or {}).get(name, 0) for r in reps)
        return total / served * scale if served else None

    full_counted = any("gc_full_collections" in (r.server_counters or {}) for r in reps)
    full = total("gc_full_collections")
    # the database's count only from slices that read it, over their own requests
    with_db = [r for r in reps if r.db_connections is not None]
    db_served = sum((r.server_counters or {}).get("requests", 0) for r in with_db)
    return {
        "served": served,
        "sync_to_async_per_request": per("sync_to_async"),
        "async_to_sync_per_request": per("async_to_sync"),
        "django_connects_per_1k": per("db_connects", 1000.0),
        "db_connections_per_1k": (
            sum(r.db_connections or 0 for r in with_db) / db_served * 1000.0 if with_db and db_served else None
        ),
        "thread_wait_us_per_hop": total("thread_wait_ns") / s2a / 1000.0 if s2a else None,
        "loop_lag_mean_ms": total("loop_lag_ns") / lag_samples / 1e6 if lag_samples else None,
        "loop_lag_max_ms": (
            max((r.server_counters or {}).get("loop_lag_max_ns", 0) for r in lagged) / 1e6 if lagged else None
        ),
        "gc_pause_us_per_request": total("gc_pause_ns") / served / 1000.0 if served else None,
        # counted since 2026-11-28: absent from older slices' counters, so None there, not 0
        "gc_full_pause_us_per_request": (
            total("gc_full_pause_ns") / served / 1000.0 if served and full_counted else None
        ),
        "gc_full_ms_each": total("gc_full_pause_ns") / full / 1e6 if full else None,
    }


def summarize(cell: Cell) -> CellSummary:
    reps = cell.repeats
    rps = [r.throughput_rps for r in reps]
    ci = mean_interval(rps)
    label = params_label(cell.params)
    arm = f"{cell.setup} / {cell.variant}"
    (p50, p90, p95, p99), samples = _percentiles(cell)
    cpu, cpu_lo, cpu_hi = _cpu(cell)
    return CellSummary(
        key=cell.key,
        name=f"{arm} at {users_label(cell.users)}" + (f", {label}" if label else ""),
        arm=arm,
        params=params_key(cell.params),
        params_label=label,
        repeats=len(reps),
        blocks=len({r.block if r.block is not None else r.index for r in reps}),
        rps=fmean(rps) if rps else None,
        rps_lo=max(0.0, ci.lo) if ci else None,  # a throughput is never below 0, however few the slices
        rps_hi=ci.hi if ci else None,
        rps_min=min(rps) if rps else None,
        rps_max=max(rps) if rps else None,
        rps_cv=cv(rps),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        latency_samples=samples,
        p99_thin=p99 is not None and samples < THIN_P99_SAMPLES,
        cpu_ms_per_request=cpu,
        cpu_lo=cpu_lo,
        cpu_hi=cpu_hi,
        rss_peak_mb=max((r.server_rss_peak_mb for r in reps if r.server_rss_peak_mb is not None), default=None),
        generator_cpu_peak_percent=max((r.generator_cpu_peak_percent for r in reps), default=None),
        requests=sum(r.requests for r in reps),
        failures=sum(r.failure_count for r in reps),
        flags=tuple(flags.codes(cell)),
        flagged=flags.is_flagged(cell),
        excluded=flags.is_excluded(cell),
        lower_bound=flags.is_lower_bound(cell),
        **_counted(cell),
    )
