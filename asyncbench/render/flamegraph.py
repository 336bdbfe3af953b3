"""A flame graph (SVG) drawn from collapsed stacks, one file per profiled arm.

Drawn here rather than by py-spy (``--format flamegraph``) because one
recording gives one format: the collapsed stacks are what the CPU split reads,
and the picture is drawn from the same samples, so both always agree. The
classic layout: the outermost frame at the bottom, each frame as wide as its
share of samples, children sorted by name, a frame's full name and sample
count in its tooltip (``<title>``), the colour the part of the request path
the frame itself counts for (asyncbench.analysis.cpu_split.RULES; grey when
no rule names it). Frames narrower than ``MIN_WIDTH_PX`` are left out (their
samples still count in their parents' width). No script, no external
resource: the file opens in any browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from asyncbench.analysis.cpu_split import OTHER, PART_LABELS, PARTS, THREADS, frame_part

WIDTH_PX = 1200
FRAME_PX = 16
PAD_PX = 10
TITLE_PX = 62
MIN_WIDTH_PX = 0.5
CHAR_PX = 6.6  # average width of a character at the font size used
PART_COLORS: dict[str, str] = {
    "server": "#56B4E9",
    "django": "#E69F00",
    "view": "#009E73",
    THREADS: "#CC79A7",
    OTHER: "#c8c8c8",
}


@dataclass
class _Node:
    name: str
    total: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Sequence[tuple[Sequence[str], int]]) -> _Node:
    root = _Node("all")
    for frames, count in stacks:
        root.total += count
        node = root
        for f in frames:
            node = node.children.setdefault(f, _Node(f))
            node.total += count
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def _short(frame: str) -> str:
    # a process frame carries the whole command line: keep its pid
    if frame.startswith("process ") and ":" in frame:
        return frame.split(":", 1)[0]
    return frame


def flamegraph_svg(stacks: Sequence[tuple[Sequence[str], int]], *, title: str, subtitle: str = "") -> str:
    """The SVG document (a file of its own, with its XML declaration)."""
    root = _tree(stacks)
    depth = _depth(root)
    height = TITLE_PX + depth * FRAME_PX + 2 * PAD_PX + 20
    scale = (WIDTH_PX - 2 * PAD_PX) / root.total if root.total else 0.0
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height}" '
        f'viewBox="0 0 {WIDTH_PX} {height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH_PX}" height="{height}" fill="#fdfdfd"/>',
        f'<text x="{PAD_PX}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{PAD_PX}" y="36" fill="#555">{escape(subtitle)}</text>',
    ]
    # the legend on its own line, under the subtitle (which may be long)
    x = PAD_PX
    for part in PARTS:
        out.append(f'<rect x="{x}" y="44" width="12" height="12" fill="{PART_COLORS[part]}"/>')
        out.append(f'<text x="{x + 16}" y="54">{escape(PART_LABELS[part])}</text>')
        x += 16 + 7 * len(PART_LABELS[part]) + 24
    if not root.total:
        out.append(f'<text x="{PAD_PX}" y="{TITLE_PX + 20}">no on-CPU samples</text>')
    bottom = height - PAD_PX - 20

    def draw(node: _Node, x: float, level: int) -> None:
        w = node.total * scale
        if w < MIN_WIDTH_PX:
            return
        y = bottom - (level + 1) * FRAME_PX
        part = frame_part(node.name) if level > 0 else None
        color = PART_COLORS.get(part or OTHER, PART_COLORS[OTHER]) if level > 0 else "#e9e9e9"
        pct = 100.0 * node.total / root.total
        tip = f"{node.name} — {node.total:,} samples ({pct:.2f}%)" + (f", {PART_LABELS[part]}" if part else "")
        out.append(
            f'<g><title>{escape(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_PX - 1}" '
            f'fill="{color}" rx="1"/>'
        )
        label = _short(node.name) if level > 0 else f"all ({root.total:,} on-CPU samples)"
        fits = int((w - 6) / CHAR_PX)
        if fits >= 3:
            text = label if len(label) <= fits else label[: fits - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_PX - 4}">{escape(text)}</text>')
        out.append("</g>")
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, cx, level + 1)
            cx += child.total * scale

    if root.total:
        draw(root, float(PAD_PX), 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"
