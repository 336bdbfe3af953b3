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

import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from asyncbench.execute import ROOT, environment
from asyncbench.execute.database import database_info, django_env, prepare_database
from asyncbench.execute.dbstats import open_counter
from asyncbench.execute.distributed import PoolOptions, make_load_generator
from asyncbench.execute.groups import Group, GroupState, block_s, budget_for, groups, left_out, planned_wall_s
from asyncbench.execute.latency import LatencyState, run_latency
from asyncbench.execute.latency import planned_s as latency_planned_s
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.monitor import CoreMonitor, TreeMonitor
from asyncbench.execute.plan import Planned, cpu_plan
from asyncbench.execute.processes import LOOPBACK, check_port_free
from asyncbench.execute.profiler import Profiler
from asyncbench.execute.rates import choose_rate
from asyncbench.execute.servers import stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.execute.slices import RunContext, measure_joint, measure_slice
from asyncbench.execute.target import TARGET_KIND, Target, run_notes
from asyncbench.execute.upstream import measure_ceiling, upstream
from asyncbench.model import results
from asyncbench.model.machine import Ceiling, Environment
from asyncbench.model.results import GroupRecord, Run
from asyncbench.model.scenario import Scenario
from asyncbench.render.progress import Progress
from bench_site.registry import WORKLOADS


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
    targets: Sequence[Target] = (),
    pool: PoolOptions | None = None,
    telemetry: bool = True,
) -> Path:
    """Run a scenario and return its run folder (results.json, logs/).

    `revisions` maps a label to a source tree for an A/B-in-one-job run (both
    trees' servers run side by side and are measured interleaved); by default
    the current tree, unlabelled. `arm_env` adds server environment per label
    (the gate's accuracy benchmark runs the same tree twice, one arm with an
    injected slowdown). Raises RunInterrupted after saving when interrupted
    (KeyboardInterrupt).

    `targets` (run --target) are existing deployments measured instead of the
    scenario's setups, one setup each, named as the targets: nothing is started
    for them, their database is not prepared, no upstream is started (see
    asyncbench.execute.target).

    `pool`: load workers on other machines the locust master waits for, and
    where it listens (run --expect-workers, --master-bind; see
    asyncbench.execute.distributed); `scenario.load.workers` are the local ones.

    `telemetry` (off: run --no-telemetry): the servers started here keep
    counters (bench_site.telemetry) in <run>/telemetry/<setup>/<start>/, and
    the database server's count of connections opened is read over one
    connection held for the run; both are stored per slice. A deployment
    (`targets`) has neither: its slices record them as not measured.
    """
    arm_env = arm_env or {}
    if targets and (revisions or arm_env or port_base is not None):
        raise ValueError("targets are measured as they run: no revisions, arm environment or ports")
    revisions = revisions or {"": ROOT}
    if targets:
        scenario = replace(scenario, setups=tuple(SetupConfig(t.name, TARGET_KIND, 0, 1) for t in targets))
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
    skipped = left_out(scenario)
    if skipped:
        progress.note(f"not measured, the setup cannot serve it: {'; '.join(dict.fromkeys(skipped))}")
    if scenario.latency is not None:
        lat_least, lat_most = latency_planned_s(scenario)
        progress.note(f"then latency at the same load ([latency]): about {lat_least / 60:.0f}–{lat_most / 60:.0f} min")

    base_env = dict(os.environ)
    base_env.update(scenario.server_env)
    base_env.update(server_env or {})
    env = django_env(scenario, base_env)
    if targets:
        progress.note("existing deployments: nothing started, the database not migrated or seeded (their own)")
    elif not skip_prepare and scenario.app is None:
        # bench_site's database; a project of one's own ([app]) keeps its own
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
        targets=targets,
        telemetry=telemetry,
    )
    results.save_run(run, run_dir)
    update_latest(reports_dir, run_dir)

    ctx = RunContext(
        scenario=scenario,
        env=env,
        revisions=revisions,
        arm_env=arm_env,
        log_dir=log_dir,
        server_cpus=server_cpus,
        progress=progress,
        upstream_monitor=None,
        cores=CoreMonitor(gen_cpus),
        # the servers' CPUs are this machine's: a deployment's are not watched (no near-capacity flag)
        server_cores=CoreMonitor(server_cpus) if scenario.load.open_model and not targets else None,
        port_base=port_base,
        targets={t.name: t for t in targets},
        telemetry=run_dir / "telemetry" if telemetry and not targets else None,
    )

    latency = LatencyState()  # the [latency] phase's curves so far
    profiler = _profiler(scenario, run_dir, progress, gs, targets=bool(targets))

    def save() -> None:
        nonlocal run
        run = replace(
            run,
            cells=tuple(ctx.cells.values()),
            latency=latency.done(),
            profiles=tuple(profiler.records) if profiler else (),
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
            if ctx.telemetry is not None and scenario.app is None:
                _open_db_counter(ctx, env, stack)
            if not targets:  # a deployment calls its own upstream: the runner cannot set a remote server's
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
            # one locust process, or a locust master and its workers (`pool`: remote ones)
            gen = stack.enter_context(
                make_load_generator(
                    workers=scenario.load.workers,
                    cpus=gen_cpus,
                    log_dir=log_dir,
                    env=env,
                    pool=pool,
                    note=progress.note,
                )
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
            which = [(config, rev) for config in scenario.setups for rev in revisions]
            progress.note("starting " + ", ".join(f"{c.name}{' (' + r + ')' if r else ''}" for c, r in which) + " ...")
            ctx.start_many(which)
            save()
            t_measure = time.monotonic()
            if scenario.load.interleave == "run":
                records = _run_interleaved(gs, ctx, gen=gen, ceiling=ceiling.limit_rps, save=save)
                run = replace(run, groups=(*run.groups, *records))
                if profiler is not None:  # after every block: the profiled windows are none of the measured
                    for g, rec in zip(gs, records, strict=True):
                        profiler.profile_group(g, ctx, gen, rec.rate_rps)
                    save()
                gs = []  # measured
            for i, group in enumerate(gs):
                # profiling slices are extra: their time is not the measuring budget's
                spent = time.monotonic() - t_measure - (profiler.spent_s if profiler else 0.0)
                remaining = scenario.load.budget_s - spent
                weights = [block_s(scenario.load, g, scenario.upstream.delay_ms) for g in gs[i:]]
                budget = budget_for(remaining, weights) if scenario.load.budget_s > 0 else 0.0
                record = _run_group(group, ctx, gen=gen, ceiling=ceiling.limit_rps, budget_s=budget, save=save)
                run = replace(run, groups=(*run.groups, record))
                if profiler is not None:  # after the group's blocks: never one of its measured slices
                    profiler.profile_group(group, ctx, gen, record.rate_rps)
                save()
            # latency at the same load: after the groups, whose cells give each arm's capacity
            run_latency(ctx, gen, latency, save)
    except KeyboardInterrupt:
        interrupted = True
        latency.interrupt()
        if ctx.group is not None:
            run = replace(run, groups=(*run.groups, ctx.group.record("interrupted")))
        run = replace(run, groups=(*run.groups, *(g.record("interrupted") for g in ctx.interleaved)))
    finally:
        os.sched_setaffinity(0, own_affinity)
        run = replace(
            run,
            cells=tuple(ctx.cells.values()),
            latency=latency.done(),
            profiles=tuple(profiler.records) if profiler else (),
            finished_at=time.time(),
            complete=not interrupted and all(arm.cell_id in ctx.cells for arm in todo),
            interrupted=interrupted,
        )
        results.save_run(run, run_dir)
    if interrupted:
        raise RunInterrupted(run_dir)
    return run_dir


def _profiler(
    scenario: Scenario, run_dir: Path, progress: Progress, gs: list[Group], *, targets: bool
) -> Profiler | None:
    """The profiling phase when the scenario asks for it ([profile] enabled, run --profile)."""
    config = scenario.profile
    if config is None or not config.enabled:
        return None
    if targets:
        progress.note("profiling: an existing deployment (--target) is not profiled (py-spy attaches to local servers)")
        return None
    arms = sum(len(g.arms) for g in gs if config.profiles(g.users))
    minutes = arms * (scenario.load.settle_s + config.seconds + 1.5) / 60
    progress.note(
        f"then one profiling slice per arm after its group (py-spy at {config.rate} Hz, {config.seconds:g} s; "
        f"never in a statistic): {arms} slices, about {minutes:.1f} min"
    )
    return Profiler(config, run_dir, progress.note)


def _open_db_counter(ctx: RunContext, env: dict[str, str], stack: ExitStack) -> None:
    """The database server's connection count, over one connection held for
    the run (opened before any server, so it never counts in a window)."""
    try:
        counter = open_counter(env.get("BENCH_DATABASE_URL"))
    except Exception as exc:  # the count is extra: the run measures without it
        ctx.progress.note(f"database connection count not read: {type(exc).__name__}: {exc}")
        return
    if counter is not None:
        ctx.db_counter = counter
        stack.callback(counter.close)


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
    targets: Sequence[Target] = (),
    telemetry: bool = False,
) -> Run:
    """The run's record before its first measurement: what it will do, and where."""
    resolved = scenario.to_dict()
    notes: tuple[str, ...] = ()
    if not targets:
        database = database_info(scenario, env)
    else:
        # the deployment's database, upstream and servers are its own: nothing of the scenario's applies
        database = {"vendor": "", "note": "the deployment's own; not prepared or recorded by the runner"}
        resolved["database"] = {"engine": "", "note": database["note"]}
        resolved["targets"] = [{"name": t.name, "url": t.url, "agent": t.agent} for t in targets]
        fanout = any(getattr(WORKLOADS.get(w.name), "uses_upstream", False) for w in scenario.workloads)
        notes = tuple(run_notes(targets, fanout=fanout, restarts=scenario.load.restart == "block"))
    resolved["cpu_plan"] = {"server": list(cpus[0]), "generator_and_upstream": list(cpus[1])}
    # the servers' counters cost a few memory writes per request: recorded, so a gate can say so
    resolved["telemetry"] = telemetry and not targets
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
                **environment.capture(ROOT, database),
                # in an A/B run, which commit each arm served
                "revisions": {k: environment.git_commit(Path(v))["commit"] for k, v in revisions.items() if k},
                # run --target: the servers measured were not started by the runner
                "targets": {t.name: t.url for t in targets} or None,
            }
        ),
        generator_ceiling=Ceiling(),
        setups={},
        cells=(),
        notes=notes,
    )


def _run_group(
    group: Group,
    ctx: RunContext,
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
    state = ctx.group = GroupState(group, budget_s, load.precision)
    stop = "max_blocks"
    active = {a.cell_id for a in group.arms}
    revisions = any(a.revision for a in group.arms)
    if load.open_model:
        state.rate, state.rate_rule = choose_rate(group, ctx, gen, ceiling, joint=revisions)
        ctx.progress.note(f"  {group.label}: {state.rate_rule}")
    while state.blocks < load.max_blocks:
        t_block = time.monotonic()
        if load.restart == "block" and state.blocks > 0:
            # block 0 runs on the servers already up (fresh for it: no other block used them)
            keys = sorted({(a.setup, a.revision) for a in group.arms})
            ctx.restart(keys, random.Random(f"{ctx.scenario.name}/{group.label}/{state.blocks}/restart"))
        for planned in group.units(ctx.scenario.name, state.blocks, joint=load.open_model and revisions):
            unit = [arm for arm in planned if arm.cell_id in active]
            if len(unit) > 1 and state.rate:
                measure_joint(unit, ctx, gen, ceiling, state.rate)
            elif unit:
                measure_slice(unit[0], ctx, gen, ceiling, rate=state.rate)
        state.blocks += 1
        save()
        cells = [ctx.cells[a.cell_id] for a in group.arms if a.cell_id in ctx.cells]
        # An A/B group keeps every arm: the gate compares each one.
        if state.blocks == PILOT_BLOCKS and not revisions and load.arms == "chosen":
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


def _run_interleaved(
    gs: list[Group],
    ctx: RunContext,
    *,
    gen: LoadGenerator,
    ceiling: float | None,
    save: Callable[[], None],
) -> list[GroupRecord]:
    """load.interleave = "run": each block measures every group's arms (the
    groups in a random order), after one restart of the servers when
    load.restart = "block". A fixed number of blocks (min_blocks = max_blocks,
    checked by the scenario), as the gate wants; a budget can end it early (and
    the gate then finds too few blocks and says so: exit 2)."""
    load = ctx.scenario.load
    states = ctx.interleaved = [GroupState(g, load.budget_s, load.precision) for g in gs]
    for state in states:
        revisions = any(a.revision for a in state.group.arms)
        if load.open_model:
            state.rate, state.rate_rule = choose_rate(state.group, ctx, gen, ceiling, joint=revisions)
            ctx.progress.note(f"  {state.group.label}: {state.rate_rule}")
    keys = sorted({(a.setup, a.revision) for g in gs for a in g.arms})
    t0 = time.monotonic()
    stop = "max_blocks"
    for block in range(load.max_blocks):
        t_block = time.monotonic()
        if load.restart == "block" and block > 0:
            # block 0 runs on the servers started for the run (no other block used them)
            ctx.restart(keys, random.Random(f"{ctx.scenario.name}/run/{block}/restart"))
        order = list(states)
        random.Random(f"{ctx.scenario.name}/run/{block}/groups").shuffle(order)
        for state in order:
            group = state.group
            joint = load.open_model and any(a.revision for a in group.arms)
            for unit in group.units(ctx.scenario.name, block, joint=joint):
                if len(unit) > 1 and state.rate:
                    measure_joint(unit, ctx, gen, ceiling, state.rate)
                else:
                    measure_slice(unit[0], ctx, gen, ceiling, rate=state.rate)
            state.blocks += 1
        save()
        now = time.monotonic()
        ctx.progress.note(f"  block {block + 1} of {load.max_blocks} done ({now - t_block:.1f} s)")
        if load.budget_s > 0 and block + 1 < load.max_blocks and (now - t0) + (now - t_block) > load.budget_s:
            stop = "budget"
            break
    ctx.interleaved = []
    return [s.record(stop) for s in states]


def _has_pairs(group: Group) -> bool:
    kinds = {a.kind for a in group.arms}
    return len(kinds) > 1
