"""The run report: one self-contained HTML page and a CSV, from a `Run` alone.

`write_report(run, out_dir)` regenerates both without measuring anything; the
runner calls it at the end of a run and `runner.py report RUN_DIR` calls it
on an old results file. Order of the page: verdicts first, then the evidence
(throughput, latency, heat map, cost, model lines), then what could make a
number wrong (flags, missing cells), then the run itself and every number.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from asyncbench.render import charts
from asyncbench.render.format import MISSING, fmt, fmt_level, fmt_ms, fmt_pct, fmt_ratio, fmt_rps, fmt_s
from asyncbench.render.html import TableCell, esc, render_page, table_html
from asyncbench.model.results import Cell, Run
from asyncbench.analysis.stats import cv
from asyncbench.analysis.queueing import fanout_model_inputs, model_line
from asyncbench.analysis.verdict import (
    CONFIDENCE,
    MIN_REPEATS,
    OUTCOME_COSTS,
    OUTCOME_PAYS_OFF,
    Comparison,
    Side,
    Verdict,
    axis_cells,
    flag_codes,
    flag_reasons,
    is_flagged,
    is_lower_bound,
    median_p,
    median_rps,
    usable_cells,
    verdicts,
    workload_order,
    workload_title,
)

CSV_NAME = "cells.csv"
HTML_NAME = "index.html"


# ------------------------------------------------------------------ planned / missing cells


@dataclass(frozen=True)
class PlannedCell:
    setup: str
    workload: str
    variant: str
    users: int
    params: tuple[tuple[str, int], ...] = ()

    @property
    def name(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params)
        return f"{self.setup} / {self.workload} / {self.variant} at {self.users:,} users{extra}"


def planned_cells(run: Run) -> list[PlannedCell] | None:
    """The cells the scenario planned, or None when the results do not say.

    Reads scenario_resolved["cells"] (a list of {setup, workload, variant,
    users[, params]} or of cell keys) when the runner recorded it; otherwise
    the product of setups x workloads x variants x users, with each
    workload's variants from the scenario or the registry.
    """
    sr = run.scenario_resolved or {}
    listed = sr.get("cells")
    if isinstance(listed, (list, tuple)):
        out: list[PlannedCell] = []
        for item in listed:
            p = _planned_from(item)
            if p is not None:
                out.append(p)
        return out
    setups = _names(sr.get("setups"))
    load = sr.get("load") if isinstance(sr.get("load"), dict) else {}
    users = _ints(sr.get("users") or load.get("users"))
    wl = sr.get("workloads")
    if not setups or not wl:
        return None
    global_variants = _names(sr.get("variants"))
    try:
        from bench_site import registry
    except ImportError:  # pragma: no cover
        registry = None  # type: ignore[assignment]
    items = wl.items() if isinstance(wl, dict) else [(w if isinstance(w, str) else w.get("name"), w) for w in wl]
    out: list[PlannedCell] = []
    for name, spec in items:
        if not isinstance(name, str):
            continue
        spec = spec if isinstance(spec, dict) else {}
        vs = _names(spec.get("variants"))
        if not vs:
            known = list(registry.WORKLOADS[name].variants) if registry and name in registry.WORKLOADS else []
            vs = [v for v in known if not global_variants or v in global_variants] or global_variants
        wl_users = _ints(spec.get("users")) or users
        # Mirrors scenario.WorkloadConfig.param_sets: fixed params x every sweep point.
        fixed = {str(k): int(v) for k, v in (spec.get("params") or {}).items()}
        sweep = {str(k): _ints(v) for k, v in (spec.get("sweep") or {}).items() if _ints(v)}
        keys = sorted(sweep)
        param_sets = [
            tuple(sorted({**fixed, **dict(zip(keys, combo, strict=True))}.items()))
            for combo in itertools.product(*(sweep[k] for k in keys))
        ]
        for s in setups:
            for v in vs:
                for u in wl_users:
                    for ps in param_sets:
                        out.append(PlannedCell(s, name, v, u, ps))
    return out or None


def _ints(x: Any) -> list[int]:
    if isinstance(x, (list, tuple)):
        return [int(i) for i in x if isinstance(i, (int, float)) and not isinstance(i, bool)]
    return []


def _names(x: Any) -> list[str]:
    if isinstance(x, dict):
        return [str(k) for k in x]
    if isinstance(x, (list, tuple)):
        return [str(i if isinstance(i, str) else i.get("name")) for i in x if isinstance(i, (str, dict))]
    return []


def _planned_from(item: Any) -> PlannedCell | None:
    if isinstance(item, dict):
        try:
            params = tuple(sorted((str(k), int(v)) for k, v in (item.get("params") or {}).items()))
            return PlannedCell(str(item["setup"]), str(item["workload"]), str(item["variant"]), int(item["users"]),
                               params)
        except (KeyError, TypeError, ValueError):
            return None
    if isinstance(item, str):  # a Cell.key: setup/workload/variant/uN[,k=v...]
        parts = item.split("/")
        if len(parts) != 4 or not parts[3].startswith("u"):
            return None
        users_part, *extra = parts[3][1:].split(",")
        try:
            params = tuple(sorted((k, int(v)) for k, v in (e.split("=", 1) for e in extra)))
            return PlannedCell(parts[0], parts[1], parts[2], int(users_part), params)
        except ValueError:
            return None
    return None


def missing_cells(run: Run) -> list[PlannedCell]:
    """Planned cells with no result. A planned entry without params matches a
    measured cell with any params (the plan did not say)."""
    plan = planned_cells(run)
    if not plan:
        return []
    have = {(c.setup, c.workload, c.variant, c.users, tuple(sorted(c.params.items()))) for c in usable_cells(run)}
    have_any = {k[:4] for k in have}
    out = []
    for p in plan:
        base = (p.setup, p.workload, p.variant, p.users)
        if (p.params and (*base, p.params) not in have) or (not p.params and base not in have_any):
            out.append(p)
    return out


# ------------------------------------------------------------------ CSV

CSV_COLUMNS = (
    "setup", "workload", "variant", "kind", "users", "params", "status", "repeats",
    "rps_median", "rps_min", "rps_max", "rps_cv",
    "p50_ms", "p90_ms", "p99_ms", "max_ms",
    "requests", "failures", "cpu_s_per_1k_requests", "server_rss_peak_mb", "generator_cpu_peak_percent",
    "flags", "flag_reasons", "rps_repeats", "path", "key",
)


def cell_row(c: Cell) -> dict[str, Any]:
    """One cell's summary: the numbers of the full table and of the CSV."""
    t = c.throughputs
    cpu = [r.cpu_s_per_1k_requests for r in c.repeats if r.cpu_s_per_1k_requests is not None]
    return {
        "setup": c.setup,
        "workload": c.workload,
        "variant": c.variant,
        "kind": c.kind,
        "users": c.users,
        "params": ";".join(f"{k}={v}" for k, v in sorted(c.params.items())),
        "status": c.status,
        "repeats": len(c.repeats),
        "rps_median": median(t) if t else None,
        "rps_min": min(t) if t else None,
        "rps_max": max(t) if t else None,
        "rps_cv": cv(t),
        "p50_ms": median_p(c, "p50_ms"),
        "p90_ms": median_p(c, "p90_ms"),
        "p99_ms": median_p(c, "p99_ms"),
        "max_ms": max((r.latency.max_ms for r in c.repeats), default=None),
        "requests": sum(r.requests for r in c.repeats),
        "failures": sum(r.failure_count for r in c.repeats),
        "cpu_s_per_1k_requests": median(cpu) if cpu else None,
        "server_rss_peak_mb": max((r.server_rss_peak_mb for r in c.repeats), default=None),
        "generator_cpu_peak_percent": max((r.generator_cpu_peak_percent for r in c.repeats), default=None),
        "flags": ";".join(flag_codes(c)),
        "flag_reasons": " | ".join(flag_reasons(c)),
        "rps_repeats": ";".join(repr(x) for x in t),
        "path": c.path,
        "key": c.key,
    }


def _sorted_cells(run: Run) -> list[Cell]:
    order = {w: i for i, w in enumerate(workload_order({c.workload for c in run.cells}))}
    return sorted(run.cells, key=lambda c: (order.get(c.workload, 99), c.setup, c.kind, c.variant, c.users,
                                            sorted(c.params.items()), c.revision))


def cells_csv(run: Run) -> str:
    """Every cell (and every missing planned cell, status "missing") as CSV."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for c in _sorted_cells(run):
        w.writerow({k: ("" if v is None else v) for k, v in cell_row(c).items()})
    for m in missing_cells(run):
        w.writerow({"setup": m.setup, "workload": m.workload, "variant": m.variant, "users": m.users,
                    "params": ";".join(f"{k}={v}" for k, v in m.params), "status": "missing", "repeats": 0})
    return buf.getvalue()


# ------------------------------------------------------------------ page sections


def _figure(svg: str | None, caption: str = "") -> str:
    if not svg:
        return ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def _flag_badges(c: Cell) -> str:
    return "".join(f'<span class="flag" title="{esc(r)}">{esc(code)}</span>'
                   for code, r in zip(flag_codes(c), _reasons_by_code(c), strict=True))


def _reasons_by_code(c: Cell) -> list[str]:
    reasons = flag_reasons(c)
    out = []
    for code in flag_codes(c):
        match = [r for r in reasons if r.startswith(code)]
        out.append("; ".join(match) if match else code)
    return out


def _side_text(side: Side | None) -> str:
    """Best cell of one side; a generator-bound one is a lower bound (≥)."""
    if side is None:
        return MISSING
    text = f"{side.label} · {'≥ ' if is_lower_bound(side.cell) else ''}{fmt_rps(side.median_rps)}"
    codes = [f for f in flag_codes(side.cell) if f in ("generator-bound", "unstable")]
    return text + (f" ({', '.join(codes)})" if codes else "")


def _level_table(levels: Sequence[Comparison], axis_name: str) -> str:
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for c in levels:
        ci = f"{fmt(c.ci[0])}–{fmt_ratio(c.ci[1])}" if c.ci else MISSING
        outcome = {"wins": "async ahead", "loses": "async behind"}.get(c.outcome, c.outcome)
        if c.at_least:
            outcome += " (at least: the faster side is generator-bound)"
        if c.reason:
            outcome += f" ({c.reason})"
        rows.append([
            (fmt_level(c.level), c.level),
            _side_text(c.num),
            _side_text(c.den),
            (fmt_ratio(c.ratio), c.ratio),
            (ci, c.ci[0] if c.ci else None),
            (fmt_ratio(c.p99_ratio), c.p99_ratio),
            outcome,
            "; ".join(f"{x.setup} / {x.variant}: {', '.join(flag_codes(x))}" for x, _r in c.excluded) or "",
        ])
        used_flagged = any(s is not None and is_flagged(s.cell) for s in (c.num, c.den))
        classes.append("flagged" if c.excluded or used_flagged else None)
    return table_html(
        [axis_name, "best async", "best sync", "throughput ratio", "95% CI", "p99 ratio", "outcome",
         "excluded"],
        rows, sortable=False, row_classes=classes,
    )


def _verdict_section(vs: Sequence[Verdict]) -> str:
    parts = [
        '<section id="verdicts"><h2>1. Verdicts</h2>',
        "<p class=\"note\">Per workload and load level: the best async setup × variant against the best sync "
        "setup × variant, each by median throughput over its repeats. The ratio's "
        f"{fmt_level(CONFIDENCE * 100)}% interval is a percentile bootstrap over the repeats; a level counts as "
        "a win or a loss only when the whole interval lies above or below 1 and both sides have at least "
        f"{MIN_REPEATS} repeats. Cells flagged failures, server-crash, few-requests or error never enter a "
        "claim; unstable cells do (their spread is in the interval); a generator-bound cell is a lower bound, "
        "so it supports a claim only as the faster side (\"at least\") and its p99 is not compared. "
        "The crossover is the lowest level from "
        "which async wins at every higher level.</p>",
    ]
    for v in vs:
        cls = {OUTCOME_PAYS_OFF: "pays-off", OUTCOME_COSTS: "costs"}.get(v.outcome, "neutral")
        parts.append(f'<div class="verdict {cls}" id="verdict-{esc(v.workload)}">')
        parts.append(f"<h3>{esc(workload_title(v.workload))} <span class=\"muted\">({esc(v.outcome)})</span></h3>")
        parts.append(f'<p class="sentence">{esc(v.claim)}</p>')
        if v.flagged:
            parts.append(f'<p class="note"><strong>Excluded from claims:</strong> {esc("; ".join(v.flagged))}</p>')
        if v.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in v.notes) + "</ul>")
        parts.append(_figure(charts.verdict_chart(v)))
        if v.levels:
            parts.append(_level_table(v.levels, "users"))
        if v.delay_levels:
            parts.append(_figure(charts.verdict_chart(v, along="delay_ms")))
            parts.append(_level_table(v.delay_levels, "delay (ms)"))
        parts.append("</div>")
    if not vs:
        parts.append("<p>No cells were measured, so there is nothing to compare.</p>")
    parts.append("</section>")
    return "".join(parts)


def _per_workload_charts(run: Run, sid: str, title: str, chart: Any, caption: str) -> str:
    parts = [f'<section id="{sid}"><h2>{esc(title)}</h2>']
    for w in workload_order({c.workload for c in usable_cells(run)}):
        parts.append(_figure(chart(run, w), caption))
    parts.append("</section>")
    return "".join(parts)


def _model_section(run: Run) -> str:
    parts = ['<section id="model"><h2>6. Model lines</h2>']
    svg = charts.model_chart(run)
    if not svg:
        parts.append("<p>No fan-out cell ran on a slot-limited (WSGI) setup, so there is no Little's-law "
                     "ceiling to draw.</p></section>")
        return "".join(parts)
    cells, _ = axis_cells(run, "fanout")
    sample = next((c for c in cells), None)
    calls, delay, assumed = fanout_model_inputs(run, sample)
    parts.append(
        "<p>Little's law for a closed loop: N users on S concurrent slots, each request taking T seconds, "
        "cannot exceed min(N, S) ÷ T requests/s. S = workers × threads of a WSGI setup (an async view under "
        "WSGI still holds its worker for the whole request); T = calls × delay for sequential calls (sync), "
        f"about one delay when the calls overlap (sync-threads, async). Here: {fmt_level(calls)} calls of "
        f"{fmt_level(delay)} ms" + (" — <strong>assumed</strong>: the results do not record them" if assumed else "")
        + ". ASGI setups have no fixed slot count for async views and get no line.</p>"
    )
    parts.append(_figure(svg, "Pale wide lines: the ceiling; narrow lines: measured medians."))
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    top: dict[tuple[str, str], Cell] = {}
    for c in cells:
        if model_line(run, c.setup, c.variant, c) and c.repeats:
            k = (c.setup, c.variant)
            if k not in top or c.users > top[k].users:
                top[k] = c
    for (s, v), c in sorted(top.items()):
        m = model_line(run, s, v, c)
        assert m is not None
        measured = median_rps(c)
        share = measured / m.at(c.users) if measured is not None else None
        rows.append([s, v, (fmt_level(m.slots), m.slots), (fmt_ms(m.time_per_request_s * 1000),
                     m.time_per_request_s), (fmt_level(c.users), c.users), (fmt_rps(m.at(c.users)), m.at(c.users)),
                     (fmt_rps(measured), measured), (fmt_pct(share), share), ", ".join(flag_codes(c))])
        classes.append("flagged" if is_flagged(c) else None)
    parts.append(table_html(["setup", "variant", "slots S", "time per request T", "users", "ceiling",
                             "measured", "of ceiling", "flags"], rows, row_classes=classes))
    parts.append("</section>")
    return "".join(parts)


def _flags_section(run: Run) -> str:
    parts = ['<section id="flags"><h2>7. Flags and missing cells</h2>']
    flagged = [c for c in _sorted_cells(run) if is_flagged(c)]
    if flagged:
        parts.append(f"<p>{len(flagged)} cell(s) flagged. Their numbers appear hollow with a red edge on every "
                     "chart and highlighted in every table, and no verdict rests on them.</p>")
        rows: list[list[TableCell]] = [
            [c.workload, c.setup, c.variant, (fmt_level(c.users), c.users),
             ", ".join(f"{k}={v}" for k, v in sorted(c.params.items())), _flag_badges(c),
             "; ".join(flag_reasons(c))]
            for c in flagged
        ]
        parts.append(table_html(["workload", "setup", "variant", "users", "params", "flags", "reason"], rows,
                                row_classes=["flagged"] * len(rows), raw_html_cols=(5,)))
    else:
        parts.append("<p>No cell was flagged.</p>")
    missing = missing_cells(run)
    if planned_cells(run) is None:
        parts.append("<p class=\"note\">The results do not record the planned matrix, so missing cells cannot "
                     "be listed.</p>")
    elif missing:
        parts.append(f"<h3>Missing cells ({len(missing)})</h3><p>Planned by the scenario but absent from the "
                     "results (not measured, or the run stopped first):</p>")
        mrows: list[list[TableCell]] = [
            [m.workload, m.setup, m.variant, (fmt_level(m.users), m.users),
             ", ".join(f"{k}={v}" for k, v in m.params), "missing"]
            for m in missing
        ]
        parts.append(table_html(["workload", "setup", "variant", "users", "params", "status"], mrows,
                                row_classes=["missing"] * len(mrows)))
    else:
        parts.append("<p>Every planned cell has a result.</p>")
    parts.append("</section>")
    return "".join(parts)


def _when(ts: float | None) -> str:
    if ts is None:
        return MISSING
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _kv(items: Sequence[tuple[str, str]]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _num(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return fmt_level(v)
    if isinstance(v, float):
        return fmt_level(v) if v.is_integer() and abs(v) < 1e6 else fmt(v)
    return str(v)


def _value_html(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return f"<code>{esc(json.dumps(v, sort_keys=True, default=str))}</code>"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return esc(_num(v))
    return esc(v)


def _run_section(run: Run) -> str:
    parts = ['<section id="run"><h2>8. The run</h2>']
    sr = run.scenario_resolved or {}
    duration = (run.finished_at - run.started_at) if run.finished_at else None
    repeats = sorted({len(c.repeats) for c in run.cells if c.repeats})
    windows = sorted({r.duration_s for c in run.cells for r in c.repeats})
    warmups = sorted({r.warmup_s for c in run.cells for r in c.repeats})
    gc = run.generator_ceiling or {}
    gc_text = ", ".join(f"{k} {_num(v)}" for k, v in gc.items()) or MISSING
    parts.append(_kv([
        ("run", esc(run.run_id)),
        ("scenario", esc(run.scenario)),
        ("started", esc(_when(run.started_at))),
        ("finished", (esc(_when(run.finished_at)) if run.finished_at else "not finished")
         + ("" if run.complete else " — <strong>incomplete</strong>")),
        ("wall time", esc(fmt_s(duration))),
        ("repeats per cell", esc(", ".join(map(str, repeats)) or MISSING)),
        ("measured window", esc(", ".join(fmt_s(w) for w in windows) or MISSING)),
        ("warm-up", esc(", ".join(fmt_s(w) for w in warmups) or MISSING)),
        ("load-generator ceiling", esc(gc_text)),
        ("cells", esc(f"{len(run.cells):,} measured, {len(missing_cells(run)):,} missing")),
    ]))
    parts.append("<h3>Reproduce</h3>")
    parts.append(f"<pre>{esc(shlex.join(run.command)) if run.command else MISSING}</pre>")
    if run.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in run.notes) + "</ul>")
    parts.append("<h3>Setups</h3>")
    rows: list[list[TableCell]] = []
    for s in sorted(run.setups.values(), key=lambda s: s.name):
        rows.append([s.name, s.server, s.interface, s.worker_class, (str(s.workers), s.workers),
                     (str(s.threads), s.threads), s.event_loop, "yes" if s.keepalive else "no (closes every connection)",
                     ",".join(map(str, s.cpu_affinity)) or "not pinned", shlex.join(s.command), s.notes])
    parts.append(table_html(["setup", "server", "interface", "worker class", "workers", "threads", "event loop",
                             "keep-alive", "CPU affinity", "command", "notes"], rows))
    parts.append("<h3>Environment</h3>")
    parts.append(_kv([(k, _value_html(v)) for k, v in sorted((run.environment or {}).items())]))
    parts.append("<h3>Scenario as resolved</h3>")
    shown = {k: v for k, v in sr.items() if k != "cells"}
    if "cells" in sr:
        shown["cells"] = f"{len(sr['cells'])} planned cells (see the CSV)"
    parts.append(f"<pre>{esc(json.dumps(shown, indent=2, sort_keys=True, default=str))}</pre>")
    parts.append("</section>")
    return "".join(parts)


def _numbers_section(run: Run, csv_text: str) -> str:
    parts = ['<section id="numbers"><h2>9. All numbers</h2>']
    data = base64.b64encode(csv_text.encode()).decode()
    parts.append(f'<p><a download="{CSV_NAME}" href="data:text/csv;charset=utf-8;base64,{data}">Download every '
                 f"cell as CSV</a> (also written beside this page as <code>{CSV_NAME}</code>). Click a column "
                 "heading to sort. Throughput is the median over repeats, with min–max; latencies are medians of "
                 "the per-repeat percentiles.</p>")
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for c in _sorted_cells(run):
        r = cell_row(c)
        rng = f"{fmt(r['rps_min'])}–{fmt(r['rps_max'])}" if r["rps_min"] is not None else MISSING
        rows.append([
            c.workload, c.setup, c.variant, c.kind, (fmt_level(c.users), c.users), r["params"].replace(";", ", "),
            (str(r["repeats"]), r["repeats"]), (fmt(r["rps_median"]), r["rps_median"]), (rng, r["rps_min"]),
            (fmt_pct(r["rps_cv"]), r["rps_cv"]), (fmt(r["p50_ms"]), r["p50_ms"]), (fmt(r["p99_ms"]), r["p99_ms"]),
            (fmt(r["failures"]) if r["failures"] else "0", r["failures"]),
            (fmt(r["cpu_s_per_1k_requests"]), r["cpu_s_per_1k_requests"]),
            (fmt(r["server_rss_peak_mb"]), r["server_rss_peak_mb"]), _flag_badges(c),
        ])
        classes.append("flagged" if is_flagged(c) else None)
    for m in missing_cells(run):
        rows.append([m.workload, m.setup, m.variant, "", (fmt_level(m.users), m.users),
                     ", ".join(f"{k}={v}" for k, v in m.params), ("0", 0), ("missing", None), ("", None),
                     ("", None), ("", None), ("", None), ("", None), ("", None), ("", None), ""])
        classes.append("missing")
    parts.append(table_html(
        ["workload", "setup", "variant", "kind", "users", "params", "repeats", "req/s", "req/s min–max", "CV",
         "p50 ms", "p99 ms", "failures", "CPU s / 1k req", "peak RSS MB", "flags"],
        rows, row_classes=classes, raw_html_cols=(15,)))
    parts.append("</section>")
    return "".join(parts)


def render_report(run: Run, *, csv_text: str | None = None) -> str:
    """The whole page as a string."""
    csv_text = cells_csv(run) if csv_text is None else csv_text
    vs = verdicts(run)
    body: list[str] = []
    if not run.complete:
        why = "interrupted" if run.interrupted else "did not finish"
        body.append(
            f'<div class="banner" role="alert"><strong>Incomplete run:</strong> the run {why} after '
            f"{len(run.cells):,} cell(s); {len(missing_cells(run)):,} planned cell(s) have no result. Verdicts "
            "below use only the cells that finished.</div>"
        )
    toc = [("verdicts", "Verdicts"), ("throughput", "Throughput"), ("latency", "Latency"), ("heatmap", "Heat map"),
           ("cost", "Cost"), ("model", "Model lines"), ("flags", "Flags"), ("run", "The run"),
           ("numbers", "All numbers")]
    body.append('<nav class="toc">' + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in toc) + "</nav>")
    body.append(_verdict_section(vs))
    body.append(_per_workload_charts(run, "throughput", "2. Throughput vs concurrency", charts.throughput_chart,
                                     "Median over repeats; error bars min–max. Colour: setup; line style: variant."))
    body.append(_per_workload_charts(run, "latency", "3. Latency vs concurrency", charts.latency_chart,
                                     "Median over repeats of each repeat's percentile; error bars min–max."))
    hm = charts.heatmap_chart(run)
    body.append('<section id="heatmap"><h2>4. Speed-up heat map</h2>'
                + (_figure(hm, "Within each setup: best async variant ÷ best sync variant, by median throughput; "
                           "the colour scale is logarithmic and centred on 1.0×.") if hm
                   else "<p>No setup ran both a sync and an async variant of one workload.</p>") + "</section>")
    cpu, rss = charts.cpu_cost_chart(run), charts.rss_chart(run)
    body.append('<section id="cost"><h2>5. Cost</h2>' + _figure(cpu) + _figure(rss)
                + ("" if cpu or rss else "<p>No resource figures were recorded.</p>") + "</section>")
    body.append(_model_section(run))
    delay_svgs = [charts.delay_sweep_chart(run, w) for w in workload_order({c.workload for c in usable_cells(run)})]
    if any(delay_svgs):
        body.append("".join(_figure(s, "Throughput at a fixed number of users as the upstream delay grows; "
                                       "pale wide lines: Little's-law ceilings.") for s in delay_svgs if s))
    body.append(_flags_section(run))
    body.append(_run_section(run))
    body.append(_numbers_section(run, csv_text))
    subtitle = f"run {run.run_id} · scenario {run.scenario} · {_when(run.started_at)}"
    if not run.complete:
        subtitle += " · INCOMPLETE"
    return render_page("Where async pays off in Django", "".join(body), subtitle=subtitle)


def write_report(run: Run, out_dir: Path) -> Path:
    """Write index.html and cells.csv into out_dir; return the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_text = cells_csv(run)
    (out_dir / CSV_NAME).write_text(csv_text, encoding="utf-8")
    page = out_dir / HTML_NAME
    page.write_text(render_report(run, csv_text=csv_text), encoding="utf-8")
    return page


__all__ = ["PlannedCell", "cell_row", "cells_csv", "missing_cells", "planned_cells", "render_report",
           "write_report"]
