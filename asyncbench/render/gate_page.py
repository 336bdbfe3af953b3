"""Rendering a gate result: terminal text, a Markdown job summary, an HTML page.

Only reads a `GateResult` (and the two runs, for their environments); decides
nothing. The HTML page goes through the report's page shell
(`html.render_page`) and is self-contained: no external URL, inline SVG.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asyncbench.gate.config import METRICS
from asyncbench.gate.decide import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REGRESSION,
    MODE_REVISIONS,
    VERDICT_BELOW_THRESHOLD,
    VERDICT_IMPROVEMENT,
    VERDICT_INVALID,
    VERDICT_NO_CHANGE,
    VERDICT_NOT_SIGNIFICANT,
    VERDICT_REGRESSION,
    Comparison,
    GateResult,
)
from asyncbench.model.results import Run
from asyncbench.render.format import MISSING, fmt, fmt_pct
from asyncbench.render.html import esc, render_page, table_html

# Most urgent first, so a reader of a long table sees what failed at the top.
_VERDICT_ORDER = {
    VERDICT_REGRESSION: 0,
    VERDICT_INVALID: 1,
    VERDICT_NOT_SIGNIFICANT: 2,
    VERDICT_BELOW_THRESHOLD: 3,
    VERDICT_IMPROVEMENT: 4,
    VERDICT_NO_CHANGE: 5,
}
_OUTCOME_TITLE = {
    EXIT_OK: "pass",
    EXIT_REGRESSION: "REGRESSION",
    EXIT_INVALID: "comparison not valid",
}
_OUTCOME_MARK = {EXIT_OK: "✅", EXIT_REGRESSION: "❌", EXIT_INVALID: "⚠️"}

METHOD = (
    "Each cell × metric is a one-sided Mann–Whitney U test on the per-repeat summaries "
    "(throughput lower / latency higher), exact with ties. Holm's correction holds the "
    "family-wise false-alarm rate at α over all tests of the gate. A comparison is a "
    "regression only when it is significant after the correction AND the change of the "
    "medians exceeds the practical threshold of its metric. The interval is a 95% "
    "percentile bootstrap of the ratio of medians."
)
METHOD_PAIRED = (
    "A/B in one job: base and head were measured in the same windows, block by block. "
    "Each cell × metric is a one-sided paired t-test on the per-block log ratios head/base "
    "(throughput lower / CPU and latency higher). Holm's correction holds the family-wise "
    "false-alarm rate at α over all tests of the gate. A comparison is a regression only "
    "when it is significant after the correction AND the change exceeds the practical "
    "threshold of its metric. The change is the geometric mean of the per-block ratios and "
    "its interval the t interval of that mean; the base and head columns are the medians "
    "of the slices, shown for scale."
)


def method(result: GateResult) -> str:
    """How this gate decided: the paired test (A/B) or Mann–Whitney (two runs)."""
    return METHOD_PAIRED if result.mode == MODE_REVISIONS else METHOD


def ordered(result: GateResult) -> list[Comparison]:
    return sorted(result.comparisons, key=lambda c: (_VERDICT_ORDER.get(c.verdict, 9), c.key, c.metric))


def _value(v: float | None, unit: str) -> str:
    if v is None:
        return MISSING
    return f"{fmt(v)} {unit}" if unit else fmt(v)


def _change(c: Comparison) -> str:
    return fmt_pct(c.change, signed=True) if c.change is not None else MISSING


def _ci(c: Comparison) -> str:
    ci = c.change_ci
    if ci is None:
        return ""
    return f"[{fmt_pct(ci[0], signed=True)}, {fmt_pct(ci[1], signed=True)}]"


def _p(c: Comparison) -> str:
    if c.p_value is None:
        return MISSING
    adjusted = f" ({fmt(c.p_adjusted, 2)})" if c.p_adjusted is not None else ""
    return f"{fmt(c.p_value, 2)}{adjusted}"


def _metric_label(name: str) -> str:
    m = METRICS.get(name)
    return m.label if m else name


def _settings(result: GateResult) -> str:
    thresholds = ", ".join(f"{_metric_label(m)} {fmt_pct(t, 2)}" for m, t in result.thresholds.items())
    mode = "A/B in one job (head vs base)" if result.mode == MODE_REVISIONS else "against a baseline"
    return (
        f"{mode}; α = {result.alpha:g} (Holm over {result.tests} tests); thresholds: {thresholds}; "
        f"at least {result.min_repeats} repeats; normalisation: {result.normalize}"
    )


# ------------------------------------------------------------------ terminal


def terminal_text(result: GateResult, *, width_key: int = 44) -> str:
    lines = [f"{_OUTCOME_TITLE[result.exit_code].upper()}: {result.headline}", f"  {_settings(result)}"]
    lines.append(f"  {result.baseline_label} → {result.current_label}")
    header = ("cell", "metric", "baseline", "current", "change", "95% CI", "p (Holm)", "verdict")
    rows = [
        (
            c.key,
            c.metric,
            _value(c.baseline_median, c.unit),
            _value(c.current_median, c.unit),
            _change(c),
            _ci(c),
            _p(c),
            c.verdict,
        )
        for c in ordered(result)
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[0] = min(widths[0], max(width_key, len(header[0])))

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            right = i in (2, 3, 4, 6)
            parts.append(cell.rjust(w) if right else cell.ljust(w))
        return "  ".join(parts).rstrip()

    lines.append("")
    lines.append(line(header))
    lines.append(line(["-" * w for w in widths]))
    lines.extend(line(r) for r in rows)
    if result.reasons and result.exit_code != EXIT_OK:
        lines.append("")
        lines.append("why:")
        lines.extend(f"  - {r}" for r in result.reasons)
    if result.warnings:
        lines.append("")
        lines.append("warnings:")
        lines.extend(f"  ! {w}" for w in result.warnings)
    lines.append(f"\n(gate took {result.elapsed_s:.2f} s)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ Markdown (CI job summary)


def _md(text: object) -> str:
    # pipes would split a table cell; newlines would end the row
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_summary(result: GateResult, *, max_rows: int = 400) -> str:
    """A GitHub job summary: headline and why, then one row per cell × metric."""
    out = [
        f"## {_OUTCOME_MARK[result.exit_code]} Performance gate: {_OUTCOME_TITLE[result.exit_code]}",
        "",
        f"**{_md(result.headline)}**",
        "",
        f"`{_md(result.baseline_label)}` → `{_md(result.current_label)}` · {_md(_settings(result))}",
        "",
    ]
    if result.exit_code != EXIT_OK and result.reasons:
        out += ["", "### Why", ""]
        out += [f"- {_md(r)}" for r in result.reasons]
    if result.warnings:
        out += ["", f"<details><summary>Warnings ({len(result.warnings)})</summary>", ""]
        out += [f"- {_md(w)}" for w in result.warnings]
        out += ["", "</details>"]
    rows = ordered(result)
    out += [
        "",
        "### Cells",
        "",
        "| cell | metric | baseline | current | change (95% CI) | p (Holm) | verdict |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for c in rows[:max_rows]:
        verdict = f"**{c.verdict}**" if c.verdict in (VERDICT_REGRESSION, VERDICT_INVALID) else c.verdict
        out.append(
            f"| {_md(c.key)} | {_md(c.metric)} | {_md(_value(c.baseline_median, c.unit))} | "
            f"{_md(_value(c.current_median, c.unit))} | {_md(_change(c))} {_md(_ci(c))} | "
            f"{_md(_p(c))} | {verdict} |"
        )
    if len(rows) > max_rows:
        out.append(f"\n… and {len(rows) - max_rows} more rows: see the comparison page.")
    out += ["", f"<sub>{_md(method(result))} Gate time {result.elapsed_s:.2f} s.</sub>", ""]
    return "\n".join(out)


# ------------------------------------------------------------------ HTML comparison page


def _strip_svg(c: Comparison, *, width: int = 170, height: int = 26) -> str:
    """The repeats of both sides as dots on one axis: the spread behind the p-value."""
    values = list(c.baseline) + list(c.current)
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or abs(hi) or 1.0
    lo -= span * 0.05
    hi += span * 0.05

    def x(v: float) -> float:
        return 6 + (v - lo) / (hi - lo) * (width - 12)

    dots = [f'<circle cx="{x(v):.1f}" cy="8" r="3" fill="#8a94a0"/>' for v in c.baseline]
    colour = "#b3261e" if c.verdict == VERDICT_REGRESSION else "#1f5fa8"
    dots += [f'<circle cx="{x(v):.1f}" cy="19" r="3" fill="{colour}"/>' for v in c.current]
    title = (
        f"baseline (grey, top): {', '.join(fmt(v) for v in c.baseline)}; "
        f"current (bottom): {', '.join(fmt(v) for v in c.current)}"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
        f'<line x1="4" y1="13.5" x2="{width - 4}" y2="13.5" stroke="#d8dde3"/>{"".join(dots)}</svg>'
    )


def _env_rows(baseline: Run | None, current: Run | None) -> list[tuple[str, str, str]]:
    def flat(run: Run | None) -> dict[str, str]:
        if run is None:
            return {}
        env = run.environment.as_dict()
        out: dict[str, str] = {}
        for k, v in env.items():
            if k == "packages" and isinstance(v, Mapping):
                for name, ver in v.items():
                    out[f"package {name}"] = str(ver)
            elif k == "database" and isinstance(v, Mapping):
                for dk, dv in v.items():
                    if dk not in ("url", "dsn", "password"):
                        out[f"database {dk}"] = str(dv)
            else:
                out[k] = str(v)
        return out

    b, c = flat(baseline), flat(current)
    return [(k, b.get(k, MISSING), c.get(k, MISSING)) for k in sorted(set(b) | set(c))]


def html_comparison(result: GateResult, baseline: Run | None, current: Run | None) -> str:
    """A self-contained comparison page: outcome, reasons, every cell, environments."""
    cls = {EXIT_OK: "pays-off", EXIT_REGRESSION: "costs", EXIT_INVALID: ""}[result.exit_code]
    parts = [
        f'<div class="verdict {cls}"><p class="sentence">{esc(_OUTCOME_MARK[result.exit_code])} '
        f"{esc(_OUTCOME_TITLE[result.exit_code])}: {esc(result.headline)}</p>"
        f'<p class="muted">{esc(result.baseline_label)} → {esc(result.current_label)}<br>'
        f"{esc(_settings(result))}</p></div>",
    ]
    if result.exit_code == EXIT_INVALID:
        parts.append(
            '<div class="banner"><strong>Nothing was decided.</strong> The comparison is not valid for '
            "the reasons below; a number on this page is not evidence of a regression or of its absence.</div>"
        )
    if result.reasons:
        title = "Why" if result.exit_code != EXIT_OK else "Summary"
        parts.append(f"<h2>{title}</h2><ul>" + "".join(f"<li>{esc(r)}</li>" for r in result.reasons) + "</ul>")
    if result.warnings:
        parts.append(
            '<h2>Warnings</h2><div class="banner"><ul>'
            + "".join(f"<li>{esc(w)}</li>" for w in result.warnings)
            + "</ul></div>"
        )

    rows: list[list[Any]] = []
    classes: list[str | None] = []
    for c in ordered(result):
        ci = c.change_ci
        rows.append(
            [
                c.key,
                _metric_label(c.metric),
                (_value(c.baseline_median, c.unit), c.baseline_median),
                (_value(c.current_median, c.unit), c.current_median),
                (_change(c), c.change),
                (_ci(c), ci[0] if ci else None),
                (fmt(c.p_value, 2) if c.p_value is not None else MISSING, c.p_value),
                (fmt(c.p_adjusted, 2) if c.p_adjusted is not None else MISSING, c.p_adjusted),
                (fmt_pct(c.threshold, 2), c.threshold),
                (f"{len(c.baseline)} / {len(c.current)}", len(c.current)),
                _strip_svg(c),
                c.verdict + ("".join(f" — {p}" for p in c.problems[:2]) if c.problems else ""),
            ]
        )
        classes.append("flagged" if c.verdict in (VERDICT_REGRESSION, VERDICT_INVALID) else None)
    parts.append("<h2>Cells</h2>")
    parts.append(
        '<p class="note">One row per cell × metric, most urgent first; click a header to sort. '
        "The dots are the repeats (grey: baseline, top; colour: current, bottom).</p>"
    )
    parts.append(
        table_html(
            [
                "cell",
                "metric",
                "baseline (median)",
                "current (median)",
                "change",
                "95% CI",
                "p",
                "p (Holm)",
                "threshold",
                "repeats",
                "repeats, plotted",
                "verdict",
            ],
            rows,
            row_classes=classes,
            raw_html_cols=(10,),
        )
    )
    parts.append(f"<h2>Method</h2><p>{esc(method(result))}</p>")
    if current is baseline or baseline is None or current is None:
        # A/B in one job: one run, one environment
        one = _env_rows(baseline or current, None)
        if one:
            parts.append("<h2>Environment</h2>")
            parts.append(table_html(["", "run"], [(k, b) for k, b, _ in one], sortable=False))
    else:
        env_rows = _env_rows(baseline, current)
        parts.append("<h2>Environments</h2>")
        parts.append('<p class="note">Rows that differ between the runs are highlighted.</p>')
        parts.append(
            table_html(
                ["", "baseline", "current"],
                env_rows,
                sortable=False,
                row_classes=[None if b == c else "flagged" for _, b, c in env_rows],
            )
        )
    parts.append(f'<p class="note">Gate evaluated in {result.elapsed_s:.2f} s.</p>')
    title = f"Performance gate: {_OUTCOME_TITLE[result.exit_code]}"
    return render_page(title, "\n".join(parts), subtitle=f"{result.baseline_label} → {result.current_label}")


# ------------------------------------------------------------------ files


def write_outputs(
    result: GateResult,
    baseline: Run | None,
    current: Run | None,
    out_dir: str | os.PathLike[str],
    *,
    stem: str = "gate",
) -> dict[str, Path]:
    """Write <stem>.md, <stem>.html and <stem>.json into out_dir (the run's folder).

    The JSON carries `exit_code`, so a CI step can tell a regression (1) from
    an invalid comparison (2) even when a wrapper such as make has collapsed
    every failure into one status (the example workflow reads gate.json).
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": d / f"{stem}.md",
        "html": d / f"{stem}.html",
        "json": d / f"{stem}.json",
    }
    paths["markdown"].write_text(markdown_summary(result))
    paths["html"].write_text(html_comparison(result, baseline, current))
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    return paths
