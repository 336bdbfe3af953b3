"""The report's closing sections: flags and missing cells, the run itself, every number.

Each function returns its template's context. The words about a flag come
from the one policy table, `model.flags.POLICY`.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from asyncbench.model import flags
from asyncbench.model.endpoints import Catalog
from asyncbench.model.flags import POLICY, InGate, InVerdicts
from asyncbench.model.machine import flat
from asyncbench.model.results import NOT_MEASURED, Cell, Run
from asyncbench.model.summary import params_label
from asyncbench.render.cells import sorted_cells
from asyncbench.render.csv import CSV_NAME, cell_row
from asyncbench.render.format import MISSING, fmt, fmt_level, fmt_pct, fmt_s
from asyncbench.render.html import TableCell, render, table_html
from asyncbench.render.text import deployment_lines

if TYPE_CHECKING:
    from asyncbench.render.report import Page

Context = dict[str, Any]


# ------------------------------------------------------------------ flag words

# What a policy means for a reader, by the policy's own values.
IN_VERDICTS = {
    InVerdicts.USE: "the verdicts use the cell (its spread is in the interval)",
    InVerdicts.LOWER_BOUND: "the verdicts use its throughput as a lower bound: it supports a claim only as the "
    'faster side ("at least"), and its p99 is not compared',
    InVerdicts.EXCLUDE: "the verdicts leave the cell out and name it",
}
IN_GATE = {
    InGate.WARN: "the gate compares it with a warning",
    InGate.BLOCK: "the gate does not compare it (its outcome is invalid)",
}


def flag_policy(code: str) -> str:
    """One sentence per flag: what it says, and what the verdicts and the gate do with it."""
    p = flags.policy(code)
    return f"{p.meaning}; {IN_VERDICTS[p.verdicts]}; {IN_GATE[p.gate]}."


def _either(codes: Sequence[str]) -> str:
    return codes[0] if len(codes) == 1 else f"{', '.join(codes[:-1])} or {codes[-1]}"


def verdict_policy() -> str:
    """How the verdicts treat flagged cells, in the words of POLICY."""
    by: dict[InVerdicts, list[str]] = {}
    for p in POLICY.values():
        by.setdefault(p.verdicts, []).append(p.code)
    parts = []
    if excluded := by.get(InVerdicts.EXCLUDE):
        parts.append(f"Cells flagged {_either(excluded)} never enter a claim")
    if used := by.get(InVerdicts.USE):
        parts.append(f"{_either(used)} cells do (their spread is in the interval)")
    if lower := by.get(InVerdicts.LOWER_BOUND):
        parts.append(
            f"a {_either(lower)} cell is a lower bound, so it supports a claim only as the faster side "
            '("at least") and its p99 is not compared'
        )
    return "; ".join(parts) + "."


def badges(c: Cell) -> Markup:
    """The flag codes of a cell as badges, each with its reasons as a tooltip."""
    reasons = flags.reasons(c)
    pairs = []
    for code in c.summary.flags:
        match = [r for r in reasons if r.startswith(code)]
        pairs.append((code, "; ".join(match) if match else code))
    return Markup(render("badges.html.j2", flags=pairs).strip())


# ------------------------------------------------------------------ 7. flags and missing cells


def flags_section(page: Page) -> Context:
    flagged = [c for c in sorted_cells(page.run) if c.summary.flagged]
    present = {code for c in flagged for code in c.summary.flags}
    order = [*POLICY, *sorted(present - set(POLICY))]
    table = (
        table_html(
            ["workload", "setup", "variant", "users", "params", "flags", "reason"],
            [
                [
                    c.workload,
                    c.setup,
                    c.variant,
                    (fmt_level(c.users), c.users),
                    c.summary.params_label,
                    badges(c),
                    "; ".join(flags.reasons(c)),
                ]
                for c in flagged
            ],
            row_classes=["flagged"] * len(flagged),
            raw_html_cols=(5,),
        )
        if flagged
        else ""
    )
    missing_table = (
        table_html(
            ["workload", "setup", "variant", "users", "params", "status"],
            [
                [m.workload, m.setup, m.variant, (fmt_level(m.users), m.users), params_label(m.params), "missing"]
                for m in page.missing
            ],
            row_classes=["missing"] * len(page.missing),
        )
        if page.missing
        else ""
    )
    return {
        "count": len(flagged),
        "policy": [(code, flag_policy(code)) for code in order if code in present],
        "table": table,
        "planned_known": page.planned_known,
        "missing": len(page.missing),
        "missing_table": missing_table,
    }


# ------------------------------------------------------------------ 8. the run


def when(ts: float | None) -> str:
    if ts is None:
        return MISSING
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return fmt_level(v)
    if isinstance(v, float):
        return fmt_level(v) if v.is_integer() and abs(v) < 1e6 else fmt(v)
    return str(v)


def _value(v: Any) -> str | Markup:
    if isinstance(v, (dict, list)):
        return Markup("<code>{}</code>").format(json.dumps(v, sort_keys=True, default=str))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(v)
    return str(v)


def _range(values: Sequence[int]) -> str:
    """ "3", "5–60": slices per cell vary with how fast each group reached its precision."""
    if not values:
        return MISSING
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _windows(values: Sequence[float]) -> str:
    if not values:
        return MISSING
    if len(values) <= 3:
        return ", ".join(fmt_s(w) for w in values)
    return f"{fmt_s(min(values))} to {fmt_s(max(values))}"


def _groups(run: Run) -> str:
    """How the groups stopped, e.g. "12 groups: 10 precision, 2 budget"."""
    if not run.groups:
        return MISSING
    reasons = Counter(g.stop_reason for g in run.groups)
    blocks = [g.blocks for g in run.groups]
    stops = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return f"{len(run.groups)} groups, {_range(blocks)} blocks each; stopped on: {stops}"


def _endpoints(run: Run) -> Markup | str:
    """The scenario's own endpoints ([endpoints.<name>]): what each variant requests and expects."""
    catalog = Catalog.from_resolved(run.scenario_resolved)
    if not catalog.endpoints:
        return ""
    rows: list[list[TableCell]] = []
    for e in catalog.endpoints.values():
        sent = ", ".join(f"{k}: {v}" for k, v in e.headers.items())
        body = f"{len(e.body.encode()):,} bytes" if e.body else "none"
        for v in e.variants:
            twins = "byte-identical" if e.identical_bodies else "status only"
            rows.append([e.name, v.name, v.kind, e.method, v.path, str(e.status), twins, body, sent or MISSING])
    return table_html(
        ["endpoint", "variant", "kind", "method", "path", "status", "twins checked", "body", "headers"], rows
    )


def the_run(page: Page) -> Context:
    run = page.run
    sr = run.scenario_resolved or {}
    duration = (run.finished_at - run.started_at) if run.finished_at else None
    repeats = sorted({len(c.repeats) for c in run.cells if c.repeats})
    windows = sorted({r.duration_s for c in run.cells for r in c.repeats})
    warmups = sorted({r.warmup_s for c in run.cells for r in c.repeats})
    ceiling = ", ".join(f"{k} {_num(v)}" for k, v in flat(run.generator_ceiling).items()) or MISSING
    finished = when(run.finished_at) if run.finished_at else "not finished"
    facts: list[tuple[str, str | Markup]] = [
        ("run", run.run_id),
        ("scenario", run.scenario),
        ("started", when(run.started_at)),
        ("finished", finished if run.complete else Markup("{} — <strong>incomplete</strong>").format(finished)),
        ("wall time", fmt_s(duration)),
        ("results version", str(run.schema_version)),
        ("slices per cell" if run.schema_version >= 2 else "repeats per cell", _range(repeats)),
        ("measured window", _windows(windows)),
        ("warm-up" if run.schema_version < 2 else "settle", _windows(warmups)),
        ("comparison groups", _groups(run)),
        ("load-generator ceiling", ceiling),
        ("cells", f"{len(run.cells):,} measured, {len(page.missing):,} missing"),
    ]
    # run --target: the servers were an existing deployment's, not started here
    remote = bool(run.environment.targets)
    if remote:
        facts.insert(2, ("servers", " ".join(deployment_lines(run))))
    setups = table_html(
        [
            "setup",
            "server",
            "interface",
            "worker class",
            "workers",
            "threads",
            "event loop",
            "keep-alive",
            "CPU affinity",
            "command",
            "notes",
            *(["server CPU and RSS"] if remote else []),
        ],
        [
            [
                s.name,
                s.server,
                s.interface,
                s.worker_class,
                (str(s.workers), s.workers) if not s.target else "unknown",
                (str(s.threads), s.threads) if not s.target else "unknown",
                s.event_loop,
                ("yes" if s.keepalive else "no (closes every connection)") if not s.target else "unknown",
                ",".join(map(str, s.cpu_affinity)) or ("not pinned" if not s.target else "not known"),
                shlex.join(s.command) if not s.target else f"none: an existing deployment at {s.target}",
                s.notes,
                *([s.resources + (f" ({s.agent})" if s.agent else "")] if remote else []),
            ]
            for s in sorted(run.setups.values(), key=lambda s: s.name)
        ],
    )
    shown = {k: v for k, v in sr.items() if k != "cells"}
    if "cells" in sr:
        shown["cells"] = f"{len(sr['cells'])} planned cells (see the CSV)"
    return {
        "facts": facts,
        "command": shlex.join(run.command) if run.command else MISSING,
        "notes": list(run.notes),
        "setups": setups,
        "endpoints": _endpoints(run),
        "environment": [(k, _value(v)) for k, v in sorted(run.environment.as_dict().items())],
        "scenario": json.dumps(shown, indent=2, sort_keys=True, default=str),
    }


# ------------------------------------------------------------------ 9. all numbers


def numbers(page: Page) -> Context:
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for c in sorted_cells(page.run):
        r = cell_row(c)
        ci = f"{fmt(r['rps_lo'])}–{fmt(r['rps_hi'])}" if r["rps_lo"] is not None else MISSING
        cpu_ci = f"{fmt(r['cpu_lo'])}–{fmt(r['cpu_hi'])}" if r["cpu_lo"] is not None else ""
        p99 = fmt(r["p99_ms"]) + (" (thin)" if r["p99_thin"] else "")
        # an existing deployment without an agent: "not measured", never 0 or a blank
        unmeasured = page.run.resources(c.setup) == NOT_MEASURED
        cpu: TableCell = (
            (NOT_MEASURED, None) if unmeasured else (fmt(r["cpu_s_per_1k_requests"]), r["cpu_s_per_1k_requests"])
        )
        rss: TableCell = (NOT_MEASURED, None) if unmeasured else (fmt(r["server_rss_peak_mb"]), r["server_rss_peak_mb"])
        rows.append(
            [
                c.workload,
                c.setup,
                c.variant,
                c.kind,
                (fmt_level(c.users), c.users),
                c.summary.params_label,
                (str(r["repeats"]), r["repeats"]),
                (str(r["blocks"]), r["blocks"]),
                (fmt(r["rps_mean"]), r["rps_mean"]),
                (ci, r["rps_lo"]),
                (fmt_pct(r["rps_cv"]), r["rps_cv"]),
                (fmt(r["p50_ms"]), r["p50_ms"]),
                (p99, r["p99_ms"]),
                (f"{r['latency_samples']:,}", r["latency_samples"]),
                (fmt(r["failures"]) if r["failures"] else "0", r["failures"]),
                cpu,
                ("" if unmeasured else cpu_ci, None if unmeasured else r["cpu_lo"]),
                rss,
                badges(c),
            ]
        )
        classes.append("flagged" if c.summary.flagged else None)
    for m in page.missing:
        empty: TableCell = ("", None)
        rows.append(
            [
                m.workload,
                m.setup,
                m.variant,
                "",
                (fmt_level(m.users), m.users),
                params_label(m.params),
                ("0", 0),
                ("", None),
                ("missing", None),
                *[empty] * 10,
                "",
            ]
        )
        classes.append("missing")
    table = table_html(
        [
            "workload",
            "setup",
            "variant",
            "kind",
            "users",
            "params",
            "slices",
            "blocks",
            "req/s (mean)",
            "req/s 95% CI",
            "CV per slice",
            "p50 ms",
            "p99 ms",
            "latency samples",
            "failures",
            "CPU s / 1k req",
            "CPU 95% CI",
            "peak RSS MB",
            "flags",
        ],
        rows,
        row_classes=classes,
        raw_html_cols=(19,),
    )
    return {
        "csv_name": CSV_NAME,
        "csv_data": base64.b64encode(page.csv_text.encode()).decode(),
        "table": table,
    }
