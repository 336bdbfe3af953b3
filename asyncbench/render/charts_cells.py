"""Charts of measured cells: throughput and latency against load, cost, and
the measured throughput beside its Little's-law ceiling.

Medians come from `cell.summary`; ceilings from `analysis.queueing.model_line`.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from asyncbench.analysis.queueing import DEFAULT_DELAY_MS, DEFAULT_FANOUT_CALLS, model_line
from asyncbench.analysis.selection import axis_cells, delay_sweep_cells, run_variant_kind, usable_cells, workload_order
from asyncbench.model import flags
from asyncbench.model.results import Cell, Run
from asyncbench.render.charts import (
    FLAG_EDGE,
    figure,
    latency_y,
    legend,
    params_note,
    plot_series,
    rps_y,
    series_key,
    setup_colors,
    svg,
    tick,
    user_axis,
    y_log_if_wide,
)
from asyncbench.render.format import fmt, fmt_level
from asyncbench.render.text import workload_label
from bench_site.registry import WORKLOADS

_CEILING_LABEL = "Little's-law ceiling (wide, pale)"


def _ceiling_handle() -> Line2D:
    return Line2D([], [], color="#888", linewidth=6, alpha=0.35)


def throughput_chart(run: Run, workload: str) -> str | None:
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells:
        return None
    levels = sorted({c.users for c in cells})
    title = f"{workload_label(workload)}: throughput vs concurrency"
    if pk:
        title += f" ({params_note(pk)})"
    with figure(f"thr-{workload}", height=3.8) as (fig, (ax,)):
        flagged, ys = plot_series(ax, run, cells, lambda c: c.users, rps_y, errorbars=True, xs_all=levels)
        extra: list[tuple[str, Line2D | Patch]] = []
        # The Little's-law ceiling applies where the view waits on the upstream.
        if workload in WORKLOADS and WORKLOADS[workload].uses_upstream:
            extra = _draw_model_lines(ax, run, cells, levels, ys)
        ax.set_title(title, loc="left")
        ax.set_ylabel("throughput (requests/s, mean of slices, 95% CI)")
        user_axis(ax, levels)
        y_log_if_wide(ax, ys)
        legend(ax, run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged, extra=extra)
        return svg(fig)


def _draw_model_lines(
    ax: Axes, run: Run, cells: Sequence[Cell], levels: Sequence[int], ys: list[float], *, annotate: bool = False
) -> list[tuple[str, Line2D | Patch]]:
    colors = setup_colors(run)
    drawn = False
    assumed = False
    # Variants sharing a ceiling get one label, or their labels would overprint.
    labels: dict[tuple[str, float], list[str]] = {}
    for setup, variant in sorted({series_key(c) for c in cells}):
        sample = next(c for c in cells if series_key(c) == (setup, variant))
        m = model_line(run, setup, variant, sample)
        if m is None:
            continue
        y = [m.at(u) for u in levels]
        # Solid and pale: dashes on a wide line read as noise, and the
        # measured line on top already carries the variant's style.
        ax.plot(levels, y, color=colors[setup], linewidth=6, alpha=0.25, zorder=1, solid_capstyle="butt")
        labels.setdefault((setup, round(y[-1], 6)), []).append(variant)
        ys.extend(y)
        drawn = True
        assumed = assumed or m.assumed
    if annotate:
        for (setup, top), variants in labels.items():
            ax.annotate(
                f"ceiling {fmt(top)}/s: {', '.join(variants)}",
                (levels[-1], top),
                textcoords="offset points",
                xytext=(-4, 5),
                ha="right",
                fontsize=7.5,
                color=colors[setup],
            )
    if not drawn:
        return []
    label = _CEILING_LABEL
    if assumed:
        label += f"\nassumed {DEFAULT_FANOUT_CALLS} calls × {fmt_level(DEFAULT_DELAY_MS)} ms"
    return [(label, _ceiling_handle())]


def latency_chart(run: Run, workload: str) -> str | None:
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells:
        return None
    levels = sorted({c.users for c in cells})
    with figure(f"lat-{workload}", height=3.6, ncols=2, sharey=True) as (fig, axes):
        flagged = False
        for ax, attr, name in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99")):
            f, ys = plot_series(ax, run, cells, lambda c: c.users, latency_y(attr), errorbars=True, xs_all=levels)
            flagged = flagged or f
            ax.set_title(f"{name} latency", loc="left", fontsize=10)
            user_axis(ax, levels)
            if ys and min(ys) > 0:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(tick))
                ax.yaxis.set_minor_formatter(NullFormatter())
        axes[0].set_ylabel("latency (ms, log scale)")
        suffix = f" ({params_note(pk)})" if pk else ""
        fig.suptitle(
            f"{workload_label(workload)}: latency vs concurrency{suffix}",
            x=0.01,
            ha="left",
            fontsize=11,
            fontweight="bold",
        )
        legend(axes[1], run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged)
        fig.tight_layout()
        return svg(fig)


def _top_level_cells(run: Run) -> list[Cell]:
    """Per setup x workload x variant, the cell at the highest users level."""
    best: dict[tuple[str, str, str], Cell] = {}
    for w in workload_order({c.workload for c in usable_cells(run)}):
        cells, _ = axis_cells(run, w)
        for c in cells:
            if not c.repeats:
                continue
            k = (c.setup, c.workload, c.variant)
            if k not in best or c.users > best[k].users:
                best[k] = c
    return list(best.values())


def cpu_cost_chart(run: Run) -> str | None:
    cells = [c for c in _top_level_cells(run) if c.summary.cpu_ms_per_request is not None]
    if not cells:
        return None
    colors = setup_colors(run)
    order = workload_order({x.workload for x in cells})
    kinds = {c.variant: c.kind for c in cells}
    cats = sorted(
        {(c.workload, c.variant) for c in cells},
        key=lambda k: (order.index(k[0]), kinds.get(k[1]) or run_variant_kind(run, k[1]), k[1]),
    )
    setups = sorted({c.setup for c in cells})
    by = {(c.workload, c.variant, c.setup): c for c in cells}
    bar_h = 0.8 / len(setups)
    height = 1.4 + len(cats) * (0.14 * len(setups) + 0.12)
    with figure("cpu-cost", height=height) as (fig, (ax,)):
        flagged = False
        for i, (w, v) in enumerate(cats):
            for j, s in enumerate(setups):
                c = by.get((w, v, s))
                if c is None or c.summary.cpu_ms_per_request is None:
                    continue
                f = flags.is_flagged(c)
                flagged = flagged or f
                ax.barh(
                    i - 0.4 + bar_h * (j + 0.5),
                    c.summary.cpu_ms_per_request,
                    height=bar_h * 0.9,
                    color=colors[s],
                    edgecolor=FLAG_EDGE if f else "none",
                    linewidth=1.6 if f else 0,
                    hatch="///" if f else None,
                )
        ax.set_yticks(range(len(cats)), [f"{workload_label(w)} · {v}" for w, v in cats])
        ax.invert_yaxis()
        ax.set_xlabel("server CPU seconds per 1,000 requests (total over slices, highest load level measured)")
        ax.xaxis.set_major_formatter(FuncFormatter(tick))
        ax.grid(axis="y", visible=False)
        ax.set_title("Cost: server CPU per 1,000 requests", loc="left")
        handles: list[Line2D | Patch] = [Patch(color=colors[s]) for s in setups]
        labels = list(setups)
        if flagged:
            handles.append(Patch(facecolor="white", edgecolor=FLAG_EDGE, hatch="///"))
            labels.append("flagged")
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return svg(fig)


def rss_chart(run: Run) -> str | None:
    peak: dict[str, float] = {}
    for c in usable_cells(run):
        mb = c.summary.rss_peak_mb
        if mb is not None:
            peak[c.setup] = max(mb, peak.get(c.setup, mb))
    if not peak:
        return None
    colors = setup_colors(run)
    setups = sorted(peak)
    with figure("rss", height=1.2 + 0.35 * len(setups)) as (fig, (ax,)):
        for i, s in enumerate(setups):
            ax.barh(i, peak[s], color=colors[s], height=0.6, edgecolor="none")
            ax.annotate(
                f"{fmt(peak[s])} MB", (peak[s], i), textcoords="offset points", xytext=(4, 0), va="center", fontsize=8
            )
        ax.set_yticks(range(len(setups)), setups)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("peak RSS of the server's process tree (MB, highest over all cells)")
        ax.xaxis.set_major_formatter(FuncFormatter(tick))
        ax.set_title("Cost: peak server memory per setup", loc="left")
        ax.set_xlim(0, max(peak.values()) * 1.18)
        return svg(fig)


def model_chart(run: Run, workload: str = "fanout") -> str | None:
    """Measured throughput of slot-limited setups beside their Little's-law ceiling."""
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats and model_line(run, c.setup, c.variant, c) is not None]
    if not cells:
        return None
    setups = sorted({c.setup for c in cells})
    levels = sorted({c.users for c in cells})
    with figure("model", height=3.6, ncols=len(setups)) as (fig, axes):
        flagged = False
        extra: list[tuple[str, Line2D | Patch]] = []
        for ax, s in zip(axes, setups, strict=True):
            sc = [c for c in cells if c.setup == s]
            f, ys = plot_series(ax, run, sc, lambda c: c.users, rps_y, errorbars=True, xs_all=levels)
            flagged = flagged or f
            extra = _draw_model_lines(ax, run, sc, levels, ys, annotate=True) or extra
            info = run.setups.get(s)
            slots = f" (S = {info.workers}×{max(1, info.threads)})" if info else ""
            ax.set_title(f"{s}{slots}", loc="left", fontsize=10)
            user_axis(ax, levels)
            y_log_if_wide(ax, ys)
        axes[0].set_ylabel("throughput (requests/s)")
        suffix = f" ({params_note(pk)})" if pk else ""
        fig.suptitle(
            f"{workload_label(workload)}: measured vs Little's-law ceiling{suffix}",
            x=0.01,
            ha="left",
            fontsize=11,
            fontweight="bold",
        )
        legend(axes[-1], run, setups, [c.variant for c in cells], flagged=flagged, extra=extra)
        fig.tight_layout()
        return svg(fig)


def delay_sweep_chart(run: Run, workload: str = "fanout") -> str | None:
    cells, users = delay_sweep_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells or users is None:
        return None
    delays = sorted({float(c.params["delay_ms"]) for c in cells})
    colors = setup_colors(run)
    with figure(f"delay-{workload}", height=3.6) as (fig, (ax,)):
        flagged, ys = plot_series(
            ax, run, cells, lambda c: float(c.params["delay_ms"]), rps_y, errorbars=True, xs_all=delays
        )
        assumed = False
        drawn = False
        for s, v in sorted({series_key(c) for c in cells}):
            # One model line per measured delay: each cell carries its own delay_ms.
            at_delay = {float(c.params["delay_ms"]): c for c in cells if series_key(c) == (s, v)}
            ceilings = {d: model_line(run, s, v, c) for d, c in at_delay.items()}
            if not any(ceilings.values()):
                continue
            per_delay = [m.at(users) if (m := ceilings.get(d)) is not None else float("nan") for d in delays]
            ax.plot(delays, per_delay, color=colors[s], linewidth=6, alpha=0.25, zorder=1)
            ys.extend(per_delay)
            drawn = True
            assumed = assumed or any(m.assumed for m in ceilings.values() if m is not None)
        extra: list[tuple[str, Line2D | Patch]] = [(_CEILING_LABEL, _ceiling_handle())] if drawn else []
        user_axis(ax, delays, label="upstream delay per call (ms)")
        y_log_if_wide(ax, ys)
        ax.set_ylabel("throughput (requests/s)")
        ax.set_title(
            f"{workload_label(workload)}: throughput vs upstream delay at {fmt_level(users)} users", loc="left"
        )
        legend(ax, run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged, extra=extra)
        if assumed:
            ax.text(
                0,
                -0.22,
                f"model assumes {DEFAULT_FANOUT_CALLS} calls × {fmt_level(DEFAULT_DELAY_MS)} ms: "
                "the results do not record them",
                transform=ax.transAxes,
                fontsize=8,
                color="#8a4b00",
            )
        return svg(fig)
