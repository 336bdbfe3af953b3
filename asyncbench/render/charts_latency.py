"""The chart of latency at the same load: p50 and p99 against the offered rate, per arm.

One figure per workload, two panels (p50, p99), one line per setup x variant
through its points in rate order (its own fractions and the equal-load rates
together: both are the arm's latency at some offered rate). Error bars are
the 95% intervals of asyncbench.analysis.latency; a point that lost requests
(past capacity) is drawn hollow with a red edge, never dropped; thin grey
verticals mark the equal-load rates every arm ran at. Same colours and line
styles as every other chart (asyncbench.render.charts).
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from asyncbench.analysis.latency import Estimate, PointStats, curve_stats
from asyncbench.model.latency import LatencyCurves
from asyncbench.model.results import Run
from asyncbench.render.charts import FLAG_EDGE, figure, legend, setup_colors, svg, tick, variant_style
from asyncbench.render.format import fmt_level
from asyncbench.render.text import workload_label

_EQUAL = "#9aa0a6"


def _estimate(s: PointStats, which: str) -> Estimate | None:
    e: Estimate | None = getattr(s, which)
    return e


def latency_load_chart(run: Run, curves: LatencyCurves) -> str | None:
    stats = [s for s in curve_stats(curves) if s.slices]
    if not stats:
        return None
    colors = setup_colors(run)
    arms: dict[tuple[str, str], list[PointStats]] = {}
    for s in stats:
        arms.setdefault((s.point.setup, s.point.variant), []).append(s)
    rates = [s.point.rate_rps for s in stats]
    equal_rates = sorted({s.point.rate_rps for s in stats if s.point.equal_load})
    suffix = ", ".join(f"{k}={fmt_level(v)}" for k, v in sorted(curves.params.items()))
    past = False
    with figure(f"latload-{curves.workload}", height=3.8, ncols=2, sharey=True) as (fig, axes):
        ys: list[float] = []
        for ax, which, name in ((axes[0], "p50", "p50"), (axes[1], "p99", "p99")):
            for r in equal_rates:
                ax.axvline(r, color=_EQUAL, linewidth=0.8, linestyle=":", zorder=1)
            for (setup, variant), unsorted in sorted(arms.items()):
                ls, mk = variant_style(variant)
                color = colors.get(setup, "#333")
                pts = sorted(unsorted, key=lambda s: s.point.rate_rps)
                xs = [s.point.rate_rps for s in pts]
                est = [_estimate(s, which) for s in pts]
                line = [e.value if e is not None else float("nan") for e in est]
                ax.plot(xs, line, linestyle=ls, marker=mk, color=color, linewidth=1.5, markersize=5, zorder=3)
                for s, x, e in zip(pts, xs, est, strict=True):
                    if e is None:
                        continue
                    ys.append(e.value)
                    if e.lo is not None and e.hi is not None and e.hi > e.lo:
                        ax.errorbar(
                            [x],
                            [e.value],
                            yerr=[[e.value - e.lo], [e.hi - e.value]],
                            color=color,
                            capsize=2.5,
                            linewidth=1,
                            fmt="none",
                            zorder=2,
                        )
                        ys.extend([e.lo, e.hi])
                    if not s.held:
                        past = True
                        ax.plot(
                            [x],
                            [e.value],
                            marker=mk,
                            markersize=9,
                            markerfacecolor="white",
                            markeredgecolor=FLAG_EDGE,
                            markeredgewidth=1.8,
                            linestyle="none",
                            zorder=4,
                        )
            ax.set_title(f"{name} latency", loc="left", fontsize=10)
            _rate_axis(ax, rates)
        if ys and min(ys) > 0:
            axes[0].set_yscale("log")
            axes[0].yaxis.set_major_formatter(FuncFormatter(tick))
            axes[0].yaxis.set_minor_formatter(NullFormatter())
        axes[0].set_ylabel("ms from the intended send (log; 95% CI)")
        fig.suptitle(
            f"{workload_label(curves.workload)}: latency vs offered rate" + (f" ({suffix})" if suffix else ""),
            x=0.01,
            ha="left",
            fontsize=11,
            fontweight="bold",
        )
        extra: list[tuple[str, Line2D | Patch]] = []
        if equal_rates:
            extra.append(("equal-load rates (every arm)", Line2D([], [], color=_EQUAL, linestyle=":")))
        if past:
            extra.append(
                (
                    "past capacity (lost requests)",
                    Line2D(
                        [],
                        [],
                        color="none",
                        marker="o",
                        markerfacecolor="white",
                        markeredgecolor=FLAG_EDGE,
                        markeredgewidth=1.8,
                        markersize=7,
                    ),
                )
            )
        legend(axes[1], run, [a[0] for a in arms], [a[1] for a in arms], flagged=False, extra=extra)
        fig.tight_layout()
        return svg(fig)


def _rate_axis(ax: Axes, rates: Sequence[float]) -> None:
    pos = [r for r in rates if r > 0]
    if pos and max(pos) / min(pos) >= 4:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(tick))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(tick))
    ax.set_xlabel("offered rate (requests/s)")
