"""`scenarios` and `setups`: what can be measured, listed and validated."""

from __future__ import annotations

from asyncbench.commands._common import INVALID, OK
from asyncbench.execute.plan import plan
from asyncbench.execute.setups import SETUPS
from asyncbench.model import scenario as sc


def scenarios() -> int:
    """List the scenario files with their number of measurements; exit 2 if one is bad."""
    status = OK
    for path in sorted(sc.SCENARIO_DIR.glob("*.toml")):
        try:
            s = sc.load(str(path))
            n = len(plan(s, [""]))
            print(f"{path.stem:10s} ok   {n:4d} measurements  {s.description}")
        except sc.ScenarioError as exc:
            print(f"{path.stem:10s} BAD  {exc}")
            status = INVALID
    return status


def setups() -> int:
    """List the server setups and what each implies."""
    for s in SETUPS.values():
        ka = "keep-alive" if s.keepalive else "no keep-alive"
        print(f"{s.name:18s} {s.interface}  {s.worker_class:34s} loop={s.event_loop:12s} {ka:13s} {s.notes}")
    return OK
