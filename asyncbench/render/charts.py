"""What every chart shares: SVG output, colours, line styles, axes, legend, series.

Charts are inline SVG strings drawn with matplotlib from a `Run` alone; they
plot numbers the model and analysis packages computed (cell summaries,
verdicts, Little's-law lines) and compute none themselves. Conventions shared
by every chart, so a reader learns them once:
- colour = server setup (same colour for a setup on every chart);
- line style and marker = variant (from the registry, same on every chart);
- a flagged point is drawn hollow with a red edge, with a "flagged" legend
  entry; missing points leave a gap in the line instead of being bridged;
- axes carry units; text stays text in the SVG (svg.fonttype "none"), so the
  page is searchable and small, and nothing refers to an external resource.

The charts themselves: `charts_cells` (per-cell figures) and `charts_verdict`
(ratios from the verdicts, the heat map).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")  # before pyplot: the report is rendered headless

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator
from matplotlib.typing import LineStyleType

from asyncbench.analysis.selection import run_variant_kind
from asyncbench.model import flags
from asyncbench.model.results import Cell, Run
from asyncbench.model.summary import ParamsKey
from asyncbench.render.format import fmt, fmt_level
from bench_site.registry import VARIANTS, LineStyle

# Colour-blind-safe (Okabe-Ito, then Tol's muted), assigned to setups in name
# order so the same run always gets the same colours.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#332288",
    "#117733",
    "#882255",
    "#999933",
    "#44AA99",
    "#AA4499",
)
FLAG_EDGE = "#d62728"

# For a variant the registry does not know (a results file from another
# version): a style picked from the name, so it is stable across runs.
_FALLBACK_STYLES: tuple[tuple[LineStyle, str], ...] = (
    ("-.", "P"),
    ((0, (3, 3)), "X"),
    ((0, (8, 2)), "*"),
    (":", "h"),
)

WIDTH_IN = 9.0  # the page's content column is ~1100 px; 9 in at 100 dpi fits it


def setup_colors(run: Run) -> dict[str, str]:
    names = sorted(set(run.setups) | {c.setup for c in run.cells})
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def variant_style(variant: str) -> tuple[LineStyleType, str]:
    """(line style, marker) of a variant."""
    if variant in VARIANTS:
        line, marker = VARIANTS[variant].line, VARIANTS[variant].marker
    else:
        line, marker = _FALLBACK_STYLES[sum(map(ord, variant)) % len(_FALLBACK_STYLES)]
    # The registry keeps matplotlib out of its types; its styles are matplotlib's.
    return cast("LineStyleType", line), marker


@contextmanager
def figure(name: str, *, height: float, ncols: int = 1, sharey: bool = False) -> Iterator[tuple[Figure, list[Axes]]]:
    # A per-chart hash salt keeps SVG element ids unique when several charts
    # sit inline in one HTML document (shared ids would cross-wire clip paths)
    # while keeping the output byte-for-byte reproducible.
    rc: dict[Any, Any] = {
        "svg.fonttype": "none",
        "svg.hashsalt": f"asyncbench-{name}",
        "font.family": "DejaVu Sans",
        "font.size": 9.5,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e3e6ea",
        "grid.linewidth": 0.6,
        "legend.fontsize": 8.5,
        "legend.frameon": False,
    }
    with matplotlib.rc_context(rc):
        fig, axes = plt.subplots(1, ncols, figsize=(WIDTH_IN, height), sharey=sharey, squeeze=False)
        fig.set_label(name)  # becomes the prefix of every id in this chart's SVG
        try:
            yield fig, list(axes[0])
        finally:
            plt.close(fig)


def svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    # Inline SVG in HTML must not carry an XML declaration or a DOCTYPE.
    start = text.find("<svg")
    return _prefix_ids(text[start:].strip(), str(fig.get_label() or "chart"))


_ID = re.compile(r'\bid="([^"]+)"')


def _prefix_ids(svg: str, prefix: str) -> str:
    """Make every id unique to this chart: matplotlib numbers its elements
    per figure (figure_1, axes_1, ...), so several charts inline in one page
    would repeat ids, which HTML forbids and which can cross-wire references."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", prefix)
    ids = set(_ID.findall(svg))
    if not ids:
        return svg
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})" if m.group(1) in ids else m.group(0), svg)
    return re.sub(
        r'(href)="#([^"]+)"',
        lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"' if m.group(2) in ids else m.group(0),
        svg,
    )


def tick(y: float, _pos: int | None = None) -> str:
    """Axis tick text: the 3-significant-figure rule without trailing zeros
    ("10", not "10.0"), since tick values are round by construction."""
    if not y:
        return "0"
    text = fmt(y)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def series_key(c: Cell) -> tuple[str, str]:
    return (c.setup, c.variant)


def user_axis(ax: Axes, levels: Sequence[float], *, label: str = "concurrent users") -> None:
    levels = sorted(set(levels))
    if len(levels) >= 2 and levels[0] > 0 and levels[-1] / levels[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(levels))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: fmt_level(x)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(levels) == 1:
        ax.set_xlim(levels[0] * 0.5, levels[0] * 1.5)
    ax.set_xlabel(label)


def y_log_if_wide(ax: Axes, values: Sequence[float]) -> None:
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    ax.yaxis.set_major_formatter(FuncFormatter(tick))
    if pos and max(pos) / min(pos) > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(tick))
    else:
        ax.set_ylim(bottom=0)


def legend(
    ax: Axes,
    run: Run,
    setups: Sequence[str],
    variants: Sequence[str],
    *,
    flagged: bool,
    extra: Sequence[tuple[str, Line2D | Patch]] = (),
) -> None:
    colors = setup_colors(run)
    handles: list[Line2D | Patch] = []
    labels: list[str] = []
    for s in sorted(set(setups)):
        handles.append(Line2D([], [], color=colors[s], linewidth=3))
        labels.append(s)
    for v in sorted(set(variants), key=lambda v: (run_variant_kind(run, v), v)):
        ls, mk = variant_style(v)
        handles.append(Line2D([], [], color="#333", linestyle=ls, marker=mk, markersize=5))
        labels.append(f"{v} ({run_variant_kind(run, v)})")
    if flagged:
        handles.append(
            Line2D(
                [],
                [],
                color="none",
                marker="o",
                markerfacecolor="white",
                markeredgecolor=FLAG_EDGE,
                markeredgewidth=1.8,
                markersize=7,
            )
        )
        labels.append("flagged")
    for label, h in extra:
        handles.append(h)
        labels.append(label)
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


# y value, low and high end of its error bar, for one cell (None: nothing to draw)
YValue = tuple[float | None, float | None, float | None]


def plot_series(
    ax: Axes,
    run: Run,
    cells: Sequence[Cell],
    x_of: Callable[[Cell], float],
    y_of: Callable[[Cell | None], YValue],
    *,
    errorbars: bool,
    xs_all: Sequence[float],
) -> tuple[bool, list[float]]:
    """One line per setup x variant; returns (any flagged, all plotted y)."""
    colors = setup_colors(run)
    groups: dict[tuple[str, str], dict[float, Cell]] = {}
    for c in cells:
        groups.setdefault(series_key(c), {})[x_of(c)] = c
    any_flag = False
    ys_all: list[float] = []
    xs = sorted(set(xs_all))
    for (setup, variant), by_x in sorted(groups.items()):
        ls, mk = variant_style(variant)
        color = colors[setup]
        ys: list[float] = []
        for x in xs:
            at = by_x.get(x)
            y = y_of(at)[0] if at is not None else None
            ys.append(float("nan") if y is None else y)  # NaN leaves a gap for a missing cell
        ax.plot(xs, ys, linestyle=ls, marker=mk, color=color, linewidth=1.6, markersize=5, zorder=3)
        for x, c in sorted(by_x.items()):
            y, lo, hi = y_of(c)
            if y is None:
                continue
            ys_all.append(y)
            if errorbars and lo is not None and hi is not None and hi > lo:
                ax.errorbar(
                    [x], [y], yerr=[[y - lo], [hi - y]], color=color, capsize=2.5, linewidth=1, fmt="none", zorder=2
                )
            if flags.is_flagged(c):
                any_flag = True
                ax.plot(
                    [x],
                    [y],
                    marker=mk,
                    markersize=9,
                    markerfacecolor="white",
                    markeredgecolor=FLAG_EDGE,
                    markeredgewidth=1.8,
                    linestyle="none",
                    zorder=4,
                )
    return any_flag, ys_all


def rps_y(c: Cell | None) -> YValue:
    """Mean slice throughput with its 95% interval (no bar below two slices)."""
    if c is None or not c.repeats:
        return None, None, None
    s = c.summary
    return s.rps, s.rps_lo, s.rps_hi


def latency_y(attr: str) -> Callable[[Cell | None], YValue]:
    """The summary's percentile, without a bar: a percentile of the merged
    histogram has no interval here, and a min-max bar would pass for one."""

    def f(c: Cell | None) -> YValue:
        if c is None or not c.repeats:
            return None, None, None
        value: float | None = getattr(c.summary, attr)
        return value, None, None

    return f


def params_note(params: ParamsKey) -> str:
    return ", ".join(f"{k}={fmt_level(v)}" for k, v in params)
