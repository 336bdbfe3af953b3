"""The resource agent and the --target/--agent flags, without load: finding the
process, what the agent answers (and refuses), the runner's reading of it, and
the flags' errors (exit 2, naming the flag)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from asyncbench.execute.agent import AgentError, Watcher, _handler, find_name, find_pid, parse_bind
from asyncbench.execute.checks import check_body
from asyncbench.execute.plan import Planned
from asyncbench.execute.target import (
    AgentMonitor,
    NoMonitor,
    TargetError,
    connect,
    parse_targets,
)

ROOT = Path(__file__).resolve().parent.parent


# --- finding the process ------------------------------------------------------------


def test_a_pid_that_does_not_exist_is_a_clear_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # its pid is now free (and not reused this quickly)
    with pytest.raises(AgentError, match=rf"--pid {proc.pid}: no such process"):
        find_pid(proc.pid)
    with pytest.raises(AgentError, match="--pid: expected a process id > 0"):
        find_pid(0)


def _named(tmp_path: Path, name: str) -> str:
    """A copy of sleep under a name of our own: its processes show that name (ps -o comm)."""
    sleep = shutil.which("sleep")
    assert sleep
    path = tmp_path / name
    shutil.copy(sleep, path)
    return str(path)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def test_a_name_without_a_process_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"--name 'abnone\d+': no running process has that name"):
        find_name(f"abnone{os.getpid()}")
    with pytest.raises(AgentError, match="--name: expected a process name"):
        find_name("")


def test_a_name_of_two_separate_processes_is_a_clear_error(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    name = f"abtwo{os.getpid() % 100000}"
    exe = _named(tmp_path, name)
    children.extend(subprocess.Popen([exe, "30"]) for _ in range(2))
    time.sleep(0.2)
    with pytest.raises(AgentError) as err:
        find_name(name)
    message = str(err.value)
    assert f"--name {name!r}: 2 separate processes" in message and "give --pid" in message
    for p in children:
        assert str(p.pid) in message


def test_a_name_shared_by_a_server_and_its_workers_is_one_tree(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    """gunicorn's workers are named gunicorn too: one tree, its root watched."""
    name = f"abtree{os.getpid() % 100000}"
    exe = _named(tmp_path, name)
    # the shell forks a child that becomes `name`, then becomes `name` itself: a parent and its child
    parent = subprocess.Popen(["/bin/sh", "-c", f"{exe} 30 & exec {exe} 30"], start_new_session=True)
    children.append(parent)
    import psutil

    # until the shell has forked and both have exec'd (bounded)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if psutil.Process(parent.pid).name() == name and [p.name() for p in psutil.Process(parent.pid).children()] == [
            name
        ]:
            break
        time.sleep(0.02)
    assert [p.name() for p in psutil.Process(parent.pid).children()] == [name]
    watched = find_name(name)
    assert watched.pid == parent.pid and watched.name == name


def test_bind_is_host_and_port() -> None:
    assert parse_bind("127.0.0.1:8089") == ("127.0.0.1", 8089)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_bind("9000") == ("127.0.0.1", 9000)
    for bad in ("host:", "host:x", "host:70000", ""):
        with pytest.raises(AgentError, match="--bind: expected HOST:PORT"):
            parse_bind(bad)


# --- what the agent answers -----------------------------------------------------------


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[bytes]]:
    """A process that spins for a moment when told (a line on stdin), with a child of its own."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    end = time.process_time() + 0.2\n"
        "    while time.process_time() < end: pass\n"
        "    print('done', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its child exists
    yield proc
    os.killpg(proc.pid, 9)
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def _burn(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"done\n"


@pytest.fixture
def agent(burner: subprocess.Popen[bytes]) -> Iterator[str]:
    watcher = Watcher(find_pid(burner.pid), interval=0.05)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(watcher))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    watcher.close()


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_agent_reports_the_tree_and_its_cpu_grows(agent: str, burner: subprocess.Popen[bytes]) -> None:
    status, before = _get(f"{agent}/usage")
    assert status == 200 and before["alive"] and before["watched"]["pid"] == burner.pid
    # the process and its child, each keyed by (pid, start time), CPU in ns
    assert len(before["processes"]) == 2
    assert {"pid", "create_time", "cpu_ns", "rss_bytes"} <= set(before["processes"][0])
    assert before["rss_bytes"] > 0
    _burn(burner)
    status, after = _get(f"{agent}/usage?since={before['now_s']}")
    assert status == 200
    grown = (after["cpu_ns"] - before["cpu_ns"]) / 1e9
    assert 0.19 <= grown < 2.0, grown
    assert after["rss_peak_bytes"] >= after["rss_bytes"] > 0


def test_the_agent_only_answers_get_and_never_takes_a_pid(agent: str) -> None:
    assert _get(f"{agent}/usage", "POST")[0] == 405
    assert _get(f"{agent}/usage", "DELETE")[0] == 405
    assert _get(f"{agent}/other")[0] == 404
    status, body = _get(f"{agent}/usage?pid=1")
    assert status == 400 and "only parameter" in body["error"]
    assert _get(f"{agent}/usage?since=x")[0] == 400
    assert _get(f"{agent}/health") == (200, {"ok": True})


def test_the_agent_monitor_brackets_a_window(agent: str, burner: subprocess.Popen[bytes]) -> None:
    monitor = AgentMonitor(agent)
    monitor.begin()
    _burn(burner)
    usage = monitor.end()
    assert usage.cpu_s is not None and 0.19 <= usage.cpu_s < 2.0
    assert usage.cpu_percent is not None and usage.cpu_percent > 0
    assert usage.rss_peak_mb is not None and usage.rss_peak_mb > 1
    assert usage.alive and usage.worker_changes == 0
    assert not monitor.problems


def test_a_window_the_agent_does_not_answer_is_not_measured() -> None:
    from asyncbench.execute.processes import free_port

    monitor = AgentMonitor(f"http://127.0.0.1:{free_port()}")
    monitor.begin()
    usage = monitor.end()
    assert usage.cpu_s is None and usage.rss_peak_mb is None  # not measured, never 0
    assert monitor.problems and "did not answer" in monitor.problems[0]
    assert NoMonitor().end().cpu_s is None


def test_the_agent_reports_a_dead_process(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    watcher = Watcher(find_pid(proc.pid), interval=0.05)
    try:
        assert watcher.reading()["alive"]
        proc.kill()
        proc.wait()
        reading = watcher.reading()
        assert not reading["alive"] and reading["processes"] == []
    finally:
        watcher.close()


# --- the path prefix and the origin ------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        body = b'{"ok": true}'
        self.send_response(200 if self.path.startswith("/app/") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_a_target_path_prefix_goes_before_every_endpoint_path() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        (t,) = parse_targets([f"site=http://127.0.0.1:{httpd.server_address[1]}/app/"])
        assert (t.name, t.prefix, t.origin) == ("site", "/app", f"http://127.0.0.1:{httpd.server_address[1]}")
        monitor, info = connect(t)
        assert isinstance(monitor, NoMonitor) and info.resources == "not measured"
        item = Planned("site", "noio", "sync", 2, (), "", 0)
        assert check_body(item, 0, {}, origin=t.origin, prefix=t.prefix) is None
        assert _Recorder.paths == ["/app/health", "/app" + item.path]
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- the flags ------------------------------------------------------------------------


def test_target_names_and_agents() -> None:
    (t,) = parse_targets(["http://10.0.0.5:8000"])
    assert (t.name, t.url, t.agent, t.resources) == ("target", "http://10.0.0.5:8000", "", "not measured")
    a, b = parse_targets(["a=http://h1:8000", "b=https://h2/bench"], ["b=http://h2:8089"])
    assert (a.agent, b.agent, b.prefix, b.origin) == ("", "http://h2:8089", "/bench", "https://h2")
    (t,) = parse_targets(["http://h:8000"], ["http://h:8089"])
    assert t.agent == "http://h:8089" and t.resources == "agent"


@pytest.mark.parametrize(
    ("targets", "agents", "message"),
    [
        (["ftp://h"], [], "--target: 'ftp://h' is not an http:// or https:// URL"),
        (["not a url"], [], "--target: 'not a url' is not an http:// or https:// URL"),
        (["http://h:99999"], [], "--target: 'http://h:99999' is not a URL"),
        (["http://u:p@h"], [], "credentials in the URL are not allowed"),
        (["http://h/?x=1"], [], "no query string or fragment"),
        (["http://a", "http://b"], [], "--target: duplicate name 'target'; several targets need names"),
        (["x=http://a", "x=http://b"], [], "--target: duplicate name 'x'"),
        (["uvicorn=http://a"], [], "--target: name 'uvicorn' is a server setup the runner starts"),
        (["bad name=http://a"], [], "--target: name 'bad name' is not allowed"),
        ([], ["http://h:8089"], "--agent: only with --target"),
        (["a=http://h", "b=http://i"], ["http://h:8089"], "--agent: with several targets, say whose agent"),
        (["a=http://h"], ["c=http://h:8089"], "--agent: no target named 'c'; targets: a"),
        (["a=http://h"], ["a=https://h:8089"], "--agent: 'https://h:8089' is not an http:// URL"),
        (["a=http://h"], ["a=http://h:8089/x"], "--agent: 'http://h:8089/x': the agent's URL is http://HOST:PORT"),
        (["a=http://h"], ["a=http://h:1", "a=http://h:2"], "--agent: two agents for target 'a'"),
    ],
)
def test_bad_target_and_agent_flags_are_refused(targets: list[str], agents: list[str], message: str) -> None:
    with pytest.raises(TargetError) as err:
        parse_targets(targets, agents)
    assert message in str(err.value)


def _runner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "runner.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--target", "ftp://h"], "error: --target: 'ftp://h' is not an http:// or https:// URL"),
        (["run", "--target", "http://a", "--target", "http://b"], "error: --target: duplicate name 'target'"),
        (["run", "--agent", "http://h:8089"], "error: --agent: only with --target"),
        (["run", "--target", "http://h", "--setups", "uvicorn"], "error: --setups: not with --target"),
        (["run", "--target", "http://h", "--db", "postgres"], "error: --db: not with --target"),
        (["run", "--target", "http://h", "--server-env", "A=1"], "error: --server-env: not with --target"),
        (["run", "--target", "http://h", "--port-base", "9000"], "error: --port-base: not with --target"),
        (["agent", "--pid", "999999999"], "error: --pid 999999999: no such process"),
        (["agent", "--name", "abnosuchprocess"], "error: --name 'abnosuchprocess': no running process"),
        (["agent", "--pid", "1", "--bind", "nowhere"], "error: --bind: expected HOST:PORT"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(args: list[str], message: str) -> None:
    done = _runner(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
