"""Charts of comparisons: each verdict's async/sync ratio with its interval,
and the per-setup speed-up heat map.

The verdict chart plots the `Comparison` objects of a `Verdict` as they are.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from asyncbench.analysis.comparison import LOSES, WINS
from asyncbench.analysis.selection import axis_cells, cell_kind, usable_cells, workload_order
from asyncbench.analysis.verdict import Verdict
from asyncbench.model import flags
from asyncbench.model.results import Cell, Run
from asyncbench.render.charts import FLAG_EDGE, figure, svg, user_axis
from asyncbench.render.format import fmt_level, fmt_ratio
from asyncbench.render.text import workload_label

_GOOD, _BAD, _NEUTRAL = "#1b7a3a", "#b3261e", "#777"


def verdict_chart(verdict: Verdict, *, along: str = "users") -> str | None:
    """Best async / best sync throughput per level with its 95% interval."""
    levels = verdict.levels if along == "users" else verdict.delay_levels
    pts = [c for c in levels if c.ratio is not None]
    if not pts:
        return None
    xlabel = (
        "concurrent users" if along == "users" else f"upstream delay (ms), at {fmt_level(verdict.delay_users)} users"
    )
    with figure(f"verdict-{verdict.workload}-{along}", height=2.7) as (fig, (ax,)):
        ax.axhline(1.0, color="#333", linewidth=1)
        for c in pts:
            assert c.ratio is not None
            color = _GOOD if c.outcome == WINS else _BAD if c.outcome == LOSES else _NEUTRAL
            if c.ci is not None:
                ax.errorbar(
                    [c.level],
                    [c.ratio],
                    yerr=[[c.ratio - c.ci[0]], [c.ci[1] - c.ratio]],
                    fmt="o",
                    color=color,
                    capsize=4,
                    markersize=6,
                    zorder=3,
                )
            else:
                # No interval (single repeat): hollow, so it does not read as a claim.
                ax.plot(
                    [c.level],
                    [c.ratio],
                    marker="o",
                    markerfacecolor="white",
                    markeredgecolor=color,
                    markersize=7,
                    linestyle="none",
                    zorder=3,
                )
            ax.annotate(fmt_ratio(c.ratio), (c.level, c.ratio), textcoords="offset points", xytext=(7, 4), fontsize=8)
        ax.set_yscale("log")
        ys = [v for c in pts for v in ((c.ci or (c.ratio, c.ratio)) + (c.ratio,)) if v]
        lo, hi = min(*ys, 0.8), max(*ys, 1.25)
        ax.set_ylim(lo / 1.15, hi * 1.15)
        ax.axhspan(1.0, hi * 1.15, color=_GOOD, alpha=0.05, zorder=0)
        ax.axhspan(lo / 1.15, 1.0, color=_BAD, alpha=0.05, zorder=0)
        ax.yaxis.set_major_locator(FixedLocator(_ratio_ticks(lo / 1.15, hi * 1.15)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt_ratio(y)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        user_axis(ax, [c.level for c in levels], label=xlabel)
        if along == "delay_ms":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{fmt_level(x)}"))
        x = verdict.crossover if along == "users" else verdict.delay_crossover_ms
        if x is not None:
            ax.axvline(x, color=_GOOD, linestyle=":", linewidth=1.2)
            ax.annotate("crossover", (x, hi), textcoords="offset points", xytext=(4, -10), fontsize=8, color=_GOOD)
        ax.set_ylabel("async / sync throughput")
        what = "users" if along == "users" else "upstream delay"
        ax.set_title(f"{workload_label(verdict.workload)}: best async vs best sync by {what} (95% CI)", loc="left")
        handles = [
            Line2D([], [], marker="o", color=_GOOD, linestyle="none", label="async ahead"),
            Line2D([], [], marker="o", color=_BAD, linestyle="none", label="async behind"),
            Line2D([], [], marker="o", color=_NEUTRAL, linestyle="none", label="no difference detected"),
            Line2D(
                [],
                [],
                marker="o",
                color=_NEUTRAL,
                markerfacecolor="white",
                linestyle="none",
                label="no interval (no claim)",
            ),
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return svg(fig)


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    cands = [0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 50.0]
    ticks = [t for t in cands if lo <= t <= hi]
    if len(ticks) > 7:
        keep = {0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0}
        ticks = [t for t in ticks if t in keep]
    return ticks


HeatValues = dict[tuple[str, str, int], tuple[float | None, bool]]


def heatmap_rows(run: Run) -> tuple[list[tuple[str, str]], list[int], HeatValues]:
    """(rows, users, values): async/sync ratio per workload x setup x users.

    Within one setup: the best async variant over the best sync variant, by
    the summaries' mean throughput. The bool says a flagged cell went into
    that number (unlike a verdict, the heat map shows every measured cell).
    """
    values: HeatValues = {}
    rows: list[tuple[str, str]] = []
    users: set[int] = set()
    for w in workload_order({c.workload for c in usable_cells(run)}):
        cells, _pk = axis_cells(run, w)
        for s in sorted({c.setup for c in cells}):
            by_u: dict[int, list[Cell]] = {}
            for c in cells:
                if c.setup == s and c.repeats:
                    by_u.setdefault(c.users, []).append(c)
            row_has = False
            for u, cs in by_u.items():
                a = [c for c in cs if cell_kind(c) == "async"]
                b = [c for c in cs if cell_kind(c) == "sync"]
                if not a or not b:
                    continue
                ba = max(a, key=lambda c: c.summary.rps or 0.0)
                bb = max(b, key=lambda c: c.summary.rps or 0.0)
                ma, mb = ba.summary.rps, bb.summary.rps
                ratio = ma / mb if ma is not None and mb else None
                values[(w, s, u)] = (ratio, flags.is_flagged(ba) or flags.is_flagged(bb))
                users.add(u)
                row_has = True
            if row_has:
                rows.append((w, s))
    return rows, sorted(users), values


def heatmap_chart(run: Run) -> str | None:
    rows, users, values = heatmap_rows(run)
    if not rows:
        return None
    grid = np.full((len(rows), len(users)), np.nan)
    for i, (w, s) in enumerate(rows):
        for j, u in enumerate(users):
            v = values.get((w, s, u))
            if v and v[0]:
                grid[i, j] = math.log2(v[0])
    finite = grid[np.isfinite(grid)]
    m = max(float(np.max(np.abs(finite))) if finite.size else 0.0, math.log2(1.25))
    height = 1.6 + 0.32 * len(rows)
    with figure("heatmap", height=height) as (fig, (ax,)):
        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee")
        im = ax.imshow(
            np.ma.masked_invalid(grid), cmap=cmap, norm=TwoSlopeNorm(vmin=-m, vcenter=0.0, vmax=m), aspect="auto"
        )
        ax.grid(False)
        ax.set_xticks(range(len(users)), [fmt_level(u) for u in users])
        ax.set_yticks(range(len(rows)), [f"{workload_label(w)} · {s}" for w, s in rows])
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("workload · setup")
        for i, (w, s) in enumerate(rows):
            for j, u in enumerate(users):
                v = values.get((w, s, u))
                if v is None or v[0] is None:
                    ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="#777")
                    continue
                dark = abs(grid[i, j]) > 0.6 * m
                ax.text(
                    j,
                    i,
                    fmt_ratio(v[0]) + (" ⚑" if v[1] else ""),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "#111",
                    fontweight="bold" if v[1] else "normal",
                )
                if v[1]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=FLAG_EDGE, linewidth=1.8))
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        ticks = [t for t in (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0) if -m <= t <= m]
        cb.set_ticks(ticks)
        cb.set_ticklabels([fmt_ratio(2**t) for t in ticks])
        cb.set_label("async / sync throughput (same setup)")
        ax.set_title("Speed-up: best async variant / best sync variant, per setup", loc="left")
        ax.text(
            0,
            -0.6 / height * 2.2,
            "blue: async faster · red: async slower · ⚑ red box: a flagged cell went into the ratio · –: not measured",
            transform=ax.transAxes,
            fontsize=8,
            color="#555",
            va="top",
        )
        return svg(fig)
