"""A setup's server: start it on its CPUs, describe it, drain it, stop it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from asyncbench.execute.monitor import TreeMonitor
from asyncbench.execute.processes import (
    LOOPBACK,
    ManagedProcess,
    check_port_free,
    cpu_pinning_prefix,
    free_port,
    http_get,
)
from asyncbench.execute.setups import SetupConfig
from asyncbench.model.results import SetupInfo


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


def setup_info(
    config: SetupConfig, argv: list[str], env: dict[str, str], cpus: tuple[int, ...], workers: int
) -> SetupInfo:
    spec = config.spec
    # what configures the site; not the upstream's URL (a fresh port every
    # run) nor the database URL (it may hold a password)
    shown_env = {
        k: v
        for k, v in env.items()
        if (k.startswith("BENCH_") and k not in ("BENCH_DATABASE_URL", "BENCH_UPSTREAM_URL")) or k == "PYTHONHASHSEED"
    }
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


@dataclass(frozen=True)
class Drain:
    """How a drain ended: the seconds it took and whether it gave up."""

    seconds: float
    timed_out: bool


def drain_server(server: Server, timeout: float) -> Drain:
    """Wait until the server has worked off what the last measurement queued.

    Measured on this machine, a saturated sync worker needed up to 10 s to
    work off its backlog; without a drain the next cell's p99 read 2.6 s.
    Two signals, both required: /health answers promptly (a WSGI worker
    queues it behind the backlog) and the server's process tree is idle (an
    ASGI server answers /health on its event loop while sync views still run
    in its threads). `timed_out` is true when `timeout` passed first: the
    next measurement on this server then starts on a backlog, and
    `checks.repeat_flags(previous_drain=...)` flags it.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        t = time.monotonic()
        try:
            status, _, _ = http_get(LOOPBACK, server.port, "/health", timeout=max(0.5, timeout))
        except OSError:
            status = 0
        if status == 200 and time.monotonic() - t < 0.05 and server.monitor.busy_fraction(0.1) < 0.1:
            return Drain(time.monotonic() - t0, timed_out=False)
        time.sleep(0.05)
    return Drain(time.monotonic() - t0, timed_out=True)
