"""Process lifecycle with real processes: own group, readiness by polling,
SIGTERM then SIGKILL, nothing survives."""

import os
import socket
import sys
import time

import pytest

from asyncbench.execute.processes import (
    ManagedProcess,
    PortInUseError,
    ProcessError,
    check_port_free,
    free_port,
)

HTTP_CHILD = r"""
import http.server, os, sys, threading
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
# a grandchild in the same group, like a server's worker
if os.fork() == 0:
    import time
    while True: time.sleep(1)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

STUBBORN_CHILD = r"""
import signal, time, sys, http.server, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_port_in_use_is_an_error_naming_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            check_port_free(port)


def test_ready_by_polling_then_whole_group_stopped(tmp_path):
    port = free_port()
    p = ManagedProcess(
        "child",
        [sys.executable, "-c", HTTP_CHILD, str(port)],
        log_path=tmp_path / "c.log",
        port=port,
        health_path="/",
        ready_timeout=20,
    )
    with p:
        p.wait_ready()
        pids = p.group_pids()
        assert len(pids) >= 2  # leader and the forked worker
        assert os.getpgid(p.pid) == p.pid != os.getpgid(0)
    assert p.group_pids() == []
    check_port_free(port)  # the port can be bound again


def test_sigkill_after_timeout_for_a_child_ignoring_sigterm(tmp_path):
    port = free_port()
    p = ManagedProcess(
        "stubborn",
        [sys.executable, "-c", STUBBORN_CHILD, str(port)],
        log_path=tmp_path / "s.log",
        port=port,
        health_path="/",
        stop_timeout=0.5,
    )
    p.start()
    p.wait_ready()
    code = p.stop()
    assert code == -9
    assert p.group_pids() == []


def test_child_dying_while_waiting_fails_at_once_with_code_and_log_tail(tmp_path):
    p = ManagedProcess(
        "dies",
        [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
        log_path=tmp_path / "d.log",
        port=free_port(),
        ready_timeout=30,
    )
    t0 = time.monotonic()
    with p, pytest.raises(ProcessError) as err:
        p.wait_ready()
    assert time.monotonic() - t0 < 10  # did not wait for the deadline
    assert "code 3" in str(err.value) and "boom: bad config" in str(err.value)


def test_deadline_names_the_last_error(tmp_path):
    p = ManagedProcess(
        "silent",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        log_path=tmp_path / "x.log",
        port=free_port(),
        ready_timeout=0.5,
    )
    with p, pytest.raises(ProcessError, match="did not become ready"):
        p.wait_ready()
    assert p.group_pids() == []
