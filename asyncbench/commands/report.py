"""`report` and `summary`: render a stored run again, without measuring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asyncbench.commands._common import OK
from asyncbench.model.results import load_run
from asyncbench.render.report import write_report
from asyncbench.render.terminal import print_summary


def report(*, run_dir: Path, out: Path | None = None, terminal: bool = False, evidence: Sequence[Path] = ()) -> int:
    """Write the HTML report (and cells.csv) of a run folder or results file.

    `evidence`: other runs (folders or results files), typically the same
    scenario on other databases, whose numbers join the claims section only
    (each row names the run and database its numbers come from); the rest of
    the report describes `run_dir` alone.
    """
    run = load_run(run_dir)
    others = [load_run(p) for p in evidence]
    page = write_report(run, out or (run_dir if run_dir.is_dir() else run_dir.parent), evidence=others)
    if terminal:
        print_summary(run, evidence=others)
    print(f"report: {page}")
    return OK


def summary(*, run_dir: Path) -> int:
    """Print a run's verdicts and table."""
    print_summary(load_run(run_dir))
    return OK
