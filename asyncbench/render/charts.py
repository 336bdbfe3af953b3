"""Charts as inline SVG strings, drawn with matplotlib from a `Run` alone.

Conventions shared by every chart, so a reader learns them once:
- colour = server setup (same colour for a setup on every chart);
- line style and marker = variant (same on every chart);
- a flagged point is drawn hollow with a red edge, with a "flagged" legend
  entry; missing points leave a gap in the line instead of being bridged;
- axes carry units; text stays text in the SVG (svg.fonttype "none"), so the
  page is searchable and small, and nothing refers to an external resource.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from statistics import median

import matplotlib

matplotlib.use("Agg")  # before pyplot: the report is rendered headless

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from asyncbench.render.format import fmt, fmt_level, fmt_ratio  # noqa: E402
from asyncbench.model.results import Cell, Run  # noqa: E402
from asyncbench.analysis.queueing import DEFAULT_DELAY_MS, DEFAULT_FANOUT_CALLS, model_line  # noqa: E402
from asyncbench.analysis.verdict import (  # noqa: E402
    LOSES,
    WINS,
    Verdict,
    axis_cells,
    cell_kind,
    delay_sweep_cells,
    is_flagged,
    median_rps,
    usable_cells,
    variant_kind,
    workload_label,
    workload_order,
)

# Colour-blind-safe (Okabe-Ito, then Tol's muted), assigned to setups in name
# order so the same run always gets the same colours.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#332288", "#117733", "#882255", "#999933", "#44AA99", "#AA4499",
)
FLAG_EDGE = "#d62728"

# Variant -> (line style, marker). Sync variants solid-ish, async dashed-ish.
_VARIANT_STYLES: dict[str, tuple[str | tuple[int, tuple[int, ...]], str]] = {
    "sync": ("-", "o"),
    "sync-threads": ((0, (6, 2, 1, 2)), "s"),
    "async": ("--", "^"),
    "async-aiohttp": ((0, (1, 1.5)), "D"),
    "async-s2a": ((0, (4, 1.5, 1, 1.5, 1, 1.5)), "v"),
}
_FALLBACK_STYLES = (("-.", "P"), ((0, (3, 3)), "X"), ((0, (8, 2)), "*"), (":", "h"))

WIDTH_IN = 9.0  # the page's content column is ~1100 px; 9 in at 100 dpi fits it


def setup_colors(run: Run) -> dict[str, str]:
    names = sorted(set(run.setups) | {c.setup for c in run.cells})
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def variant_style(variant: str) -> tuple[str | tuple[int, tuple[int, ...]], str]:
    if variant in _VARIANT_STYLES:
        return _VARIANT_STYLES[variant]
    return _FALLBACK_STYLES[sum(map(ord, variant)) % len(_FALLBACK_STYLES)]


@contextmanager
def _figure(name: str, *, height: float, ncols: int = 1, sharey: bool = False) -> Iterator[tuple[Figure, list[Axes]]]:
    # A per-chart hash salt keeps SVG element ids unique when several charts
    # sit inline in one HTML document (shared ids would cross-wire clip paths)
    # while keeping the output byte-for-byte reproducible.
    rc = {
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


def _svg(fig: Figure) -> str:
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
    return re.sub(r'(href)="#([^"]+)"',
                  lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"' if m.group(2) in ids else m.group(0), svg)


# ------------------------------------------------------------------ helpers


def _tick(y: float, _pos: int | None = None) -> str:
    """Axis tick text: the 3-significant-figure rule without trailing zeros
    ("10", not "10.0"), since tick values are round by construction."""
    if not y:
        return "0"
    text = fmt(y)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _series_key(c: Cell) -> tuple[str, str]:
    return (c.setup, c.variant)


def _user_axis(ax: Axes, levels: Sequence[float], *, label: str = "concurrent users") -> None:
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


def _y_log_if_wide(ax: Axes, values: Sequence[float]) -> None:
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if pos and max(pos) / min(pos) > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.set_ylim(bottom=0)


def _legend(ax: Axes, run: Run, setups: Sequence[str], variants: Sequence[str], *, flagged: bool,
            extra: Sequence[tuple[str, Line2D | Patch]] = ()) -> None:
    colors = setup_colors(run)
    handles: list[Line2D | Patch] = []
    labels: list[str] = []
    for s in sorted(set(setups)):
        handles.append(Line2D([], [], color=colors[s], linewidth=3))
        labels.append(s)
    for v in sorted(set(variants), key=lambda v: (cell_kind_of(v), v)):
        ls, mk = variant_style(v)
        handles.append(Line2D([], [], color="#333", linestyle=ls, marker=mk, markersize=5))
        labels.append(f"{v} ({cell_kind_of(v)})")
    if flagged:
        handles.append(Line2D([], [], color="none", marker="o", markerfacecolor="white",
                              markeredgecolor=FLAG_EDGE, markeredgewidth=1.8, markersize=7))
        labels.append("flagged")
    for label, h in extra:
        handles.append(h)
        labels.append(label)
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def cell_kind_of(variant: str) -> str:
    return variant_kind(variant)


# y value, low and high end of its error bar, for one cell (None: nothing to draw)
YValue = tuple[float | None, float | None, float | None]


def _plot_series(ax: Axes, run: Run, cells: Sequence[Cell], x_of: Callable[[Cell], float],
                 y_of: Callable[[Cell | None], YValue],
                 *, errorbars: bool, xs_all: Sequence[float]) -> tuple[bool, list[float]]:
    """One line per setup x variant; returns (any flagged, all plotted y)."""
    colors = setup_colors(run)
    groups: dict[tuple[str, str], dict[float, Cell]] = {}
    for c in cells:
        groups.setdefault(_series_key(c), {})[x_of(c)] = c
    any_flag = False
    ys_all: list[float] = []
    for (setup, variant), by_x in sorted(groups.items()):
        ls, mk = variant_style(variant)
        color = colors[setup]
        xs = sorted(set(xs_all))
        ys: list[float] = []
        for x in xs:
            c = by_x.get(x)
            y = y_of(c)[0] if c is not None else None
            ys.append(float("nan") if y is None else y)  # NaN leaves a gap for a missing cell
        ax.plot(xs, ys, linestyle=ls, marker=mk, color=color, linewidth=1.6, markersize=5, zorder=3)
        for x in xs:
            c = by_x.get(x)
            if c is None:
                continue
            y, lo, hi = y_of(c)
            if y is None:
                continue
            ys_all.append(y)
            if errorbars and lo is not None and hi is not None and hi > lo:
                ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], color=color, capsize=2.5,
                            linewidth=1, fmt="none", zorder=2)
            if is_flagged(c):
                any_flag = True
                ax.plot([x], [y], marker=mk, markersize=9, markerfacecolor="white",
                        markeredgecolor=FLAG_EDGE, markeredgewidth=1.8, linestyle="none", zorder=4)
    return any_flag, ys_all


def _rps_y(c: Cell | None) -> YValue:
    if c is None or not c.repeats:
        return None, None, None
    t = c.throughputs
    return median(t), min(t), max(t)


def _lat_y(attr: str) -> Callable[[Cell | None], YValue]:
    def f(c: Cell | None) -> YValue:
        if c is None or not c.repeats:
            return None, None, None
        vals = [getattr(r.latency, attr) for r in c.repeats]
        return median(vals), min(vals), max(vals)

    return f


def _params_note(params: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{k}={fmt_level(v)}" for k, v in params)


# ------------------------------------------------------------------ charts


def throughput_chart(run: Run, workload: str) -> str | None:
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells:
        return None
    levels = sorted({c.users for c in cells})
    title = f"{workload_label(workload)}: throughput vs concurrency"
    if pk:
        title += f" ({_params_note(pk)})"
    with _figure(f"thr-{workload}", height=3.8) as (fig, (ax,)):
        flagged, ys = _plot_series(ax, run, cells, lambda c: c.users, _rps_y, errorbars=True, xs_all=levels)
        extra: list[tuple[str, Line2D | Patch]] = []
        if workload == "fanout":
            extra = _draw_model_lines(ax, run, cells, levels, ys)
        ax.set_title(title, loc="left")
        ax.set_ylabel("throughput (requests/s, median of repeats)")
        _user_axis(ax, levels)
        _y_log_if_wide(ax, ys)
        _legend(ax, run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged, extra=extra)
        return _svg(fig)


def _draw_model_lines(ax: Axes, run: Run, cells: Sequence[Cell], levels: Sequence[int],
                      ys: list[float], *, annotate: bool = False) -> list[tuple[str, Line2D | Patch]]:
    colors = setup_colors(run)
    drawn = False
    assumed = False
    # Variants sharing a ceiling get one label, or their labels would overprint.
    labels: dict[tuple[str, float], list[str]] = {}
    for setup, variant in sorted({_series_key(c) for c in cells}):
        sample = next(c for c in cells if _series_key(c) == (setup, variant))
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
            ax.annotate(f"ceiling {fmt(top)}/s: {', '.join(variants)}", (levels[-1], top),
                        textcoords="offset points", xytext=(-4, 5), ha="right", fontsize=7.5, color=colors[setup])
    if not drawn:
        return []
    label = "Little's-law ceiling (wide, pale)"
    if assumed:
        label += f"\nassumed {DEFAULT_FANOUT_CALLS} calls × {fmt_level(DEFAULT_DELAY_MS)} ms"
    return [(label, Line2D([], [], color="#888", linewidth=6, alpha=0.35))]


def latency_chart(run: Run, workload: str) -> str | None:
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells:
        return None
    levels = sorted({c.users for c in cells})
    with _figure(f"lat-{workload}", height=3.6, ncols=2, sharey=True) as (fig, axes):
        flagged = False
        for ax, attr, name in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99")):
            f, ys = _plot_series(ax, run, cells, lambda c: c.users, _lat_y(attr), errorbars=True, xs_all=levels)
            flagged = flagged or f
            ax.set_title(f"{name} latency", loc="left", fontsize=10)
            _user_axis(ax, levels)
            if ys and min(ys) > 0:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(_tick))
                ax.yaxis.set_minor_formatter(NullFormatter())
        axes[0].set_ylabel("latency (ms, log scale)")
        suffix = f" ({_params_note(pk)})" if pk else ""
        fig.suptitle(f"{workload_label(workload)}: latency vs concurrency{suffix}", x=0.01, ha="left",
                     fontsize=11, fontweight="bold")
        _legend(axes[1], run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged)
        fig.tight_layout()
        return _svg(fig)


def verdict_chart(verdict: Verdict, *, along: str = "users") -> str | None:
    """Best async / best sync throughput per level with its 95% interval."""
    levels = verdict.levels if along == "users" else verdict.delay_levels
    pts = [c for c in levels if c.ratio is not None]
    if not pts:
        return None
    xlabel = "concurrent users" if along == "users" else f"upstream delay (ms), at {fmt_level(verdict.delay_users)} users"
    with _figure(f"verdict-{verdict.workload}-{along}", height=2.7) as (fig, (ax,)):
        ax.axhline(1.0, color="#333", linewidth=1)
        for c in pts:
            assert c.ratio is not None
            color = "#1b7a3a" if c.outcome == WINS else "#b3261e" if c.outcome == LOSES else "#777"
            if c.ci is not None:
                ax.errorbar([c.level], [c.ratio], yerr=[[c.ratio - c.ci[0]], [c.ci[1] - c.ratio]],
                            fmt="o", color=color, capsize=4, markersize=6, zorder=3)
            else:
                # No interval (single repeat): hollow, so it does not read as a claim.
                ax.plot([c.level], [c.ratio], marker="o", markerfacecolor="white", markeredgecolor=color,
                        markersize=7, linestyle="none", zorder=3)
            ax.annotate(fmt_ratio(c.ratio), (c.level, c.ratio), textcoords="offset points", xytext=(7, 4),
                        fontsize=8)
        ax.set_yscale("log")
        ys = [v for c in pts for v in ((c.ci or (c.ratio, c.ratio)) + (c.ratio,)) if v]
        lo, hi = min(min(ys), 0.8), max(max(ys), 1.25)
        ax.set_ylim(lo / 1.15, hi * 1.15)
        ax.axhspan(1.0, hi * 1.15, color="#1b7a3a", alpha=0.05, zorder=0)
        ax.axhspan(lo / 1.15, 1.0, color="#b3261e", alpha=0.05, zorder=0)
        ticks = _ratio_ticks(lo / 1.15, hi * 1.15)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt_ratio(y)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        _user_axis(ax, [c.level for c in levels], label=xlabel)
        if along == "delay_ms":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{fmt_level(x)}"))
        x = verdict.crossover if along == "users" else verdict.delay_crossover_ms
        if x is not None:
            ax.axvline(x, color="#1b7a3a", linestyle=":", linewidth=1.2)
            ax.annotate("crossover", (x, hi), textcoords="offset points", xytext=(4, -10), fontsize=8,
                        color="#1b7a3a")
        ax.set_ylabel("async / sync throughput")
        what = "users" if along == "users" else "upstream delay"
        ax.set_title(f"{verdict.label}: best async vs best sync by {what} (95% CI)", loc="left")
        handles = [
            Line2D([], [], marker="o", color="#1b7a3a", linestyle="none", label="async ahead"),
            Line2D([], [], marker="o", color="#b3261e", linestyle="none", label="async behind"),
            Line2D([], [], marker="o", color="#777", linestyle="none", label="no difference detected"),
            Line2D([], [], marker="o", color="#777", markerfacecolor="white", linestyle="none",
                   label="no interval (no claim)"),
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return _svg(fig)


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    cands = [0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 50.0]
    ticks = [t for t in cands if lo <= t <= hi]
    if len(ticks) > 7:
        keep = {0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0}
        ticks = [t for t in ticks if t in keep]
    return ticks


def heatmap_rows(run: Run) -> tuple[list[tuple[str, str]], list[int], dict[tuple[str, str, int], tuple[float | None, bool]]]:
    """(rows, users, values): async/sync ratio per workload x setup x users.

    Within one setup: the best async variant over the best sync variant, by
    median throughput. The bool says a flagged cell went into that number.
    """
    values: dict[tuple[str, str, int], tuple[float | None, bool]] = {}
    rows: list[tuple[str, str]] = []
    users: set[int] = set()
    for w in workload_order({c.workload for c in usable_cells(run)}):
        cells, _pk = axis_cells(run, w)
        for s in sorted({c.setup for c in cells}):
            sc = [c for c in cells if c.setup == s and c.repeats]
            by_u: dict[int, list[Cell]] = {}
            for c in sc:
                by_u.setdefault(c.users, []).append(c)
            row_has = False
            for u, cs in by_u.items():
                a = [c for c in cs if cell_kind(c) == "async"]
                b = [c for c in cs if cell_kind(c) == "sync"]
                if not a or not b:
                    continue
                ba = max(a, key=lambda c: median_rps(c) or 0.0)
                bb = max(b, key=lambda c: median_rps(c) or 0.0)
                ma, mb = median_rps(ba), median_rps(bb)
                ratio = ma / mb if ma is not None and mb else None
                values[(w, s, u)] = (ratio, is_flagged(ba) or is_flagged(bb))
                users.add(u)
                row_has = True
            if row_has:
                rows.append((w, s))
    return rows, sorted(users), values


def heatmap_chart(run: Run) -> str | None:
    rows, users, values = heatmap_rows(run)
    if not rows:
        return None
    import numpy as np

    grid = np.full((len(rows), len(users)), np.nan)
    for i, (w, s) in enumerate(rows):
        for j, u in enumerate(users):
            v = values.get((w, s, u))
            if v and v[0]:
                grid[i, j] = math.log2(v[0])
    finite = grid[np.isfinite(grid)]
    m = max(float(np.max(np.abs(finite))) if finite.size else 0.0, math.log2(1.25))
    height = 1.6 + 0.32 * len(rows)
    with _figure("heatmap", height=height) as (fig, (ax,)):
        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=TwoSlopeNorm(vmin=-m, vcenter=0.0, vmax=m),
                       aspect="auto")
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
                text = fmt_ratio(v[0]) + (" ⚑" if v[1] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "#111", fontweight="bold" if v[1] else "normal")
                if v[1]:
                    ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                              edgecolor=FLAG_EDGE, linewidth=1.8))
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        ticks = [t for t in (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0) if -m <= t <= m]
        cb.set_ticks(ticks)
        cb.set_ticklabels([fmt_ratio(2**t) for t in ticks])
        cb.set_label("async / sync throughput (same setup)")
        ax.set_title("Speed-up: best async variant / best sync variant, per setup", loc="left")
        ax.text(0, -0.6 / height * 2.2, "blue: async faster · red: async slower · ⚑ red box: a flagged cell "
                "went into the ratio · –: not measured", transform=ax.transAxes, fontsize=8, color="#555",
                va="top")
        return _svg(fig)


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
    cells = [c for c in _top_level_cells(run) if any(r.cpu_s_per_1k_requests is not None for r in c.repeats)]
    if not cells:
        return None
    colors = setup_colors(run)
    cats = sorted({(c.workload, c.variant) for c in cells},
                  key=lambda k: (workload_order({x.workload for x in cells}).index(k[0]), cell_kind_of(k[1]), k[1]))
    setups = sorted({c.setup for c in cells})
    by = {(c.workload, c.variant, c.setup): c for c in cells}
    bar_h = 0.8 / len(setups)
    height = 1.4 + len(cats) * (0.14 * len(setups) + 0.12)
    with _figure("cpu-cost", height=height) as (fig, (ax,)):
        flagged = False
        xs: list[float] = []
        for i, (w, v) in enumerate(cats):
            for j, s in enumerate(setups):
                c = by.get((w, v, s))
                if c is None:
                    continue
                vals = [r.cpu_s_per_1k_requests for r in c.repeats if r.cpu_s_per_1k_requests is not None]
                y = i - 0.4 + bar_h * (j + 0.5)
                val = median(vals)
                xs.append(val)
                f = is_flagged(c)
                flagged = flagged or f
                ax.barh(y, val, height=bar_h * 0.9, color=colors[s], edgecolor=FLAG_EDGE if f else "none",
                        linewidth=1.6 if f else 0, hatch="///" if f else None)
        ax.set_yticks(range(len(cats)), [f"{workload_label(w)} · {v}" for w, v in cats])
        ax.invert_yaxis()
        ax.set_xlabel("server CPU seconds per 1,000 requests (median of repeats, highest load level measured)")
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.grid(axis="y", visible=False)
        ax.set_title("Cost: server CPU per 1,000 requests", loc="left")
        handles: list[Line2D | Patch] = [Patch(color=colors[s]) for s in setups]
        labels = list(setups)
        if flagged:
            handles.append(Patch(facecolor="white", edgecolor=FLAG_EDGE, hatch="///"))
            labels.append("flagged")
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        return _svg(fig)


def rss_chart(run: Run) -> str | None:
    per: dict[str, list[float]] = {}
    flagged_setups: set[str] = set()
    for c in usable_cells(run):
        for r in c.repeats:
            per.setdefault(c.setup, []).append(r.server_rss_peak_mb)
    if not per:
        return None
    colors = setup_colors(run)
    setups = sorted(per)
    with _figure("rss", height=1.2 + 0.35 * len(setups)) as (fig, (ax,)):
        for i, s in enumerate(setups):
            ax.barh(i, max(per[s]), color=colors[s], height=0.6,
                    edgecolor=FLAG_EDGE if s in flagged_setups else "none")
            ax.annotate(f"{fmt(max(per[s]))} MB", (max(per[s]), i), textcoords="offset points", xytext=(4, 0),
                        va="center", fontsize=8)
        ax.set_yticks(range(len(setups)), setups)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("peak RSS of the server's process tree (MB, highest over all cells)")
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.set_title("Cost: peak server memory per setup", loc="left")
        ax.set_xlim(0, max(max(v) for v in per.values()) * 1.18)
        return _svg(fig)


def model_chart(run: Run, workload: str = "fanout") -> str | None:
    """Measured throughput of slot-limited setups beside their Little's-law ceiling."""
    cells, pk = axis_cells(run, workload)
    cells = [c for c in cells if c.repeats and model_line(run, c.setup, c.variant, c) is not None]
    if not cells:
        return None
    setups = sorted({c.setup for c in cells})
    levels = sorted({c.users for c in cells})
    with _figure("model", height=3.6, ncols=len(setups)) as (fig, axes):
        flagged = False
        extra: list[tuple[str, Line2D | Patch]] = []
        for ax, s in zip(axes, setups, strict=True):
            sc = [c for c in cells if c.setup == s]
            f, ys = _plot_series(ax, run, sc, lambda c: c.users, _rps_y, errorbars=True, xs_all=levels)
            flagged = flagged or f
            extra = _draw_model_lines(ax, run, sc, levels, ys, annotate=True) or extra
            info = run.setups.get(s)
            slots = f" (S = {info.workers}×{max(1, info.threads)})" if info else ""
            ax.set_title(f"{s}{slots}", loc="left", fontsize=10)
            _user_axis(ax, levels)
            _y_log_if_wide(ax, ys)
        axes[0].set_ylabel("throughput (requests/s)")
        suffix = f" ({_params_note(pk)})" if pk else ""
        fig.suptitle(f"{workload_label(workload)}: measured vs Little's-law ceiling{suffix}", x=0.01, ha="left",
                     fontsize=11, fontweight="bold")
        _legend(axes[-1], run, setups, [c.variant for c in cells], flagged=flagged, extra=extra)
        fig.tight_layout()
        return _svg(fig)


def delay_sweep_chart(run: Run, workload: str = "fanout") -> str | None:
    cells, users = delay_sweep_cells(run, workload)
    cells = [c for c in cells if c.repeats]
    if not cells or users is None:
        return None
    delays = sorted({float(c.params["delay_ms"]) for c in cells})
    colors = setup_colors(run)
    with _figure(f"delay-{workload}", height=3.6) as (fig, (ax,)):
        flagged, ys = _plot_series(ax, run, cells, lambda c: float(c.params["delay_ms"]), _rps_y,
                                   errorbars=True, xs_all=delays)
        assumed = False
        drawn = False
        for s, v in sorted({_series_key(c) for c in cells}):
            sample = next(c for c in cells if _series_key(c) == (s, v))
            m0 = model_line(run, s, v, sample)
            if m0 is None:
                continue
            per_delay = [m0.slots and min(users, m0.slots) / ((m0.calls if v == "sync" else 1) * d / 1000.0)
                         for d in delays]
            ax.plot(delays, per_delay, color=colors[s], linewidth=6, alpha=0.25, zorder=1)
            ys.extend(per_delay)
            drawn = True
            assumed = assumed or m0.assumed
        extra: list[tuple[str, Line2D | Patch]] = []
        if drawn:
            extra = [("Little's-law ceiling (wide, pale)", Line2D([], [], color="#888", linewidth=6, alpha=0.35))]
        _user_axis(ax, delays, label="upstream delay per call (ms)")
        _y_log_if_wide(ax, ys)
        ax.set_ylabel("throughput (requests/s)")
        ax.set_title(f"{workload_label(workload)}: throughput vs upstream delay at {fmt_level(users)} users",
                     loc="left")
        _legend(ax, run, [c.setup for c in cells], [c.variant for c in cells], flagged=flagged, extra=extra)
        if assumed:
            ax.text(0, -0.22, f"model assumes {DEFAULT_FANOUT_CALLS} calls × {fmt_level(DEFAULT_DELAY_MS)} ms: "
                    "the results do not record them", transform=ax.transAxes, fontsize=8, color="#8a4b00")
        return _svg(fig)


__all__ = [
    "PALETTE",
    "cpu_cost_chart",
    "delay_sweep_chart",
    "heatmap_chart",
    "heatmap_rows",
    "latency_chart",
    "model_chart",
    "rss_chart",
    "setup_colors",
    "throughput_chart",
    "variant_style",
    "verdict_chart",
]
