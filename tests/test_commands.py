"""The commands as functions, called without argparse, on stored runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from asyncbench.commands import baseline, catalog, gate
from asyncbench.commands._common import INVALID, OK, ScenarioOptions
from asyncbench.model.results import load_run, save_run

V1 = Path(__file__).parent / "fixtures" / "v1-quick"


def test_scenarios_lists_every_shipped_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert catalog.scenarios() == OK
    out = capsys.readouterr().out
    for name in ("ci", "quick", "full", "example-own-app"):
        assert re.search(rf"^{name} +ok ", out, re.MULTILINE), out


def test_setups_lists_every_setup(capsys: pytest.CaptureFixture[str]) -> None:
    assert catalog.setups() == OK
    assert "uvicorn" in capsys.readouterr().out


def test_baseline_save_stores_a_complete_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "baseline.json"
    assert baseline.save(run_dir=V1, to=dest) == OK
    assert json.loads(dest.read_text())["run_id"] == load_run(V1).run_id
    assert "baseline saved" in capsys.readouterr().out


def test_baseline_save_refuses_an_incomplete_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_run(replace(load_run(V1), complete=False), tmp_path / "run")
    assert baseline.save(run_dir=tmp_path / "run", to=tmp_path / "baseline.json") == INVALID
    assert "incomplete run" in capsys.readouterr().err
    assert not (tmp_path / "baseline.json").exists()


def test_gate_without_a_baseline_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = gate.gate(options=ScenarioOptions("ci"), baseline=tmp_path / "none.json", current=V1)
    assert code == INVALID
    assert "no baseline at" in capsys.readouterr().err
