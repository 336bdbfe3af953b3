"""What every measuring command takes: the scenario and its overrides, where
runs go, the servers' extra environment; and the exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from asyncbench.model import scenario as sc

if TYPE_CHECKING:
    from asyncbench.execute.distributed import PoolOptions
    from asyncbench.execute.target import Target

OK = 0
FAILED = 1  # a regression (gate) or a failed command
INVALID = 2  # invalid input or an invalid comparison
INTERRUPTED = 130  # finished measurements kept

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
DEFAULT_BASELINE = REPORTS / "baseline.json"


@dataclass(frozen=True)
class ScenarioOptions:
    """A scenario to measure, as the command line gave it."""

    scenario: str
    overrides: sc.Overrides = field(default_factory=sc.Overrides)
    server_env: dict[str, str] = field(default_factory=dict)
    reports_dir: Path = REPORTS
    port_base: int | None = None
    # how to reproduce the run, recorded in its results
    command: tuple[str, ...] = ("python", "runner.py")
    # run --target: existing deployments measured instead of the scenario's setups
    targets: tuple[Target, ...] = ()
    # run --expect-workers/--master-bind: load workers on other machines (None: local only)
    pool: PoolOptions | None = None
    # the servers' counters and the database's connection count per slice (off: run --no-telemetry)
    telemetry: bool = True


def load_scenario(options: ScenarioOptions) -> sc.Scenario:
    """Read the scenario file, apply the overrides, validate the result."""
    return sc.load(options.scenario, options.overrides)
