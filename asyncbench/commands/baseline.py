"""`baseline save` and `baseline run`: store the run the gate compares against."""

from __future__ import annotations

import sys
from pathlib import Path

from asyncbench.commands._common import INTERRUPTED, INVALID, OK, ScenarioOptions
from asyncbench.commands._measure import finish, measure
from asyncbench.model.results import load_run, save_run


def save(*, run_dir: Path, to: Path) -> int:
    """Store a complete run as the baseline."""
    run = load_run(run_dir)
    if not run.complete:
        print(f"error: {run_dir} is an incomplete run; a baseline must be complete", file=sys.stderr)
        return INVALID
    dest = save_run(run, to)
    print(f"baseline saved: {dest} (run {run.run_id}, {len(run.cells)} cells)")
    return OK


def run(*, options: ScenarioOptions, to: Path, report: bool = True) -> int:
    """Measure a scenario and store it as the baseline (not when interrupted)."""
    measured = measure(options, on_interrupt="interrupted: no baseline written ({run_dir} kept)")
    if measured.interrupted:
        return INTERRUPTED
    finish(measured.run_dir, report=report)
    return save(run_dir=measured.run_dir, to=to)
