"""The end-of-run summary for a terminal: verdict sentences and a compact table.

Plain text, fixed width, no colour codes (it often lands in CI logs). The
runner prints the report's path after it.
"""

from __future__ import annotations

import textwrap
from statistics import median

from asyncbench.render.format import MISSING, fmt, fmt_level, fmt_pct
from asyncbench.render.report import _sorted_cells, missing_cells
from asyncbench.model.results import Run
from asyncbench.analysis.verdict import flag_codes, median_p, verdicts

WIDTH = 100


def terminal_summary(run: Run, *, width: int = WIDTH) -> str:
    lines: list[str] = []
    if not run.complete:
        lines.append(f"INCOMPLETE RUN: {len(run.cells):,} cells finished, {len(missing_cells(run)):,} planned cells missing.")
        lines.append("")
    lines.append("Verdicts")
    for v in verdicts(run):
        lines.extend(textwrap.wrap(v.sentence, width=width, initial_indent="  * ", subsequent_indent="    "))
        for n in v.notes:
            lines.extend(textwrap.wrap(n, width=width, initial_indent="      - ", subsequent_indent="        "))
    if len(lines) == 1 or lines[-1] == "Verdicts":
        lines.append("  (no cells measured)")
    lines.append("")
    header = ("setup", "workload", "variant", "users", "req/s", "± spread", "p50 ms", "p99 ms", "flags")
    rows: list[tuple[str, ...]] = []
    for c in _sorted_cells(run):
        t = c.throughputs
        med = median(t) if t else None
        half = (max(t) - min(t)) / 2 / med if t and med else None
        workload = c.workload + "".join(f" {k}={v}" for k, v in sorted(c.params.items()))
        rows.append((
            c.setup, workload, c.variant, fmt_level(c.users), fmt(med),
            fmt_pct(half) if half is not None and len(t) > 1 else ("1 repeat" if len(t) == 1 else MISSING),
            fmt(median_p(c, "p50_ms")), fmt(median_p(c, "p99_ms")), ",".join(flag_codes(c)),
        ))
    for m in missing_cells(run):
        rows.append((m.setup, m.workload, m.variant, fmt_level(m.users), MISSING, "", "", "", "MISSING"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {3, 4, 5, 6, 7}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(line(r) for r in rows)
    return "\n".join(lines)
