"""The audit's defects on the measuring side: the generator's busy CPUs, a
drain that times out, and the CPU plan when a scenario pins one side only."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast

import pytest

from asyncbench.execute.checks import WindowProbe, repeat_flags
from asyncbench.execute.load import Measurement
from asyncbench.execute.monitor import CoreMonitor, WindowUsage
from asyncbench.execute.plan import cpu_plan
from asyncbench.execute.processes import free_port
from asyncbench.execute.servers import Server, drain_server
from asyncbench.model import flags
from asyncbench.model import scenario as sc
from asyncbench.model.histogram import Histogram

SCENARIO = sc.load("ci")


# --- generator-bound: the generator's CPUs, whoever keeps them busy ----------------


def _quiet_measurement() -> Measurement:
    h = Histogram()
    h.record(1000.0)
    return Measurement(
        started_at=0.0, duration_s=1.0, warmup_s=0.0, requests=5000, throughput_rps=5000.0, failures={},
        histogram=h, series=[], locust={}, generator_cpu_percent=20.0, generator_cpu_peak_percent=25.0,
        stop_reason="stable",
    )  # fmt: skip


@pytest.mark.servers
def test_a_cpu_burner_on_the_generator_cpu_makes_the_window_generator_bound() -> None:
    """Stand-in for the runner, its monitor threads or the upstream sharing the
    generator's core: a process spinning on that CPU. CoreMonitor sees the CPU
    busy, and the window is flagged although locust itself used 20%."""
    cpu = max(os.sched_getaffinity(0))
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nprint('pinned', flush=True)\nwhile True: pass",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert burner.stdout is not None and burner.stdout.readline() == b"pinned\n"  # pinned, then spinning
        monitor = CoreMonitor((cpu,))
        monitor.begin()
        time.sleep(1.0)
        busy = monitor.end()
    finally:
        burner.kill()
        burner.wait()
        if burner.stdout is not None:
            burner.stdout.close()
    assert busy is not None and busy >= 90.0, busy
    usage = WindowUsage(cpu_s=0.5, cpu_percent=50.0, rss_peak_mb=50.0, worker_changes=0, alive=True)
    probe = WindowProbe(usage, upstream_cpu_percent=2.0, generator_cores_busy_percent=busy, generator_cpus=(cpu,))
    found = repeat_flags(_quiet_measurement(), probe, 8, SCENARIO, ceiling_rps=None)
    assert [f.code for f in found] == [flags.GENERATOR_BOUND]


def test_core_monitor_does_not_count_guest_time_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux's guest time is already inside user time."""
    import psutil

    Times = type("scputimes", (tuple,), {})
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

    def times(values: tuple[float, ...]) -> Any:
        t = Times(values)
        for name, v in zip(fields, values, strict=True):
            setattr(t, name, v)
        return t

    samples = iter(
        [
            [times((0.0, 0, 0, 0.0, 0, 0, 0, 0, 0.0, 0))],
            [times((10.0, 0, 0, 10.0, 0, 0, 0, 0, 10.0, 0))],  # 10 s user, all of it guest; 10 s idle
        ]
    )
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu: next(samples))
    monitor = CoreMonitor((0,))
    monitor.begin()
    assert monitor.end() == pytest.approx(50.0)


# --- a drain that times out --------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def health_port() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _server(port: int, busy: float) -> Server:
    monitor = SimpleNamespace(busy_fraction=lambda interval: busy)
    return cast(Server, SimpleNamespace(port=port, monitor=monitor, origin="", prefix="", health="/health"))


def test_an_idle_server_drains_in_time(health_port: int) -> None:
    done = drain_server(_server(health_port, busy=0.0), timeout=5.0)
    assert not done.timed_out and done.seconds < 5.0


def test_a_busy_server_times_the_drain_out_and_the_next_window_is_flagged(health_port: int) -> None:
    done = drain_server(_server(health_port, busy=0.9), timeout=0.4)
    assert done.timed_out and done.seconds >= 0.4
    usage = WindowUsage(cpu_s=1.0, cpu_percent=50.0, rss_peak_mb=50.0, worker_changes=0, alive=True)
    probe = WindowProbe(usage, upstream_cpu_percent=None, generator_cores_busy_percent=None)
    found = repeat_flags(_quiet_measurement(), probe, 8, SCENARIO, None, previous_drain=done)
    assert [f.code for f in found] == [flags.BACKLOG]


def test_a_server_that_does_not_answer_times_the_drain_out() -> None:
    done = drain_server(_server(free_port(), busy=0.0), timeout=0.3)
    assert done.timed_out


# --- the CPU plan ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "generator", "available", "expected"),
    [
        ((0,), (), {0, 1, 2, 3}, ((0,), (1, 2, 3))),
        ((2, 3), (), {0, 1, 2, 3}, ((2, 3), (0, 1))),
        ((), (3,), {0, 1, 2, 3}, ((0, 1, 2), (3,))),
        ((0, 1), (2,), {0, 1, 2, 3}, ((0, 1), (2,))),  # both given: as given
        ((), (), {0, 1, 2, 3}, ((0, 1), (2, 3))),  # neither: halves
        ((0, 1), (), {0, 1}, ((0, 1), ())),  # the server took every CPU: nothing left
    ],
)
def test_pinning_one_side_pins_the_other_to_the_rest(
    monkeypatch: pytest.MonkeyPatch,
    server: tuple[int, ...],
    generator: tuple[int, ...],
    available: set[int],
    expected: tuple[tuple[int, ...], tuple[int, ...]],
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: available)
    scenario = replace(SCENARIO, cpu=replace(SCENARIO.cpu, server=server, generator=generator))
    assert cpu_plan(scenario) == expected


def test_servers_run_with_one_fixed_hash_seed_unless_the_caller_sets_one() -> None:
    from asyncbench.execute.database import SERVER_HASH_SEED, django_env
    from asyncbench.model import scenario as sc

    s = sc.load("quick")
    assert django_env(s, {})["PYTHONHASHSEED"] == SERVER_HASH_SEED
    assert django_env(s, {"PYTHONHASHSEED": "7"})["PYTHONHASHSEED"] == "7"
