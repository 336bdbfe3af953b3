"""The end-of-run summary for a terminal: verdict sentences and a compact table.

`terminal_summary` is plain text, fixed width, no colour codes: it often lands
in CI logs, and the committed golden text is this form. `print_summary` draws
the table with rich when the stream is an interactive terminal and prints the
plain text otherwise. The runner prints the report's path after it. When
the servers' counters were measured, a second table follows: thread hops and
database connections per arm (asyncbench.render.connections).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table

from asyncbench.analysis.verdict import verdicts
from asyncbench.model.results import Run
from asyncbench.render import claims, connections, text
from asyncbench.render.cells import missing_cells, sorted_cells
from asyncbench.render.format import MISSING, fmt, fmt_level, fmt_pct

WIDTH = 100
HEADER = ("setup", "workload", "variant", "users", "req/s", "± 95% CI", "p50 ms", "p99 ms", "flags")
RIGHT = {3, 4, 5, 6, 7}  # numeric columns


def _verdict_lines(run: Run, width: int, evidence: Sequence[Run] = ()) -> list[str]:
    lines: list[str] = []
    if not run.complete:
        lines.append(
            f"INCOMPLETE RUN: {len(run.cells):,} cells finished, {len(missing_cells(run)):,} planned cells missing."
        )
        lines.append("")
    for line in text.deployment_lines(run):
        lines.extend(textwrap.wrap(line, width=width))
    if run.environment.targets:
        lines.append("")
    lines.append("The article's claims, checked")
    for line in claims.terminal_lines(run, evidence):
        lines.extend(textwrap.wrap(line, width=width, initial_indent="  ", subsequent_indent="     "))
    lines.append("")
    lines.append("Verdicts")
    vs = verdicts(run)
    for v in vs:
        lines.extend(textwrap.wrap(text.sentence(v), width=width, initial_indent="  * ", subsequent_indent="    "))
        for n in text.notes(v):
            lines.extend(textwrap.wrap(n, width=width, initial_indent="      - ", subsequent_indent="        "))
    if not vs:
        lines.append("  (no cells measured)")
    return lines


def _rows(run: Run) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for c in sorted_cells(run):
        s = c.summary
        # half the 95% interval, relative to the mean: the "±" a reader expects
        half = (s.rps_hi - s.rps_lo) / 2 / s.rps if s.rps and s.rps_hi is not None and s.rps_lo is not None else None
        spread = fmt_pct(half) if half is not None else ("1 slice" if s.repeats == 1 else MISSING)
        workload = c.workload + "".join(f" {k}={v}" for k, v in s.params)
        rows.append(
            (
                c.setup,
                workload,
                c.variant,
                fmt_level(c.users),
                fmt(s.rps),
                spread,
                fmt(s.p50_ms),
                fmt(s.p99_ms),
                ",".join(s.flags),
            )
        )
    for m in missing_cells(run):
        rows.append((m.setup, m.workload, m.variant, fmt_level(m.users), MISSING, "", "", "", "MISSING"))
    return rows


def terminal_summary(run: Run, *, width: int = WIDTH, evidence: Sequence[Run] = ()) -> str:
    lines = _verdict_lines(run, width, evidence)
    lines.append("")
    rows = _rows(run)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADER)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in RIGHT else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines.append(line(HEADER))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(line(r) for r in rows)
    counted = connections.terminal_lines(run)
    if counted:
        lines.extend(["", *counted])
    return "\n".join(lines)


def print_summary(run: Run, *, stream: TextIO | None = None, evidence: Sequence[Run] = ()) -> None:
    """The summary on `stream` (stdout): a rich table on a terminal, the plain text otherwise."""
    out = stream or sys.stdout
    if not out.isatty():
        print(terminal_summary(run, evidence=evidence), file=out)
        return
    console = Console(file=out)
    for line in _verdict_lines(run, min(WIDTH, console.width), evidence):
        console.print(line, markup=False, highlight=False)
    table = Table(box=None, header_style="bold")
    for i, h in enumerate(HEADER):
        table.add_column(h, justify="right" if i in RIGHT else "left")
    for r in _rows(run):
        table.add_row(*r, style="red" if r[-1] else None)
    console.print(table)
    counted = connections.terminal_lines(run)
    if counted:
        console.print()
        for line in counted:
            console.print(line, markup=False, highlight=False)
