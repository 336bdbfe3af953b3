"""Your own view pairs end to end: the example project in tests/example_app,
served by the runner's setups through `[app]`, its `[endpoints.*]` measured
like built-in workloads (real servers, real locust, a short run)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from asyncbench.analysis.verdict import verdicts
from asyncbench.model.endpoints import Catalog
from asyncbench.model.results import load_run
from tests.cli import run_cli

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent
# the shortest run the validator allows: 3 blocks of short slices at one load level
SHORT = ("--blocks", "3", "--users", "4", "--duration", "0.4", "--warmup", "0.1")


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"


def test_the_example_own_app_scenario_runs_reports_and_gates(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = run_cli("run", "example-own-app", *SHORT, "--reports-dir", str(reports))
    assert done.returncode == 0, _said(done)
    run = load_run(reports / "latest")
    assert run.complete and not run.interrupted

    # the servers ran the example project, not bench_site
    for setup in run.setups.values():
        assert any("exampleapp." in part for part in setup.command), setup.command
    assert run.environment.database.vendor == ""  # not bench_site's database: not prepared

    # every arm of both endpoints measured, the POST one included: requests
    # answered with the status it names (201), none failed
    assert {(c.workload, c.setup, c.variant) for c in run.cells} == {
        (w, s, v) for w in ("items", "echo") for s in ("gunicorn-gthread", "uvicorn") for v in ("sync", "async")
    }
    for c in run.cells:
        assert c.status == "ok", c.error
        assert c.kind == ("async" if c.variant == "async" else "sync")
        # every arm in the 2 pilot blocks; the third only for the arms the pilot chose
        assert 2 <= len(c.repeats) <= 3 and all(r.requests > 0 and not r.failures for r in c.repeats), c.key
    assert {c.path for c in run.cells if c.workload == "echo"} == {"/echo/sync/", "/echo/async/"}
    assert sorted((g.workload, g.users, g.blocks) for g in run.groups) == [("echo", 4, 3), ("items", 4, 3)]

    # the catalog is in the results: report and gate need no TOML
    catalog = Catalog.from_resolved(json.loads((reports / "latest" / "results.json").read_text())["scenario_resolved"])
    echo = catalog.endpoints["echo"]
    assert (echo.method, echo.status, echo.json) == ("POST", 201, {"name": "widget", "sizes": [3, 5, 8]})

    # a verdict per endpoint, like a built-in workload's
    found = {v.workload: v for v in verdicts(run)}
    assert set(found) == {"items", "echo"}
    for v in found.values():
        assert v.levels and v.levels[0].level == 4
        assert v.outcome in ("pays off", "costs", "no difference", "insufficient data")
    assert "items" in done.stdout and "echo" in done.stdout  # the terminal's verdicts

    # the HTML report renders them: verdicts, charts, the endpoints table
    page = (reports / "latest" / "index.html").read_text()
    assert "Your own endpoints" in page
    for text in ("/echo/async/", "/items/sync/?n=50", "items: throughput vs concurrency", "echo: throughput"):
        assert text in page, text

    # the gate compares runs of own endpoints like any others (the run against itself: nothing regressed)
    baseline = tmp_path / "baseline.json"
    assert run_cli("baseline", "save", str(reports / "latest"), "--to", str(baseline)).returncode == 0
    gate = run_cli("gate", "example-own-app", "--baseline", str(baseline), "--current", str(reports / "latest"))
    assert gate.returncode in (0, 2), _said(gate)  # 2: too few blocks to decide, said as such; never 1
    assert "uvicorn/echo/async/u4" in gate.stdout and "gunicorn-gthread/items/sync/u4" in gate.stdout


SCENARIO = """
name = "own-checks"
description = "twins that differ, a wrong expected status, and a POST at a fixed rate"
[app]
pythonpath = "tests/example_app"
settings = "exampleapp.settings"
asgi = "exampleapp.asgi:application"
health = "/health/"
[load]
users = [2]
settle_s = 0.1
window_s = 0.5
max_window_s = 0.5
min_blocks = 3
max_blocks = 3
min_requests_per_user = 1
rate = 40
[[setups]]
name = "uvicorn"
[endpoints.echo]
method = "POST"
body = '{"n": 1}'
headers = { "Content-Type" = "application/json" }
status = 201
variants = { sync = "/echo/sync/", async = "/echo/async/" }
[endpoints.mismatch]
variants = { sync = "/items/sync/?n=3", async = "/items/async/?n=4" }
[endpoints.wrong-status]
method = "POST"
json = { n = 1 }
status = 200
variants = { sync = "/echo/sync/", async = "/echo/async/" }
"""


def test_twins_that_differ_and_a_wrong_status_are_errors_and_a_post_holds_its_rate(tmp_path: Path) -> None:
    path = tmp_path / "own-checks.toml"
    path.write_text(SCENARIO)
    reports = tmp_path / "reports"
    done = run_cli("run", str(path), "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, _said(done)
    run = load_run(reports / "latest")
    by = {(c.workload, c.variant): c for c in run.cells}

    # twins whose bodies differ: the first answer is the reference, its twin is the error
    mismatch = sorted((by[("mismatch", v)] for v in ("sync", "async")), key=lambda c: c.status)
    assert [c.status for c in mismatch] == ["error", "ok"]
    assert "differs from its twin" in (mismatch[0].error or "") and "at byte" in (mismatch[0].error or "")

    # a status other than the one the endpoint names: both twins are errors, saying what was expected
    for v in ("sync", "async"):
        c = by[("wrong-status", v)]
        assert c.status == "error"
        assert f"POST /echo/{v}/ answered HTTP 201 (expected 200)" in (c.error or "")

    # the POST at a fixed arrival rate (open model): answered 201, none failed or dropped
    for v in ("sync", "async"):
        c = by[("echo", v)]
        assert c.status == "ok", c.error
        assert len(c.repeats) == 3
        for r in c.repeats:
            assert r.target_rps == pytest.approx(40) and r.due and r.requests > 0
            assert not r.failures and r.dropped == 0, (r.failures, r.dropped)
