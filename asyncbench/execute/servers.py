"""A setup's server: start it on its CPUs, describe it, drain it, stop it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from asyncbench.execute.monitor import ServerMonitor, TreeMonitor
from asyncbench.execute.processes import (
    LOOPBACK,
    ManagedProcess,
    ProcessError,
    check_port_free,
    cpu_pinning_prefix,
    free_port,
    http_get,
)
from asyncbench.execute.setups import SetupConfig
from asyncbench.execute.target import url_get
from asyncbench.model.endpoints import AppConfig
from asyncbench.model.results import SetupInfo
from bench_site.gcpolicy import DEFAULT_GC
from bench_site.stacks import DEFAULT_STACK


@dataclass
class Server:
    config: SetupConfig
    revision: str
    proc: ManagedProcess | None  # None: an existing deployment (run --target), not started here
    port: int
    monitor: ServerMonitor
    info: SetupInfo
    # An existing deployment's scheme://host[:port] and the path prefix put
    # before every endpoint path (asyncbench.execute.target); "" for a local server.
    origin: str = ""
    prefix: str = ""
    # the path that answers 200 fast: readiness and the drain ([app] health; bench_site's /health)
    health: str = "/health"
    # where its processes keep their counters (bench_site.telemetry); None: telemetry off
    telemetry: Path | None = None

    @property
    def base_url(self) -> str:
        return self.origin or f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        """A local server's process is running (a deployment is taken to be: its failures show)."""
        return self.proc is None or self.proc.alive()


def setup_info(
    config: SetupConfig, argv: list[str], env: dict[str, str], cpus: tuple[int, ...], workers: int
) -> SetupInfo:
    spec = config.spec
    # what configures the site; not the upstream's URL (a fresh port every
    # run), the database URL (it may hold a password) nor the counters' folder
    # (a fresh one per start: the gate would read it as a changed setting)
    hidden = ("BENCH_DATABASE_URL", "BENCH_UPSTREAM_URL", "BENCH_TELEMETRY_DIR")
    shown_env = {k: v for k, v in env.items() if (k.startswith("BENCH_") and k not in hidden) or k == "PYTHONHASHSEED"}
    notes = spec.notes + ("; plus one sync-only middleware (BENCH_SYNC_MIDDLEWARE=1)" if config.sync_middleware else "")
    if config.middleware != DEFAULT_STACK:
        notes += f"; {config.middleware} middleware stack with a logged-in session (BENCH_MIDDLEWARE)"
    if config.gc != DEFAULT_GC:
        notes += f"; the cyclic GC {config.gc} (BENCH_GC={config.gc}: gc.freeze() once the application is loaded)"
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


@dataclass(frozen=True)
class ServerRequest:
    """What start_servers needs to start one setup's server."""

    config: SetupConfig
    revision: str
    root: Path
    env: dict[str, str]
    cpus: tuple[int, ...]
    log_dir: Path
    port: int | None = None
    # another Django project to serve (a scenario's [app]); None: bench_site
    app: AppConfig | None = None
    # a fresh folder for this start's counters (BENCH_TELEMETRY_DIR); None: telemetry off
    telemetry: Path | None = None


def start_server(
    config: SetupConfig,
    *,
    revision: str,
    root: Path,
    env: dict[str, str],
    cpus: tuple[int, ...],
    log_dir: Path,
    port: int | None = None,
    telemetry: Path | None = None,
) -> Server:
    """Start a setup's server. An explicit port that is taken is an error
    naming it; by default the OS picks a free one. `telemetry`: a folder for
    its counters (bench_site.telemetry), read with `read_counters`."""
    started = start_servers([ServerRequest(config, revision, root, env, cpus, log_dir, port, telemetry=telemetry)])[0]
    if isinstance(started, BaseException):
        raise started
    return started


def start_servers(requests: list[ServerRequest]) -> list[Server | ProcessError]:
    """Start several servers at once (launched together, then each awaited):
    a block's restart costs one server's start-up, not the sum of them.
    A server that fails to start comes back as its error; the others run."""
    launched: list[tuple[ServerRequest, ManagedProcess, list[str], dict[str, str], int, int] | ProcessError] = []
    try:
        for req in requests:
            spec = req.config.spec
            workers = req.config.workers or max(1, len(req.cpus) or 1)
            if spec.max_workers is not None:
                workers = min(workers, spec.max_workers)
            if req.port is None:
                port = free_port()
            else:
                check_port_free(req.port)
                port = req.port
            app = req.app.module(spec.interface) if req.app else ""
            argv = spec.command(LOOPBACK, port, workers, req.config.threads, app)
            env = dict(req.env)
            if req.config.sync_middleware:
                env["BENCH_SYNC_MIDDLEWARE"] = "1"
            # set only off the default, so a minimal setup's recorded environment is as before the option
            if req.config.middleware != DEFAULT_STACK:
                env["BENCH_MIDDLEWARE"] = req.config.middleware
            # the scenario's GC policy, never one inherited from the runner's environment
            env.pop("BENCH_GC", None)
            if req.config.gc != DEFAULT_GC:
                env["BENCH_GC"] = req.config.gc
            env.pop("BENCH_TELEMETRY_DIR", None)  # only the folder of this start, never an inherited one
            if req.telemetry is not None:
                req.telemetry.mkdir(parents=True, exist_ok=True)
                env["BENCH_TELEMETRY_DIR"] = str(req.telemetry)
            label = f"{req.config.name}{'-' + req.revision if req.revision else ''}"
            proc = ManagedProcess(
                label,
                [*cpu_pinning_prefix(req.cpus), *argv],
                log_path=req.log_dir / f"server-{label}.log",
                env=env,
                cwd=req.root,
                port=port,
                health_path=req.app.health if req.app else "/health",
                ready_timeout=60,
            )
            try:
                proc.start()
            except ProcessError as exc:
                launched.append(exc)
                continue
            launched.append((req, proc, argv, env, workers, port))
    except BaseException:
        # a port taken, a process that would not spawn, Ctrl-C: nothing launched survives
        for item in launched:
            if not isinstance(item, ProcessError):
                item[1].stop()
        raise
    out: list[Server | ProcessError] = []
    for i, item in enumerate(launched):
        if isinstance(item, ProcessError):
            out.append(item)
            continue
        req, proc, argv, env, workers, port = item
        try:
            proc.wait_ready()
        except ProcessError as exc:
            proc.stop()
            out.append(exc)
            continue
        except BaseException:
            # interrupted: stop this one and every one not yet handed out
            proc.stop()
            for later in launched[i + 1 :]:
                if not isinstance(later, ProcessError):
                    later[1].stop()
            for done in out:
                if isinstance(done, Server):
                    stop_server(done)
            raise
        out.append(
            Server(
                req.config,
                req.revision,
                proc,
                port,
                TreeMonitor(proc.pid),
                setup_info(req.config, argv, env, req.cpus, workers),
                health=req.app.health if req.app else "/health",
                telemetry=req.telemetry,
            )
        )
    return out


def stop_server(server: Server) -> None:
    server.monitor.close()
    if server.proc is not None:
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
    in its threads; an existing deployment's tree is read through its agent,
    and without one /health alone decides). `timed_out` is true when `timeout` passed first: the
    next measurement on this server then starts on a backlog, and
    `checks.repeat_flags(previous_drain=...)` flags it.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        t = time.monotonic()
        try:
            if server.origin:
                status, _, _ = url_get(server.origin, server.prefix + server.health, timeout=max(0.5, timeout))
            else:
                status, _, _ = http_get(LOOPBACK, server.port, server.health, timeout=max(0.5, timeout))
        except OSError:
            status = 0
        # a deployment across a network answers /health later than a local server
        prompt = 0.05 if not server.origin else 0.25
        if status == 200 and time.monotonic() - t < prompt and (server.monitor.busy_fraction(0.1) or 0.0) < 0.1:
            return Drain(time.monotonic() - t0, timed_out=False)
        time.sleep(0.05)
    return Drain(time.monotonic() - t0, timed_out=True)
