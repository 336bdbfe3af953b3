"""What gets compared: per-repeat series of each cell, or of a within-run ratio.

"none" compares each cell's own figures. "async-sync-ratio" compares the
async/sync ratios measured inside each run, so a uniformly slower machine
cancels out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asyncbench.gate.config import METRICS, NORMALIZE_ASYNC_SYNC, GateConfig, Metric
from asyncbench.model.results import Cell
from asyncbench.model.summary import params_key


@dataclass(frozen=True)
class Series:
    """Per-repeat values of one compared entity (a cell, or a within-run ratio)."""

    key: str
    setup: str
    workload: str
    variant: str
    users: int
    values: dict[str, tuple[float, ...]]
    sources: tuple[Cell, ...]  # the cells whose flags decide whether it may be compared
    unit_override: str | None = None
    notes: tuple[str, ...] = ()
    # the block of each value, per metric (plain series only): pairs base and
    # head slices measured in the same block of an A/B run
    blocks: dict[str, tuple[int | None, ...]] = field(default_factory=dict)


def _values(cell: Cell, metric: Metric) -> dict[int, float]:
    """Finite values of one metric by repeat index (the index pairs repeats across cells)."""
    out: dict[int, float] = {}
    for r in cell.repeats:
        v = metric.extract(r)
        if v is not None and math.isfinite(v):
            out[r.index] = float(v)
    return out


def plain_series(cells: Iterable[Cell], metrics: Sequence[str]) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for c in cells:
        block_of = {r.index: r.block for r in c.repeats}
        vals: dict[str, tuple[float, ...]] = {}
        blocks: dict[str, tuple[int | None, ...]] = {}
        for m in metrics:
            found = sorted(_values(c, METRICS[m]).items())
            vals[m] = tuple(v for _, v in found)
            blocks[m] = tuple(block_of.get(i) for i, _ in found)
        out[c.key] = Series(c.key, c.setup, c.workload, c.variant, c.users, vals, (c,), blocks=blocks)
    return out


def ratio_series(cells: Sequence[Cell], metrics: Sequence[str]) -> tuple[dict[str, Series], list[str]]:
    """async/sync ratios per (setup, workload, users, params), paired by repeat index.

    Both twins run on the same server, in the same rounds: the ratio is what the
    project is about and is largely independent of the machine's speed.
    """
    groups: dict[tuple[str, str, int, tuple[tuple[str, int], ...]], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.setup, c.workload, c.users, params_key(c.params)), []).append(c)
    out: dict[str, Series] = {}
    problems: list[str] = []
    for (setup, workload, users, params), members in sorted(groups.items()):
        syncs = sorted((c for c in members if c.kind == "sync"), key=lambda c: (c.variant != "sync", c.variant))
        asyncs = sorted((c for c in members if c.kind == "async"), key=lambda c: c.variant)
        if not asyncs:
            continue
        if not syncs:
            problems.append(f"{setup}/{workload}/u{users}: async cells without a sync twin to divide by")
            continue
        ref = syncs[0]  # the plain sync view when present
        extra = "".join(f",{k}={v}" for k, v in params)
        for a in asyncs:
            key = f"{setup}/{workload}/{a.variant}÷{ref.variant}/u{users}{extra}"
            vals: dict[str, tuple[float, ...]] = {}
            for m in metrics:
                av, sv = _values(a, METRICS[m]), _values(ref, METRICS[m])
                vals[m] = tuple(av[i] / sv[i] for i in sorted(set(av) & set(sv)) if sv[i] > 0)
            variant = f"{a.variant}÷{ref.variant}"
            out[key] = Series(key, setup, workload, variant, users, vals, (a, ref), "async/sync")
    return out, problems


def series(cells: Sequence[Cell], cfg: GateConfig) -> tuple[dict[str, Series], list[str]]:
    """The compared series of one side under the configured normalisation; (series, problems)."""
    if cfg.normalize == NORMALIZE_ASYNC_SYNC:
        return ratio_series(cells, cfg.metrics)
    return plain_series(cells, cfg.metrics), []
