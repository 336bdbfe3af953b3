"""The stopping rule's input: how precise a group's ratios are after each block.

The runner calls `group_ratios` with one group's cells (same workload, users
and parameters) after every block and stops the group once
`widest_precision` is at or below the scenario's `precision`. The ratios are
the ones the verdict and its notes show at that level, computed by the same
`comparison.compare` calls, so what stops a group is what the report prints.
Never a significance test: a group stops on the width of its intervals, not
on whether they exclude 1.

The index note (a workload against its control, e.g. json vs json-noindex)
compares two groups and is not among one group's ratios.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from asyncbench.analysis.comparison import CONFIDENCE, Comparison, compare
from asyncbench.analysis.selection import is_async, is_sync
from asyncbench.analysis.verdict import variant_in
from asyncbench.model.results import Cell
from bench_site.registry import WORKLOADS


@dataclass(frozen=True)
class RatioEstimate:
    """One ratio a group's verdict or notes use, as far as the blocks so far tell."""

    name: str  # "async/sync", "HTTP client: aiohttp/httpx", "base: async/sync"...
    ratio: float | None
    lo: float | None  # None below MIN_BLOCKS common blocks
    hi: float | None
    precision: float | None  # half-width as a fraction; None without an interval
    n_blocks: int


def _estimate(name: str, c: Comparison) -> RatioEstimate:
    lo, hi = c.ci if c.ci else (None, None)
    return RatioEstimate(name, c.ratio, lo, hi, c.precision, c.blocks)


def _pairs(workload: str) -> list[tuple[str, Callable[[Cell], bool], Callable[[Cell], bool]]]:
    """(name, numerator, denominator) of every ratio the verdict and notes quote at one level."""
    out: list[tuple[str, Callable[[Cell], bool], Callable[[Cell], bool]]] = [("async/sync", is_async, is_sync)]
    w = WORKLOADS.get(workload)
    for k in w.contrasts if w is not None else ():
        out.append((f"{k.topic}: {k.num_name}/{k.den_name}", variant_in(k.num), variant_in(k.den)))
        if k.kind == "alternative":
            # The note also says how each alternative fares against the best sync setup.
            out.append((f"{k.topic}: {k.num_name}/sync", variant_in(k.num), is_sync))
            out.append((f"{k.topic}: {k.den_name}/sync", variant_in(k.den), is_sync))
    return out


def _comparisons(cells: Sequence[Cell], confidence: float) -> list[tuple[str, Comparison]]:
    if not cells:
        return []
    workload, level = cells[0].workload, float(cells[0].users)
    revisions = sorted({c.revision for c in cells})
    out: list[tuple[str, Comparison]] = []
    for rev in revisions:
        mine = [c for c in cells if c.revision == rev]
        prefix = f"{rev}: " if len(revisions) > 1 and rev else ""
        for name, num, den in _pairs(workload):
            nums, dens = [c for c in mine if num(c)], [c for c in mine if den(c)]
            comp = compare(nums, dens, axis="users", level=level, confidence=confidence)
            if comp.num is not None and comp.den is not None:
                out.append((prefix + name, comp))
    return out


def chosen_arms(cells: Sequence[Cell]) -> set[str]:
    """Keys of the cells the group's ratios compare, chosen on the pilot blocks.

    After the pilot the runner measures only these: an arm no ratio uses
    (the slower of two sync setups, say) has told what it had to tell, and
    its time goes to the arms whose ratios are still imprecise. Empty when
    nothing is chosen yet (every arm then keeps running).
    """
    return {side.cell.key for _, c in _comparisons(cells, CONFIDENCE) for side in (c.num, c.den) if side is not None}


def group_ratios(cells: Sequence[Cell], confidence: float = CONFIDENCE) -> list[RatioEstimate]:
    """The ratios one group's verdict and notes use, with their intervals so far.

    `cells`: the group's arms (one workload, users level and parameter set),
    with their slices so far. When they hold two revisions (base and head) each
    revision is compared within itself, never across. A ratio whose side has
    no usable cell is left out, so a group with a single side gives [].
    At the default `confidence` these are exactly the verdict's intervals.
    """
    return [_estimate(name, comp) for name, comp in _comparisons(cells, confidence)]


def widest_precision(estimates: Iterable[RatioEstimate]) -> float | None:
    """The widest half-width among the estimates: what the stopping rule compares
    with the scenario's `precision`.

    None when there are no estimates (nothing to wait for); math.inf when one
    has no interval yet (fewer than MIN_BLOCKS blocks in common).
    """
    widest: float | None = None
    for e in estimates:
        p = math.inf if e.precision is None else e.precision
        widest = p if widest is None else max(widest, p)
    return widest
