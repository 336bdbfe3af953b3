"""The open-model load (a fixed arrival rate) and what it needs: real servers, a real driver.

- the driver holds the rate: requests due in the window = rate x window, none dropped;
- latency runs from the intended send time: a server that answers after a
  known delay shows at least that delay;
- several targets in one window (base and head of an A/B run) share the window;
- the kernel's CPU clock of a process counts its dead threads, in nanoseconds;
- servers start together (a block's restart costs one start-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.monitor import process_cpu_s
from asyncbench.execute.rates import round_down

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.0

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(0.02)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    with LoadGenerator(processes=1, cpus=(), log_dir=tmp_path_factory.mktemp("gen"), env=dict(os.environ)) as g:
        yield g


def _measure(gen, host, path, rate, window=2.0):
    events: list[str] = []
    m = gen.measure(
        host=host,
        path=path,
        users=4,
        warmup_s=0.3,
        min_s=window,
        max_s=window,
        target_rse=0.0,
        min_requests_per_user=1,
        rate=rate,
        on_window_start=lambda: events.append("start"),
        on_window_end=lambda: events.append("end"),
    )
    return m, events


def test_open_model_holds_the_rate(server, gen):
    m, events = _measure(gen, server, "/fast", rate=100)
    assert events == ["start", "end"]
    assert m.open is not None and m.stop_reason == "rate"
    assert m.open["target_rps"] == 100
    assert m.open["due"] == 200  # 100 req/s x 2 s, evenly spaced
    assert m.open["dropped"] == 0 and m.open["unfinished"] == 0
    assert m.requests == 200 and not m.failures
    assert m.throughput_rps == pytest.approx(100, rel=0.05)


def test_latency_counts_from_the_intended_send_time(server, gen):
    m, _ = _measure(gen, server, "/slow", rate=50, window=1.0)
    # every answer takes >= 20 ms on the server; the latency cannot be shorter
    assert m.histogram.percentile(1) >= 20_000
    assert m.open is not None and m.open["send_lag"]["p50_ms"] >= 0


def test_dropped_when_no_connection_is_free(server, gen):
    """One connection, requests due every 5 ms, each taking 20 ms: most are
    due while the one connection is busy, and are dropped, not queued."""
    m = gen.measure(
        host=server,
        path="/slow",
        users=1,
        warmup_s=0.1,
        min_s=1.0,
        max_s=1.0,
        target_rse=0.0,
        min_requests_per_user=1,
        rate=200,
        connections=1,
    )
    assert m.open is not None
    assert m.open["dropped"] > m.open["due"] / 2
    assert m.requests + m.open["dropped"] <= m.open["due"]


def test_several_targets_share_one_window(server, gen):
    events: list[str] = []
    ms = gen.measure_joint(
        targets=[(server, "/fast?a"), (server, "/fast?b")],
        rate=50,
        arrival="poisson",
        settle_s=0.2,
        window_s=2.0,
        connections=8,
        on_window_start=lambda: events.append("start"),
        on_window_end=lambda: events.append("end"),
    )
    assert events == ["start", "end"]  # one window for both
    assert len(ms) == 2
    assert ms[0].started_at == ms[1].started_at
    for m in ms:
        assert m.open is not None and m.open["target_rps"] == 50
        # Poisson arrivals: about 100 due each, not exactly
        assert 50 < m.open["due"] < 160
        assert m.requests == m.open["due"]


def test_process_cpu_clock_counts_dead_threads_in_nanoseconds():
    code = (
        "import threading, time\n"
        "def burn():\n"
        "    t = time.thread_time()\n"
        "    while time.thread_time() - t < 0.2: pass\n"
        "for _ in range(2):\n"
        "    th = threading.Thread(target=burn); th.start(); th.join()\n"
        "print('done', flush=True)\n"
        "time.sleep(5)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "done"
        used = process_cpu_s(p.pid)
        assert used is not None
        assert used >= 0.39  # both threads, which have exited
        assert used != round(used, 2)  # finer than /proc's 10-ms ticks
    finally:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()
    assert process_cpu_s(p.pid) is None  # gone


def test_round_down():
    assert round_down(483) == 480
    assert round_down(12.97) == 12
    assert round_down(0.0347) == 0.034
    assert round_down(0) == 0
