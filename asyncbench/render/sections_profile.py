"""The report's "Where the time goes": each profiled group's CPU per request by part.

Per group (workload x users x parameters) with profiling slices: the stacked
bars (charts_profile), a table with a link to each arm's flame graph, and one
generated sentence per async arm, comparing it with the group's cheapest sync
arm part by part. The milliseconds are the measured slices' CPU per request
times the profile's shares (asyncbench.analysis.cpu_split); the profiling
slices themselves are in no other statistic of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from asyncbench.analysis.cpu_split import (
    DJANGO,
    OTHER,
    PART_LABELS,
    PARTS,
    SERVER,
    THREADS,
    VIEW,
    WAITING,
    ArmSplit,
    splits,
)
from asyncbench.model.profiles import PROFILE_OK
from asyncbench.model.summary import params_label, users_label
from asyncbench.render.charts_profile import split_chart
from asyncbench.render.connections import lag
from asyncbench.render.format import fmt, fmt_ms
from asyncbench.render.html import TableCell, table_html
from asyncbench.render.text import workload_label, workload_title

if TYPE_CHECKING:
    from asyncbench.render.report import Page

# how a part is named inside a sentence
_IN_SENTENCE = {
    DJANGO: "Django's handler and middleware",
    SERVER: "the server",
    VIEW: "the view",
    THREADS: "threads starting and ending (no Python frame)",
    OTHER: "unclassified",
}
# below this, a part's difference is not worth a clause (ms per request)
_NEGLIGIBLE_MS = 0.005


def _order(s: ArmSplit) -> tuple[int, str, str]:
    return (0 if s.cell.kind == "sync" else 1, s.cell.variant, s.cell.setup)


def _hops(s: ArmSplit) -> str:
    return "not counted" if s.hops_per_request is None else fmt(s.hops_per_request)


def sentence(a: ArmSplit, ref: ArmSplit) -> str:
    """One async arm against the cheapest sync arm, part by part, from the results alone."""
    diff = a.cpu_ms - ref.cpu_ms
    more = "more" if diff >= 0 else "less"
    head = (
        f"{workload_label(a.cell.workload)} {a.cell.variant} under {a.cell.setup} costs {fmt_ms(abs(diff))} {more} "
        f"CPU per request than {ref.cell.variant} under {ref.cell.setup} ({fmt_ms(a.cpu_ms)} against "
        f"{fmt_ms(ref.cpu_ms)})"
    )
    deltas = sorted(((a.ms[p] - ref.ms[p], p) for p in PARTS), key=lambda x: -abs(x[0]))
    shown = [(d, p) for d, p in deltas if abs(d) >= _NEGLIGIBLE_MS]
    # parts moving both ways: each clause says its own direction
    mixed = len({d >= 0 for d, _ in shown}) > 1
    clauses = [
        f"{fmt_ms(abs(d))} {('more ' if d >= 0 else 'less ') if mixed else ''}in {_IN_SENTENCE[p]}" for d, p in shown
    ]
    text = head + ("; of it, " + ", ".join(clauses) if clauses else "")
    if a.hops_per_request is not None and ref.hops_per_request is not None:
        text += (
            f". Thread hops (sync_to_async + async_to_sync) per request: {fmt(a.hops_per_request)} "
            f"against {fmt(ref.hops_per_request)}"
        )
        wait = a.cell.summary.thread_wait_us_per_hop
        if a.hops_per_request and wait is not None:
            text += f", each sync_to_async waiting {fmt(wait)} µs on average for its thread to start it"
    lag_mean, lag_max = a.cell.summary.loop_lag_mean_ms, a.cell.summary.loop_lag_max_ms
    if lag_mean is not None:
        text += (
            f". Its event loop woke {fmt(lag_mean)} ms late on average (sampled every 20 ms), "
            f"{fmt(lag_max)} ms at worst in a window"
        )
    gc_us, full_us, full_ms = (
        a.cell.summary.gc_pause_us_per_request,
        a.cell.summary.gc_full_pause_us_per_request,
        a.cell.summary.gc_full_ms_each,
    )
    ref_gc = ref.cell.summary.gc_pause_us_per_request
    if gc_us is not None and ref_gc is not None and gc_us - ref_gc >= _NEGLIGIBLE_MS * 1000:
        text += f". The cyclic GC stopped it {fmt(gc_us)} µs per request against {fmt(ref_gc)} µs"
        if full_us and full_ms is not None:
            text += f"; {fmt(full_us)} µs of it in full collections, each a {fmt(full_ms)}-ms pause of the whole server"
    return text + "."


def _table(group: list[ArmSplit]) -> Markup:
    rows: list[list[TableCell]] = []
    for s in group:
        p = s.profile
        link = (
            Markup('<a href="{0}">flame graph</a> · <a href="{1}">stacks</a>').format(p.flamegraph, p.collapsed)
            if p.flamegraph
            else ""
        )
        rows.append(
            [
                s.arm,
                (fmt_ms(s.cpu_ms), s.cpu_ms),
                *((f"{fmt_ms(s.ms[part])} ({s.shares[part]:.0%})", s.ms[part]) for part in PARTS),
                (_hops(s), s.hops_per_request),
                (lag(s.cell.summary.loop_lag_mean_ms, s.cell.summary.loop_lag_max_ms), s.cell.summary.loop_lag_mean_ms),
                (f"{p.samples:,}", p.samples),
                (f"{p.parts.get(WAITING, 0):,}", p.parts.get(WAITING, 0)),
                (fmt(p.throughput_rps), p.throughput_rps),
                link,
            ]
        )
    header = [
        "arm",
        "CPU / request (measured)",
        *(PART_LABELS[part] for part in PARTS),
        "thread hops / request",
        "event-loop lag mean / max ms",
        "on-CPU samples",
        "waking samples (left out)",
        "req/s while profiled",
        "files",
    ]
    return table_html(header, rows, raw_html_cols=(len(header) - 1,))  # the links: the last column


def where_time_goes(page: Page) -> dict[str, Any]:
    run = page.run
    all_splits = splits(run)
    by_group: dict[tuple[str, int, tuple[tuple[str, int], ...]], list[ArmSplit]] = {}
    for s in all_splits:
        by_group.setdefault((s.cell.workload, s.cell.users, tuple(sorted(s.cell.params.items()))), []).append(s)
    order = {w: i for i, w in enumerate(page.workloads)}
    groups = []
    for (workload, users, params), group in sorted(by_group.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0])):
        group.sort(key=_order)
        extra = f", {params_label(dict(params))}" if params else ""
        title = f"{workload_title(workload)} at {users_label(users)}{extra}"
        sync = [s for s in group if s.cell.kind == "sync"]
        ref = min(sync, key=lambda s: s.cpu_ms) if sync else None
        sentences = [sentence(s, ref) for s in group if ref is not None and s.cell.kind != "sync"]
        groups.append(
            {
                "title": title,
                "chart": Markup(split_chart(f"{workload}-u{users}{extra}", title, group) or ""),
                "table": _table(group),
                "sentences": sentences,
            }
        )
    skipped = sorted(
        {f"{p.setup} / {p.variant} ({p.workload}): {p.reason}" for p in run.profiles if p.status != PROFILE_OK}
    )
    hops_counted = any(s.hops_per_request is not None for s in all_splits)
    return {
        "profiled": bool(run.profiles),
        "groups": groups,
        "skipped": skipped,
        "hops_counted": hops_counted,
        "rate": run.profiles[0].rate_hz if run.profiles else None,
    }
