"""`scenarios` and `setups`: what can be measured, listed and validated."""

from __future__ import annotations

from asyncbench.commands._common import INVALID, OK
from asyncbench.execute.groups import groups, planned_wall_s
from asyncbench.execute.setups import SETUPS
from asyncbench.model import scenario as sc


def scenarios() -> int:
    """List the scenario files with their groups, arms and planned wall time; exit 2 if one is bad."""
    status = OK
    paths = sorted(sc.SCENARIO_DIR.glob("*.toml"))
    width = max([10, *(len(p.stem) for p in paths)])
    for path in paths:
        try:
            s = sc.load(str(path))
            gs = groups(s, [""])
            arms = sum(len(g.arms) for g in gs)
            least, most = planned_wall_s(s, gs)
            when = f"{least / 60:4.0f}–{most / 60:.0f} min"
            print(f"{path.stem:{width}s} ok   {len(gs):3d} groups {arms:4d} arms  {when:>11s}  {s.description}")
        except sc.ScenarioError as exc:
            print(f"{path.stem:{width}s} BAD  {exc}")
            status = INVALID
    return status


def setups() -> int:
    """List the server setups and what each implies."""
    for s in SETUPS.values():
        ka = "keep-alive" if s.keepalive else "no keep-alive"
        print(f"{s.name:18s} {s.interface}  {s.worker_class:34s} loop={s.event_loop:12s} {ka:13s} {s.notes}")
    return OK
