"""Child processes: free ports, own process group, readiness by polling, clean stop.

Every server, the upstream and every load generator goes through
`ManagedProcess`: started in its own session (so its whole tree can be
signalled at once), waited for by polling a health URL to a deadline (never by
sleeping), stopped with SIGTERM to the group and SIGKILL after a timeout, with
its output kept in a log file beside the run.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

LOOPBACK = "127.0.0.1"


class ProcessError(RuntimeError):
    """A child failed to start, died, or did not become ready in time."""


class PortInUseError(ProcessError):
    pass


def free_port(host: str = LOOPBACK) -> int:
    """A port the OS says is free now (bind to port 0, read it back, release).

    There is a window between release and the child's bind; callers that need
    certainty pass the port to a child that fails loudly if it cannot bind,
    and `ManagedProcess` reports that failure with the log tail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, host: str = LOOPBACK) -> None:
    """Raise PortInUseError naming the port when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is already in use; choose another or omit it to let the OS pick a free one"
                ) from None
            raise


def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes, dict[str, str]]:
    return http_request(host, port, "GET", path, timeout=timeout)


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 2.0,
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers={"Host": f"{host}:{port}", **(headers or {})})
        resp = conn.getresponse()
        answer = resp.read()
        return resp.status, answer, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def cpu_pinning_prefix(cpus: Sequence[int] | None) -> list[str]:
    """`taskset -c ...` so the child and every process it forks run on those CPUs.

    Pinning in the parent after start would race with the server forking its
    workers; taskset applies before exec.
    """
    if not cpus:
        return []
    # the machine's CPUs, not this process's affinity: the runner pins itself
    # to the generator's CPUs and still places servers elsewhere
    available = set(range(os.cpu_count() or 1))
    if not set(cpus) <= available:
        raise ProcessError(f"CPUs {sorted(cpus)} are not all available (have {sorted(available)})")
    return ["taskset", "-c", ",".join(str(c) for c in cpus)]


class ManagedProcess:
    """A child process in its own process group, with a log file and a health URL.

    Use as a context manager: the group is stopped on exit whatever happened,
    including KeyboardInterrupt.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        health_path: str | None = "/health",
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        pipe_stdio: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd
        self.host = host
        self.port = port
        self.health_path = health_path
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        # With pipe_stdio the child speaks a line protocol on stdin/stdout and
        # only its stderr goes to the log.
        self.pipe_stdio = pipe_stdio
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    # -- lifecycle
    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.write(f"$ {' '.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self.pipe_stdio else subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.pipe_stdio else self._log,
            stderr=self._log if self.pipe_stdio else subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pgid(self) -> int:
        return self.pid  # start_new_session makes the child its group leader

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self) -> None:
        """Poll the health URL until it answers 200, the child dies, or the deadline."""
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.02
        last_error = "no attempt"
        while True:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise ProcessError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            try:
                if self.port is not None and self.health_path is not None:
                    status, _, _ = http_get(self.host, self.port, self.health_path, timeout=1.0)
                    if status == 200:
                        return
                    last_error = f"HTTP {status}"
                else:
                    return
            except OSError as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                self.stop()
                raise ProcessError(
                    f"{self.name} did not become ready within {self.ready_timeout:.0f} s "
                    f"(last error: {last_error}); last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def group_pids(self) -> list[int]:
        """PIDs still in the child's process group (for leak checks)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) == self.pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
        return pids

    def stop(self) -> int | None:
        """SIGTERM to the group, SIGKILL after the timeout; returns the exit code."""
        if self.proc is None:
            return None
        # A second Ctrl-C (or SIGTERM) while stopping must not abort the stop
        # half-way and leak the group: hold both until the group is gone.
        held = {signal.SIGINT, signal.SIGTERM}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            return self._stop()
        finally:
            if in_main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def _stop(self) -> int | None:
        assert self.proc is not None
        try:
            if self.pipe_stdio and self.proc.stdin is not None:
                # the child may have exited and closed its end already
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            if self.proc.poll() is None:
                _signal_group(self.pgid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.pgid, signal.SIGKILL)
                    self.proc.wait(timeout=5)
            # The leader may be gone while workers linger (e.g. orphaned by a
            # crash): make sure nothing of the group survives.
            deadline = time.monotonic() + self.stop_timeout
            while self.group_pids() and time.monotonic() < deadline:
                _signal_group(self.pgid, signal.SIGTERM)
                time.sleep(0.05)
            if self.group_pids():
                _signal_group(self.pgid, signal.SIGKILL)
            if self.pipe_stdio and self.proc.stdout is not None:
                self.proc.stdout.close()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return self.proc.returncode

    def __enter__(self) -> ManagedProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # the group may be gone already: nothing left to signal
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
