"""The report's opening sections: verdicts, charts, model lines.

Each function returns its template's context; `sections_facts` has the rest.

The numbers come from the analysis objects (verdicts, comparisons, model
lines) and the cells' summaries; tables go through `html.table_html`, charts
are SVG from the chart modules, and the words about flags come from the one
policy table, `model.flags.POLICY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from asyncbench.analysis.comparison import CONFIDENCE, LOSES, MIN_BLOCKS, WINS, Comparison, Side
from asyncbench.analysis.queueing import fanout_model_inputs, model_line
from asyncbench.analysis.selection import axis_cells
from asyncbench.analysis.verdict import OUTCOME_COSTS, OUTCOME_PAYS_OFF
from asyncbench.model import flags
from asyncbench.model.flags import InVerdicts
from asyncbench.model.results import NOT_MEASURED, Cell, Run
from asyncbench.render import charts_cells, charts_verdict, connections, indexes, text
from asyncbench.render.format import MISSING, fmt, fmt_level, fmt_ms, fmt_pct, fmt_precision, fmt_ratio, fmt_rps
from asyncbench.render.html import TableCell, table_html
from asyncbench.render.sections_facts import verdict_policy

if TYPE_CHECKING:
    from asyncbench.render.report import Page

Context = dict[str, Any]


# ------------------------------------------------------------------ 1. verdicts


def _side_text(side: Side | None) -> str:
    """Best cell of one side; a generator-bound one is a lower bound (≥)."""
    if side is None:
        return MISSING
    s = side.cell.summary
    text = f"{side.label} · {'≥ ' if s.lower_bound else ''}{fmt_rps(side.rps)}"
    if s.rps_lo is not None and s.rps_hi is not None:
        text += f" ({fmt(s.rps_lo)}–{fmt(s.rps_hi)})"
    shown = [f for f in side.cell.summary.flags if flags.policy(f).verdicts is not InVerdicts.EXCLUDE]
    return text + (f" ({', '.join(shown)})" if shown else "")


def _level_table(levels: Sequence[Comparison], axis_name: str) -> Markup:
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for c in levels:
        ci = f"{fmt(c.ci[0])}–{fmt_ratio(c.ci[1])}" if c.ci else MISSING
        outcome = {WINS: "async ahead", LOSES: "async behind"}.get(c.outcome, c.outcome)
        if c.at_least:
            outcome += " (at least: the faster side is generator-bound)"
        if why := text.reason(c):
            outcome += f" ({why})"
        rows.append(
            [
                (fmt_level(c.level), c.level),
                _side_text(c.num),
                _side_text(c.den),
                (fmt_ratio(c.ratio), c.ratio),
                (ci, c.ci[0] if c.ci else None),
                (fmt_precision(c.precision), c.precision),
                (f"{c.blocks}" + ("" if c.paired else " (unpaired)"), c.blocks),
                (fmt_ratio(c.p99_ratio) if not c.p99_thin else "thin p99", c.p99_ratio),
                outcome,
                "; ".join(f"{x.setup} / {x.variant}: {', '.join(x.summary.flags)}" for x, _r in c.excluded),
            ]
        )
        used_flagged = any(s is not None and s.cell.summary.flagged for s in (c.num, c.den))
        classes.append("flagged" if c.excluded or used_flagged else None)
    return table_html(
        [
            axis_name,
            "best async (95% CI)",
            "best sync (95% CI)",
            "throughput ratio",
            "95% CI",
            "precision",
            "blocks",
            "p99 ratio",
            "outcome",
            "excluded",
        ],
        rows,
        sortable=False,
        row_classes=classes,
    )


def _repeats(run: Run) -> int:
    """The most repeats any cell has: what a version-1 label says was read as blocks."""
    return max((len(c.repeats) for c in run.cells), default=0)


def verdicts(page: Page) -> Context:
    out = []
    # What each index buys: shown once per control, under the control's verdict
    # (json-noindex), where its notes compare it with each indexed twin.
    index_tables = {
        control: indexes.table(page.run, control, treated) for control, treated in indexes.families(page.run)
    }
    for v in page.verdicts:
        out.append(
            {
                "cls": {OUTCOME_PAYS_OFF: "pays-off", OUTCOME_COSTS: "costs"}.get(v.outcome, "neutral"),
                "workload": v.workload,
                "title": text.workload_title(v.workload),
                "outcome": v.outcome,
                "claim": text.claim(v),
                "flagged": "; ".join(text.excluded_names(v)),
                "notes": text.notes(v),
                "index_table": index_tables.get(v.workload, ""),
                "chart": Markup(charts_verdict.verdict_chart(v) or ""),
                "table": _level_table(v.levels, "users") if v.levels else "",
                "delay_chart": Markup(charts_verdict.verdict_chart(v, along="delay_ms") or "")
                if v.delay_levels
                else "",
                "delay_table": _level_table(v.delay_levels, "delay (ms)") if v.delay_levels else "",
            }
        )
    return {
        "confidence": fmt_level(CONFIDENCE * 100),
        "min_blocks": MIN_BLOCKS,
        "method": text.METHOD,
        "version_note": text.version_label(page.run.schema_version, _repeats(page.run)),
        "policy": verdict_policy(),
        "verdicts": out,
    }


# ------------------------------------------------------------------ 2-5. charts


def throughput(page: Page) -> Context:
    return {"charts": [Markup(charts_cells.throughput_chart(page.run, w) or "") for w in page.workloads]}


def latency(page: Page) -> Context:
    return {"charts": [Markup(charts_cells.latency_chart(page.run, w) or "") for w in page.workloads]}


def heatmap(page: Page) -> Context:
    return {"chart": Markup(charts_verdict.heatmap_chart(page.run) or "")}


def cost(page: Page) -> Context:
    unmeasured = sorted({c.setup for c in page.run.cells if page.run.resources(c.setup) == NOT_MEASURED})
    return {
        "cpu": Markup(charts_cells.cpu_cost_chart(page.run) or ""),
        "rss": Markup(charts_cells.rss_chart(page.run) or ""),
        # existing deployments without a resource agent: absent from the figures, not zero
        "not_measured": ", ".join(unmeasured),
        # the servers' own counters: thread hops and database connections per arm
        "counters": connections.table(page.run),
        "contrasts": connections.contrasts(page.run),
    }


# ------------------------------------------------------------------ 6. model lines


def _model_table(run: Run, cells: Sequence[Cell]) -> Markup:
    """Per slot-limited setup x variant, its highest load level against the ceiling."""
    top: dict[tuple[str, str], Cell] = {}
    for c in cells:
        if c.repeats and model_line(run, c.setup, c.variant, c):
            k = (c.setup, c.variant)
            if k not in top or c.users > top[k].users:
                top[k] = c
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for (s, v), c in sorted(top.items()):
        m = model_line(run, s, v, c)
        assert m is not None
        ceiling = m.at(c.users)
        measured = c.summary.rps
        share = measured / ceiling if measured is not None else None
        rows.append(
            [
                s,
                v,
                (fmt_level(m.slots), m.slots),
                (fmt_ms(m.time_per_request_s * 1000), m.time_per_request_s),
                (fmt_level(c.users), c.users),
                (fmt_rps(ceiling), ceiling),
                (fmt_rps(measured), measured),
                (fmt_pct(share), share),
                ", ".join(c.summary.flags),
            ]
        )
        classes.append("flagged" if c.summary.flagged else None)
    return table_html(
        ["setup", "variant", "slots S", "time per request T", "users", "ceiling", "measured", "of ceiling", "flags"],
        rows,
        row_classes=classes,
    )


def model(page: Page) -> Context:
    run = page.run
    delay_charts = [Markup(s) for s in (charts_cells.delay_sweep_chart(run, w) for w in page.workloads) if s]
    chart = charts_cells.model_chart(run)
    if not chart:
        return {"chart": "", "delay_charts": delay_charts}
    cells, _ = axis_cells(run, "fanout")
    calls, delay, assumed = fanout_model_inputs(run, cells[0] if cells else None)
    return {
        "chart": Markup(chart),
        "calls": fmt_level(calls),
        "delay": fmt_level(delay),
        "assumed": assumed,
        "table": _model_table(run, cells),
        "delay_charts": delay_charts,
    }
