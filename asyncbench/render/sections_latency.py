"""The report section "Latency at the same load": a verdict line, a chart and the points, per workload.

Self-contained: its context comes from `Run.latency` alone (the curves of
the `[latency]` phase, asyncbench.model.latency) through
asyncbench.analysis.latency; a run without the phase gets one sentence
saying how to turn it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from asyncbench.analysis.latency import Estimate, LatencyVerdict, PointStats, curve_stats, latency_verdict
from asyncbench.model.latency import ArmCapacity, LatencyCurves
from asyncbench.render import charts_latency
from asyncbench.render.format import MISSING, fmt, fmt_ms, fmt_pct, fmt_ratio, fmt_rps
from asyncbench.render.html import TableCell, table_html
from asyncbench.render.text import workload_title

if TYPE_CHECKING:
    from asyncbench.render.report import Page

METHOD = (
    "Every other latency in this report comes from a closed loop at saturation, where p99 is about users ÷ "
    "throughput and so only mirrors throughput. Here each arm is loaded at fixed arrival rates (open model, "
    "latency from the intended send time, so a server that falls behind shows it as latency): fractions of its "
    "own capacity (its closed-loop throughput, from this run's cells or a probe slice), and the same fractions "
    "of the slower twin's capacity (the slower of the best sync and the best async arm) offered to every arm, "
    "so twins are compared at equal load. Each point is "
    "several slices in randomized blocks; p50 and p99 are per slice, their geometric mean with a 95% "
    "t-interval. A point that dropped, failed or left requests unanswered could not keep up: it is labelled "
    "past capacity, drawn hollow in red, and never used in the sentence."
)


def _ci(e: Estimate | None) -> str:
    if e is None:
        return MISSING
    if e.lo is None or e.hi is None:
        return f"{fmt_ms(e.value)} (no interval: {e.n} slice{'s' if e.n != 1 else ''})"
    return f"{fmt_ms(e.value)} ({fmt(e.lo)}–{fmt(e.hi)})"


def latency_claim(v: LatencyVerdict) -> str:
    """The verdict line: "at N req/s (X% of sync's capacity), async answers in x ms p99 vs y ms (sync)"."""
    a, s = v.async_side, v.sync_side
    if v.rate is None or a is None or s is None or a.p99 is None or s.p99 is None:
        return f"No comparison at the same load: {v.why}."
    frac = v.sync_fraction
    share = f" ({fmt_pct(frac, 2)} of sync's capacity)" if frac is not None else ""
    head = f"at {fmt(v.rate)} req/s{share}, async answers in {fmt(a.p99.value)} ms p99 vs {fmt(s.p99.value)} ms (sync)"
    ratio = v.p99_ratio
    verdict = {"faster": "async is faster at this load", "slower": "async is slower at this load"}.get(
        v.separated, "the p99 intervals overlap: no difference claimed"
    )
    return (
        f"{head[0].upper()}{head[1:]}: async = {a.point.arm} ({_ci(a.p99)}), sync = {s.point.arm} ({_ci(s.p99)}), "
        f"p99 ratio {fmt_ratio(ratio)}; {verdict}. p50 {fmt_ms(a.p50.value if a.p50 else None)} vs "
        f"{fmt_ms(s.p50.value if s.p50 else None)}."
    )


def _points_table(stats: list[PointStats]) -> Markup:
    rows: list[list[TableCell]] = []
    classes: list[str | None] = []
    for s in stats:
        p = s.point
        basis = "equal load" if p.equal_load else "own"
        of = f"{p.fraction:g} × {'its own' if p.of_arm == p.arm else p.of_arm}"
        rows.append(
            [
                p.arm,
                p.kind,
                (fmt_rps(p.rate_rps), p.rate_rps),
                f"{basis}: {of}",
                (fmt_pct(s.own_fraction, 2), s.own_fraction),
                (fmt_rps(s.achieved_rps), s.achieved_rps),
                (_ci(s.p50), s.p50.value if s.p50 else None),
                (_ci(s.p99), s.p99.value if s.p99 else None),
                (str(s.slices), s.slices),
                (f"{s.lost:,} of {s.due:,}", s.lost),
                s.label,
            ]
        )
        classes.append("flagged" if not s.held else None)
    return table_html(
        [
            "arm",
            "kind",
            "offered",
            "rate rule",
            "of own capacity",
            "answered",
            "p50 (95% CI)",
            "p99 (95% CI)",
            "slices",
            "lost",
            "label",
        ],
        rows,
        row_classes=classes,
    )


def _capacities(curves: LatencyCurves) -> str:
    def one(c: ArmCapacity) -> str:
        slices = f"{c.slices} slice{'s' if c.slices != 1 else ''}"
        flags = f"; {', '.join(c.flags)}" if c.flags else ""
        return f"{c.arm} {fmt_rps(c.capacity_rps)} ({c.source} at {c.users} users, {slices}{flags})"

    return "; ".join(one(c) for c in curves.capacities)


def latency_load(page: Page) -> dict[str, Any]:
    run = page.run
    out = []
    for curves in run.latency:
        v = latency_verdict(curves)
        stats = curve_stats(curves)
        out.append(
            {
                "workload": curves.workload,
                "title": workload_title(curves.workload),
                "claim": latency_claim(v),
                "capacities": _capacities(curves) or MISSING,
                "how": f"{curves.blocks} block(s), stopped: {curves.stop_reason or 'in progress'}; "
                f"{curves.arrival} arrivals, {fmt(curves.window_s)}-s windows, "
                f"{curves.connections} connections per arm",
                "chart": Markup(charts_latency.latency_load_chart(run, curves) or ""),
                "table": _points_table(stats) if stats else "",
            }
        )
    return {"method": METHOD, "workloads": out}
