"""Executing a scenario: the orchestration of one run.

Order of work, per run:
1. prepare the database (migrate, seed: idempotent) and record the environment;
2. start the upstream (on the generator's CPUs) and the load drivers;
3. measure the load generator's own ceiling against a trivial endpoint served
   from the server's CPUs, so cells near it can be flagged;
4. start every setup's server (kept up for the whole run);
5. per comparison group (workload x users x parameters): check each arm's
   body once, then run blocks (every arm once, for one short slice, in a fresh
   random order) until every ratio the group's verdict and notes use is as
   precise as the scenario asks, or the group's share of the budget is spent;
6. after every slice: drain the server's backlog; after every block: write
   results.json atomically (an interrupted run keeps what it measured).

The phases live beside this module: groups (blocks, order, budgets), plan
(the arm), database, servers, upstream (and the generator's ceiling), checks
(bodies, flags, slices).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncbench.execute import ROOT, environment
from asyncbench.execute.checks import (
    References,
    WindowProbe,
    cell_flags,
    check_body,
    error_flags,
    make_repeat,
    repeat_flags,
)
from asyncbench.execute.database import database_info, django_env, prepare_database
from asyncbench.execute.groups import Group, block_s, budget_for, groups, planned_wall_s
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.monitor import CoreMonitor, TreeMonitor, WindowUsage
from asyncbench.execute.plan import Planned, cpu_plan
from asyncbench.execute.processes import LOOPBACK, PortInUseError, ProcessError, check_port_free
from asyncbench.execute.servers import Drain, Server, drain_server, start_server, stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.execute.upstream import measure_ceiling, upstream
from asyncbench.model import results
from asyncbench.model.histogram import Histogram
from asyncbench.model.machine import Ceiling, Environment
from asyncbench.model.results import Cell, GroupRecord, Run
from asyncbench.model.scenario import Scenario
from asyncbench.render.progress import Progress
from bench_site.registry import VARIANTS


class RunInterrupted(Exception):
    """Raised after an interrupted run has been saved (the CLI exits 130)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"run interrupted; finished measurements kept in {run_dir}")
        self.run_dir = run_dir


def new_run_id(scenario: Scenario) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{scenario.name}"


def update_latest(reports_dir: Path, run_dir: Path) -> None:
    """Point reports/latest at this run (a relative symlink, replaced atomically)."""
    link = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)


def run_scenario(
    scenario: Scenario,
    *,
    reports_dir: Path,
    command: list[str],
    run_id: str | None = None,
    server_env: dict[str, str] | None = None,
    revisions: dict[str, Path] | None = None,
    arm_env: dict[str, dict[str, str]] | None = None,
    progress: Progress | None = None,
    skip_prepare: bool = False,
    port_base: int | None = None,
) -> Path:
    """Run a scenario and return its run folder (results.json, logs/).

    `revisions` maps a label to a source tree for an A/B-in-one-job run (both
    trees' servers run side by side and are measured interleaved); by default
    the current tree, unlabelled. `arm_env` adds server environment per label
    (the gate's accuracy benchmark runs the same tree twice, one arm with an
    injected slowdown). Raises RunInterrupted after saving when interrupted
    (KeyboardInterrupt).
    """
    arm_env = arm_env or {}
    revisions = revisions or {"": ROOT}
    if port_base is not None:
        # a taken port is an error before anything starts, naming the port
        for i in range(len(scenario.setups) * len(revisions)):
            check_port_free(port_base + i)
    run_id = run_id or new_run_id(scenario)
    run_dir = reports_dir / run_id
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    server_cpus, gen_cpus = cpu_plan(scenario)
    gs = groups(scenario, list(revisions))
    todo = [arm for g in gs for arm in g.arms]
    least_slices = len(todo) * scenario.load.min_blocks
    progress = progress or Progress(least_slices)
    progress.total = least_slices
    least_s, most_s = planned_wall_s(scenario, gs)
    progress.note(
        f"plan: {len(gs)} groups, {len(todo)} arms, at least {scenario.load.min_blocks} blocks each; "
        f"about {least_s / 60:.0f}–{most_s / 60:.0f} min (precision ±{scenario.load.precision:.0%}"
        + (f", budget {scenario.load.budget_s / 60:.1f} min)" if scenario.load.budget_s else ")")
    )

    base_env = dict(os.environ)
    base_env.update(scenario.server_env)
    base_env.update(server_env or {})
    env = django_env(scenario, base_env)
    if not skip_prepare:
        prepare_database(scenario, env, log_dir / "database.log", progress.note)
    run = _new_run(
        scenario,
        run_id=run_id,
        command=command,
        env=env,
        todo=todo,
        revisions=revisions,
        arm_env=arm_env,
        cpus=(server_cpus, gen_cpus),
    )
    results.save_run(run, run_dir)
    update_latest(reports_dir, run_dir)

    ctx = _RunContext(
        scenario=scenario,
        env=env,
        revisions=revisions,
        arm_env=arm_env,
        log_dir=log_dir,
        server_cpus=server_cpus,
        progress=progress,
        upstream_monitor=None,
        cores=CoreMonitor(gen_cpus),
        port_base=port_base,
    )

    def save() -> None:
        nonlocal run
        run = replace(
            run,
            cells=tuple(ctx.cells.values()),
            setups={**run.setups, **{s.info.name: s.info for s in ctx.servers.values()}},
        )
        results.save_run(run, run_dir)

    interrupted = False
    # The runner itself (its monitor threads, its JSON writes) stays off the
    # server's CPUs, like the load generator.
    own_affinity = os.sched_getaffinity(0)
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)
    try:
        with ExitStack() as stack:
            up = stack.enter_context(
                upstream(
                    scenario,
                    cpus=gen_cpus,
                    log_dir=log_dir,
                    env=env,
                    delay_ms=scenario.upstream.delay_ms,
                    name="upstream",
                )
            )
            ctx.upstream_monitor = TreeMonitor(up.pid)
            stack.callback(ctx.upstream_monitor.close)
            env["BENCH_UPSTREAM_URL"] = f"http://{LOOPBACK}:{up.port}"
            gen = stack.enter_context(
                LoadGenerator(processes=scenario.load.processes, cpus=gen_cpus, log_dir=log_dir, env=env)
            )
            progress.note("measuring the load generator's ceiling ...")
            ceiling = measure_ceiling(scenario, gen, server_cpus, log_dir, env)
            run = replace(run, generator_ceiling=ceiling)
            progress.note(
                f"generator ceiling: {ceiling.rps or 0:,.0f} req/s at {ceiling.cpu_percent or 0:.0f}% "
                f"of a core ({ceiling.processes} process(es))"
            )
            if not ceiling.valid:
                progress.note(f"warning: {ceiling.note}")

            @stack.callback
            def _stop_servers() -> None:
                # whatever ends the run (Ctrl-C, SIGTERM, an exception), no server survives
                for s in ctx.servers.values():
                    stop_server(s)

            # Every setup's server is up for the whole run (idle ones cost
            # nothing measurable), so setups can be interleaved like variants.
            for config in scenario.setups:
                for rev in revisions:
                    progress.note(f"starting {config.name}{' (' + rev + ')' if rev else ''} ...")
                    ctx.start(config, rev)
            save()
            t_measure = time.monotonic()
            for i, group in enumerate(gs):
                remaining = scenario.load.budget_s - (time.monotonic() - t_measure)
                weights = [block_s(scenario.load, g, scenario.upstream.delay_ms) for g in gs[i:]]
                budget = budget_for(remaining, weights) if scenario.load.budget_s > 0 else 0.0
                record = _run_group(group, ctx, gen=gen, ceiling=ceiling.limit_rps, budget_s=budget, save=save)
                run = replace(run, groups=(*run.groups, record))
                save()
    except KeyboardInterrupt:
        interrupted = True
        if ctx.group is not None:
            run = replace(run, groups=(*run.groups, ctx.group.record("interrupted")))
    finally:
        os.sched_setaffinity(0, own_affinity)
        run = replace(
            run,
            cells=tuple(ctx.cells.values()),
            finished_at=time.time(),
            complete=not interrupted and all(arm.cell_id in ctx.cells for arm in todo),
            interrupted=interrupted,
        )
        results.save_run(run, run_dir)
    if interrupted:
        raise RunInterrupted(run_dir)
    return run_dir


def _new_run(
    scenario: Scenario,
    *,
    run_id: str,
    command: list[str],
    env: dict[str, str],
    todo: list[Planned],
    revisions: dict[str, Path],
    arm_env: dict[str, dict[str, str]],
    cpus: tuple[tuple[int, ...], tuple[int, ...]],
) -> Run:
    """The run's record before its first measurement: what it will do, and where."""
    resolved = scenario.to_dict()
    resolved["cpu_plan"] = {"server": list(cpus[0]), "generator_and_upstream": list(cpus[1])}
    resolved["revisions"] = {k: str(v) for k, v in revisions.items()}
    resolved["arm_env"] = arm_env
    # every planned cell (arm), so a report can show what is missing from an interrupted run
    resolved["cells"] = [
        {
            "setup": t.setup,
            "workload": t.workload,
            "variant": t.variant,
            "users": t.users,
            "params": dict(t.params),
            "revision": t.revision,
        }
        for t in todo
    ]
    return Run(
        schema_version=results.SCHEMA_VERSION,
        run_id=run_id,
        scenario=scenario.name,
        scenario_resolved=resolved,
        command=tuple(command),
        started_at=time.time(),
        finished_at=None,
        complete=False,
        interrupted=False,
        environment=Environment.from_dict(
            {
                **environment.capture(ROOT, database_info(scenario, env)),
                # in an A/B run, which commit each arm served
                "revisions": {k: environment.git_commit(Path(v))["commit"] for k, v in revisions.items() if k},
            }
        ),
        generator_ceiling=Ceiling(),
        setups={},
        cells=(),
    )


@dataclass
class _GroupState:
    """A group in progress: enough to record it however the run ends."""

    group: Group
    budget_s: float
    precision_target: float
    t0: float = field(default_factory=time.monotonic)
    blocks: int = 0
    precision: float | None = None

    def record(self, stop_reason: str) -> GroupRecord:
        return GroupRecord(
            workload=self.group.workload,
            users=self.group.users,
            params=dict(self.group.params),
            revision_pairs=any(a.revision for a in self.group.arms),
            blocks=self.blocks,
            elapsed_s=round(time.monotonic() - self.t0, 2),
            budget_s=round(self.budget_s, 2),
            precision_target=self.precision_target,
            # inf (a ratio with no interval yet) is recorded as "not reached at all"
            precision_achieved=round(self.precision, 5) if self.precision not in (None, math.inf) else None,
            stop_reason=stop_reason,
        )


def _run_group(
    group: Group,
    ctx: _RunContext,
    *,
    gen: LoadGenerator,
    ceiling: float | None,
    budget_s: float,
    save: Callable[[], None],
) -> GroupRecord:
    """Blocks of slices until the group's ratios are precise enough, or its
    budget or `max_blocks` is spent. Never stops because a result looks
    significant: only precision, time and the block cap end a group."""
    from asyncbench.analysis.intervals import PILOT_BLOCKS
    from asyncbench.analysis.precision import chosen_arms, group_ratios, widest_precision

    load = ctx.scenario.load
    state = ctx.group = _GroupState(group, budget_s, load.precision)
    stop = "max_blocks"
    active = {a.cell_id for a in group.arms}
    while state.blocks < load.max_blocks:
        t_block = time.monotonic()
        for arm in group.order(ctx.scenario.name, state.blocks):
            if arm.cell_id in active:
                _measure_one(arm, ctx, gen, ceiling)
        state.blocks += 1
        save()
        cells = [ctx.cells[a.cell_id] for a in group.arms if a.cell_id in ctx.cells]
        if state.blocks == PILOT_BLOCKS:
            # The pilot chose each ratio's arms; the others have told what they had to.
            chosen = chosen_arms(cells)
            if chosen:
                active = {c_id for c_id in active if c_id in ctx.cells and ctx.cells[c_id].key in chosen}
        if all(c.status == "error" for c in cells):
            stop = "error"
            break
        state.precision = widest_precision(group_ratios(cells))
        if state.blocks < load.min_blocks:
            continue
        ctx.progress.note(
            f"  {group.label}: block {state.blocks}, "
            + (f"precision ±{state.precision:.1%}" if state.precision is not None else "no ratio yet")
        )
        if state.precision is not None and state.precision <= load.precision:
            stop = "precision"
            break
        if state.precision is None and not _has_pairs(group):
            stop = "precision"  # nothing to compare: its minimum blocks are all it needs
            break
        # The next block costs what the last one did (after the pilot, only the chosen arms run).
        now = time.monotonic()
        if budget_s > 0 and (now - state.t0) + (now - t_block) > budget_s:
            stop = "budget"
            break
        # one more block for every arm still measured in this group
        ctx.progress.total += len(active)
    ctx.group = None
    return state.record(stop)


def _has_pairs(group: Group) -> bool:
    kinds = {VARIANTS[a.variant].kind for a in group.arms}
    return len(kinds) > 1


@dataclass
class _RunContext:
    """The state of a run in progress: servers, cells measured so far, references."""

    scenario: Scenario
    env: dict[str, str]
    revisions: dict[str, Path]
    arm_env: dict[str, dict[str, str]]
    log_dir: Path
    server_cpus: tuple[int, ...]
    progress: Progress
    upstream_monitor: TreeMonitor | None
    cores: CoreMonitor
    port_base: int | None = None
    servers: dict[tuple[str, str], Server] = field(default_factory=dict)
    start_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    cells: dict[tuple[Any, ...], Cell] = field(default_factory=dict)
    references: References = field(default_factory=dict)
    group: _GroupState | None = None  # the group being measured
    last_drain: dict[tuple[str, str], Drain] = field(default_factory=dict)  # per (setup, revision)

    def start(self, config: SetupConfig, rev: str) -> Server | None:
        root = self.revisions[rev]
        port = None
        if self.port_base is not None:
            # consecutive ports from --port-base, one per setup and revision, stable across restarts
            slots = [(c.name, r) for c in self.scenario.setups for r in self.revisions]
            port = self.port_base + slots.index((config.name, rev))
        try:
            srv = start_server(
                config,
                revision=rev,
                root=root,
                env={**django_env(self.scenario, self.env, root), **self.arm_env.get(rev, {})},
                cpus=self.server_cpus,
                log_dir=self.log_dir,
                port=port,
            )
        except PortInUseError:
            raise
        except ProcessError as exc:
            self.start_errors[(config.name, rev)] = str(exc).splitlines()[0]
            self.progress.note(f"setup {config.name} failed to start: {exc}")
            return None
        self.servers[(config.name, rev)] = srv
        return srv

    def running(self, item: Planned) -> tuple[Server | None, bool]:
        """The item's server, restarted if it died; and whether it was restarted."""
        key = (item.setup, item.revision)
        server = self.servers.get(key)
        if server is None or server.proc.alive():
            return server, False
        # A crashed server is restarted for the measurements after it; the
        # crash is flagged on the measurement that saw it.
        self.progress.note(f"{item.setup} died; restarting it")
        stop_server(server)
        del self.servers[key]
        return self.start(server.config, item.revision), True

    def fail(self, item: Planned, cell: Cell, message: str, shown: str) -> None:
        self.cells[item.cell_id] = replace(cell, status="error", error=message, flags=error_flags(message))
        self.progress.finish(item.label, shown)


def _measure_one(item: Planned, ctx: _RunContext, gen: LoadGenerator, ceiling: float | None) -> None:
    scenario, progress = ctx.scenario, ctx.progress
    cell = ctx.cells.get(item.cell_id) or Cell(
        setup=item.setup,
        workload=item.workload,
        variant=item.variant,
        kind=VARIANTS[item.variant].kind,
        users=item.users,
        path=item.path,
        params=dict(item.params),
        revision=item.revision,
    )
    progress.start(item.label)
    if cell.status == "error":
        ctx.cells[item.cell_id] = cell
        progress.finish(item.label, f"skipped ({cell.error})")
        return

    server, restarted = ctx.running(item)
    if server is None:
        why = ctx.start_errors.get((item.setup, item.revision), "see logs/")
        ctx.fail(item, cell, f"setup {item.setup} is not running: {why}", "error: server not running")
        return
    if not cell.repeats or restarted:
        problem = check_body(item, server.port, ctx.references)
        if problem:
            ctx.fail(item, cell, problem, f"error: {problem}")
            return

    load = scenario.load
    window: dict[str, Any] = {}
    upstream_monitor = ctx.upstream_monitor

    def on_start() -> None:
        server.monitor.begin()
        if upstream_monitor is not None:
            upstream_monitor.begin()
        ctx.cores.begin()
        window["open"] = True

    def on_end() -> None:
        window["server"] = server.monitor.end()
        window["upstream"] = upstream_monitor.end() if upstream_monitor is not None else None
        window["cores"] = ctx.cores.end()

    try:
        # A slice: settle, then a window of window_s, run on (at most to
        # max_window_s) until users completed min_requests_per_user requests.
        m = gen.measure(
            host=server.base_url,
            path=item.path,
            users=item.users,
            warmup_s=load.settle_s,
            min_s=load.window_s,
            max_s=load.window_s,
            slow_max_s=load.max_window_s,
            target_rse=0.0,
            min_requests_per_user=load.min_requests_per_user,
            on_window_start=on_start,
            on_window_end=on_end,
        )
    except ProcessError as exc:
        if window.get("open") and "server" not in window:
            server.monitor.end()
        ctx.fail(item, cell, str(exc), f"error: {exc}")
        return
    upstream_usage: WindowUsage | None = window.get("upstream")
    probe = WindowProbe(
        server=window["server"],
        upstream_cpu_percent=upstream_usage.cpu_percent if upstream_usage else None,
        generator_cores_busy_percent=window.get("cores"),
        generator_cpus=ctx.cores.cpus,
    )
    # A drain that timed out flags the next slice on the same server, whichever arm it is.
    key = (item.setup, item.revision)
    found = repeat_flags(m, probe, item.users, scenario, ceiling, previous_drain=ctx.last_drain.get(key))
    done = drain_server(server, load.drain_timeout_s)
    ctx.last_drain[key] = done
    rep = replace(make_repeat(len(cell.repeats), m, probe, found), drain_s=round(done.seconds, 3), block=item.repeat)
    repeats = (*cell.repeats, rep)
    merged = Histogram.from_dict(cell.histogram) if cell.histogram else Histogram()
    merged.merge(m.histogram)
    ctx.cells[item.cell_id] = replace(
        cell, repeats=repeats, flags=tuple(cell_flags(repeats, scenario)), histogram=merged.to_dict()
    )
    fl = f"  [{', '.join(sorted({f.code for f in found}))}]" if found else ""
    slow_drain = f" (drained {done.seconds:.1f} s)" if done.seconds > 1 else ""
    if done.timed_out:
        slow_drain = f" (drain timed out after {done.seconds:.1f} s: the next slice here is flagged)"
    progress.finish(
        item.label,
        f"{rep.throughput_rps:,.1f} req/s, p50 {rep.latency.p50_ms:.2f} ms, "
        f"p99 {rep.latency.p99_ms:.2f} ms{fl}{slow_drain}",
    )
