"""Executing a scenario: plan the cells, start the processes, measure, store.

Order of work, per run:
1. prepare the database (migrate, seed: idempotent) and record the environment;
2. start the upstream (on the generator's CPUs) and the load drivers;
3. measure the load generator's own ceiling against a trivial endpoint served
   from the server's CPUs, so cells near it can be flagged;
4. per setup: start the server (kept up for all of its cells), then for every
   (users, workload, parameters) group, validate each variant's body once and
   measure the variants interleaved, repeat by repeat, rotating the order so
   drift favours none (A B C, B C A, C A B, ...);
5. after every measurement: drain the server's backlog, write results.json
   atomically (so an interrupted run keeps every finished measurement).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench_site.registry import VARIANTS, endpoint
from asyncbench.execute import environment
from asyncbench.model import results
from asyncbench.analysis import stats
from asyncbench.execute.load import LoadGenerator, Measurement
from asyncbench.execute.monitor import CoreMonitor, TreeMonitor, WindowUsage
from asyncbench.execute.processes import (
    LOOPBACK,
    ManagedProcess,
    PortInUseError,
    ProcessError,
    check_port_free,
    cpu_pinning_prefix,
    free_port,
    http_get,
    tail,
)
from asyncbench.render.progress import Progress
from asyncbench.model import flags
from asyncbench.model.results import (
    Cell,
    Flag,
    Latency,
    Repeat,
    Run,
    Second,
    SetupInfo,
)
from asyncbench.model.scenario import Scenario, WorkloadConfig
from asyncbench.execute.setups import SetupConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE = ROOT / "var" / "bench.sqlite3"


class RunInterrupted(Exception):
    """Raised after an interrupted run has been saved (the CLI exits 130)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"run interrupted; finished measurements kept in {run_dir}")
        self.run_dir = run_dir


# ------------------------------------------------------------------ CPU placement


def cpu_plan(scenario: Scenario) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server CPUs, generator CPUs). Generator CPUs also host the upstream."""
    available = sorted(os.sched_getaffinity(0))
    server, generator = scenario.cpu.server, scenario.cpu.generator
    if server or generator:
        return tuple(server), tuple(generator)
    if len(available) < 2:
        return (), ()
    half = len(available) // 2
    return tuple(available[:half]), tuple(available[half:])


# ------------------------------------------------------------------ database


def django_env(scenario: Scenario, base_env: dict[str, str], root: Path = ROOT) -> dict[str, str]:
    env = dict(base_env)
    env["DJANGO_SETTINGS_MODULE"] = "bench_site.settings"
    env["PYTHONPATH"] = str(root)
    env["BENCH_DEBUG"] = "0"  # DEBUG is off in measured runs, whatever the caller's environment says
    env.pop("BENCH_DATABASE_URL", None)
    if scenario.database.engine == "postgres":
        env["BENCH_DATABASE_URL"] = scenario.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    else:
        # one file per data-set size: quick (100k rows) and ci (20k) would
        # otherwise reseed each other's database on every run
        env["BENCH_SQLITE_PATH"] = scenario.database.sqlite_path or str(
            DEFAULT_SQLITE.with_name(f"bench-{scenario.database.rows}.sqlite3"))
    return env


def prepare_database(scenario: Scenario, env: dict[str, str], log_path: Path, note: Callable[[str], None]) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        for argv in (
            [sys.executable, "manage.py", "migrate", "--noinput"],
            [sys.executable, "manage.py", "seed", "--rows", str(scenario.database.rows)],
        ):
            note(f"database: {' '.join(argv[1:])}")
            done = subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1800)
            if done.returncode != 0:
                raise ProcessError(
                    f"{' '.join(argv[1:])} failed with code {done.returncode}; last lines of "
                    f"{log_path}:\n{tail(log_path)}"
                )


def database_info(scenario: Scenario, env: dict[str, str]) -> dict[str, Any]:
    if scenario.database.engine == "sqlite":
        return {
            "vendor": "sqlite",
            "version": sqlite3.sqlite_version,
            "path": env.get("BENCH_SQLITE_PATH"),
            "rows": scenario.database.rows,
        }
    url = env["BENCH_DATABASE_URL"]
    version = None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = row[0] if row else None
    except Exception as exc:  # recorded, not fatal: migrate would have failed first
        version = f"unknown ({type(exc).__name__})"
    from urllib.parse import urlsplit

    u = urlsplit(url)
    # never store a password in a results file
    return {"vendor": "postgresql", "version": version, "host": u.hostname, "port": u.port,
            "name": u.path.lstrip("/"), "rows": scenario.database.rows}


# ------------------------------------------------------------------ servers


@dataclass
class Server:
    config: SetupConfig
    revision: str
    proc: ManagedProcess
    port: int
    monitor: TreeMonitor
    info: SetupInfo

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def setup_info(config: SetupConfig, argv: list[str], env: dict[str, str], cpus: tuple[int, ...], workers: int) -> SetupInfo:
    spec = config.spec
    # what configures the site; not the upstream's URL (a fresh port every
    # run) nor the database URL (it may hold a password)
    shown_env = {k: v for k, v in env.items()
                 if k.startswith("BENCH_") and k not in ("BENCH_DATABASE_URL", "BENCH_UPSTREAM_URL")}
    notes = spec.notes + ("; plus one sync-only middleware (BENCH_SYNC_MIDDLEWARE=1)" if config.sync_middleware else "")
    return SetupInfo(
        name=config.name,
        server=spec.server,
        interface=spec.interface,
        workers=workers,
        threads=config.threads if spec.uses_threads else 1,
        worker_class=spec.worker_class,
        event_loop=spec.event_loop,
        keepalive=spec.keepalive,
        command=tuple(argv),
        env=shown_env,
        cpu_affinity=tuple(cpus),
        notes=notes,
    )


def start_server(
    config: SetupConfig,
    *,
    revision: str,
    root: Path,
    env: dict[str, str],
    cpus: tuple[int, ...],
    log_dir: Path,
    port: int | None = None,
) -> Server:
    """Start a setup's server. An explicit port that is taken is an error
    naming it; by default the OS picks a free one."""
    spec = config.spec
    workers = config.workers or max(1, len(cpus) or 1)
    if spec.max_workers is not None:
        workers = min(workers, spec.max_workers)
    if port is None:
        port = free_port()
    else:
        check_port_free(port)
    argv = spec.argv(LOOPBACK, port, workers, config.threads)
    env = dict(env)
    if config.sync_middleware:
        env["BENCH_SYNC_MIDDLEWARE"] = "1"
    label = f"{config.name}{'-' + revision if revision else ''}"
    proc = ManagedProcess(
        label,
        [*cpu_pinning_prefix(cpus), *argv],
        log_path=log_dir / f"server-{label}.log",
        env=env,
        cwd=root,
        port=port,
        health_path="/health",
        ready_timeout=60,
    )
    proc.start()
    try:
        proc.wait_ready()
    except BaseException:
        proc.stop()
        raise
    return Server(config, revision, proc, port, TreeMonitor(proc.pid), setup_info(config, argv, env, cpus, workers))


def stop_server(server: Server) -> None:
    server.monitor.close()
    server.proc.stop()


def drain(server: Server, timeout: float) -> float:
    """Wait until the server has worked off what the last measurement queued.

    Measured on this machine, a saturated sync worker needed up to 10 s to
    work off its backlog; without a drain the next cell's p99 read 2.6 s.
    Two signals, both required: /health answers promptly (a WSGI worker
    queues it behind the backlog) and the server's process tree is idle (an
    ASGI server answers /health on its event loop while sync views still run
    in its threads). Returns the seconds spent.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        t = time.monotonic()
        try:
            status, _, _ = http_get(LOOPBACK, server.port, "/health", timeout=max(0.5, timeout))
        except OSError:
            status = 0
        if status == 200 and time.monotonic() - t < 0.05 and server.monitor.busy_fraction(0.1) < 0.1:
            break
        time.sleep(0.05)
    return time.monotonic() - t0


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Planned:
    setup: str
    workload: str
    variant: str
    users: int
    params: tuple[tuple[str, int], ...]
    revision: str
    repeat: int

    @property
    def cell_id(self) -> tuple[str, str, str, int, tuple[tuple[str, int], ...], str]:
        return (self.setup, self.workload, self.variant, self.users, self.params, self.revision)

    @property
    def path(self) -> str:
        base = endpoint(self.workload, self.variant).path
        return base + ("?" + urlencode(self.params) if self.params else "")

    @property
    def label(self) -> str:
        p = "".join(f" {k}={v}" for k, v in self.params)
        r = f" [{self.revision}]" if self.revision else ""
        return f"{self.setup} {self.workload}/{self.variant} u={self.users}{p}{r} #{self.repeat + 1}"


def plan(scenario: Scenario, revisions: list[str]) -> list[Planned]:
    """Every measurement, in the order it will run.

    All setups' servers are up for the whole run, so within each (workload,
    users, parameters) group every arm (setup x variant x revision) is
    measured once per round, in an order shuffled with a fixed seed per round:
    slow drift over the minutes a group takes hits every arm alike, including
    the setups the verdict compares, and no arm always goes first.
    """
    out: list[Planned] = []
    for wl in scenario.workloads:
        for users in scenario.users_for(wl):
            for params in wl.param_sets():
                key = tuple(sorted(params.items()))
                arms = [(s.name, v, rev) for s in scenario.setups for v in wl.variants for rev in revisions]
                for r in range(scenario.load.repeats):
                    order = list(arms)
                    random.Random(f"{scenario.name}/{wl.name}/{users}/{key}/{r}").shuffle(order)
                    out.extend(Planned(setup, wl.name, v, users, key, rev, r) for setup, v, rev in order)
    return out


# ------------------------------------------------------------------ flags


@dataclass(frozen=True)
class WindowProbe:
    """What was measured beside the load over one measured window."""

    server: WindowUsage
    upstream_cpu_percent: float | None
    generator_cores_busy_percent: float | None
    generator_cpus: tuple[int, ...] = ()


def repeat_flags(m: Measurement, probe: WindowProbe, users: int, scenario: Scenario,
                 ceiling_rps: float | None) -> list[Flag]:
    load = scenario.load
    usage = probe.server
    flags = []
    rps = m.throughput_rps
    busy = probe.generator_cores_busy_percent
    ours = sum(m.driver_cpu_percents) if m.driver_cpu_percents else m.generator_cpu_percent
    ours = None if probe.upstream_cpu_percent is None else ours + probe.upstream_cpu_percent
    if m.generator_cpu_percent >= load.generator_cpu_limit:
        flags.append(Flag(flags.GENERATOR_BOUND,
                          f"locust used {m.generator_cpu_percent:.0f}% of a core (limit {load.generator_cpu_limit:.0f}%)"))
    elif ours is not None and ours >= load.generator_cpu_limit * max(1, len(probe.generator_cpus)):
        # locust and the upstream share the generator's CPUs: together they
        # can saturate them while locust alone looks fine. (CPU taken by some
        # other process is recorded in generator_cores_busy_percent but is
        # not our generator's limit, so it does not flag the cell.)
        flags.append(Flag(flags.GENERATOR_BOUND,
                          f"locust ({m.generator_cpu_percent:.0f}%) and the upstream "
                          f"({probe.upstream_cpu_percent or 0:.0f}%) used {ours:.0f}% of the generator's "
                          f"{len(probe.generator_cpus) or 1} CPU(s) (limit {load.generator_cpu_limit:.0f}% each; "
                          f"the CPUs were {busy or 0:.0f}% busy in all)"))
    elif ceiling_rps and rps >= load.ceiling_fraction * ceiling_rps:
        flags.append(Flag(flags.GENERATOR_BOUND,
                          f"{rps:,.0f} req/s is {rps / ceiling_rps:.0%} of the generator's measured ceiling "
                          f"({ceiling_rps:,.0f} req/s)"))
    nfail = sum(m.failures.values())
    if nfail:
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(m.failures.items(), key=lambda kv: -kv[1])[:3])
        flags.append(Flag(flags.FAILURES, f"{nfail} of {nfail + m.requests} requests failed: {kinds}"))
    if usage.worker_changes or not usage.alive:
        flags.append(Flag(flags.SERVER_CRASH,
                          "server died" if not usage.alive else
                          f"{usage.worker_changes} server processes appeared or vanished (crash or respawn)"))
    if m.requests < load.min_requests_per_user * users:
        flags.append(Flag(flags.FEW_REQUESTS,
                          f"{m.requests} requests in {m.duration_s:.1f} s for {users} users "
                          f"(< {load.min_requests_per_user} per user): percentiles describe few requests"))
    return flags


def cell_flags(repeats: tuple[Repeat, ...], scenario: Scenario) -> list[Flag]:
    c = stats.cv([r.throughput_rps for r in repeats])
    if c is not None and c >= scenario.load.unstable_cv:
        return [Flag(flags.UNSTABLE, f"throughput varies {c:.0%} across {len(repeats)} repeats "
                                    f"(coefficient of variation; limit {scenario.load.unstable_cv:.0%})")]
    return []


def make_repeat(index: int, m: Measurement, probe: WindowProbe, flags: list[Flag]) -> Repeat:
    h = m.histogram
    usage = probe.server

    def ms(q: float) -> float:
        v = h.percentile(q)
        return round(v / 1000.0, 4) if v is not None else 0.0

    return Repeat(
        index=index,
        started_at=m.started_at,
        duration_s=round(m.duration_s, 3),
        warmup_s=m.warmup_s,
        requests=m.requests,
        failures=dict(m.failures),
        throughput_rps=round(m.throughput_rps, 3),
        latency=Latency(
            count=h.count,
            mean_ms=round((h.mean_us or 0.0) / 1000.0, 4),
            p50_ms=ms(50),
            p90_ms=ms(90),
            p95_ms=ms(95),
            p99_ms=ms(99),
            max_ms=round(h.max_us / 1000.0, 4),
        ),
        locust={k: round(v, 4) for k, v in m.locust.items()},
        server_cpu_s=round(usage.cpu_s, 4),
        server_cpu_percent=round(usage.cpu_percent, 1),
        server_rss_peak_mb=round(usage.rss_peak_mb, 1),
        generator_cpu_percent=round(m.generator_cpu_percent, 1),
        generator_cpu_peak_percent=round(m.generator_cpu_peak_percent, 1),
        server_worker_changes=usage.worker_changes,
        series=tuple(Second(**s) for s in m.series),
        flags=tuple(flags),
        generator_cores_busy_percent=(None if probe.generator_cores_busy_percent is None
                                      else round(probe.generator_cores_busy_percent, 1)),
        upstream_cpu_percent=None if probe.upstream_cpu_percent is None else round(probe.upstream_cpu_percent, 1),
        stop_reason=m.stop_reason,
    )


# ------------------------------------------------------------------ the run


def new_run_id(scenario: Scenario) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{scenario.name}"


def update_latest(reports_dir: Path, run_dir: Path) -> None:
    """Point reports/latest at this run (a relative symlink, replaced atomically)."""
    link = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)


@contextmanager
def _upstream(scenario: Scenario, cpus: tuple[int, ...], log_dir: Path, env: dict[str, str],
              delay_ms: int, name: str) -> Iterator[ManagedProcess]:
    port = free_port()
    argv = [*cpu_pinning_prefix(cpus), sys.executable, "-m", "upstream", "--host", LOOPBACK,
            "--port", str(port), "--delay-ms", str(delay_ms), "--jitter-ms", str(scenario.upstream.jitter_ms),
            "--error-rate", str(scenario.upstream.error_rate)]
    with ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=env, cwd=ROOT, port=port) as up:
        up.wait_ready()
        yield up


def measure_ceiling(scenario: Scenario, gen: LoadGenerator, server_cpus: tuple[int, ...],
                    log_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """locust's own ceiling: its throughput against a trivial endpoint (the
    upstream stub, no delay) served from the server's CPUs."""
    users = 32
    with _upstream(scenario, server_cpus, log_dir, env, 0, "upstream-calibration") as up:
        m = gen.measure(host=f"http://{LOOPBACK}:{up.port}", path="/health", users=users, warmup_s=1.0,
                        min_s=3.0, max_s=3.0, target_rse=1.0, min_requests_per_user=1)
    rps = m.throughput_rps
    # The figure is locust's ceiling only if locust was the limit; if it
    # idled, the stub was, and flagging against it would be wrong.
    valid = m.generator_cpu_percent >= 85.0 and not m.failures
    return {
        "valid": valid,
        "note": "" if valid else (
            f"locust reached only {m.generator_cpu_percent:.0f}% of a core in the ceiling measurement "
            f"({sum(m.failures.values())} failures): the stub, not locust, was the limit; cells are not "
            "flagged against this ceiling"),
        "rps": round(rps, 1),
        "cpu_percent": round(m.generator_cpu_percent, 1),
        "users": users,
        "processes": len(gen.drivers),
        "endpoint": "upstream stub /health, no delay, served from the server CPUs",
        "duration_s": round(m.duration_s, 2),
        "failures": sum(m.failures.values()),
    }


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
    todo = plan(scenario, list(revisions))
    progress = progress or Progress(len(todo))
    progress.total = len(todo)

    base_env = dict(os.environ)
    base_env.update(scenario.server_env)
    base_env.update(server_env or {})
    env = django_env(scenario, base_env)
    if not skip_prepare:
        prepare_database(scenario, env, log_dir / "database.log", progress.note)
    resolved = scenario.to_dict()
    resolved["cpu_plan"] = {"server": list(server_cpus), "generator_and_upstream": list(gen_cpus)}
    resolved["revisions"] = {k: str(v) for k, v in revisions.items()}
    resolved["arm_env"] = arm_env
    # every planned cell, so a report can show what is missing from an interrupted run
    resolved["cells"] = [
        {"setup": t.setup, "workload": t.workload, "variant": t.variant, "users": t.users,
         "params": dict(t.params), "revision": t.revision}
        for t in todo if t.repeat == 0
    ]
    run = Run(
        schema_version=results.SCHEMA_VERSION,
        run_id=run_id,
        scenario=scenario.name,
        scenario_resolved=resolved,
        command=tuple(command),
        started_at=time.time(),
        finished_at=None,
        complete=False,
        interrupted=False,
        environment={
            **environment.capture(ROOT, database_info(scenario, env)),
            # in an A/B run, which commit each arm served
            "revisions": {k: environment.git_commit(Path(v))["commit"] for k, v in revisions.items() if k},
        },
        generator_ceiling={},
        setups={},
        cells=(),
    )
    results.save_run(run, run_dir)
    update_latest(reports_dir, run_dir)

    ctx = _RunContext(scenario=scenario, env=env, revisions=revisions, arm_env=arm_env, log_dir=log_dir,
                      server_cpus=server_cpus, progress=progress, upstream_monitor=None,
                      cores=CoreMonitor(gen_cpus), port_base=port_base)

    def save() -> None:
        nonlocal run
        run = replace(run, cells=tuple(ctx.cells.values()),
                      setups={**run.setups, **{s.info.name: s.info for s in ctx.servers.values()}})
        results.save_run(run, run_dir)

    interrupted = False
    # The runner itself (its monitor threads, its JSON writes) stays off the
    # server's CPUs, like the load generator.
    own_affinity = os.sched_getaffinity(0)
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)
    try:
        with ExitStack() as stack:
            upstream = stack.enter_context(
                _upstream(scenario, gen_cpus, log_dir, env, scenario.upstream.delay_ms, "upstream"))
            ctx.upstream_monitor = TreeMonitor(upstream.pid)
            stack.callback(ctx.upstream_monitor.close)
            env["BENCH_UPSTREAM_URL"] = f"http://{LOOPBACK}:{upstream.port}"
            gen = stack.enter_context(LoadGenerator(processes=scenario.load.processes, cpus=gen_cpus,
                                                    log_dir=log_dir, env=env))
            progress.note("measuring the load generator's ceiling ...")
            ceiling = measure_ceiling(scenario, gen, server_cpus, log_dir, env)
            run = replace(run, generator_ceiling=ceiling)
            progress.note(f"generator ceiling: {ceiling['rps']:,.0f} req/s at {ceiling['cpu_percent']:.0f}% "
                          f"of a core ({ceiling['processes']} process(es))")
            if not ceiling.get("valid", True):
                progress.note(f"warning: {ceiling['note']}")

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
            for item in todo:
                _measure_one(item, ctx, gen, run.generator_ceiling)
                save()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        os.sched_setaffinity(0, own_affinity)
        run = replace(run, cells=tuple(ctx.cells.values()), finished_at=time.time(),
                      complete=not interrupted and _all_measured(todo, ctx.cells), interrupted=interrupted)
        results.save_run(run, run_dir)
    if interrupted:
        raise RunInterrupted(run_dir)
    return run_dir


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
    # (workload, params) -> (where it came from, status, content type, body) of the first answer
    references: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[str, str, bytes]] = field(default_factory=dict)

    def start(self, config: SetupConfig, rev: str) -> Server | None:
        root = self.revisions[rev]
        port = None
        if self.port_base is not None:
            # consecutive ports from --port-base, one per setup and revision, stable across restarts
            slots = [(c.name, r) for c in self.scenario.setups for r in self.revisions]
            port = self.port_base + slots.index((config.name, rev))
        try:
            srv = start_server(config, revision=rev, root=root,
                               env={**django_env(self.scenario, self.env, root), **self.arm_env.get(rev, {})},
                               cpus=self.server_cpus, log_dir=self.log_dir, port=port)
        except PortInUseError:
            raise
        except ProcessError as exc:
            self.start_errors[(config.name, rev)] = str(exc).splitlines()[0]
            self.progress.note(f"setup {config.name} failed to start: {exc}")
            return None
        self.servers[(config.name, rev)] = srv
        return srv


def _all_measured(todo: list[Planned], cells: dict[tuple[Any, ...], Cell]) -> bool:
    return all(item.cell_id in cells for item in todo)


def _measure_one(item: Planned, ctx: _RunContext, gen: LoadGenerator, ceiling: dict[str, Any]) -> None:
    scenario, progress = ctx.scenario, ctx.progress
    kind = VARIANTS[item.variant].kind
    cell = ctx.cells.get(item.cell_id) or Cell(
        setup=item.setup, workload=item.workload, variant=item.variant, kind=kind, users=item.users,
        path=item.path, params=dict(item.params), revision=item.revision)
    progress.start(item.label)
    if cell.status == "error":
        ctx.cells[item.cell_id] = cell
        progress.finish(item.label, f"skipped ({cell.error})")
        return

    key = (item.setup, item.revision)
    server = ctx.servers.get(key)
    restarted = False
    if server is not None and not server.proc.alive():
        # A crashed server is restarted for the measurements after it; the
        # crash is flagged on the measurement that saw it.
        progress.note(f"{item.setup} died; restarting it")
        stop_server(server)
        del ctx.servers[key]
        server = ctx.start(server.config, item.revision)
        restarted = True
    if server is None:
        why = ctx.start_errors.get(key, "see logs/")
        msg = f"setup {item.setup} is not running: {why}"
        ctx.cells[item.cell_id] = replace(cell, status="error", error=msg, flags=(Flag(flags.ERROR, msg),))
        progress.finish(item.label, "error: server not running")
        return

    if not cell.repeats or restarted:
        problem = _check_body(item, server, ctx.references)
        if problem:
            ctx.cells[item.cell_id] = replace(cell, status="error", error=problem, flags=(Flag(flags.ERROR, problem),))
            progress.finish(item.label, f"error: {problem}")
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
        m = gen.measure(host=server.base_url, path=item.path, users=item.users, warmup_s=load.warmup_s,
                        min_s=load.min_s, max_s=load.max_s, slow_max_s=load.slow_max_s,
                        target_rse=load.target_rse,
                        min_requests_per_user=load.min_requests_per_user,
                        on_window_start=on_start, on_window_end=on_end)
    except ProcessError as exc:
        if window.get("open") and "server" not in window:
            server.monitor.end()
        ctx.cells[item.cell_id] = replace(cell, status="error", error=str(exc), flags=(Flag(flags.ERROR, str(exc)),))
        progress.finish(item.label, f"error: {exc}")
        return
    probe = WindowProbe(
        server=window["server"],
        upstream_cpu_percent=window["upstream"].cpu_percent if window.get("upstream") else None,
        generator_cores_busy_percent=window.get("cores"),
        generator_cpus=ctx.cores.cpus,
    )
    flags = repeat_flags(m, probe, item.users, scenario, ceiling.get("rps") if ceiling.get("valid", True) else None)
    rep = make_repeat(item.repeat, m, probe, flags)
    drained = drain(server, load.drain_timeout_s)
    rep = replace(rep, drain_s=round(drained, 3))
    repeats = cell.repeats + (rep,)
    ctx.cells[item.cell_id] = replace(cell, repeats=repeats, flags=tuple(cell_flags(repeats, scenario)))
    fl = f"  [{', '.join(sorted({f.code for f in flags}))}]" if flags else ""
    slow_drain = f" (drained {drained:.1f} s)" if drained > 1 else ""
    progress.finish(item.label, f"{rep.throughput_rps:,.1f} req/s, p50 {rep.latency.p50_ms:.2f} ms, "
                                f"p99 {rep.latency.p99_ms:.2f} ms{fl}{slow_drain}")


def _check_body(item: Planned, server: Server,
                references: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[str, str, bytes]]) -> str | None:
    """Request the endpoint once: it must answer 200 with a well-formed body,
    and the same status, content type and bytes as its twins on every setup."""
    try:
        status, body, headers = http_get(LOOPBACK, server.port, item.path, timeout=30)
    except OSError as exc:
        return f"request to {item.path} failed: {exc}"
    if status != 200:
        return f"{item.path} answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
    ctype = headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            json.loads(body)
        except ValueError:
            return f"{item.path} answered {ctype} that is not valid JSON: {body[:120]!r}"
    key = (item.workload, item.params)
    ref = references.get(key)
    if ref is None:
        references[key] = (f"{item.setup} {item.variant}", ctype, body)
        return None
    where, ref_ctype, ref_body = ref
    if ref_ctype != ctype:
        return f"{item.path} on {item.setup} answered content type {ctype!r}, its twin ({where}) {ref_ctype!r}"
    if ref_body != body:
        at = next((i for i, (a, b) in enumerate(zip(ref_body, body)) if a != b), min(len(ref_body), len(body)))
        return (f"body of {item.path} on {item.setup} differs from its twin ({where}) at byte {at} "
                f"({len(body)} vs {len(ref_body)} bytes)")
    return None
