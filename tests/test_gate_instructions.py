"""The instruction-count gate: callgrind dumps, the decision rule, its setting,
the base revision's default, the deterministic injection knob, and the mode end
to end under valgrind (a tiny set: noio sync under WSGI, async under ASGI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asyncbench.commands._common import ScenarioOptions
from asyncbench.commands.instructions import load_scenario
from asyncbench.execute.revisions import default_base
from asyncbench.gate import instructions as ins
from asyncbench.gate.config import validate_gate_section
from asyncbench.model.scenario import ScenarioError
from bench_site.injection import Injection, burn_loops

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 300


def dump(path: Path, trigger: str, total: int, *, totals_line: bool = True) -> Path:
    """A callgrind dump as valgrind 3.19 writes it (the lines the parser reads)."""
    path.write_text(
        "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 1\ncmd:  python driver.py\npart: 1\n\n"
        f"desc: Trigger: {trigger}\n\npositions: line\nevents: Ir\nsummary: {total}\n\n"
        "ob=(1) /lib/libc.so.6\nfl=(1) ???\nfn=(1) main\n0 5\n\n" + (f"totals: {total}\n" if totals_line else "")
    )
    return path


# ------------------------------------------------------------------ parsing


def test_parse_dump_reads_trigger_and_totals(tmp_path: Path) -> None:
    assert ins.parse_dump(dump(tmp_path / "a", "Client Request: phase-3", 12345)) == (
        "Client Request: phase-3",
        12345,
    )
    # an older format without `totals:` still has `summary:`
    assert ins.parse_dump(dump(tmp_path / "b", "Program termination", 77, totals_line=False))[1] == 77
    (tmp_path / "c").write_text("not a dump\n")
    with pytest.raises(ins.InstructionsError, match="no totals"):
        ins.parse_dump(tmp_path / "c")


def _phases() -> list[ins.Phase]:
    return [ins.Phase("noio", "sync", "wsgi", "/sync/noio/"), ins.Phase("noio", "async", "asgi", "/async/noio/")]


def test_phase_counts_per_request_by_label(tmp_path: Path) -> None:
    dumps = [
        dump(tmp_path / "callgrind.out.1", "Client Request: phase-0", 5_000_000),
        dump(tmp_path / "callgrind.out.2", "Client Request: phase-1", 40_000_000),
        dump(tmp_path / "callgrind.out", "Program termination", 999),  # the exit dump is ignored
    ]
    assert ins.phase_counts(dumps, _phases(), 10) == {"noio/sync@wsgi": 500_000.0, "noio/async@asgi": 4_000_000.0}
    with pytest.raises(ins.InstructionsError, match=r"noio/async@asgi: expected one callgrind dump labelled phase-1"):
        ins.phase_counts(dumps[:1], _phases(), 10)


def test_answers_must_be_200_and_twins_identical() -> None:
    ok = {"statuses": [200], "same_body": True, "body": '{"ok":true}'}
    ins.check_answers([ok, ok], _phases(), "head-1")
    with pytest.raises(ins.InstructionsError, match="answered \\[500\\]"):
        ins.check_answers([ok, {**ok, "statuses": [500]}], _phases(), "head-1")
    with pytest.raises(ins.InstructionsError, match="twins differ"):
        ins.check_answers([ok, {**ok, "body": '{"ok":false}'}], _phases(), "head-1")
    with pytest.raises(ins.InstructionsError, match="different bodies"):
        ins.check_answers([ok, {**ok, "same_body": False}], _phases(), "head-1")


# ------------------------------------------------------------------ the decision rule


def test_spread_is_range_over_mean() -> None:
    assert ins.spread([100.0]) == 0
    assert ins.spread([99.0, 100.0, 101.0]) == pytest.approx(0.02)


def test_decision_rule() -> None:
    t = 0.01
    # identical runs, no change: pass
    assert ins.decide_cell("k", [1000.0] * 3, [1000.0] * 3, t).status == ins.PASS
    # +1.5% with no spread: above the 1% threshold
    c = ins.decide_cell("k", [1000.0] * 3, [1015.0] * 3, t)
    assert (c.status, round(c.change, 4), c.margin) == (ins.REGRESSION, 0.015, t)
    # just below the threshold
    assert ins.decide_cell("k", [1000.0] * 3, [1009.0] * 3, t).status == ins.PASS
    # 0.5% spread widens the margin to 1.5%: +1.2% passes, +2% fails
    noisy = [997.5, 1000.0, 1002.5]
    c = ins.decide_cell("k", noisy, [1012.0] * 3, t)
    assert c.margin == pytest.approx(0.015) and c.status == ins.PASS
    assert ins.decide_cell("k", noisy, [1020.0] * 3, t).status == ins.REGRESSION
    # the larger side's spread counts
    assert ins.decide_cell("k", [1000.0] * 3, [1007.5, 1012.5, 1010.0], t).margin == pytest.approx(3 * 5 / 1010)
    # identical runs disagreeing by more than the threshold: cannot decide ...
    wild = [980.0, 1000.0, 1020.0]
    assert ins.decide_cell("k", wild, [1000.0] * 3, t).status == ins.UNDECIDABLE
    # ... unless the change is beyond 3x that spread anyway
    assert ins.decide_cell("k", wild, [1200.0] * 3, t).status == ins.REGRESSION
    # an improvement is a pass
    assert ins.decide_cell("k", [1000.0] * 3, [900.0] * 3, t).status == ins.PASS


def test_decide_exit_codes() -> None:
    base = {"a": [100.0, 100.0], "b": [100.0, 100.0]}
    assert ins.decide({"base": base, "head": base}, 0.01)[0] == ins.OK
    worse = {"a": [110.0, 110.0], "b": [100.0, 100.0]}
    code, cells = ins.decide({"base": base, "head": worse}, 0.01)
    assert code == ins.FAILED and [c.status for c in cells] == [ins.REGRESSION, ins.PASS]
    wild = {"a": [100.0, 100.0], "b": [90.0, 110.0]}
    assert ins.decide({"base": base, "head": wild}, 0.01)[0] == ins.INVALID
    # a regression beside an undecidable cell is still a regression
    assert ins.decide({"base": base, "head": {**wild, "a": [150.0, 150.0]}}, 0.01)[0] == ins.FAILED


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.01, "0.01", True])
def test_bad_instructions_threshold_names_the_key(bad: object) -> None:
    problems = validate_gate_section({"instructions_threshold": bad})
    assert len(problems) == 1 and problems[0].startswith("gate.instructions_threshold:"), problems
    with pytest.raises(ins.InstructionsError, match=r"gate\.instructions_threshold"):
        ins.validate_threshold(bad)
    assert validate_gate_section({"instructions_threshold": 0.02}) == []


def scenario_file(path: Path, db: Path, gate: str = "instructions_threshold = 0.05") -> Path:
    path.write_text(
        'name = "instr"\n[load]\nusers = [1]\n[[setups]]\nname = "uvicorn"\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
        f'[database]\nrows = 100\nsqlite_path = "{db}"\n[gate]\n{gate}\n'
    )
    return path


def test_scenario_threshold_is_read_and_validated(tmp_path: Path) -> None:
    good = scenario_file(tmp_path / "good.toml", tmp_path / "db.sqlite3")
    scenario, threshold = load_scenario(ScenarioOptions(scenario=str(good)))
    assert threshold == 0.05 and scenario.name == "instr"
    bad = scenario_file(tmp_path / "bad.toml", tmp_path / "db.sqlite3", gate='instructions_threshold = "1%"')
    with pytest.raises(ScenarioError, match=r"gate\.instructions_threshold: expected a fraction in \(0, 1\)"):
        load_scenario(ScenarioOptions(scenario=str(bad)))
    # through the command line: exit 2, the key named, nothing measured
    done = subprocess.run(
        [sys.executable, "runner.py", "gate-instructions", str(bad), "--reports-dir", str(tmp_path / "r")],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "gate.instructions_threshold" in done.stderr, done.stderr


def test_phases_from_the_scenario_and_filter(tmp_path: Path) -> None:
    scenario, _ = load_scenario(ScenarioOptions(scenario="ci"))
    keys = [p.key for p in ins.phases_for(scenario)]
    assert "noio/sync@wsgi" in keys and "fanout/async-aiohttp@asgi" in keys
    fan = next(p for p in ins.phases_for(scenario) if p.workload == "fanout")
    assert fan.path.endswith("/fanout/?calls=3")
    chosen = ins.phases_for(scenario, views=["noio/sync@wsgi", "noio/async"])
    assert {p.key for p in chosen} == {"noio/sync@wsgi", "noio/async@wsgi", "noio/async@asgi"}
    with pytest.raises(ins.InstructionsError, match="unknown view"):
        ins.phases_for(scenario, views=["noio/nope"])


# ------------------------------------------------------------------ the base revision


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_default_base(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "one")
    assert default_base(root=tmp_path, environ={}) == "HEAD~1"  # clean: HEAD against its parent
    (tmp_path / "new.py").write_text("x = 1\n")
    assert default_base(root=tmp_path, environ={}) == "HEAD"  # changes: the tree against HEAD
    assert default_base(root=tmp_path, environ={"BASE": "origin/main"}) == "origin/main"
    assert default_base("v1", root=tmp_path, environ={"BASE": "origin/main"}) == "v1"


# ------------------------------------------------------------------ the knob


def test_loops_injection_is_deterministic_work() -> None:
    assert burn_loops(16) == sum(i & 7 for i in range(16))
    assert Injection(loops=10).active and Injection(loops=10).applies_to("noio")
    assert not Injection().active


# ------------------------------------------------------------------ end to end


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "runner.py", "gate-instructions", *args],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def _result(reports: Path) -> dict:
    (run,) = reports.glob("*-instructions-*")
    return json.loads((run / "instructions.json").read_text())


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind (apt-get install valgrind)")
@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_end_to_end_aa_passes_and_injection_fails(tmp_path: Path) -> None:
    """A/A (the working tree as both sides) exits 0; 200 loop iterations on head
    (about +20% on noio sync under WSGI, +3% under ASGI, below the scenario's 5%)
    exit 1 naming only the WSGI cell."""
    toml = scenario_file(tmp_path / "s.toml", tmp_path / "db.sqlite3")
    common = ["--base-tree", str(ROOT), "--views", "noio/sync@wsgi,noio/async@asgi"]
    common += ["--requests", "5", "--warmup", "3", "--runs", "2"]
    summary = tmp_path / "summary.md"
    done = _cli(str(toml), *common, "--reports-dir", str(tmp_path / "aa"), "--summary", str(summary))
    assert done.returncode == 0, done.stdout + done.stderr
    result = _result(tmp_path / "aa")
    assert result["exit_code"] == 0 and result["threshold"] == 0.05
    cells = {c["key"]: c for c in result["cells"]}
    assert set(cells) == {"noio/sync@wsgi", "noio/async@asgi"}
    for c in cells.values():
        assert c["status"] == "pass" and len(c["base_runs"]) == len(c["head_runs"]) == 2
        assert 100_000 < c["base"] < 50_000_000  # instructions per request: a plausible order of magnitude
    assert "Instruction-count gate: pass" in summary.read_text()

    inject = ["--head-env", "BENCH_INJECT_LOOPS=200", "--head-env", "BENCH_INJECT_WORKLOADS=noio"]
    done = _cli(str(toml), *common, *inject, "--reports-dir", str(tmp_path / "injected"))
    assert done.returncode == 1, done.stdout + done.stderr
    result = _result(tmp_path / "injected")
    statuses = {c["key"]: c["status"] for c in result["cells"]}
    assert statuses == {"noio/sync@wsgi": "regression", "noio/async@asgi": "pass"}, result["cells"]
    assert "regression: noio/sync@wsgi" in result["reason"]
