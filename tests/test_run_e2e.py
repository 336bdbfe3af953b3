"""The runner end to end, with real servers and real (short) locust runs."""

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncbench.execute.processes import check_port_free
from asyncbench.model.results import load_run
from tests import cli

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent


def scenario_file(
    tmp_path,
    *,
    repeats=3,
    workloads='[workloads.noio]\nvariants = ["sync", "async"]\n',
    upstream="",
    setups='[[setups]]\nname = "uvicorn"\n',
    users="[2]",
):
    p = tmp_path / "tiny.toml"
    p.write_text(
        f'name = "tiny"\ndescription = "test"\n'
        f"[load]\nusers = {users}\nmin_blocks = {repeats}\nmax_blocks = {repeats}\n"
        "settle_s = 0.2\nwindow_s = 1.0\nmax_window_s = 1.0\n"
        f"min_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        f"{setups}{workloads}"
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n{upstream}'
    )
    return p


run_cli = functools.partial(cli.run_cli, timeout=240)


def test_run_writes_complete_versioned_results(tmp_path):
    reports = tmp_path / "reports"
    done = run_cli("run", str(scenario_file(tmp_path)), "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert run.complete and not run.interrupted
    assert run.schema_version == 2
    assert {c.variant for c in run.cells} == {"sync", "async"}
    # one group, three blocks of one slice per arm, recorded with why it stopped
    (group,) = run.groups
    assert (group.workload, group.users, group.blocks) == ("noio", 2, 3)
    assert group.stop_reason in ("precision", "max_blocks")
    for c in run.cells:
        assert c.status == "ok", c.error
        assert len(c.repeats) == 3
        assert sorted(r.block for r in c.repeats) == [0, 1, 2]
        # the merged histogram holds every successful request of every slice
        assert c.histogram is not None and c.histogram["count"] == sum(r.requests for r in c.repeats)
        for r in c.repeats:
            assert r.requests > 0 and r.throughput_rps > 0
            assert 0 < r.latency.p50_ms <= r.latency.p99_ms <= r.latency.max_ms
            assert r.server_cpu_s > 0 and r.server_rss_peak_mb > 0
            # server CPU is counted over the measured window only, not the
            # warm-up: it cannot exceed the window times the CPUs it may use
            cpus = len(run.setups["uvicorn"].cpu_affinity) or (os.cpu_count() or 1)
            assert r.server_cpu_s <= r.duration_s * cpus * 1.05
            assert r.generator_cpu_percent > 0
            assert r.stop_reason in ("stable", "max_s")
            assert r.drain_s is not None and r.drain_s >= 0
            if run.setups["uvicorn"].cpu_affinity:
                assert r.generator_cores_busy_percent is not None
                assert r.upstream_cpu_percent is not None
            assert r.series
    env = run.environment.as_dict()
    for key in ("cpu_model", "cpu_count", "python", "packages", "database", "git_commit"):
        assert key in env
    assert env["database"]["vendor"] == "sqlite"
    assert env["packages"]["django"].startswith("6.")
    assert run.generator_ceiling.rps is not None and run.generator_ceiling.rps > 0
    info = run.setups["uvicorn"]
    assert info.workers >= 1 and "--loop" in info.command and "asyncio" in info.command
    assert run.command[:3] == ("python", "runner.py", "run")
    assert (reports / "latest" / "logs").is_dir()
    # nothing survives: the server's port is free again
    port = int(info.command[info.command.index("--port") + 1])
    check_port_free(port)


def test_a_failed_cell_keeps_the_cells_before_it(tmp_path):
    """The upstream fails every call: fan-out answers 502, its cells are marked
    as errors with the reason, and the no-I/O cells measured before are kept."""
    reports = tmp_path / "reports"
    wl = '[workloads.noio]\nvariants = ["sync", "async"]\n[workloads.fanout]\nvariants = ["sync", "async"]\n'
    done = run_cli(
        "run",
        str(scenario_file(tmp_path, repeats=3, workloads=wl, upstream="[upstream]\nerror_rate = 1.0\n")),
        "--reports-dir",
        str(reports),
        "--no-report",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    noio = [c for c in run.cells if c.workload == "noio"]
    fan = [c for c in run.cells if c.workload == "fanout"]
    assert len(noio) == 2 and all(c.status == "ok" and c.repeats for c in noio)
    assert len(fan) == 2 and all(c.status == "error" for c in fan)
    assert all("502" in (c.error or "") for c in fan)
    assert all("error" in c.flag_codes for c in fan)


def test_interrupted_run_keeps_finished_measurements(tmp_path):
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [
            sys.executable,
            "runner.py",
            "run",
            str(scenario_file(tmp_path, repeats=8)),
            "--reports-dir",
            str(reports),
            "--no-report",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        measured = 0
        while time.monotonic() < deadline and measured < 2:
            time.sleep(0.2)
            try:
                data = json.loads((reports / "latest" / "results.json").read_text())
                measured = sum(len(c["repeats"]) for c in data["cells"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
        assert measured >= 2, "the run never finished two measurements"
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err.decode()[-2000:]
    run = load_run(reports / "latest")
    assert run.interrupted and not run.complete
    kept = sum(len(c.repeats) for c in run.cells)
    assert kept >= measured
    for c in run.cells:
        for r in c.repeats:
            assert r.requests > 0
    for info in run.setups.values():
        port = int(info.command[info.command.index("--port") + 1])
        check_port_free(port)


def test_explicit_port_in_use_is_an_error_naming_it(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run_cli(
            "run",
            str(scenario_file(tmp_path)),
            "--reports-dir",
            str(tmp_path / "r"),
            "--port-base",
            str(port),
            "--no-report",
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "in use" in done.stderr
    assert not (tmp_path / "r").exists()  # rejected before anything started
