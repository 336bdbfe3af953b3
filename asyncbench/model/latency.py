"""Latency at the same load: the scenario's `[latency]` table and the curves a run records.

Every other latency in a report comes from a closed loop at saturation, where
p99 is about users / throughput: it only mirrors throughput. The latency
phase asks the other question: at a given arrival rate, how fast does each
arm answer? Each arm's capacity (its closed-loop throughput) is known first;
then open-model slices (latency from the intended send time, see
asyncbench.execute.openloop) run at fractions of each arm's OWN capacity,
and at the SAME absolute rates for every arm of the workload (the fractions
of the slower twin's capacity: the slower of the best sync and the best
async arm), so twins are compared at equal load.

Stored in results.json as `Run.latency`, a list of `LatencyCurves` (one per
workload), each stamped with its own `version` (LATENCY_VERSION): a reader
that does not know a later shape of this section can refuse it alone and
still read the run. Results written before the phase existed have no
`latency` key and load with no curves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from asyncbench.model.scenario_keys import ScenarioError, check_keys, positive

# 1: capacities, points (own and equal-load), slices with their percentiles.
LATENCY_VERSION = 1
READABLE_LATENCY_VERSIONS = (1,)

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
MAX_FRACTION = 2.0  # past 1 on purpose: a point beyond capacity shows the knee (and is labelled so)
MIN_BLOCKS = 3  # an interval from fewer slices per point is not one (asyncbench.analysis.intervals)
ARRIVALS = ("uniform", "poisson")

LATENCY_KEYS: Mapping[str, type] = {
    "fractions": list,
    "equal_load": bool,
    "workloads": list,
    "blocks": int,
    "budget_s": float,
    "window_s": float,
    "arrival": str,
    "connections": int,
    "probe_users": int,
}


@dataclass(frozen=True)
class LatencyConfig:
    """The `[latency]` table: present = the phase runs after the run's groups.

    `fractions`: of each arm's own capacity, and (with `equal_load`) of the
    slower twin's capacity (asyncbench.analysis.latency.equal_basis), applied
    to every arm of the workload. `workloads`:
    which of the scenario's (empty: all). `blocks`: slices per point (every
    point once per block, in a fresh random order); `budget_s` (0 = none)
    ends the phase earlier, never below MIN_BLOCKS blocks. `window_s`: each
    slice's window (0 = load.window_s). `arrival`: Poisson by default, since
    evenly spaced arrivals never queue below capacity and would hide what
    random arrivals (real users) do. `connections`: each arm's pool (0 =
    load.connections, else 64); a request due while every connection is busy
    is dropped and counted. `probe_users`: users of the closed-loop probe
    that measures an arm's capacity when the run has no closed-loop cell of
    it (0 = the workload's highest users level).
    """

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    equal_load: bool = True
    workloads: tuple[str, ...] = ()
    blocks: int = 5
    budget_s: float = 0.0
    window_s: float = 0.0
    arrival: str = "poisson"
    connections: int = 0
    probe_users: int = 0


def parse_latency(section: dict[str, Any], workloads: tuple[str, ...]) -> LatencyConfig:
    """`[latency]` validated; `workloads` are the scenario's (what `latency.workloads` may name)."""
    check_keys("latency", section, LATENCY_KEYS)
    d = dict(section)
    fractions = d.pop("fractions", list(DEFAULT_FRACTIONS))
    if not fractions:
        raise ScenarioError("latency.fractions: must not be empty (e.g. [0.25, 0.5, 0.75, 0.9])")
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= MAX_FRACTION:
            raise ScenarioError(
                f"latency.fractions: {f!r} is not a fraction of capacity in (0, {MAX_FRACTION:g}] "
                "(above 1 is past capacity, on purpose)"
            )
    if len(set(fractions)) != len(fractions):
        raise ScenarioError(f"latency.fractions: duplicate values in {fractions}")
    names = d.pop("workloads", [])
    for n in names:
        if n not in workloads:
            raise ScenarioError(
                f"latency.workloads: {n!r} is not one of this scenario's workloads; allowed: {', '.join(workloads)}"
            )
    cfg = LatencyConfig(fractions=tuple(sorted(float(f) for f in fractions)), workloads=tuple(names), **d)
    if cfg.blocks < MIN_BLOCKS:
        raise ScenarioError(
            f"latency.blocks: must be >= {MIN_BLOCKS} (an interval needs {MIN_BLOCKS}), got {cfg.blocks}"
        )
    positive("latency.budget_s", cfg.budget_s, allow_zero=True)
    positive("latency.window_s", cfg.window_s, allow_zero=True)
    if cfg.arrival not in ARRIVALS:
        raise ScenarioError(f"latency.arrival: unknown {cfg.arrival!r}; allowed: {', '.join(ARRIVALS)}")
    if cfg.connections < 0:
        raise ScenarioError(f"latency.connections: must be >= 0, got {cfg.connections}")
    if cfg.probe_users < 0:
        raise ScenarioError(
            f"latency.probe_users: must be >= 0 (0 = the workload's highest level), got {cfg.probe_users}"
        )
    return cfg


@dataclass(frozen=True)
class ArmCapacity:
    """One arm's capacity: what its fractions are of."""

    setup: str
    variant: str
    kind: str  # "sync" or "async"
    capacity_rps: float
    source: str  # "closed loop" (the run's own cells) or "probe" (one slice measured for the phase)
    users: int  # the closed-loop users it was measured at
    slices: int  # how many slices the number is the mean of
    flags: tuple[str, ...] = ()  # the cell's flag codes (generator-bound: the capacity is a lower bound)

    @property
    def arm(self) -> str:
        return f"{self.setup}/{self.variant}"


@dataclass(frozen=True)
class LatencySlice:
    """One open-model window of one arm at one rate."""

    block: int
    started_at: float
    duration_s: float
    target_rps: float
    due: int  # requests due in the window
    requests: int  # answered successfully
    failures: dict[str, int]
    dropped: int  # due while every connection was busy: not sent
    unfinished: int  # sent, unanswered at the end of the grace time
    throughput_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    send_lag_p99_ms: float | None = None  # how late the generator sent
    server_cpu_percent: float | None = None  # percent of one core over the window
    generator_cores_busy_percent: float | None = None
    drain_s: float | None = None
    drain_timed_out: bool = False

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    @property
    def lost(self) -> int:
        """Requests due in the window that got no answer: dropped, unfinished or failed
        (the driver files an unfinished request as a failure "unfinished" too:
        counted once)."""
        failed = sum(n for kind, n in self.failures.items() if kind != "unfinished")
        return self.dropped + self.unfinished + failed


@dataclass(frozen=True)
class LatencyPoint:
    """One arm at one offered rate, and its slices.

    `fraction` of `of_arm`'s capacity ("setup/variant"; the arm itself for a
    point of its own curve). `equal_load`: one of the rates every arm of the
    workload ran at. The basis arm's own points are its equal-load points
    (the same rate), stored once. `error`: why it has no slices (not
    measured: far past the arm's capacity; or a failure), shown, never dropped.
    """

    setup: str
    variant: str
    kind: str
    rate_rps: float
    fraction: float
    of_arm: str
    equal_load: bool
    slices: tuple[LatencySlice, ...] = ()
    histogram: dict[str, Any] | None = None  # every slice merged (asyncbench.model.histogram)
    error: str | None = None

    @property
    def arm(self) -> str:
        return f"{self.setup}/{self.variant}"


@dataclass(frozen=True)
class LatencyCurves:
    """The latency phase of one workload: capacities, points, how it ran."""

    workload: str
    params: dict[str, int]
    capacities: tuple[ArmCapacity, ...]
    points: tuple[LatencyPoint, ...]
    fractions: tuple[float, ...]
    arrival: str
    window_s: float
    connections: int
    blocks: int = 0
    stop_reason: str = ""  # "blocks", "budget", "interrupted", "no capacity"
    rule: str = ""  # how the rates were chosen, as a sentence
    version: int = LATENCY_VERSION
    notes: tuple[str, ...] = field(default_factory=tuple)

    def capacity(self, arm: str) -> ArmCapacity | None:
        return next((c for c in self.capacities if c.arm == arm), None)


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def curves_from_dict(d: Mapping[str, Any]) -> LatencyCurves | None:
    """One workload's curves as stored; None for a version this reader does not know."""
    if d.get("version", LATENCY_VERSION) not in READABLE_LATENCY_VERSIONS:
        return None
    x = dict(d)
    x["capacities"] = tuple(
        ArmCapacity(**{**_known(ArmCapacity, c), "flags": tuple(c.get("flags") or ())}) for c in d.get("capacities", ())
    )
    x["points"] = tuple(
        LatencyPoint(
            **{
                **_known(LatencyPoint, p),
                "slices": tuple(LatencySlice(**_known(LatencySlice, s)) for s in p.get("slices", ())),
            }
        )
        for p in d.get("points", ())
    )
    x["fractions"] = tuple(d.get("fractions", ()))
    x["notes"] = tuple(d.get("notes", ()))
    return LatencyCurves(**_known(LatencyCurves, x))
