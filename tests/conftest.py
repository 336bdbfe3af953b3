"""Shared fixtures: the three-pass database design, seeded data, real processes.

Three passes (see the Makefile):
1. default settings (SQLite): every test; tests marked `postgres` or `mariadb` skip.
2. BENCH_DATABASE_URL=postgresql://... with `-m postgres`: only the tests that
   must also hold on PostgreSQL. An unreachable server skips them locally and
   fails them under CI=true, where PostgreSQL is required.
3. BENCH_DATABASE_URL=mysql://... with `-m mariadb`: the same for MariaDB
   (mysqlclient installed by the pass itself); skips and failures as above.
Tests that must hold on every database take the `backend` fixture, whose
"postgresql" and "mariadb" parameters carry those marks, so they run in every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import pytest

from upstream.server import item_value

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SKIP_REASON = "runs in the PostgreSQL pass (BENCH_DATABASE_URL=postgresql://...)"
MARIADB_SKIP_REASON = "runs in the MariaDB pass (BENCH_DATABASE_URL=mysql://..., make test-mariadb)"
# Rows seeded into the test database once per session: enough for pages and
# ~10 JSON matches, small enough to load in well under a second.
SEED_ROWS = 2_000


# --- the PostgreSQL pass --------------------------------------------------------

_postgres_error: list[str | None] = []


def _postgres_unreachable() -> str | None:
    """None when the server in BENCH_DATABASE_URL answers, else why not (cached)."""
    if not _postgres_error:
        import psycopg

        url = os.environ["BENCH_DATABASE_URL"]
        parts = urlsplit(url)
        try:
            psycopg.connect(
                host=parts.hostname or "",
                port=parts.port or 5432,
                user=parts.username or "",
                password=parts.password or "",
                dbname=parts.path.lstrip("/"),
                connect_timeout=5,
            ).close()
        except psycopg.Error as exc:
            _postgres_error.append(f"PostgreSQL at {parts.hostname}:{parts.port} unreachable: {exc}")
        else:
            _postgres_error.append(None)
    return _postgres_error[0]


# --- the MariaDB pass -----------------------------------------------------------

_mariadb_error: list[str | None] = []


def _mariadb_unreachable() -> str | None:
    """None when the server in BENCH_DATABASE_URL answers, else why not (cached)."""
    if not _mariadb_error:
        parts = urlsplit(os.environ["BENCH_DATABASE_URL"])
        try:
            import MySQLdb
        except ImportError:
            _mariadb_error.append("mysqlclient is not installed (make install-mariadb)")
            return _mariadb_error[0]
        try:
            MySQLdb.connect(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=parts.username or "",
                password=parts.password or "",
                connect_timeout=5,
            ).close()
        except MySQLdb.Error as exc:
            _mariadb_error.append(f"MariaDB at {parts.hostname}:{parts.port} unreachable: {exc}")
        else:
            _mariadb_error.append(None)
    return _mariadb_error[0]


def _database_scheme() -> str:
    return urlsplit(os.environ.get("BENCH_DATABASE_URL", "")).scheme


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    in_ci = os.environ.get("CI", "").lower() == "true"
    if item.get_closest_marker("postgres") is not None:
        if _database_scheme() not in ("postgresql", "postgres"):
            pytest.skip(POSTGRES_SKIP_REASON)
        problem = _postgres_unreachable()
        if problem is not None:
            if in_ci:
                pytest.fail(f"{problem} (CI=true: PostgreSQL is required)", pytrace=False)
            pytest.skip(f"{problem}; start PostgreSQL or unset BENCH_DATABASE_URL")
    if item.get_closest_marker("mariadb") is not None:
        if _database_scheme() not in ("mysql", "mariadb"):
            pytest.skip(MARIADB_SKIP_REASON)
        problem = _mariadb_unreachable()
        if problem is not None:
            if in_ci:
                pytest.fail(f"{problem} (CI=true: MariaDB is required)", pytrace=False)
            pytest.skip(f"{problem}; start MariaDB or unset BENCH_DATABASE_URL")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Seed the session's test database once; tests roll back on top of it."""
    from bench_site.seeding import seed

    with django_db_blocker.unblock():
        seed(rows=SEED_ROWS, batch=1_000)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        # Django's vendor name for MariaDB and MySQL alike.
        pytest.param("mysql", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def backend(request: pytest.FixtureRequest, db: None) -> str:
    """The database vendor a test runs on; the test runs once per pass."""
    from django.db import connection

    if connection.vendor != request.param:
        pytest.skip(f"runs in the {request.param} pass, this one is {connection.vendor}")
    return str(request.param)


# --- real processes -------------------------------------------------------------


def python_env(**overrides: str) -> dict[str, str]:
    """The environment for a child Python: this one, minus the database URL
    unless given, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM to the process group, SIGKILL after `timeout`; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    code = proc.returncode
    assert code is not None
    return code


def read_line_matching(proc: subprocess.Popen[bytes], pattern: re.Pattern[str], deadline: float) -> re.Match[str]:
    """Read proc's stdout line by line until `pattern` matches, by a deadline."""
    assert proc.stdout is not None
    stdout: IO[bytes] = proc.stdout
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line matching {pattern.pattern!r}; got {seen!r}")
            if not selector.select(timeout=remaining):
                continue
            line = stdout.readline().decode(errors="replace")
            if not line:
                raise RuntimeError(f"process exited ({proc.wait()}) before {pattern.pattern!r}; got {seen!r}")
            seen.append(line)
            match = pattern.search(line)
            if match:
                return match


# How the site tests start uvicorn (after its executable) and how each server says its port.
UVICORN_ARGV = (
    "bench_site.asgi:application",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--loop",
    "asyncio",
    "--http",
    "h11",
    "--lifespan",
    "off",
    "--no-access-log",
)
UVICORN_LISTENING = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
GUNICORN_LISTENING = r"Listening at: http://127\.0\.0\.1:(\d+)"


def wait_for_log(log: Path, pattern: re.Pattern[str], proc: subprocess.Popen[bytes], deadline: float) -> re.Match[str]:
    """The first match of `pattern` in a server's log file (its port, say), polling until `deadline`."""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        match = pattern.search(text)
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.05)  # polling with a deadline
    raise TimeoutError(f"no {pattern.pattern!r} in {log} by the deadline")


def wait_for_health(url: str, proc: subprocess.Popen[bytes], deadline: float, log: Path | None = None) -> None:
    """Poll `url` until it answers 200, the process dies, or the deadline passes."""
    last_error = "no attempt"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}\n{tail}")
            try:
                if client.get(url).status_code == 200:
                    return
                last_error = "non-200"
            except httpx.TransportError as exc:
                last_error = repr(exc)
            # Polling interval, not a readiness guess: the deadline bounds it.
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{url} not healthy by the deadline ({last_error})\n{tail}")


@dataclass
class Processes:
    """Children started by a test, all stopped at teardown."""

    log_dir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        name: str,
        pass_fds: Sequence[int] = (),
        stdout_pipe: bool = False,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log_file,
                stderr=log_file,
                pass_fds=tuple(pass_fds),
                start_new_session=True,
            )
        self.started.append(proc)
        return proc, log

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_process(proc)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(log_dir=tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


@dataclass(frozen=True)
class RunningUpstream:
    url: str
    port: int
    proc: subprocess.Popen[bytes]


StartUpstream = Callable[..., RunningUpstream]


@pytest.fixture
def start_upstream(processes: Processes) -> StartUpstream:
    """Start the real upstream on a free port (port 0) with the given options."""

    def start(*options: str) -> RunningUpstream:
        proc, _ = processes.start(
            [sys.executable, "-m", "upstream", "--host", "127.0.0.1", "--port", "0", *options],
            env=python_env(),
            name=f"upstream-{len(processes.started)}",
            stdout_pipe=True,
        )
        match = read_line_matching(proc, _LISTENING, time.monotonic() + 15)
        return RunningUpstream(url=match.group(1), port=int(match.group(2)), proc=proc)

    return start


# --- an in-process upstream that proves concurrency -------------------------------


@dataclass
class BarrierUpstream:
    """A tiny HTTP server in a thread that records how many /item requests were
    in flight at once. Each request is held until `barrier` requests are in
    flight (or `hold_timeout_s` passes), so concurrent clients are released
    together and a sequential client is visibly stuck at one: no timing."""

    url: str = ""
    barrier: int = 1
    status: int = 200
    delay_s: float = 0.0
    hold_timeout_s: float = 10.0
    requests: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight: int = 0
    _arrived: asyncio.Event | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def reset(self, *, barrier: int = 1, status: int = 200, delay_s: float = 0.0) -> None:
        self.barrier, self.status, self.delay_s = barrier, status, delay_s
        self.requests.clear()
        self.max_in_flight = 0


async def _barrier_handle(state: BarrierUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    state._writers.add(writer)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            state.requests.append(target)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            assert state._arrived is not None
            if state.in_flight >= state.barrier:
                state._arrived.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state._arrived.wait(), state.hold_timeout_s)
            if state.delay_s:
                await asyncio.sleep(state.delay_s)
            state.in_flight -= 1
            if state.in_flight == 0:
                state._arrived.clear()
            match = re.fullmatch(r"/item/(\d+)(\?.*)?", target)
            index = int(match.group(1)) if match else -1
            body = (
                f'{{"item":{index},"name":"item-{index}","value":{item_value(index)}}}'.encode()
                if state.status == 200
                else b'{"error":"injected failure"}'
            )
            writer.write(
                f"HTTP/1.1 {state.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        state._writers.discard(writer)
        writer.close()


@pytest.fixture
def barrier_upstream() -> Iterator[BarrierUpstream]:
    state = BarrierUpstream()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        state._arrived = asyncio.Event()
        server = await asyncio.start_server(lambda r, w: _barrier_handle(state, r, w), "127.0.0.1", 0)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        server.close()
        # Clients keep pooled keep-alive connections; close them from this side.
        for writer in list(state._writers):
            writer.close()

    failures: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(main())
            # Let handlers of connections closed at shutdown finish.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except BaseException as exc:  # reported by the fixture's teardown
            failures.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="barrier-upstream", daemon=True)
    thread.start()
    assert ready.wait(10), "barrier upstream did not start"
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        assert not thread.is_alive(), "barrier upstream did not stop"
        assert not failures, f"barrier upstream failed: {failures!r}"
