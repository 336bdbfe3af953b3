"""run --target: measuring a deployment the runner does not start, with and without the resource agent.

The "deployment" is a uvicorn serving bench_site that the test starts itself
(its SQLite database migrated and seeded with the project's own commands), on
the server's CPUs as a local run would place it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, python_env, read_line_matching, wait_for_health

from asyncbench.analysis.verdict import verdicts
from asyncbench.execute.processes import cpu_pinning_prefix, free_port
from asyncbench.model.results import NOT_MEASURED, load_run
from tests.cli import run_cli

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent
ROWS = 300


def scenario_file(tmp_path: Path, blocks: int = 3) -> Path:
    """Two arms (noio sync and async), three fixed blocks of short slices; the
    scenario's own setup is replaced by the target."""
    p = tmp_path / "tiny-target.toml"
    p.write_text(
        'name = "tiny-target"\ndescription = "test"\n'
        f"[load]\nusers = [2]\nmin_blocks = {blocks}\nmax_blocks = {blocks}\n"
        "settle_s = 0.2\nwindow_s = 1.0\nmax_window_s = 1.0\nmin_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        '[[setups]]\nname = "uvicorn"\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
    )
    return p


@dataclass(frozen=True)
class Deployment:
    url: str
    pid: int


@pytest.fixture
def deployment(tmp_path: Path, processes: Processes) -> Iterator[Deployment]:
    env = python_env(
        DJANGO_SETTINGS_MODULE="bench_site.settings",
        BENCH_SQLITE_PATH=str(tmp_path / "deployment.sqlite3"),
        BENCH_DEBUG="0",
        PYTHONHASHSEED="0",
    )
    for command in (["migrate", "--noinput", "-v0"], ["seed", "--rows", str(ROWS)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
        )
    # the server's CPUs of a local run (the first half), so the generator keeps its own
    cpus = sorted(os.sched_getaffinity(0))
    pin = cpu_pinning_prefix(cpus[: len(cpus) // 2]) if len(cpus) >= 2 else []
    port = free_port()
    argv = [
        *pin,
        str(Path(sys.executable).with_name("uvicorn")),
        "bench_site.asgi:application",
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "asyncio", "--http", "h11", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc, log = processes.start(argv, env=env, name="deployment")
    url = f"http://127.0.0.1:{port}"
    wait_for_health(f"{url}/health", proc, time.monotonic() + 60, log)
    yield Deployment(url, proc.pid)


def start_agent(processes: Processes, pid: int) -> str:
    proc, _ = processes.start(
        [sys.executable, "runner.py", "agent", "--pid", str(pid), "--bind", "127.0.0.1:0"],
        env=python_env(),
        name="agent",
        stdout_pipe=True,
    )
    match = read_line_matching(proc, re.compile(r"listening on (http://127\.0\.0\.1:\d+)"), time.monotonic() + 30)
    return match.group(1)


def usage(agent: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{agent}/usage", timeout=5) as resp:
        return dict(json.load(resp))


def test_a_target_is_measured_and_its_cpu_is_not_measured(tmp_path: Path, deployment: Deployment) -> None:
    reports = tmp_path / "reports"
    done = run_cli("run", str(scenario_file(tmp_path)), "--target", deployment.url, "--reports-dir", str(reports))
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert run.complete and not run.interrupted
    # the target replaced the scenario's setups; nothing was started for it
    assert set(run.setups) == {"target"} and {c.setup for c in run.cells} == {"target"}
    info = run.setups["target"]
    assert info.resources == NOT_MEASURED and info.target == deployment.url and info.command == ()
    assert run.environment.targets == {"target": deployment.url}
    assert not (reports / "latest" / "logs" / "server-target.log").exists()
    assert not (reports / "latest" / "logs" / "database.log").exists()
    assert any("not started by the runner" in n for n in run.notes)
    assert any("did not migrate or seed" in n for n in run.notes)
    # the same slices, blocks and verdicts as a local run
    assert {c.variant for c in run.cells} == {"sync", "async"}
    for c in run.cells:
        assert c.status == "ok", c.error
        assert sorted(r.block for r in c.repeats) == [0, 1, 2]
        for r in c.repeats:
            assert r.requests > 0 and r.throughput_rps > 0
            # not measured: None, never 0
            assert r.server_cpu_s is None and r.server_cpu_percent is None and r.server_rss_peak_mb is None
            # nor its counters (no BENCH_TELEMETRY_DIR there) nor its database's connections
            assert r.server_counters is None and r.db_connections is None
        assert c.summary.cpu_ms_per_request is None and c.summary.rss_peak_mb is None
    (v,) = verdicts(run)
    assert v.workload == "noio"
    # the terminal, the report and the CSV say where and "not measured"
    said = " ".join(done.stdout.split())
    assert f"Measured against an existing deployment: target at {deployment.url} (not started by the runner)" in said
    assert "Server CPU and RSS not measured for target" in said
    page = (reports / "latest" / "index.html").read_text()
    assert "not started by the runner" in page and "not measured" in page
    csv_text = (reports / "latest" / "cells.csv").read_text()
    assert "not measured" in csv_text
    # the deployment is still up: the runner stopped nothing of it
    with urllib.request.urlopen(f"{deployment.url}/health", timeout=5) as resp:
        assert resp.status == 200


def test_a_target_with_its_agent_has_cpu_per_request(
    tmp_path: Path, deployment: Deployment, processes: Processes
) -> None:
    agent = start_agent(processes, deployment.pid)
    before = usage(agent)
    assert before["watched"]["pid"] == deployment.pid and before["alive"]
    reports = tmp_path / "reports"
    done = run_cli(
        "run",
        str(scenario_file(tmp_path)),
        "--target",
        f"deploy={deployment.url}",
        "--agent",
        f"deploy={agent}",
        "--reports-dir",
        str(reports),
        "--no-report",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = usage(agent)
    run = load_run(reports / "latest")
    assert run.complete
    info = run.setups["deploy"]
    assert info.resources == "agent" and info.agent == agent
    windows_cpu = 0.0
    for c in run.cells:
        assert c.status == "ok", c.error
        for r in c.repeats:
            assert r.server_cpu_s is not None and r.server_cpu_s > 0
            assert r.server_rss_peak_mb is not None and r.server_rss_peak_mb > 10
            windows_cpu += r.server_cpu_s
        cpu = c.summary.cpu_ms_per_request
        # plausible: more than nothing, less than a whole window per request
        assert cpu is not None and 0.01 < cpu < 50, cpu
    assert verdicts(run)
    # the agent saw the server's tree use CPU under load: at least what the windows counted
    grown_s = (after["cpu_ns"] - before["cpu_ns"]) / 1e9
    assert grown_s >= windows_cpu * 0.99 and grown_s > 0.05, (grown_s, windows_cpu)
    assert "Server CPU and RSS of deploy from the resource agent" in " ".join(done.stdout.split())


def test_a_target_that_does_not_answer_files_its_arms_as_errors(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    dead = f"http://127.0.0.1:{free_port()}"
    done = run_cli("run", str(scenario_file(tmp_path)), "--target", dead, "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert run.cells and all(c.status == "error" for c in run.cells)
    assert all("did not answer GET /health" in (c.error or "") for c in run.cells)
