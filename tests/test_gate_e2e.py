"""The regression gate end to end: real servers, real (short) locust runs.

One baseline is measured and saved; then
  * an A/A gate run (same code, same machine) must pass (exit 0);
  * a gate run with the fault-injection knob on (BENCH_INJECT_CPU_US=8000:
    8 ms of CPU per request on a view that takes 1-4 ms under uvicorn,
    depending on how fast the machine is today) must fail
    (exit 1) and name the regressed cells;
  * comparing runs of different scenarios must be refused (exit 2, with why);
  * a missing baseline file is exit 2 with instructions.

The scenario keeps the noise out of reach: one metric (throughput), a 25%
practical threshold. Machine noise between two runs a minute apart stays well
under 25%; the injected slowdown cuts throughput by well over 50% (8 ms added
to a 4 ms request leaves a third of the rate; to a 1 ms one, a ninth).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asyncbench.model.results import load_run

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 240
VARIANTS = ("sync", "async")


def gate_scenario(
    path: Path, db: Path, *, users: str = "[4]", repeats: int = 6, variants: tuple[str, ...] = VARIANTS
) -> Path:
    wl = ", ".join(f'"{v}"' for v in variants)
    path.write_text(
        'name = "gate-e2e"\ndescription = "end-to-end gate test"\n'
        f"[load]\nusers = {users}\nmin_blocks = {repeats}\nmax_blocks = {repeats}\n"
        "settle_s = 0.2\nwindow_s = 1.0\nmax_window_s = 1.0\n"
        "min_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        # what is tested here is the gate's decision on the throughput, not the
        # generator's flags (their own tests: test_audit_execute, test_checks):
        # one window flagged generator-bound on a busy CI machine would make
        # every gate of the module invalid (exit 2)
        "generator_cpu_limit = 101.0\nceiling_fraction = 100.0\n"
        '[[setups]]\nname = "uvicorn"\nworkers = 1\n'
        f"[workloads.noio]\nvariants = [{wl}]\n"
        f'[database]\nrows = 300\nsqlite_path = "{db}"\n'
        '[gate]\nthreshold = 0.25\nthresholds = { throughput = 0.25 }\nmetrics = ["throughput"]\n'
        "min_repeats = 6\n"
    )
    return path


def cli(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run runner.py; on timeout, SIGINT it (so it stops its servers) before failing."""
    proc = subprocess.Popen(
        [sys.executable, "runner.py", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"runner.py {' '.join(args)} took over {timeout:.0f} s\n{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def show(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-3000:]}"


def gate_json(reports: Path) -> dict:
    return json.loads((reports / "latest" / "gate.json").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Measure the baseline once for the module and save it."""
    d = tmp_path_factory.mktemp("gate-e2e")
    db = d / "db.sqlite3"
    toml = gate_scenario(d / "gate.toml", db)
    reports = d / "baseline-reports"
    done = cli("run", str(toml), "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, show(done)
    run_dir = (reports / "latest").resolve()
    run = load_run(run_dir)
    assert {c.variant for c in run.cells} == set(VARIANTS)
    for c in run.cells:
        assert c.status == "ok" and len(c.repeats) == 6, (c.key, c.error)
    baseline = d / "baseline.json"
    done = cli("baseline", "save", str(run_dir), "--to", str(baseline))
    assert done.returncode == 0, show(done)
    assert baseline.is_file()
    return {"dir": d, "db": db, "toml": toml, "baseline": baseline, "baseline_run": run_dir}


@pytest.mark.timeout(600)
def test_aa_run_passes(work):
    reports = work["dir"] / "aa-reports"
    done = cli("gate", str(work["toml"]), "--baseline", str(work["baseline"]), "--reports-dir", str(reports))
    assert done.returncode == 0, show(done)
    assert done.stdout.startswith("PASS") or "No regression" in done.stdout, show(done)
    g = gate_json(reports)
    assert g["exit_code"] == 0 and g["outcome"] == "pass"
    assert {c["variant"] for c in g["comparisons"]} == set(VARIANTS)
    assert all(c["verdict"] != "regression" for c in g["comparisons"])
    # the comparison page and the Markdown summary are written next to it
    assert (reports / "latest" / "gate.html").is_file() and (reports / "latest" / "gate.md").is_file()


@pytest.mark.timeout(600)
def test_injected_slowdown_fails_and_names_the_cells(work):
    reports = work["dir"] / "injected-reports"
    done = cli(
        "gate",
        str(work["toml"]),
        "--baseline",
        str(work["baseline"]),
        "--reports-dir",
        str(reports),
        "--server-env",
        "BENCH_INJECT_CPU_US=8000",
    )
    assert done.returncode == 1, show(done)
    g = gate_json(reports)
    assert g["exit_code"] == 1 and g["outcome"] == "regression", show(done)
    regressed = {c["key"] for c in g["comparisons"] if c["verdict"] == "regression"}
    # 8 ms of CPU on every request of both twins: both cells regress, by far more than 25%
    assert regressed == {f"uvicorn/noio/{v}/u4" for v in VARIANTS}, show(done)
    for c in g["comparisons"]:
        assert c["metric"] == "throughput"
        assert c["change"] < -0.5, c
    for key in regressed:
        assert key in done.stdout
    assert "regression: uvicorn/noio/" in done.stdout  # the "why" lines
    # the knob is never silent: the gate warns that the current run was slowed on purpose
    assert any("FAULT INJECTION" in w and "BENCH_INJECT_CPU_US=8000" in w for w in g["warnings"])
    assert "FAULT INJECTION" in done.stdout


@pytest.mark.timeout(600)
def test_different_scenario_is_refused(work):
    """--current on an existing run, against a baseline of another scenario: exit 2, with why."""
    d = work["dir"]
    toml = gate_scenario(d / "other.toml", work["db"], users="[2]", repeats=3, variants=("sync",))
    reports = d / "other-reports"
    done = cli("run", str(toml), "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, show(done)
    other = d / "other-baseline.json"
    done = cli("baseline", "save", str((reports / "latest").resolve()), "--to", str(other))
    assert done.returncode == 0, show(done)

    current = work["baseline_run"]
    done = cli("gate", "--baseline", str(other), "--current", str(current))
    assert done.returncode == 2, show(done)
    assert "load.users" in done.stdout and "differs" in done.stdout, show(done)
    g = json.loads((current / "gate.json").read_text())
    assert g["exit_code"] == 2 and g["outcome"] == "invalid"
    assert any("load.users" in r for r in g["reasons"])


def test_missing_baseline_says_how_to_make_one(tmp_path):
    done = cli("gate", "--baseline", str(tmp_path / "nope.json"), timeout=60)
    assert done.returncode == 2, show(done)
    assert "no baseline" in done.stderr
    assert "make baseline" in done.stderr and "baseline save" in done.stderr


# ---------------------------------------------------------------- the default: A/B in one job, fixed rate


def ab_scenario(path: Path, db: Path, *, blocks: int = 6) -> Path:
    """The ci scenario's method, small: open model at a fixed rate, base and
    head in the same windows, servers restarted before every block."""
    path.write_text(
        'name = "gate-ab-e2e"\ndescription = "end-to-end A/B gate test"\n'
        f"[load]\nusers = [4]\nmin_blocks = {blocks}\nmax_blocks = {blocks}\n"
        "settle_s = 0.2\nwindow_s = 0.8\nmax_window_s = 0.8\ndrain_timeout_s = 5.0\n"
        'rate_fraction = 0.3\narrival = "uniform"\nrestart = "block"\ninterleave = "run"\n'
        '[[setups]]\nname = "uvicorn"\nworkers = 1\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
        f'[database]\nrows = 300\nsqlite_path = "{db}"\n'
        '[gate]\nmetrics = ["cpu_per_request", "p50"]\n'
        "thresholds = { cpu_per_request = 0.10, p50 = 0.25 }\nmin_repeats = 6\n"
    )
    return path


@pytest.fixture(scope="module")
def ab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gate-ab-e2e")
    return {"dir": d, "toml": ab_scenario(d / "ab.toml", d / "db.sqlite3")}


@pytest.mark.timeout(600)
def test_ab_default_aa_passes_at_a_fixed_rate(ab):
    """`gate` without --baseline is A/B in one job: HEAD's tree against the
    working tree (the same views here), every arm's base and head in one window."""
    reports = ab["dir"] / "aa"
    done = cli("gate", str(ab["toml"]), "--ab", "HEAD", "--reports-dir", str(reports))
    assert done.returncode == 0, show(done)
    g = gate_json(reports)
    assert g["mode"] == "revisions" and g["exit_code"] == 0, show(done)
    assert {c["metric"] for c in g["comparisons"]} == {"cpu_per_request", "p50"}
    run = load_run((reports / "latest").resolve())
    (group,) = run.groups
    assert group.rate_rps and group.rate_rps > 0 and "capacity" in group.rate_rule
    for cell in run.cells:
        assert len(cell.repeats) == 6, cell.key
        for r in cell.repeats:
            # open model: the asked rate, requests due in the window, none lost
            assert r.target_rps == group.rate_rps
            assert r.due and r.dropped == 0 and r.unfinished == 0
            assert abs(r.requests - r.due) <= 1
    # base and head of one arm were measured in the same window, block by block
    base = {(c.variant): c for c in run.cells if c.revision == "base"}
    head = {(c.variant): c for c in run.cells if c.revision == "head"}
    for v in VARIANTS:
        for rb, rh in zip(base[v].repeats, head[v].repeats, strict=True):
            assert rb.block == rh.block
            assert abs(rb.started_at - rh.started_at) < 0.05


@pytest.mark.timeout(600)
def test_ab_default_catches_cpu_injected_into_head(ab):
    reports = ab["dir"] / "injected"
    done = cli(
        "gate",
        str(ab["toml"]),
        "--ab",
        "HEAD",
        "--reports-dir",
        str(reports),
        "--head-env",
        "BENCH_INJECT_CPU_US=2000",
    )
    assert done.returncode == 1, show(done)
    g = gate_json(reports)
    regressed = {
        c["key"] for c in g["comparisons"] if c["verdict"] == "regression" and c["metric"] == "cpu_per_request"
    }
    assert regressed == {f"uvicorn/noio/{v}/u4" for v in VARIANTS}, show(done)


def test_environment_mismatch_is_refused(work, tmp_path):
    """A baseline from another machine: exit 2, naming what differs."""
    data = json.loads(Path(work["baseline"]).read_text())
    data["environment"]["cpu_model"] = "Some Other CPU @ 9.9GHz"
    other = tmp_path / "other-machine.json"
    other.write_text(json.dumps(data))
    done = cli("gate", "--baseline", str(other), "--current", str(work["baseline_run"]), timeout=120)
    assert done.returncode == 2, show(done)
    assert "CPU model differs" in done.stdout, show(done)
