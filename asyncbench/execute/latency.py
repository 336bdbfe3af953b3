"""The latency phase: open-model slices at fractions of each arm's capacity, after the run's groups.

Why after the groups and inside `run` (a `[latency]` table, off unless a
scenario has one) rather than a separate command: capacity is the arms'
closed-loop throughput, which the run has just measured on the same servers,
in the same minutes, on the same machine; a separate command would start
everything again and measure capacity on a machine in another mood. Where
the run has no closed-loop cell of an arm (an open-model scenario, a
workload run at other parameters) one closed-loop probe slice measures it
here, as `load.rate_fraction` does.

Per workload (its fixed parameters; a sweep's points are not curved): the
rates come from asyncbench.analysis.latency.plan_points; every point runs
once per block, the points of a block in a fresh seeded random order, each
slice followed by a drain of the server, `blocks` blocks or fewer when the
phase's budget ends (never fewer than MIN_BLOCKS). Results go to
`Run.latency` (asyncbench.model.latency), saved after every block.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from asyncbench.analysis.latency import PlannedPoint, equal_basis, plan_points
from asyncbench.execute.checks import check_body
from asyncbench.execute.groups import SLICE_OVERHEAD_S, logged_in
from asyncbench.execute.load import LoadGenerator, Measurement
from asyncbench.execute.monitor import WindowUsage
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import ProcessError
from asyncbench.execute.servers import drain_server
from asyncbench.model.histogram import Histogram
from asyncbench.model.latency import (
    MIN_BLOCKS,
    ArmCapacity,
    LatencyConfig,
    LatencyCurves,
    LatencyPoint,
    LatencySlice,
)
from asyncbench.model.results import Cell
from asyncbench.model.scenario import Scenario, WorkloadConfig, not_here, runs_on

if TYPE_CHECKING:
    from asyncbench.execute.slices import RunContext

DEFAULT_CONNECTIONS = 64


@dataclass
class LatencyState:
    """The phase so far: what a save (or an interrupted run) records."""

    curves: list[LatencyCurves] = field(default_factory=list)
    active: int | None = None  # the index of the workload being measured

    def done(self) -> tuple[LatencyCurves, ...]:
        return tuple(self.curves)

    def interrupt(self) -> None:
        """The run was interrupted: the workload being measured says so."""
        if self.active is not None:
            self.curves[self.active] = replace(self.curves[self.active], stop_reason="interrupted")
            self.active = None


def _window_s(scenario: Scenario, cfg: LatencyConfig) -> float:
    return cfg.window_s or scenario.load.window_s


def _connections(scenario: Scenario, cfg: LatencyConfig) -> int:
    return cfg.connections or scenario.load.connections or DEFAULT_CONNECTIONS


def _workloads(scenario: Scenario, cfg: LatencyConfig) -> list[WorkloadConfig]:
    return [w for w in scenario.workloads if not cfg.workloads or w.name in cfg.workloads]


def slice_s(scenario: Scenario, cfg: LatencyConfig) -> float:
    """Expected seconds of one slice (settle, window, overhead; the drain is extra)."""
    return scenario.load.settle_s + _window_s(scenario, cfg) + SLICE_OVERHEAD_S


def points_per_arm(cfg: LatencyConfig) -> int:
    """At most: own fractions and equal-load rates (the basis arm's coincide)."""
    return len(cfg.fractions) * (2 if cfg.equal_load else 1)


def planned_s(scenario: Scenario) -> tuple[float, float]:
    """(least, most) seconds the phase adds, for the plan printed before a run."""
    cfg = scenario.latency
    if cfg is None:
        return 0.0, 0.0
    arms = sum(len(scenario.setups) * len(w.variants) for w in _workloads(scenario, cfg))
    block = arms * points_per_arm(cfg) * slice_s(scenario, cfg)
    least = min(cfg.blocks, MIN_BLOCKS) * block if cfg.budget_s else cfg.blocks * block
    most = cfg.blocks * block
    if cfg.budget_s:
        most = max(least, min(most, cfg.budget_s))
    return least, most


# ------------------------------------------------------------------ capacity


def capacity_from_cells(cells: list[Cell], setup: str, variant: str, kind: str) -> ArmCapacity | None:
    """The arm's closed-loop capacity from the run's own cells: the highest mean
    throughput over its users levels (an arm limited by its users, not its
    server, reads low: the phase then offers it less than it could carry)."""
    best: Cell | None = None
    for c in cells:
        if c.status != "ok" or not c.repeats or c.summary.rps is None:
            continue
        if best is None or c.summary.rps > (best.summary.rps or 0.0):
            best = c
    if best is None or not best.summary.rps:
        return None
    return ArmCapacity(
        setup,
        variant,
        kind,
        round(best.summary.rps, 2),
        "closed loop",
        best.users,
        len(best.repeats),
        # generator-bound: a lower bound, so its fractions are lower fractions of the true capacity
        tuple(best.summary.flags),
    )


def _probe(ctx: RunContext, gen: LoadGenerator, arm: Planned, users: int) -> ArmCapacity | str:
    """One closed-loop slice at `users`: the arm's capacity, or why not."""
    server, _ = ctx.running(arm)
    if server is None:
        return f"{arm.setup} is not running"
    load = ctx.scenario.load
    try:
        m = gen.measure(
            host=server.base_url,
            path=server.prefix + arm.path,
            users=users,
            warmup_s=load.settle_s,
            min_s=max(1.0, load.window_s),
            max_s=max(1.0, load.window_s),
            slow_max_s=max(1.0, load.max_window_s),
            target_rse=0.0,
            min_requests_per_user=load.min_requests_per_user,
            request=_request(arm),
        )
    except ProcessError as exc:
        return f"probe failed: {exc}"
    finally:
        drain_server(server, load.drain_timeout_s)
    if not m.requests or m.failures:
        return f"probe answered {m.requests} requests with {sum(m.failures.values())} failures"
    return ArmCapacity(arm.setup, arm.variant, arm.kind, round(m.throughput_rps, 2), "probe", users, 1)


# ------------------------------------------------------------------ one slice


def _request(item: Planned) -> dict[str, Any] | None:
    spec = item.request
    return None if spec.plain else spec.to_dict()


def _ms(h: Histogram, q: float) -> float | None:
    v = h.percentile(q)
    return None if v is None else round(v / 1000.0, 4)


def _slice(
    ctx: RunContext, gen: LoadGenerator, arm: Planned, rate: float, cfg: LatencyConfig
) -> tuple[LatencySlice, Histogram] | str:
    """One open-model window of `arm` at `rate`, then a drain; or the reason it could not run."""
    server, restarted = ctx.running(arm)
    if server is None:
        return f"setup {arm.setup} is not running: {ctx.start_errors.get((arm.setup, arm.revision), 'see logs/')}"
    key = (arm.setup, arm.revision)
    if restarted or (key, arm.cell_id) not in ctx.checked:
        problem = check_body(arm, server.port, ctx.references, origin=server.origin, prefix=server.prefix)
        if problem:
            return problem
        ctx.checked.add((key, arm.cell_id))
    scenario = ctx.scenario
    got: dict[str, Any] = {}

    def start() -> None:
        server.monitor.begin()
        ctx.cores.begin()
        got["open"] = True

    def end() -> None:
        got["server"] = server.monitor.end()
        got["cores"] = ctx.cores.end()

    try:
        m = gen.measure(
            host=server.base_url,
            path=server.prefix + arm.path,
            users=1,
            warmup_s=scenario.load.settle_s,
            min_s=_window_s(scenario, cfg),
            max_s=_window_s(scenario, cfg),
            slow_max_s=_window_s(scenario, cfg),
            target_rse=0.0,
            min_requests_per_user=1,
            on_window_start=start,
            on_window_end=end,
            rate=rate,
            arrival=cfg.arrival,
            connections=_connections(scenario, cfg),
            request=_request(arm),
            # a fresh arrival schedule per block (the default seed repeats one draw in every
            # slice), the same for every arm of a block: its points see the same arrivals
            seed=arm.repeat + 1,
        )
    except ProcessError as exc:
        if got.get("open") and "server" not in got:
            server.monitor.end()
        return str(exc)
    done = drain_server(server, scenario.load.drain_timeout_s)
    return _record(
        arm, m, usage=got.get("server"), cores=got.get("cores"), drain_s=done.seconds, drain_timed_out=done.timed_out
    ), m.histogram


def _record(
    arm: Planned,
    m: Measurement,
    *,
    usage: WindowUsage | None,
    cores: float | None,
    drain_s: float,
    drain_timed_out: bool,
) -> LatencySlice:
    o = m.open or {}
    lag = o.get("send_lag") or {}
    return LatencySlice(
        block=arm.repeat,
        started_at=m.started_at,
        duration_s=m.duration_s,
        target_rps=float(o.get("target_rps") or 0.0),
        due=int(o.get("due") or 0),
        requests=m.requests,
        failures=dict(m.failures),
        dropped=int(o.get("dropped") or 0),
        unfinished=int(o.get("unfinished") or 0),
        throughput_rps=round(m.throughput_rps, 3),
        p50_ms=_ms(m.histogram, 50),
        p90_ms=_ms(m.histogram, 90),
        p99_ms=_ms(m.histogram, 99),
        max_ms=_ms(m.histogram, 100),
        send_lag_p99_ms=lag.get("p99_ms"),
        server_cpu_percent=usage.cpu_percent if usage is not None else None,
        generator_cores_busy_percent=cores,
        drain_s=round(drain_s, 3),
        drain_timed_out=drain_timed_out,
    )


# ------------------------------------------------------------------ the phase


def run_latency(ctx: RunContext, gen: LoadGenerator, state: LatencyState, save: Callable[[], None]) -> None:
    """Every chosen workload's curves, one after the other, each within its share of the budget."""
    scenario = ctx.scenario
    cfg = scenario.latency
    if cfg is None:
        return
    if set(ctx.revisions) != {""}:
        ctx.progress.note("latency curves: skipped (an A/B run compares revisions at one rate: the gate's job)")
        return
    workloads = _workloads(scenario, cfg)
    t0 = time.monotonic()
    ctx.progress.note(f"latency at the same load: {', '.join(w.name for w in workloads)}")
    for i, wl in enumerate(workloads):
        budget = 0.0
        if cfg.budget_s:
            # as groups share the run's budget: this workload's share of what is left, by its size
            left = max(0.0, cfg.budget_s - (time.monotonic() - t0))
            sizes = [len(w.variants) for w in workloads[i:]]
            budget = left * sizes[0] / sum(sizes)
        _run_workload(ctx, gen, cfg, wl, state=state, save=save, budget_s=budget)


def _arms(scenario: Scenario, wl: WorkloadConfig, block: int = 0) -> list[Planned]:
    key = tuple(sorted(wl.params.items()))
    return [
        Planned(s.name, wl.name, v, 0, key, "", block, logged_in(s, scenario.catalog.arm(wl.name, v)))
        for s in scenario.setups
        if runs_on(wl, s)
        for v in wl.variants
        if not_here(s, wl.name, v) is None
    ]


def _capacities(ctx: RunContext, gen: LoadGenerator, cfg: LatencyConfig, wl: WorkloadConfig) -> list[ArmCapacity]:
    scenario = ctx.scenario
    users = cfg.probe_users or max(scenario.users_for(wl))
    out: list[ArmCapacity] = []
    for arm in _arms(scenario, wl):
        cells = [
            c
            for c in ctx.cells.values()
            if (c.setup, c.workload, c.variant, c.revision) == (arm.setup, wl.name, arm.variant, "")
            and c.params == dict(wl.params)
        ]
        # an open-model run's cells ran at a fixed rate: their throughput is that rate, not a capacity
        cap = None if scenario.load.open_model else capacity_from_cells(cells, arm.setup, arm.variant, arm.kind)
        if cap is None:
            ctx.progress.start(f"capacity probe {arm.setup} {wl.name}/{arm.variant} u={users}")
            probed = _probe(ctx, gen, arm, users)
            if isinstance(probed, str):
                ctx.progress.finish(f"capacity probe {arm.setup} {wl.name}/{arm.variant} u={users}", probed)
                continue
            cap = probed
            ctx.progress.finish(
                f"capacity probe {arm.setup} {wl.name}/{arm.variant} u={users}", f"{cap.capacity_rps:,.1f} req/s"
            )
        out.append(cap)
    return out


def _rule(cfg: LatencyConfig, caps: list[ArmCapacity]) -> str:
    fr = ", ".join(f"{f:g}" for f in cfg.fractions)
    listed = "; ".join(f"{c.arm} {c.capacity_rps:,.0f} req/s ({c.source}, {c.users} users)" for c in caps)
    basis = equal_basis(caps) if cfg.equal_load else None
    equal = f" and of {basis.arm}'s (the slower twin), offered to every arm" if basis is not None else ""
    return f"rates = {fr} of each arm's own capacity{equal} ({cfg.arrival} arrivals); capacities: {listed}"


def _run_workload(
    ctx: RunContext,
    gen: LoadGenerator,
    cfg: LatencyConfig,
    wl: WorkloadConfig,
    *,
    state: LatencyState,
    save: Callable[[], None],
    budget_s: float,
) -> None:
    scenario = ctx.scenario
    t0 = time.monotonic()
    caps = _capacities(ctx, gen, cfg, wl)
    planned = plan_points(caps, cfg.fractions, equal_load=cfg.equal_load)
    curves = LatencyCurves(
        workload=wl.name,
        params=dict(wl.params),
        capacities=tuple(caps),
        points=tuple(
            LatencyPoint(p.setup, p.variant, p.kind, p.rate_rps, p.fraction, p.of_arm, p.equal_load) for p in planned
        ),
        fractions=cfg.fractions,
        arrival=cfg.arrival,
        window_s=_window_s(scenario, cfg),
        connections=_connections(scenario, cfg),
        stop_reason="no capacity" if not caps else "",
        rule=_rule(cfg, caps),
    )
    index = state.active = len(state.curves)
    state.curves.append(curves)
    ctx.progress.note(f"  latency {wl.name}: {len(planned)} points; {curves.rule}")
    if not planned:
        state.active = None
        save()
        return
    by_arm = {f"{a.setup}/{a.variant}": a for a in _arms(scenario, wl)}
    hists: dict[int, Histogram] = {}
    slices: dict[int, list[LatencySlice]] = {i: [] for i in range(len(planned))}
    # an equal-load rate far past an arm's capacity is listed, not measured (see plan_points)
    errors: dict[int, str] = {i: p.skip for i, p in enumerate(planned) if p.skip}
    measured = len(planned) - len(errors)
    stop = "blocks"
    ctx.progress.total += measured * cfg.blocks
    for block in range(cfg.blocks):
        t_block = time.monotonic()
        order = list(range(len(planned)))
        random.Random(f"{scenario.name}/latency/{wl.name}/{block}").shuffle(order)
        for i in order:
            if i in errors:
                continue
            p: PlannedPoint = planned[i]
            arm = replace(by_arm[p.arm], repeat=block)
            label = f"latency {p.setup} {wl.name}/{p.variant} at {p.rate_rps:g} req/s #{block + 1}"
            ctx.progress.start(label)
            got = _slice(ctx, gen, arm, p.rate_rps, cfg)
            if isinstance(got, str):
                errors[i] = f"error: {got}"
                ctx.progress.finish(label, f"error: {got}")
                continue
            sl, h = got
            slices[i].append(sl)
            hists.setdefault(i, Histogram()).merge(h)
            lost = f", lost {sl.lost}" if sl.lost else ""
            ctx.progress.finish(
                label,
                f"{sl.throughput_rps:,.1f} req/s answered, "
                f"p50 {sl.p50_ms or 0:.2f} ms, p99 {sl.p99_ms or 0:.2f} ms{lost}",
            )
        curves = replace(
            curves,
            points=tuple(
                replace(
                    pt,
                    slices=tuple(slices[i]),
                    histogram=hists[i].to_dict() if i in hists else None,
                    error=errors.get(i),
                )
                for i, pt in enumerate(curves.points)
            ),
            blocks=block + 1,
            stop_reason=stop,
        )
        state.curves[index] = curves
        save()
        now = time.monotonic()
        if budget_s and block + 1 >= MIN_BLOCKS and (now - t0) + (now - t_block) > budget_s:
            if block + 1 < cfg.blocks:
                stop = "budget"
                ctx.progress.total -= measured * (cfg.blocks - block - 1)
            break
    state.curves[index] = replace(curves, stop_reason=stop)
    state.active = None
    save()
