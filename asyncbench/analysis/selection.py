"""Which cells a claim may use: the cells a report describes, one workload's
users axis, its upstream-delay sweep, and the side (sync or async) of a cell.

Pure functions of a `Run`; the registry says what a variant is and in which
order the workloads are documented.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asyncbench.model.results import Cell, Run
from asyncbench.model.summary import ParamsKey, params_key
from bench_site.registry import VARIANTS, WORKLOADS


def variant_kind(variant: str, fallback: str = "") -> str:
    """ "sync" or "async" for a variant, from the registry, else the cell's kind."""
    if variant in VARIANTS:
        return VARIANTS[variant].kind
    if fallback:
        return fallback
    # A variant from a newer harness: its name is the best evidence left.
    return "async" if variant.startswith("async") else "sync"


def run_variant_kind(run: Run, variant: str) -> str:
    """ "sync" or "async" for a variant of this run: what its cells recorded (a
    scenario's own endpoint names its variants' kinds), else `variant_kind`."""
    for c in run.cells:
        if c.variant == variant and c.kind:
            return c.kind
    return variant_kind(variant)


def cell_kind(cell: Cell) -> str:
    return cell.kind or variant_kind(cell.variant)


def is_async(cell: Cell) -> bool:
    return cell_kind(cell) == "async"


def is_sync(cell: Cell) -> bool:
    return cell_kind(cell) == "sync"


def workload_order(names: Iterable[str]) -> list[str]:
    """Registry order first (the order the project documents), then the rest."""
    wanted = set(names)
    return [w for w in WORKLOADS if w in wanted] + sorted(wanted - set(WORKLOADS))


def usable_cells(run: Run) -> list[Cell]:
    """The cells a report describes.

    In an A/B-in-one-job run (cells carry a revision) the report describes the
    current revision; the base is the gate's business.
    """
    if any(c.revision for c in run.cells):
        return [c for c in run.cells if c.revision in ("", "head")]
    return list(run.cells)


def workload_cells(run: Run, workload: str) -> list[Cell]:
    return [c for c in usable_cells(run) if c.workload == workload]


def default_delay_ms(run: Run) -> float | None:
    """The scenario's upstream delay, when it names a single one."""
    up = (run.scenario_resolved or {}).get("upstream")
    if isinstance(up, dict) and isinstance(up.get("delay_ms"), (int, float)):
        return float(up["delay_ms"])
    return None


def main_params(cells: Sequence[Cell], default_delay: float | None = None) -> ParamsKey:
    """The parameter set the users-axis comparison uses for one workload.

    When cells vary a parameter (an upstream-delay sweep), the set measured at
    the most load levels is the main axis; ties go to the scenario's default
    delay, then to the smallest set, so the choice is deterministic.
    """
    if not cells:
        return ()
    levels: dict[ParamsKey, set[int]] = {}
    for c in cells:
        levels.setdefault(params_key(c.params), set()).add(c.users)

    def rank(pk: ParamsKey) -> tuple[int, int, ParamsKey]:
        d = dict(pk).get("delay_ms")
        is_default = int(default_delay is not None and d is not None and float(d) == float(default_delay))
        return (-len(levels[pk]), -is_default, pk)

    return min(levels, key=rank)


def axis_cells(run: Run, workload: str) -> tuple[list[Cell], ParamsKey]:
    """The cells of the users axis (main parameter set) of one workload."""
    cells = workload_cells(run, workload)
    pk = main_params(cells, default_delay_ms(run))
    return [c for c in cells if params_key(c.params) == pk], pk


def delay_sweep_cells(run: Run, workload: str) -> tuple[list[Cell], int | None]:
    """Cells of an upstream-delay sweep at one users level, if the run has one.

    The sweep is taken at the highest users level measured at two or more
    delays, holding the other parameters at the main set's values.
    """
    cells = workload_cells(run, workload)
    pk = dict(main_params(cells, default_delay_ms(run)))
    others = {k: v for k, v in pk.items() if k != "delay_ms"}
    cand = [
        c for c in cells if "delay_ms" in c.params and {k: v for k, v in c.params.items() if k != "delay_ms"} == others
    ]
    delays_at: dict[int, set[int]] = {}
    for c in cand:
        delays_at.setdefault(c.users, set()).add(c.params["delay_ms"])
    users = [u for u, ds in delays_at.items() if len(ds) >= 2]
    if not users:
        return [], None
    u = max(users)
    return [c for c in cand if c.users == u], u


def cell_order(c: Cell) -> tuple[str, str, str, int, ParamsKey]:
    """The order cells are named in: by workload, setup, variant, load, parameters."""
    return (c.workload, c.setup, c.variant, c.users, params_key(c.params))
