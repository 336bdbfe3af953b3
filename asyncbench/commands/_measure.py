"""Measure a scenario and end a measuring command: the one place that runs a
scenario for a command, keeps an interrupted run, and prints what was written."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from asyncbench.commands._common import ScenarioOptions, load_scenario
from asyncbench.execute.run import RunInterrupted, run_scenario
from asyncbench.model.results import load_run
from asyncbench.render.report import write_report
from asyncbench.render.terminal import print_summary


@dataclass(frozen=True)
class Measured:
    run_dir: Path
    interrupted: bool  # the run was stopped; its finished measurements are in run_dir


def measure(
    options: ScenarioOptions,
    *,
    on_interrupt: str,
    revisions: dict[str, Path] | None = None,
    arm_env: dict[str, dict[str, str]] | None = None,
) -> Measured:
    """Run the scenario. When interrupted, print `on_interrupt` (formatted
    with `run_dir`) to stderr and return the kept run marked interrupted."""
    scenario = load_scenario(options)
    try:
        run_dir = run_scenario(
            scenario,
            reports_dir=options.reports_dir,
            command=list(options.command),
            server_env=dict(options.server_env),
            port_base=options.port_base,
            revisions=revisions,
            arm_env=arm_env,
            targets=options.targets,
            pool=options.pool,
            telemetry=options.telemetry,
        )
    except RunInterrupted as exc:
        print(on_interrupt.format(run_dir=exc.run_dir), file=sys.stderr)
        return Measured(exc.run_dir, interrupted=True)
    return Measured(run_dir, interrupted=False)


def finish(run_dir: Path, *, report: bool = True) -> None:
    """Print the run's verdicts and table, write its HTML report, say where."""
    run = load_run(run_dir)
    print_summary(run)
    if report:
        print(f"report:  {write_report(run, run_dir)}")
    print(f"results: {run_dir / 'results.json'}")
