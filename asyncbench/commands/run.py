"""`run`: measure a scenario, write its results and report."""

from __future__ import annotations

from asyncbench.commands._common import INTERRUPTED, OK, ScenarioOptions
from asyncbench.commands._measure import finish, measure


def run(*, options: ScenarioOptions, report: bool = True) -> int:
    measured = measure(options, on_interrupt="\ninterrupted: finished measurements kept in {run_dir}/results.json")
    finish(measured.run_dir, report=report)
    return INTERRUPTED if measured.interrupted else OK
