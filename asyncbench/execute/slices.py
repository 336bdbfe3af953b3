"""Measuring one slice of an arm, and the state of a run in progress.

A slice: the arm's body checked (first slice, or after a restart), the load
driver's window (settle, then a short window), the server's and generator's
CPU over exactly that window, with the server's own counters (requests, thread
hops, Django's connects: bench_site.telemetry) and the connections the
database server saw read at the same edges, the flags, a drain, the slice
appended to its cell and its latencies merged into the cell's histogram.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncbench.execute.checks import (
    References,
    WindowProbe,
    cell_flags,
    check_body,
    error_flags,
    make_repeat,
    repeat_flags,
)
from asyncbench.execute.database import django_env
from asyncbench.execute.dbstats import ConnectionCounter
from asyncbench.execute.groups import GroupState
from asyncbench.execute.load import LoadGenerator, Measurement
from asyncbench.execute.monitor import CoreMonitor, TreeMonitor, WindowUsage
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import ProcessError
from asyncbench.execute.servers import Drain, Server, ServerRequest, drain_server, start_servers, stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.execute.target import Target, connect
from asyncbench.execute.wscheck import check_ws_reply
from asyncbench.model.histogram import Histogram
from asyncbench.model.results import Cell
from asyncbench.model.scenario import Scenario
from asyncbench.render.progress import Progress
from bench_site.telemetry import difference, read_counters, reset_maxima


@dataclass
class RunContext:
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
    group: GroupState | None = None  # the group being measured: recorded if the run is interrupted
    interleaved: list[GroupState] = field(default_factory=list)  # load.interleave = "run": every group at once
    last_drain: dict[tuple[str, str], Drain] = field(default_factory=dict)  # per (setup, revision)
    server_cores: CoreMonitor | None = None  # the servers' CPUs as a whole
    # (server key, cell) pairs whose body was checked on the server now running
    checked: set[tuple[tuple[str, str], tuple[Any, ...]]] = field(default_factory=set)
    # run --target: setup name -> the existing deployment measured under that name (never started here)
    targets: dict[str, Target] = field(default_factory=dict)
    # where the servers' counters go, a folder per start (<run>/telemetry/<setup>/<n>); None: off
    telemetry: Path | None = None
    # the database server's count of connections opened (asyncbench.execute.dbstats); None: not read
    db_counter: ConnectionCounter | None = None
    starts: dict[tuple[str, str], int] = field(default_factory=dict)  # servers started so far, per (setup, revision)

    def _request(self, config: SetupConfig, rev: str) -> ServerRequest:
        port = None
        if self.port_base is not None:
            # consecutive ports from --port-base, one per setup and revision, stable across restarts
            slots = [(c.name, r) for c in self.scenario.setups for r in self.revisions]
            port = self.port_base + slots.index((config.name, rev))
        return ServerRequest(
            config,
            rev,
            self.revisions[rev],
            {
                **django_env(self.scenario, self.env, self.revisions[rev]),
                **self.arm_env.get(rev, {}),
                # "rev@setup": this revision's server of that setup only
                **self.arm_env.get(f"{rev}@{config.name}", {}),
            },
            self.server_cpus,
            self.log_dir,
            port,
            self.scenario.app,
            telemetry=self._telemetry_dir(config.name, rev) if config.telemetry else None,
        )

    def _telemetry_dir(self, setup: str, rev: str) -> Path | None:
        """A fresh folder per start: a window never spans a restart, so its
        counts are the differences within one start's files; a new process
        reusing an old pid cannot add to an old file."""
        if self.telemetry is None:
            return None
        key = (setup, rev)
        n = self.starts.get(key, 0)
        self.starts[key] = n + 1
        return self.telemetry / (f"{setup}-{rev}" if rev else setup) / str(n)

    def start(self, config: SetupConfig, rev: str) -> Server | None:
        return self.start_many([(config, rev)])[0]

    def start_many(self, which: list[tuple[SetupConfig, str]]) -> list[Server | None]:
        """Start these servers together; a failure is noted and kept for the arms that need it.
        An existing deployment (a target) is not started: it is checked to answer."""
        local = iter(start_servers([self._request(c, r) for c, r in which if c.name not in self.targets]))
        started = [self._connect(c, r) if c.name in self.targets else next(local) for c, r in which]
        out: list[Server | None] = []
        for (config, rev), srv in zip(which, started, strict=True):
            if isinstance(srv, ProcessError):
                self.start_errors[(config.name, rev)] = str(srv).splitlines()[0]
                self.progress.note(
                    f"{'target' if config.name in self.targets else 'setup'} {config.name} "
                    f"{'does not answer' if config.name in self.targets else 'failed to start'}: {srv}"
                )
                out.append(None)
                continue
            self.servers[(config.name, rev)] = srv
            out.append(srv)
        return out

    def _connect(self, config: SetupConfig, rev: str) -> Server | ProcessError:
        """An existing deployment as a server: its health and its agent checked, nothing started."""
        t = self.targets[config.name]
        health = self.scenario.app.health if self.scenario.app else "/health"
        try:
            monitor, info = connect(t, health)
        except ProcessError as exc:
            return exc
        port = urlsplit(t.origin).port or (443 if t.origin.startswith("https") else 80)
        return Server(config, rev, None, port, monitor, info, origin=t.origin, prefix=t.prefix, health=health)

    def running(self, item: Planned) -> tuple[Server | None, bool]:
        """The item's server, restarted if it died; and whether it was restarted."""
        key = (item.setup, item.revision)
        server = self.servers.get(key)
        if server is None or server.alive():
            return server, False
        # A crashed server is restarted for the measurements after it; the
        # crash is flagged on the measurement that saw it.
        self.progress.note(f"{item.setup} died; restarting it")
        stop_server(server)
        del self.servers[key]
        # every arm on the new process has its body checked again
        self.checked = {c for c in self.checked if c[0] != key}
        return self.start(server.config, item.revision), True

    def restart(self, keys: list[tuple[str, str]], rng: random.Random) -> None:
        """Stop these servers and start them afresh, in a random order: a new
        process per block, so no arm keeps one process's lucky or unlucky
        memory layout for a whole run. An existing deployment is not ours to
        restart: it is left as it is (the run's notes say so)."""
        keys = [k for k in keys if k[0] not in self.targets]
        for key in keys:
            old = self.servers.pop(key, None)
            if old is not None:
                stop_server(old)
            self.last_drain.pop(key, None)
        self.checked = {c for c in self.checked if c[0] not in keys}
        configs = {c.name: c for c in self.scenario.setups}
        order = list(keys)
        rng.shuffle(order)
        self.start_many([(configs[name], rev) for name, rev in order])

    def fail(self, item: Planned, cell: Cell, message: str, shown: str) -> None:
        self.cells[item.cell_id] = replace(cell, status="error", error=message, flags=error_flags(message))
        self.progress.finish(item.label, shown)


def _prepare(item: Planned, ctx: RunContext) -> tuple[Cell, Server] | None:
    """The arm's cell so far and its running server, its body checked when
    needed; None (the cell filed as failed or skipped) when it cannot be measured."""
    cell = ctx.cells.get(item.cell_id) or Cell(
        setup=item.setup,
        workload=item.workload,
        variant=item.variant,
        kind=item.kind,
        users=item.users,
        path=item.path,
        params=dict(item.params),
        revision=item.revision,
    )
    ctx.progress.start(item.label)
    if cell.status == "error":
        ctx.cells[item.cell_id] = cell
        ctx.progress.finish(item.label, f"skipped ({cell.error})")
        return None
    server, restarted = ctx.running(item)
    if server is None:
        why = ctx.start_errors.get((item.setup, item.revision), "see logs/")
        ctx.fail(item, cell, f"setup {item.setup} is not running: {why}", "error: server not running")
        return None
    key = (item.setup, item.revision)
    if not cell.repeats or restarted or (key, item.cell_id) not in ctx.checked:
        check = check_ws_reply if item.arm.protocol == "websocket" else check_body
        problem = check(item, server.port, ctx.references, origin=server.origin, prefix=server.prefix)
        if problem and server.origin and "upstream unreachable" in problem:
            problem += (
                " (an existing deployment calls its own upstream: start `python -m upstream` beside it and "
                "set BENCH_UPSTREAM_URL on its servers; the runner cannot configure a remote server)"
            )
        if problem:
            ctx.fail(item, cell, problem, f"error: {problem}")
            return None
        ctx.checked.add((key, item.cell_id))
    return cell, server


def measure_slice(
    item: Planned, ctx: RunContext, gen: LoadGenerator, ceiling: float | None, rate: float | None = None
) -> None:
    """One slice of one arm: closed loop at `item.users`, or at `rate` req/s (open model)."""
    ready = _prepare(item, ctx)
    if ready is None:
        return
    cell, server = ready
    load = ctx.scenario.load
    window = _Window(ctx, [server])
    try:
        # A slice: settle, then a window of window_s; closed loop, run on (at
        # most to max_window_s) until users completed min_requests_per_user requests.
        m = gen.measure(
            host=server.base_url,
            path=server.prefix + item.path,
            users=item.users,
            warmup_s=load.settle_s,
            min_s=load.window_s,
            max_s=load.window_s,
            slow_max_s=load.window_s if rate else load.max_window_s,
            target_rse=0.0,
            min_requests_per_user=load.min_requests_per_user,
            on_window_start=window.start,
            on_window_end=window.end,
            rate=rate,
            arrival=load.arrival,
            connections=load.connections or None,
            request=_request(item),
            protocol=item.arm.protocol,
        )
    except ProcessError as exc:
        window.abandon()
        ctx.fail(item, cell, str(exc), f"error: {exc}")
        return
    _record(item, ctx, cell, server, m, probe=window.probe(0), ceiling=ceiling)


def measure_joint(
    items: list[Planned], ctx: RunContext, gen: LoadGenerator, ceiling: float | None, rate: float
) -> None:
    """One slice of several arms in one open-model window, each at `rate`, their
    requests interleaved: base and head of an A/B run see the same machine at
    the same moments, so its speed cancels out of their ratio."""
    ready = [(item, _prepare(item, ctx)) for item in items]
    live = [(item, r) for item, r in ready if r is not None]
    if not live:
        return
    load = ctx.scenario.load
    servers = [server for _, (_, server) in live]
    window = _Window(ctx, servers)
    try:
        ms = gen.measure_joint(
            targets=[(server.base_url, server.prefix + item.path) for item, (_, server) in live],
            rate=rate,
            arrival=load.arrival,
            settle_s=load.settle_s,
            window_s=load.window_s,
            connections=load.connections or max(live[0][0].users, 64),
            on_window_start=window.start,
            on_window_end=window.end,
            requests=[_request(item) for item, _ in live],
        )
    except ProcessError as exc:
        window.abandon()
        for item, (cell, _) in live:
            ctx.fail(item, cell, str(exc), f"error: {exc}")
        return
    for i, ((item, (cell, server)), m) in enumerate(zip(live, ms, strict=True)):
        _record(item, ctx, cell, server, m, probe=window.probe(i), ceiling=ceiling)


def _request(item: Planned) -> dict[str, Any] | None:
    """The arm's request for the load driver; None for a plain GET (the built-in workloads)."""
    spec = item.request
    return None if spec.plain else spec.to_dict()


class _Window:
    """The monitors that bracket one measured window: each server's process
    tree, the upstream, the generator's CPUs and the servers' CPUs."""

    def __init__(self, ctx: RunContext, servers: list[Server]) -> None:
        self.ctx = ctx
        self.servers = servers
        self.got: dict[str, Any] = {}
        self.counters: list[dict[str, int] | None] = []
        self.db: int | None = None

    def _db_read(self) -> int | None:
        counter = self.ctx.db_counter
        if counter is None:
            return None
        try:
            return counter.read()
        except Exception as exc:  # a restarted or unreachable database: the run goes on without the count
            self.ctx.progress.note(f"database connection count no longer read: {type(exc).__name__}: {exc}")
            self.ctx.db_counter = None
            return None

    def start(self) -> None:
        # the counters first: reading them takes microseconds, the process-tree
        # scan of server.monitor.begin() milliseconds, and every request that
        # arrives between the window's opening and this read is not counted
        # (CI saw a window's counters one request apart); the maxima (the
        # loop's worst lag) start again, so the window's maximum is its own
        for s in self.servers:
            if s.telemetry is not None:
                reset_maxima(s.telemetry)
        self.counters = [read_counters(s.telemetry) if s.telemetry is not None else None for s in self.servers]
        for server in self.servers:
            server.monitor.begin()
        self.db = self._db_read()
        if self.ctx.upstream_monitor is not None:
            self.ctx.upstream_monitor.begin()
        self.ctx.cores.begin()
        if self.ctx.server_cores is not None:
            self.ctx.server_cores.begin()
        self.got["open"] = True

    def end(self) -> None:
        self.got["server"] = [server.monitor.end() for server in self.servers]
        self.got["counters"] = [
            difference(read_counters(s.telemetry), before) if s.telemetry is not None and before is not None else None
            for s, before in zip(self.servers, self.counters, strict=True)
        ]
        db = self._db_read()
        # One database under several servers (an A/B joint window) cannot be
        # split between them: the count is kept only for a window of one server.
        one = len(self.servers) == 1
        self.got["db"] = db - self.db if one and db is not None and self.db is not None else None
        up = self.ctx.upstream_monitor
        self.got["upstream"] = up.end() if up is not None else None
        self.got["cores"] = self.ctx.cores.end()
        self.got["server_cores"] = self.ctx.server_cores.end() if self.ctx.server_cores is not None else None

    def abandon(self) -> None:
        if self.got.get("open") and "server" not in self.got:
            for server in self.servers:
                server.monitor.end()

    def probe(self, i: int) -> WindowProbe:
        upstream_usage: WindowUsage | None = self.got.get("upstream")
        return WindowProbe(
            server=self.got["server"][i],
            upstream_cpu_percent=upstream_usage.cpu_percent if upstream_usage else None,
            generator_cores_busy_percent=self.got.get("cores"),
            generator_cpus=self.ctx.cores.cpus,
            server_cpus_busy_percent=self.got.get("server_cores"),
            server_counters=self.got["counters"][i],
            db_connections=self.got.get("db"),
        )


def _record(
    item: Planned,
    ctx: RunContext,
    cell: Cell,
    server: Server,
    m: Measurement,
    *,
    probe: WindowProbe,
    ceiling: float | None,
) -> None:
    """Flags, a drain, and the slice appended to its cell."""
    scenario = ctx.scenario
    # A drain that timed out flags the next slice on the same server, whichever arm it is.
    key = (item.setup, item.revision)
    found = repeat_flags(m, probe, item.users, scenario, ceiling, previous_drain=ctx.last_drain.get(key))
    done = drain_server(server, scenario.load.drain_timeout_s)
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
    cpu = rep.cpu_s_per_1k_requests
    cpu_text = f", CPU {cpu:.2f} ms/req" if m.open is not None and cpu is not None else ""
    ctx.progress.finish(
        item.label,
        f"{rep.throughput_rps:,.1f} req/s, p50 {rep.latency.p50_ms:.2f} ms, "
        f"p99 {rep.latency.p99_ms:.2f} ms{cpu_text}{fl}{slow_drain}",
    )
