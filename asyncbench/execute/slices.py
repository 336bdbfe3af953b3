"""Measuring one slice of an arm, and the state of a run in progress.

A slice: the arm's body checked (first slice, or after a restart), the load
driver's window (settle, then a short window), the server's and generator's
CPU over exactly that window, the flags, a drain, the slice appended to its
cell and its latencies merged into the cell's histogram.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from asyncbench.execute.groups import GroupState
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.monitor import CoreMonitor, TreeMonitor, WindowUsage
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import PortInUseError, ProcessError
from asyncbench.execute.servers import Drain, Server, drain_server, start_server, stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.model.histogram import Histogram
from asyncbench.model.results import Cell
from asyncbench.model.scenario import Scenario
from asyncbench.render.progress import Progress
from bench_site.registry import VARIANTS


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


def measure_slice(item: Planned, ctx: RunContext, gen: LoadGenerator, ceiling: float | None) -> None:
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
