"""The resource agent: a small read-only HTTP sidecar on a server host.

`python runner.py agent --pid PID` (or `--name PROCESS_NAME`) watches one
process tree, fixed when the agent starts, and answers GET requests with its
CPU and memory as JSON, so a run against an existing deployment (`run
--target`) can measure server CPU per request the way a local run does.

What it reports is read the way `asyncbench.execute.monitor` reads a local
server: the root process and every descendant, each keyed by (pid, start time),
CPU from the kernel's per-process CPU clock (nanoseconds, dead threads
included; psutil's ticks as the fallback). The runner takes the difference of
two readings, one at the start and one at the end of each measured window.
RSS and the set of processes are sampled every SAMPLE_S in the background, so
a reading can give the peak RSS since an earlier reading (`?since=`).

Security: the process is fixed at start and never taken from a request; the
agent only answers GET (anything else is 405), only these two paths, and only
with numbers about that tree (pids, start times, CPU, RSS; no command lines,
no environment). It binds to loopback by default; bound elsewhere anyone who
can reach the port can read those numbers (there is no authentication), which
it says when it starts.

    GET /health          {"ok": true}
    GET /usage[?since=T] the tree's CPU and RSS now; `since` (the `now_s` of an
                         earlier reading) adds the peak RSS sampled since then
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil

from asyncbench.execute.monitor import _cpu_times, _tree

AGENT_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8089
SAMPLE_S = 0.25
# RSS samples kept for `since` (at SAMPLE_S: ten minutes, far longer than a slice)
KEEP_SAMPLES = 2400
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class AgentError(Exception):
    """A process the agent cannot watch, or a bad option: the message names the option."""


@dataclass(frozen=True)
class Watched:
    """The process tree's root, fixed at start: a pid reused later is not it."""

    pid: int
    create_time: float
    name: str


def _describe(p: psutil.Process) -> str:
    try:
        cmd = " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmd = ""
    return f"{p.pid} ({cmd[:80] or p.name()})"


def find_pid(pid: int) -> Watched:
    """The process `pid`, or AgentError naming --pid."""
    if pid <= 0:
        raise AgentError(f"--pid: expected a process id > 0, got {pid}")
    try:
        p = psutil.Process(pid)
        return Watched(pid, p.create_time(), p.name())
    except psutil.NoSuchProcess:
        raise AgentError(f"--pid {pid}: no such process (is the server running on this host?)") from None
    except psutil.AccessDenied:
        raise AgentError(f"--pid {pid}: not allowed to read that process; run the agent as its user") from None


def find_name(name: str, *, exclude: tuple[int, ...] = ()) -> Watched:
    """The one process tree whose root is named `name` (as `ps -o comm` shows it).

    A server's workers usually share its name (gunicorn's workers are
    "gunicorn" too): a match whose parent, grandparent, ... also matches is part
    of that tree, not another one. Zero trees or two and more are an error
    naming --name (the pids found, so --pid can choose).
    """
    if not name:
        raise AgentError("--name: expected a process name, e.g. gunicorn")
    own = {os.getpid(), *exclude}
    matches: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["name"]):
        if p.pid not in own and p.info.get("name") == name:
            matches[p.pid] = p
    roots = []
    for p in matches.values():
        try:
            ancestors = {a.pid for a in p.parents()}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if not ancestors & set(matches):
            roots.append(p)
    if not roots:
        raise AgentError(
            f"--name {name!r}: no running process has that name (names as `ps -eo pid,comm` shows them); "
            "check the name or give --pid"
        )
    if len(roots) > 1:
        found = ", ".join(_describe(p) for p in sorted(roots, key=lambda p: p.pid)[:10])
        raise AgentError(
            f"--name {name!r}: {len(roots)} separate processes have that name ({found}); give --pid to choose one"
        )
    return find_pid(roots[0].pid)


def parse_bind(value: str) -> tuple[str, int]:
    """ "HOST:PORT" ("[::1]:8089" for IPv6) or a bare "PORT" (on loopback)."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, value
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 <= port <= 65535:
        raise AgentError(
            f"--bind: expected HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}; port 0 = any free), got {value!r}"
        )
    return host, port


class Watcher:
    """The watched tree: readings on request, RSS and process changes sampled in the background."""

    def __init__(self, watched: Watched, interval: float = SAMPLE_S) -> None:
        self.watched = watched
        self.interval = interval
        self._lock = threading.Lock()
        self._rss: deque[tuple[float, int]] = deque(maxlen=KEEP_SAMPLES)
        self._pids: set[int] = set()
        self._changes = 0
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="agent-sampler", daemon=True)
        self._thread.start()

    def _procs(self) -> list[psutil.Process]:
        """The tree now; empty once the root is gone (or its pid belongs to a new process)."""
        procs = _tree(self.watched.pid)
        if not procs:
            return []
        try:
            if abs(procs[0].create_time() - self.watched.create_time) > 0.01:
                return []
        except psutil.NoSuchProcess:
            return []
        return procs

    def _sample(self) -> tuple[list[psutil.Process], dict[int, int]]:
        procs = self._procs()
        rss: dict[int, int] = {}
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        pids = {p.pid for p in procs}
        with self._lock:
            self._rss.append((time.monotonic(), sum(rss.values())))
            if self._pids and pids != self._pids:
                self._changes += len(pids ^ self._pids)
            self._pids = pids
        return procs, rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def reading(self, since: float | None = None) -> dict[str, Any]:
        procs, rss = self._sample()
        cpu = _cpu_times(procs)
        now = time.monotonic()
        with self._lock:
            peaks = [r for t, r in self._rss if since is None or t >= since]
            changes = self._changes
        processes = [
            {"pid": pid, "create_time": ct, "cpu_ns": round(s * 1e9), "rss_bytes": rss.get(pid, 0)}
            for (pid, ct), s in sorted(cpu.items())
        ]
        return {
            "agent": "django-async-bench",
            "version": AGENT_VERSION,
            "watched": {"pid": self.watched.pid, "name": self.watched.name, "create_time": self.watched.create_time},
            "alive": bool(procs),
            "now_s": now,  # the agent's monotonic clock: pass it back as ?since=
            "cpu_ns": sum(p["cpu_ns"] for p in processes),
            "rss_bytes": sum(rss.values()),
            "rss_peak_bytes": max(peaks, default=sum(rss.values())),
            "process_changes": changes,  # processes that appeared or vanished since the agent started
            "processes": processes,
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _handler(watcher: Watcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "asyncbench-agent"

        def _send(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                self._send(200, {"ok": True})
                return
            if url.path != "/usage":
                self._send(404, {"error": "not found; the agent answers GET /usage and GET /health"})
                return
            query = parse_qs(url.query, keep_blank_values=True)
            if set(query) - {"since"}:
                self._send(400, {"error": "the only parameter of /usage is since (a now_s of an earlier reading)"})
                return
            since = None
            if "since" in query:
                try:
                    since = float(query["since"][0])
                except ValueError:
                    self._send(400, {"error": "since: expected a number (the now_s of an earlier reading)"})
                    return
            self._send(200, watcher.reading(since))

        def _refuse(self) -> None:
            self._send(405, {"error": "the agent only answers GET"}, {"Allow": "GET"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one request per window edge: nothing worth a log line

    return Handler


def serve(*, pid: int | None, name: str | None, bind: str) -> int:
    """Run the agent until interrupted (exit 0), or return 2 on a bad option."""
    try:
        if (pid is None) == (name is None):
            raise AgentError("give exactly one of --pid PID and --name PROCESS_NAME")
        host, port = parse_bind(bind)
        watched = find_pid(pid) if pid is not None else find_name(str(name))
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    watcher = Watcher(watched)
    try:
        httpd = ThreadingHTTPServer((host, port), _handler(watcher))
    except OSError as exc:
        watcher.close()
        print(f"error: --bind {bind}: cannot listen there: {exc}", file=sys.stderr)
        return 2
    httpd.daemon_threads = True
    shown = f"[{host}]" if ":" in host else host
    real_port = httpd.server_address[1]
    if host not in LOOPBACK_HOSTS:
        print(
            f"warning: listening on {host}: anyone who can reach port {real_port} can read this process tree's "
            "pids, CPU and memory (no authentication); bind to 127.0.0.1 and tunnel if that matters",
            file=sys.stderr,
        )
    print(
        f"agent: watching pid {watched.pid} ({watched.name}) and its children; "
        f"listening on http://{shown}:{real_port} (GET /usage)",
        flush=True,
    )
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        watcher.close()
    return 0
