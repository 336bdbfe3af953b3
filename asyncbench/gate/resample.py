"""How good is the gate, estimated cheaply from ONE run with many repeats.

Split each cell's repeats into two halves at random many times (A/A) and, for
detection power, scale one half's figures synthetically. It sees only
within-run noise (no run-to-run drift, no new server process), so it is an
optimistic estimate of the false-alarm rate and says nothing about whether the
injection knob produces the slowdown it claims: never confuse it with
measured.py's real measurement.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from asyncbench.gate.api import compare
from asyncbench.gate.config import resolve_config
from asyncbench.gate.decide import EXIT_INVALID, EXIT_REGRESSION
from asyncbench.gate.measured import LEVELS, rate, wall_times
from asyncbench.model.results import Latency, Repeat, Run

METHOD_RESAMPLED = (
    "resampling estimate: halves of one run's repeats, slowdown applied synthetically "
    "(within-run noise only; not a measurement)"
)


class ResampleError(ValueError):
    """A run the resampling estimate cannot use (too few repeats)."""


def _slowed(repeat: Repeat, slowdown: float) -> Repeat:
    """The same repeat as if every request took 1/(1-d) as long (a pure slowdown)."""
    f = 1.0 - slowdown
    lat = repeat.latency
    return replace(
        repeat,
        throughput_rps=repeat.throughput_rps * f,
        requests=max(1, round(repeat.requests * f)),
        latency=Latency(
            count=max(1, round(lat.count * f)),
            mean_ms=lat.mean_ms / f,
            p50_ms=lat.p50_ms / f,
            p90_ms=lat.p90_ms / f,
            p95_ms=lat.p95_ms / f,
            p99_ms=lat.p99_ms / f,
            max_ms=lat.max_ms / f,
        ),
        series=(),
    )


def _half(run: Run, indexes: set[int], *, slowdown: float = 0.0, slow_keys: set[str] | None = None) -> Run:
    cells = []
    for c in run.cells:
        reps = tuple(r for r in c.repeats if r.index in indexes)
        if slowdown and slow_keys is not None and c.key in slow_keys:
            reps = tuple(_slowed(r, slowdown) for r in reps)
        cells.append(replace(c, repeats=reps))
    return replace(run, cells=tuple(cells))


def resampling_estimate(
    run: Run,
    *,
    splits: int = 200,
    levels: Sequence[float] = LEVELS,
    workloads: Sequence[str] | None = None,
    compare_kwargs: Mapping[str, Any] | None = None,
    seed: int = 12345,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """False-alarm and detection rates estimated by resampling ONE run's repeats.

    Repeat indexes (rounds, shared by all cells so any pairing by index stays
    intact) are split at random into two halves of h = n // 2. compare(half A,
    half B) exiting 1 is a false alarm. For detection, half B of the chosen
    cells (workloads; default every cell) is slowed
    by d: throughput × (1 - d), latencies / (1 - d). `min_repeats` for the gate
    is lowered to h when the run has fewer than twice the gate's minimum, and
    said so. Splits overlap, so the Wilson intervals reported are too narrow.
    """
    kwargs: dict[str, Any] = {"bootstrap": 0, **dict(compare_kwargs or {})}
    rng = random.Random(seed)
    common: set[int] | None = None
    for c in run.cells:
        if c.status == "ok" and c.repeats:
            idx = {r.index for r in c.repeats}
            common = idx if common is None else common & idx
    indexes = sorted(common or ())
    h = len(indexes) // 2
    if h < 2:
        raise ResampleError(f"run {run.run_id} has {len(indexes)} common repeats; resampling needs at least 4")
    notes: list[str] = []
    config_keys = ("threshold", "alpha", "metrics", "min_repeats", "normalize")
    cfg = resolve_config(run.scenario_resolved, **{k: v for k, v in kwargs.items() if k in config_keys})
    if cfg.min_repeats > h:
        notes.append(
            f"halves have {h} repeats, fewer than the gate's min_repeats {cfg.min_repeats}: "
            f"the estimate runs the gate with min_repeats={h} (less power than the real gate)"
        )
        kwargs["min_repeats"] = h
    slow_keys = {c.key for c in run.cells if workloads is None or c.workload in workloads}
    alarms = invalid = 0
    hits = dict.fromkeys(levels, 0)
    det_invalid = dict.fromkeys(levels, 0)
    times: list[float] = []
    for _ in range(splits):
        shuffled = rng.sample(indexes, len(indexes))
        a_idx, b_idx = set(shuffled[:h]), set(shuffled[h : 2 * h])
        a = _half(run, a_idx)
        t0 = clock()
        res = compare(a, _half(run, b_idx), **kwargs)
        times.append(clock() - t0)
        alarms += res.exit_code == EXIT_REGRESSION
        invalid += res.exit_code == EXIT_INVALID
        for d in levels:
            res = compare(a, _half(run, b_idx, slowdown=d, slow_keys=slow_keys), **kwargs)
            hits[d] += res.exit_code == EXIT_REGRESSION
            det_invalid[d] += res.exit_code == EXIT_INVALID
    return {
        "method": METHOD_RESAMPLED,
        "run_id": run.run_id,
        "splits": splits,
        "half_repeats": h,
        "notes": notes,
        "slowed_cells": sorted(slow_keys),
        "false_alarm": {**rate(alarms, splits), "invalid": invalid},
        "detection": [{"slowdown": d, **rate(hits[d], splits), "invalid": det_invalid[d]} for d in levels],
        "gate_wall_time": wall_times(times),
        "gate_wall_time_note": "bootstrap intervals off during resampling (verdicts do not use them)",
    }
