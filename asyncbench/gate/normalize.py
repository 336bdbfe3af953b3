"""What gets compared: per-repeat series of each cell, or of a within-run ratio.

"none" compares each cell's own figures. "calibration" and "async-sync-ratio"
compare ratios measured inside each run, so a uniformly slower machine
cancels out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncbench.gate.config import (
    CALIBRATION_PAIRING,
    METRICS,
    NORMALIZE_ASYNC_SYNC,
    NORMALIZE_CALIBRATION,
    GateConfig,
    Metric,
)
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


def _is_calibration(cell: Cell, spec: Mapping[str, Any]) -> bool:
    if cell.workload != spec["workload"] or cell.variant != spec["variant"]:
        return False
    if int(cell.users) != int(spec["users"]):
        return False
    if "setup" in spec and cell.setup != spec["setup"]:
        return False
    params = dict(spec.get("params") or {})
    return all(cell.params.get(k) == v for k, v in params.items())


def calibration_cells(cells: Iterable[Cell], spec: Mapping[str, Any]) -> dict[str, Cell]:
    """Calibration cell per setup ("*" when the spec names one setup for all)."""
    found = [c for c in cells if _is_calibration(c, spec)]
    if "setup" in spec:
        return {"*": found[0]} if found else {}
    return {c.setup: c for c in found}


def calibration_summary(
    base_cells: Sequence[Cell], cur_cells: Sequence[Cell], spec: Mapping[str, Any]
) -> dict[str, Any]:
    """Each side's calibration throughput: how much faster the current machine ran."""
    setups: dict[str, dict[str, Any]] = {}
    b, c = calibration_cells(base_cells, spec), calibration_cells(cur_cells, spec)
    for setup in sorted(set(b) & set(c)):
        bm, cm = b[setup].summary.rps, c[setup].summary.rps
        setups[setup] = {
            "key": c[setup].key,
            "baseline_rps": bm,
            "current_rps": cm,
            # >1: the current machine/session ran the calibration faster
            "speed_ratio": cm / bm if bm and cm is not None else None,
        }
    return {"cell": dict(spec), "setups": setups}


def calibrated_series(
    cells: Sequence[Cell], metrics: Sequence[str], spec: Mapping[str, Any]
) -> tuple[dict[str, Series], list[str]]:
    """Each cell expressed relative to the run's calibration cell.

    Throughput becomes a multiple of the calibration throughput; latencies and
    CPU per request are multiplied by it, i.e. expressed in calibration service
    periods. A machine uniformly k times slower scales both by k, which cancels.

    `spec["pair"]` chooses the divisor:
      * "median" (default): the calibration cell's median throughput in this
        run. Cancels machine speed. Right when the calibration repeats are not
        measured next to each cell's repeats (the runner groups a cell's
        repeats together), where dividing by one noisy repeat would only add
        its noise.
      * "repeat": the calibration repeat with the same index. Cancels drift
        too, but only if the runner measures repeat i of the calibration in the
        same round as repeat i of every cell.
    """
    calib = calibration_cells(cells, spec)
    if not calib:
        return {}, [f"no calibration cell matching {dict(spec)} in the run"]
    pairing = str(spec.get("pair", "median"))
    if pairing not in CALIBRATION_PAIRING:
        return {}, [f"gate.calibration.pair: unknown {pairing!r}; allowed: {', '.join(CALIBRATION_PAIRING)}"]
    problems: list[str] = []
    out: dict[str, Series] = {}
    for c in cells:
        if _is_calibration(c, spec):
            continue
        cal = calib.get("*") or calib.get(c.setup)
        if cal is None:
            problems.append(f"{c.key}: no calibration cell for setup {c.setup}")
            continue
        cal_median = cal.summary.rps
        if cal_median is None or cal_median <= 0:
            problems.append(f"{c.key}: the calibration cell {cal.key} has no throughput to divide by")
            continue
        cal_rps = _values(cal, METRICS["throughput"])
        vals: dict[str, tuple[float, ...]] = {}
        dropped = 0
        for m in metrics:
            metric = METRICS[m]
            paired = []
            for idx, v in sorted(_values(c, metric).items()):
                k = cal_rps.get(idx) if pairing == "repeat" else cal_median
                if k is None or k <= 0:
                    dropped += 1
                    continue
                paired.append(v / k if metric.higher_is_better else v * k / 1000.0)
            vals[m] = tuple(paired)
        notes = (f"{dropped} value(s) without a calibration repeat of the same index were dropped",) if dropped else ()
        out[c.key] = Series(c.key, c.setup, c.workload, c.variant, c.users, vals, (c, cal), "× calibration", notes)
    return out, problems


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
    if cfg.normalize == NORMALIZE_CALIBRATION and cfg.calibration is not None:
        return calibrated_series(cells, cfg.metrics, cfg.calibration)
    if cfg.normalize == NORMALIZE_ASYNC_SYNC:
        return ratio_series(cells, cfg.metrics)
    return plain_series(cells, cfg.metrics), []
