"""`report` and `summary`: render a stored run again, without measuring."""

from __future__ import annotations

from pathlib import Path

from asyncbench.commands._common import OK
from asyncbench.model.results import load_run
from asyncbench.render.report import write_report
from asyncbench.render.terminal import print_summary


def report(*, run_dir: Path, out: Path | None = None, terminal: bool = False) -> int:
    """Write the HTML report (and cells.csv) of a run folder or results file."""
    run = load_run(run_dir)
    page = write_report(run, out or (run_dir if run_dir.is_dir() else run_dir.parent))
    if terminal:
        print_summary(run)
    print(f"report: {page}")
    return OK


def summary(*, run_dir: Path) -> int:
    """Print a run's verdicts and table."""
    print_summary(load_run(run_dir))
    return OK
