"""Server setups: how each server people deploy is started, and what it implies.

A setup is data (server, interface, worker model, event loop, keep-alive) plus
a function that turns (port, workers, threads, app) into an argv. The app is
bench_site's WSGI or ASGI application unless a scenario's `[app]` names
another project's. The runner starts one setup at a time and keeps it up for
all of its cells.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from bench_site.gcpolicy import DEFAULT_GC

WSGI_APP = "bench_site.wsgi:application"
ASGI_APP = "bench_site.asgi:application"

# (host, port, workers, threads, app "module:attribute") -> argv
Argv = Callable[[str, int, int, int, str], list[str]]


@dataclass(frozen=True)
class SetupKind:
    name: str
    server: str
    interface: str  # "wsgi" | "asgi"
    worker_class: str
    event_loop: str
    keepalive: bool
    uses_threads: bool  # whether the `threads` option means anything
    notes: str
    argv: Argv
    max_workers: int | None = None  # daphne serves from one process
    # Serves WebSocket connections (the ws-* workloads' Channels consumers):
    # every ASGI setup but granian's, started with --no-ws.
    websocket: bool = False

    def command(self, host: str, port: int, workers: int, threads: int, app: str = "") -> list[str]:
        """The server's argv, serving `app` ("module:attribute"; default bench_site's)."""
        return self.argv(host, port, workers, threads, app or (WSGI_APP if self.interface == "wsgi" else ASGI_APP))


def _bin(name: str) -> str:
    # The servers live in the same virtualenv as the runner.
    from pathlib import Path

    return str(Path(sys.executable).with_name(name))


def _gunicorn(klass: str, *extra: str) -> Argv:
    def argv(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
        return [
            _bin("gunicorn"),
            app,
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            klass,
            # access logs cost CPU per request and are not what we measure
            "--log-level",
            "warning",
            # a saturated sync worker must not be killed mid-cell by the default 30 s
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            # gunicorn 27 opens a control socket at one fixed path per user
            # (~/.gunicorn/gunicorn.ctl), shared by every gunicorn on the machine:
            # two setups (or an A/B pair) would fight over it.
            "--no-control-socket",
            *extra,
        ]

    return argv


def _gthread(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
    return _gunicorn("gthread", "--threads", str(threads))(host, port, workers, threads, app)


def _uvicorn(loop: str, http: str) -> Argv:
    def argv(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
        return [
            _bin("uvicorn"),
            app,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            # uvicorn silently picks uvloop and httptools when installed: force them
            "--loop",
            loop,
            "--http",
            http,
            # and the `websockets` package over wsproto when installed: force wsproto
            "--ws",
            "wsproto",
            # Django has no lifespan support
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    return argv


def _daphne(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
    return [_bin("daphne"), "-b", host, "-p", str(port), "-v", "0", app]


def _granian(interface: str) -> Argv:
    def argv(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
        extra = ["--blocking-threads", str(threads)] if interface == "wsgi" else []
        return [
            _bin("granian"),
            "--interface",
            interface,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "asyncio",
            "--no-ws",
            "--log-level",
            "warning",
            *extra,
            app,
        ]

    return argv


def _hypercorn(host: str, port: int, workers: int, threads: int, app: str) -> list[str]:
    return [
        _bin("hypercorn"),
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "asyncio",
        "--log-level",
        "warning",
        app,
    ]


SETUPS: dict[str, SetupKind] = {
    s.name: s
    for s in (
        SetupKind(
            "gunicorn-sync",
            "gunicorn",
            "wsgi",
            "sync",
            "none",
            keepalive=False,
            uses_threads=False,
            notes="one request at a time per worker; closes every connection (no keep-alive)",
            argv=_gunicorn("sync"),
        ),
        SetupKind(
            "gunicorn-gthread",
            "gunicorn",
            "wsgi",
            "gthread",
            "none",
            keepalive=True,
            uses_threads=True,
            notes="a thread pool per worker; concurrency = workers x threads",
            argv=_gthread,
        ),
        SetupKind(
            "uvicorn",
            "uvicorn",
            "asgi",
            "uvicorn (asyncio, h11)",
            "asyncio",
            keepalive=True,
            uses_threads=False,
            notes="--loop asyncio --http h11 --ws wsproto forced; --lifespan off",
            argv=_uvicorn("asyncio", "h11"),
            websocket=True,
        ),
        SetupKind(
            "uvicorn-uvloop",
            "uvicorn",
            "asgi",
            "uvicorn (uvloop, httptools)",
            "uvloop",
            keepalive=True,
            uses_threads=False,
            notes="--loop uvloop --http httptools --ws wsproto; --lifespan off",
            argv=_uvicorn("uvloop", "httptools"),
            websocket=True,
        ),
        SetupKind(
            "gunicorn-uvicorn",
            "gunicorn",
            "asgi",
            "uvicorn_worker.UvicornH11Worker",
            "asyncio",
            keepalive=True,
            uses_threads=False,
            notes="gunicorn process management with the maintained uvicorn-worker package "
            "(asyncio loop, h11 parser, like the plain uvicorn setup)",
            argv=_gunicorn("uvicorn_worker.UvicornH11Worker"),
            websocket=True,
        ),
        SetupKind(
            "gunicorn-asgi",
            "gunicorn",
            "asgi",
            "asgi (native, gunicorn 27)",
            "asyncio",
            keepalive=True,
            uses_threads=False,
            notes="gunicorn 27's own ASGI worker, asyncio loop forced, lifespan off",
            argv=_gunicorn("asgi", "--asgi-loop", "asyncio", "--asgi-lifespan", "off"),
            websocket=True,
        ),
        SetupKind(
            "daphne",
            "daphne",
            "asgi",
            "twisted",
            "twisted (asyncio reactor)",
            keepalive=True,
            uses_threads=False,
            notes="a single process: the workers option is fixed at 1",
            argv=_daphne,
            websocket=True,
            max_workers=1,
        ),
        SetupKind(
            "granian-wsgi",
            "granian",
            "wsgi",
            "granian wsgi (blocking threads)",
            "tokio + blocking threads",
            keepalive=True,
            uses_threads=True,
            notes="Rust HTTP server; WSGI app on a pool of blocking threads",
            argv=_granian("wsgi"),
        ),
        SetupKind(
            "granian-asgi",
            "granian",
            "asgi",
            "granian asgi",
            "asyncio",
            keepalive=True,
            uses_threads=False,
            notes="Rust HTTP server; asyncio loop forced",
            argv=_granian("asgi"),
        ),
        SetupKind(
            "hypercorn",
            "hypercorn",
            "asgi",
            "hypercorn asyncio",
            "asyncio",
            keepalive=True,
            uses_threads=False,
            notes="pure-Python ASGI server (h11/h2)",
            argv=_hypercorn,
            websocket=True,
        ),
    )
}


@dataclass(frozen=True)
class SetupConfig:
    """A setup as a scenario configures it."""

    name: str  # the label used in results (may differ from kind, e.g. "uvicorn-syncmw")
    kind: str  # key of SETUPS
    workers: int
    threads: int
    sync_middleware: bool = False
    # bench_site's middleware stack (bench_site.stacks): BENCH_MIDDLEWARE
    middleware: str = "minimal"
    # The server-side counters (bench_site.telemetry) for this setup's servers;
    # false measures one without them, beside one with, in the same blocks:
    # what the telemetry itself costs.
    telemetry: bool = True
    # The cyclic garbage collector's policy in the server processes
    # (bench_site.gcpolicy): "default", or "freeze" (gc.freeze() once the
    # application is loaded). BENCH_GC.
    gc: str = DEFAULT_GC

    @property
    def spec(self) -> SetupKind:
        return SETUPS[self.kind]
