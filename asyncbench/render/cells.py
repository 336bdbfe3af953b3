"""Which cells a report lists, in what order, and which planned cells are missing.

The runner records every planned cell in scenario_resolved["cells"] (a list of
{setup, workload, variant, users, params}); a results file without that list
cannot say what is missing, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncbench.analysis.selection import usable_cells, workload_order
from asyncbench.model.results import Cell, Run
from asyncbench.model.summary import ParamsKey, params_key, params_label, users_label


@dataclass(frozen=True)
class PlannedCell:
    setup: str
    workload: str
    variant: str
    users: int
    params: ParamsKey = ()

    @property
    def name(self) -> str:
        extra = params_label(self.params)
        return f"{self.setup} / {self.workload} / {self.variant} at {users_label(self.users)}" + (
            f", {extra}" if extra else ""
        )


def sorted_cells(run: Run) -> list[Cell]:
    """Every cell in the order of the tables: workload (registry order), setup, kind, variant, users."""
    order = {w: i for i, w in enumerate(workload_order({c.workload for c in run.cells}))}
    return sorted(
        run.cells,
        key=lambda c: (
            order.get(c.workload, 99),
            c.setup,
            c.kind,
            c.variant,
            c.users,
            params_key(c.params),
            c.revision,
        ),
    )


def planned_cells(run: Run) -> list[PlannedCell] | None:
    """The cells the scenario planned, or None when the results do not say."""
    listed = (run.scenario_resolved or {}).get("cells")
    if not isinstance(listed, (list, tuple)):
        return None
    return [p for p in (_planned_from(item) for item in listed) if p is not None]


def _planned_from(item: Any) -> PlannedCell | None:
    if not isinstance(item, dict):
        return None
    try:
        params = params_key({str(k): int(v) for k, v in (item.get("params") or {}).items()})
        return PlannedCell(str(item["setup"]), str(item["workload"]), str(item["variant"]), int(item["users"]), params)
    except (KeyError, TypeError, ValueError):
        return None


def missing_cells(run: Run) -> list[PlannedCell]:
    """Planned cells with no result. A planned entry without params matches a
    measured cell with any params (the plan did not say)."""
    plan = planned_cells(run)
    if not plan:
        return []
    have = {(c.setup, c.workload, c.variant, c.users, params_key(c.params)) for c in usable_cells(run)}
    have_any = {k[:4] for k in have}
    out = []
    for p in plan:
        base = (p.setup, p.workload, p.variant, p.users)
        if (p.params and (*base, p.params) not in have) or (not p.params and base not in have_any):
            out.append(p)
    return out
