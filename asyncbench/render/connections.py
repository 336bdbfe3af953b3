"""Database connections and thread hops per arm, from the servers' own counters.

One place builds what the terminal, the CSV-minded reader and the report's
"Database connections" section show: per cell, the requests the server counted
in its windows, thread hops per request (sync_to_async + async_to_sync calls:
an async view under WSGI pays one async_to_sync, a sync view under ASGI one
sync_to_async), Django's connects per 1,000 requests (connection_created: a
real open on SQLite and MariaDB, a checkout from psycopg's pool on
PostgreSQL) and the connections the database server saw opened per 1,000
requests. Every figure is computed from the results file (Cell.summary).

`contrasts` writes one sentence per pair of twins whose connection counts
differ a lot, because a new database connection per request (a session start
on the server, ~10 ms of CPU on PostgreSQL) outweighs most views' own work and
explains a throughput gap the sync/async choice alone does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from asyncbench.model.results import Cell, Run
from asyncbench.model.summary import params_label, users_label
from asyncbench.render.cells import sorted_cells
from asyncbench.render.format import fmt, fmt_level, fmt_rps
from asyncbench.render.html import TableCell, table_html

HEADER = (
    "setup",
    "workload",
    "variant",
    "users",
    "requests",
    "hops/req",
    "s2a/req",
    "a2s/req",
    "Django connects/1k",
    "DB connections/1k",
    "thread wait µs/hop",
    "loop lag mean / max ms",
    "GC µs/req",
    "full GC µs/req",
    "ms per full GC",
)

# Twins whose connections per 1,000 requests differ by this factor and by at
# least this many connections get a sentence: under a tenth of a connection
# per request apart, the gap is too small to explain a throughput difference.
CONTRAST_FACTOR = 2.0
CONTRAST_MIN_PER_1K = 100.0


def lag(mean_ms: float | None, max_ms: float | None) -> str:
    """The event loop's lag as "mean / max" (ms); "–" without a loop (WSGI)."""
    if mean_ms is None:
        return "–"
    return f"{fmt(mean_ms)} / {fmt(max_ms)}"


@dataclass(frozen=True)
class Row:
    cell: Cell

    def texts(self) -> tuple[str, ...]:
        c, s = self.cell, self.cell.summary
        workload = c.workload + "".join(f" {k}={v}" for k, v in s.params)
        return (
            c.setup,
            workload,
            c.variant,
            fmt_level(c.users),
            fmt_level(s.served),
            fmt(s.hops_per_request),
            fmt(s.sync_to_async_per_request),
            fmt(s.async_to_sync_per_request),
            fmt(s.django_connects_per_1k),
            fmt(s.db_connections_per_1k),
            fmt(s.thread_wait_us_per_hop),
            lag(s.loop_lag_mean_ms, s.loop_lag_max_ms),
            fmt(s.gc_pause_us_per_request),
            fmt(s.gc_full_pause_us_per_request),
            fmt(s.gc_full_ms_each),
        )


def rows(run: Run) -> list[Row]:
    """Every cell the servers' counters measured, in the report's order."""
    return [Row(c) for c in sorted_cells(run) if c.summary.served is not None]


def _connections(c: Cell, sqlite: bool) -> tuple[float | None, str]:
    """The cell's connections per 1,000 requests and what counted them: the
    database server's own count when read, else on SQLite Django's connects
    (each one a file opened), else none (a pool checkout is not an open)."""
    s = c.summary
    if s.db_connections_per_1k is not None:
        return s.db_connections_per_1k, "database connections"
    if sqlite:
        return s.django_connects_per_1k, "SQLite connections"
    return None, ""


def contrasts(run: Run) -> list[str]:
    """A sentence per sync/async pair (same setup, workload, users and
    parameters) whose connections per 1,000 requests differ a lot."""
    by_group: dict[tuple[str, str, int, tuple[tuple[str, int], ...], str], list[Cell]] = {}
    for c in sorted_cells(run):
        if c.summary.served:
            key = (c.setup, c.workload, c.users, c.summary.params, c.revision)
            by_group.setdefault(key, []).append(c)
    sqlite = run.environment.database.vendor == "sqlite"
    out: list[str] = []
    for (setup, workload, users, params, _rev), cells in by_group.items():
        syncs = [c for c in cells if c.kind == "sync"]
        for base in syncs:
            b_conn, what = _connections(base, sqlite)
            if b_conn is None:
                continue
            for other in cells:
                if other.kind != "async":
                    continue
                o_conn, _ = _connections(other, sqlite)
                if o_conn is None:
                    continue
                lo, hi = sorted((b_conn, o_conn))
                if hi - lo < CONTRAST_MIN_PER_1K or (lo > 0 and hi / lo < CONTRAST_FACTOR):
                    continue
                extra = f", {params_label(params)}" if params else ""
                b_s, o_s = base.summary, other.summary
                out.append(
                    f"{workload} on {setup} at {users_label(users)}{extra}: {other.variant} opened "
                    f"{fmt(o_conn)} {what} per 1,000 requests, {base.variant} {fmt(b_conn)} "
                    f"(throughput {fmt_rps(o_s.rps)} vs {fmt_rps(b_s.rps)}; thread hops per request "
                    f"{fmt(o_s.hops_per_request)} vs {fmt(b_s.hops_per_request)})."
                )
    return out


def terminal_lines(run: Run) -> list[str]:
    """The counters table for the terminal summary; nothing when none were measured."""
    found = rows(run)
    if not found:
        return []
    texts = [r.texts() for r in found]
    widths = [max(len(h), *(len(t[i]) for t in texts)) for i, h in enumerate(HEADER)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(widths[i]) if i >= 3 else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines = [
        "Server counters (in the measured windows; connections per 1,000 requests the server counted)",
        line(HEADER),
        "  ".join("-" * w for w in widths),
    ]
    lines.extend(line(t) for t in texts)
    lines.extend(f"  * {s}" for s in contrasts(run))
    return lines


def table(run: Run) -> Markup:
    """The report's table (in the Cost section); empty when nothing was counted."""
    found = rows(run)
    if not found:
        return Markup("")
    body: list[list[TableCell]] = []
    classes: list[str | None] = []
    for r in found:
        c, s = r.cell, r.cell.summary
        t = r.texts()
        body.append(
            [
                t[0],
                t[1],
                t[2],
                (t[3], c.users),
                (t[4], s.served),
                (t[5], s.hops_per_request),
                (t[6], s.sync_to_async_per_request),
                (t[7], s.async_to_sync_per_request),
                (t[8], s.django_connects_per_1k),
                (t[9], s.db_connections_per_1k),
                (t[10], s.thread_wait_us_per_hop),
                (t[11], s.loop_lag_mean_ms),
                (t[12], s.gc_pause_us_per_request),
                (t[13], s.gc_full_pause_us_per_request),
                (t[14], s.gc_full_ms_each),
            ]
        )
        classes.append("flagged" if s.flagged else None)
    return table_html(list(HEADER), body, row_classes=classes)
