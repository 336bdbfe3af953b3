"""Latency at the same load: which rates to offer, what each point measured, and the comparison.

Pure functions on the results model (asyncbench.model.latency), no I/O.

Rates. Each arm gets the scenario's fractions of its OWN capacity (its curve
up to its own knee), and, with equal_load, the same fractions of the slower
twin's capacity applied to every arm of the workload, so "at N req/s, async
answers in x ms vs y ms" compares equal load. The twins are the best sync
and the best async arm (by capacity; what the verdict compares): the
slower of the two sets the rates. Not the slowest arm overall: one
pathological arm (a sync fan-out under ASGI, serialised on one thread, ran
at a tenth of the others) would pull every comparison down to a load
nobody asks about. An arm offered an equal-load rate above SKIP_ABOVE times
its own capacity is not measured there (its backlog would only be drained
for seconds); the point is kept, empty, with that reason. A rate is rounded
to three significant figures (0.5% at most: less than the open-model
generator's own accuracy, one request in a 1-s window at 200 req/s). The
basis arm's own points are its equal-load points.

Statistics. A point's p50 and p99 are per slice (the unit of replication:
the machine's speed moves between slices, not within one), summarised as
their geometric mean with a t-interval on the logs, as the throughput
ratios are (asyncbench.analysis.intervals); below MIN_BLOCKS slices there
is no interval. A point lost requests (dropped for want of a connection,
unanswered, failed) when the server could not keep up at that rate: it is
labelled past capacity, kept in the tables and charts, and never chosen for
the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, median

from asyncbench.analysis.intervals import MIN_BLOCKS, mean_interval
from asyncbench.model.latency import ArmCapacity, LatencyCurves, LatencyPoint

RATE_DIGITS = 3
SKIP_ABOVE = 1.5  # of an arm's own capacity: an equal-load rate beyond it is not measured
MIN_RATE = 1.0  # req/s: below it a 1-s window holds no request at all
THIN_ANSWERS = 100  # answers per slice below which a slice's p99 is about its maximum


def rate_at(fraction: float, capacity: float) -> float:
    """fraction x capacity to RATE_DIGITS significant figures (nearest), at least MIN_RATE."""
    x = fraction * capacity
    if x <= MIN_RATE:
        return MIN_RATE
    scale = 10 ** (RATE_DIGITS - 1 - math.floor(math.log10(x)))
    return float(round(x * scale) / scale)


@dataclass(frozen=True)
class PlannedPoint:
    setup: str
    variant: str
    kind: str
    rate_rps: float
    fraction: float
    of_arm: str  # whose capacity: "setup/variant"
    equal_load: bool
    skip: str = ""  # why this point is not measured ("": it is)

    @property
    def arm(self) -> str:
        return f"{self.setup}/{self.variant}"


def equal_basis(capacities: Sequence[ArmCapacity]) -> ArmCapacity | None:
    """Whose capacity the equal-load rates are fractions of: the slower of the
    best sync and the best async arm; with one kind only, the slowest arm.
    Ties are broken by name, for a stable plan."""
    best = [
        max((c for c in capacities if c.kind == kind), key=lambda c: (c.capacity_rps, c.arm), default=None)
        for kind in ("sync", "async")
    ]
    twins = [c for c in best if c is not None]
    pool = twins if len(twins) == 2 else list(capacities)
    return min(pool, key=lambda c: (c.capacity_rps, c.arm), default=None)


def plan_points(
    capacities: Sequence[ArmCapacity], fractions: Sequence[float], *, equal_load: bool
) -> list[PlannedPoint]:
    """Every arm x rate to measure, once each: own fractions, then equal-load rates.

    A rate an arm already has (the basis arm's own points; an arm whose
    capacity ties the basis's) is measured once, as an equal-load point.
    """
    points: dict[tuple[str, float], PlannedPoint] = {}
    basis = equal_basis(capacities) if equal_load else None
    for c in capacities:
        if basis is not None:
            for f in fractions:
                r = rate_at(f, basis.capacity_rps)
                skip = ""
                if r > SKIP_ABOVE * c.capacity_rps:
                    skip = (
                        f"not measured: {r:g} req/s is {r / c.capacity_rps:.0%} of this arm's capacity "
                        f"({c.capacity_rps:,.1f} req/s), past it by more than {SKIP_ABOVE:g}x"
                    )
                points[(c.arm, r)] = PlannedPoint(c.setup, c.variant, c.kind, r, f, basis.arm, True, skip)
        for f in fractions:
            r = rate_at(f, c.capacity_rps)
            points.setdefault((c.arm, r), PlannedPoint(c.setup, c.variant, c.kind, r, f, c.arm, False))
    return sorted(points.values(), key=lambda p: (p.arm, p.rate_rps))


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Estimate:
    """A per-slice percentile: geometric mean over slices, with its 95% t-interval (None below MIN_BLOCKS)."""

    value: float
    lo: float | None
    hi: float | None
    n: int


def geo_estimate(values: Sequence[float | None]) -> Estimate | None:
    xs = [v for v in values if v is not None and v > 0]
    if not xs:
        return None
    logs = [math.log(v) for v in xs]
    ci = mean_interval(logs) if len(xs) >= MIN_BLOCKS else None
    if ci is None:
        return Estimate(math.exp(fmean(logs)), None, None, len(xs))
    return Estimate(math.exp(ci.point), math.exp(ci.lo), math.exp(ci.hi), len(xs))


@dataclass(frozen=True)
class PointStats:
    point: LatencyPoint
    capacity: ArmCapacity | None  # the arm's own
    p50: Estimate | None
    p99: Estimate | None
    slices: int
    achieved_rps: float | None  # mean answered per second over the slices
    due: int
    dropped: int
    unfinished: int
    failures: int
    thin: bool  # p99 from fewer than THIN_ANSWERS answers per slice: about the maximum

    @property
    def lost(self) -> int:
        return self.dropped + self.unfinished + self.failures

    @property
    def held(self) -> bool:
        """Every request due in the measured windows was answered: the server kept up."""
        return self.slices > 0 and self.lost == 0 and self.point.error is None

    @property
    def own_fraction(self) -> float | None:
        """The offered rate as a fraction of the arm's own capacity."""
        if self.capacity is None or self.capacity.capacity_rps <= 0:
            return None
        return self.point.rate_rps / self.capacity.capacity_rps

    @property
    def label(self) -> str:
        """Why this point is not an ordinary one ("" when it is)."""
        parts: list[str] = []
        if self.point.error:
            parts.append(self.point.error)
        if self.lost:
            what = ", ".join(
                f"{n:,} {w}"
                for n, w in ((self.dropped, "dropped"), (self.unfinished, "unfinished"), (self.failures, "failed"))
                if n
            )
            parts.append(f"past capacity: {what} of {self.due:,} due")
        frac = self.own_fraction
        if frac is not None and frac > 1:
            parts.append(f"above its measured capacity ({frac:.0%})")
        if self.thin:
            parts.append("thin p99")
        return "; ".join(parts)


def point_stats(point: LatencyPoint, capacity: ArmCapacity | None) -> PointStats:
    sl = point.slices
    answered = [s.requests for s in sl]
    return PointStats(
        point=point,
        capacity=capacity,
        p50=geo_estimate([s.p50_ms for s in sl]),
        p99=geo_estimate([s.p99_ms for s in sl]),
        slices=len(sl),
        achieved_rps=fmean(s.throughput_rps for s in sl) if sl else None,
        due=sum(s.due for s in sl),
        dropped=sum(s.dropped for s in sl),
        unfinished=sum(s.unfinished for s in sl),
        failures=sum(s.failure_count for s in sl),
        thin=bool(answered) and median(answered) < THIN_ANSWERS,
    )


def curve_stats(curves: LatencyCurves) -> list[PointStats]:
    """Every point of a workload, by arm and rate."""
    out = [point_stats(p, curves.capacity(p.arm)) for p in curves.points]
    return sorted(out, key=lambda s: (s.point.arm, s.point.rate_rps))


# ------------------------------------------------------------------ comparison at the same load


@dataclass(frozen=True)
class LatencyVerdict:
    """Best async vs best sync (lowest p99) at one equal-load rate.

    `rate`: the highest equal-load rate at which both sides' arms answered
    every request (None: no such rate; `why` says what was missing).
    """

    workload: str
    params: dict[str, int]
    rate: float | None
    async_side: PointStats | None
    sync_side: PointStats | None
    why: str = ""

    @property
    def sync_fraction(self) -> float | None:
        """The rate as a fraction of the quoted sync arm's capacity."""
        return self.sync_side.own_fraction if self.sync_side is not None else None

    @property
    def p99_ratio(self) -> float | None:
        a, s = self.async_side, self.sync_side
        if a is None or s is None or a.p99 is None or s.p99 is None or s.p99.value <= 0:
            return None
        return a.p99.value / s.p99.value

    @property
    def separated(self) -> str:
        """ "faster"/"slower" when the two p99 intervals do not overlap, else "" (no claim)."""
        a, s = self.async_side, self.sync_side
        if a is None or s is None or a.p99 is None or s.p99 is None:
            return ""
        if None in (a.p99.lo, a.p99.hi, s.p99.lo, s.p99.hi):
            return ""
        assert a.p99.hi is not None and a.p99.lo is not None and s.p99.lo is not None and s.p99.hi is not None
        if a.p99.hi < s.p99.lo:
            return "faster"
        if a.p99.lo > s.p99.hi:
            return "slower"
        return ""


def _best(stats: Sequence[PointStats]) -> PointStats | None:
    ok = [s for s in stats if s.held and s.p99 is not None]
    return min(ok, key=lambda s: (s.p99.value if s.p99 else math.inf, s.point.arm), default=None)


def latency_verdict(curves: LatencyCurves) -> LatencyVerdict:
    stats = [s for s in curve_stats(curves) if s.point.equal_load]
    kinds = {c.kind for c in curves.capacities}
    base = LatencyVerdict(curves.workload, dict(curves.params), None, None, None)
    if not {"sync", "async"} <= kinds:
        have = ", ".join(sorted(kinds)) or "no arm"
        return _with(base, f"needs a sync and an async arm (measured: {have})")
    if not stats:
        return _with(base, "no equal-load point (latency.equal_load is off, or no capacity was measured)")
    rates = sorted({s.point.rate_rps for s in stats}, reverse=True)
    for r in rates:
        at = [s for s in stats if s.point.rate_rps == r]
        a = _best([s for s in at if s.point.kind == "async"])
        y = _best([s for s in at if s.point.kind == "sync"])
        if a is not None and y is not None:
            return LatencyVerdict(curves.workload, dict(curves.params), r, a, y)
    return _with(base, "at no equal-load rate did both a sync and an async arm answer every request")


def _with(v: LatencyVerdict, why: str) -> LatencyVerdict:
    return LatencyVerdict(v.workload, v.params, None, None, None, why)
