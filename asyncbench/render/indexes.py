"""What each index buys on the run's database: a control and the workloads it controls.

The registry names a control workload (json-noindex) and the workloads it is
the control for (json: GIN on PostgreSQL, no index elsewhere; json-keyindex:
a B-tree on generated columns). The verdict notes compare them pairwise with
intervals; this table puts them side by side, one row per workload, with the
index each one actually had on this run's database, its best arm's throughput
and server CPU per request at the highest users level they share, and its
throughput against the control. A run measures one database, so comparing
databases means reading the tables of runs on each (`--db sqlite|postgres|mariadb`).

Everything comes from the results file (Cell.summary); nothing is re-measured.
"""

from __future__ import annotations

from markupsafe import Markup

from asyncbench.analysis.selection import axis_cells
from asyncbench.model.results import Cell, Run
from asyncbench.render.format import MISSING, fmt, fmt_ms, fmt_ratio, fmt_rps
from asyncbench.render.html import TableCell, table_html
from bench_site.registry import WORKLOADS

# The index a workload's query meets, by database vendor ("" = any other).
# Kept beside the table that prints it: the registry describes the workload,
# not what each database makes of it.
INDEX_KIND: dict[str, dict[str, str]] = {
    "json-noindex": {"": "none (the control: a full scan)"},
    "json": {
        "postgresql": "GIN (jsonb_path_ops) on metadata",
        "sqlite": "none: two key lookups over a full scan",
        "mariadb": "none: JSON_CONTAINS over a full scan",
        "mysql": "none: JSON_CONTAINS over a full scan",
        "": "GIN on PostgreSQL, none elsewhere",
    },
    "json-keyindex": {"": "B-tree on STORED generated columns (color, vendor_country, id)"},
}

HEADER = (
    "database",
    "workload",
    "index",
    "users",
    "best arm",
    "throughput (95% CI)",
    "server CPU per request",  # the Django server's: a database server's own CPU is not in it
    "p50",
    "vs control",
)


def families(run: Run) -> list[tuple[str, tuple[str, ...]]]:
    """(control, the measured workloads it controls) for each control the run measured."""
    measured = {c.workload for c in run.cells}
    out = []
    for w in WORKLOADS.values():
        treated = tuple(t for t in w.control_for if t in measured)
        if w.name in measured and treated:
            out.append((w.name, treated))
    return out


def _best(cells: list[Cell], users: int) -> Cell | None:
    """The arm with the highest mean throughput at `users`, flagged-out cells left aside."""
    at = [c for c in cells if c.users == users and not c.summary.excluded and c.summary.rps is not None]
    return max(at, key=lambda c: c.summary.rps or 0.0, default=None)


def index_kind(workload: str, vendor: str) -> str:
    kinds = INDEX_KIND.get(workload, {})
    return kinds.get(vendor) or kinds.get("") or WORKLOADS[workload].title


def table(run: Run, control: str, treated: tuple[str, ...]) -> Markup:
    """The control and its treated workloads on this run's database, at their highest shared level."""
    db = run.environment.database
    vendor = db.vendor or ""
    label = db.label or MISSING
    cells = {w: axis_cells(run, w)[0] for w in (control, *treated)}
    levels = set.intersection(*({c.users for c in cs} for cs in cells.values()))
    if not levels:
        return Markup("")
    users = max(levels)
    base = _best(cells[control], users)
    rows: list[list[TableCell]] = []
    for w in (control, *treated):
        best = _best(cells[w], users)
        if best is None:
            continue
        s = best.summary
        ci = f" ({fmt(s.rps_lo)}–{fmt(s.rps_hi)})" if s.rps_lo is not None and s.rps_hi is not None else ""
        ratio = s.rps / base.summary.rps if base is not None and s.rps and base.summary.rps else None
        rows.append(
            [
                label,
                w,
                index_kind(w, vendor),
                (f"{users:,}", users),
                f"{best.setup} / {best.variant}",
                (fmt_rps(s.rps) + ci, s.rps),
                (fmt_ms(s.cpu_ms_per_request), s.cpu_ms_per_request),
                (fmt_ms(s.p50_ms), s.p50_ms),
                ("control" if w == control else fmt_ratio(ratio), ratio),
            ]
        )
    if not rows:
        return Markup("")
    return table_html(HEADER, rows, sortable=False)
