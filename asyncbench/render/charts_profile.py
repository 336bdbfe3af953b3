"""The chart of "Where the time goes": CPU per request by part, one stacked bar per arm.

The bar's length is the arm's CPU per request from its measured slices; its
segments are the parts' shares of the profiling slice's on-CPU samples
(asyncbench.analysis.cpu_split). Colours are the parts' (as in the flame
graphs), not the setups': here the parts are what is compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from asyncbench.analysis.cpu_split import PART_LABELS, PARTS, ArmSplit
from asyncbench.render.charts import figure, svg, tick
from asyncbench.render.flamegraph import PART_COLORS


def split_chart(name: str, title: str, splits: Sequence[ArmSplit]) -> str | None:
    """Horizontal stacked bars, one per arm, in the order given."""
    if not splits:
        return None
    with figure(f"cpu-split-{name}", height=1.2 + 0.42 * len(splits)) as (fig, (ax,)):
        for i, s in enumerate(splits):
            left = 0.0
            for part in PARTS:
                width = s.ms[part]
                if width > 0:
                    ax.barh(i, width, left=left, height=0.62, color=PART_COLORS[part], edgecolor="white", linewidth=0.5)
                left += width
            hops = f", {s.hops_per_request:.1f} hops/req" if s.hops_per_request is not None else ""
            ax.text(left, i, f"  {s.cpu_ms:.3g} ms{hops}", va="center", fontsize=8.5)
        ax.set_yticks(range(len(splits)), [f"{s.cell.setup} / {s.cell.variant}" for s in splits])
        ax.invert_yaxis()
        ax.set_xlabel("server CPU ms per request (measured slices), split by the profile's on-CPU samples")
        ax.xaxis.set_major_formatter(FuncFormatter(tick))
        ax.set_xlim(0, max(s.cpu_ms for s in splits) * 1.3)
        ax.grid(axis="y", visible=False)
        ax.set_title(title, loc="left")
        ax.legend(
            [Patch(color=PART_COLORS[p]) for p in PARTS],
            [PART_LABELS[p] for p in PARTS],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0,
        )
        return svg(fig)
