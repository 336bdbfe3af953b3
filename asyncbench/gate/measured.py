"""How good is the gate, measured: false-alarm rate, detection rate, wall time.

Repeated rounds of real runs of the gate's scenario: two clean runs (an A/A
pair: the gate should pass) and one run per injected slowdown level (the gate
should fail), using the bench site's fault-injection knob (see injection.py).
The caller supplies `measure(server_env, label) -> Run`, which runs the
scenario with those variables in the servers' environment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from asyncbench.analysis import stats
from asyncbench.gate.api import compare
from asyncbench.gate.decide import EXIT_INVALID, EXIT_REGRESSION, GateResult
from asyncbench.gate.injection import injectable_cells, injection_env, plan_injection
from asyncbench.model.results import Run
from asyncbench.render.format import fmt_pct

LEVELS = (0.10, 0.20, 0.50)
METHOD_MEASURED = "measured: real runs, CPU injected into the servers"

Measure = Callable[[dict[str, str], str], Run]
Progress = Callable[[str], None]


def rate(hits: int, trials: int) -> dict[str, Any]:
    """A rate with its 95% Wilson interval, as the accuracy results carry it."""
    lo, hi = stats.wilson_interval(hits, trials)
    return {"hits": hits, "trials": trials, "rate": hits / trials if trials else None, "ci95": [lo, hi]}


def wall_times(times: Sequence[float]) -> dict[str, Any]:
    if not times:
        return {"n": 0, "median_s": None, "max_s": None}
    return {"n": len(times), "median_s": median(times), "max_s": max(times)}


def _achieved(baseline: Run, injected: Run, keys: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    by_key_b = {c.key: c for c in baseline.cells if not c.revision}
    by_key_i = {c.key: c for c in injected.cells if not c.revision}
    for k in keys:
        b, i = by_key_b.get(k), by_key_i.get(k)
        bm = b.summary.rps if b is not None else None
        im = i.summary.rps if i is not None else None
        out[k] = 1.0 - im / bm if bm and bm > 0 and im is not None else None
    return out


def _timed_compare(
    baseline: Run, current: Run, compare_kwargs: Mapping[str, Any], clock: Callable[[], float]
) -> tuple[GateResult, float]:
    t0 = clock()
    result = compare(baseline, current, **compare_kwargs)
    return result, clock() - t0


@dataclass
class _Tally:
    """What one kind of comparison (the A/A pair, or one injected level) counted over the rounds."""

    trials: int = 0
    hits: int = 0  # exit 1: a false alarm for A/A, a detection for an injected level
    invalid: int = 0  # exit 2: neither a pass nor a catch
    hits_on_target: int = 0
    alarm_cells: list[str] = field(default_factory=list)
    achieved: list[float] = field(default_factory=list)  # the target cell's measured slowdown
    achieved_cells: dict[str, list[float]] = field(default_factory=dict)

    def count(self, result: GateResult) -> None:
        self.trials += 1
        self.hits += result.exit_code == EXIT_REGRESSION
        self.invalid += result.exit_code == EXIT_INVALID

    def add_achieved(self, got: Mapping[str, float | None], target: str) -> None:
        on_target = got.get(target)
        if on_target is not None:
            self.achieved.append(on_target)
        for k, v in got.items():
            if v is not None:
                self.achieved_cells.setdefault(k, []).append(v)


def measure_accuracy(
    measure: Measure,
    *,
    rounds: int = 5,
    levels: Sequence[float] = LEVELS,
    workloads: Sequence[str] | None = None,
    target: str | None = None,
    compare_kwargs: Mapping[str, Any] | None = None,
    seed: int = 20240601,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Real false-alarm and detection rates, from `rounds` rounds of real runs.

    A round measures two clean runs (A and A') and one injected run per level,
    in a shuffled order (seeded) so no kind of run always goes first on a
    warming machine. The injected CPU per level comes from round 0's A run
    (`plan_injection`). Per round: compare(A, A') counts a false alarm when it
    exits 1; compare(A, injected) counts a detection when it exits 1. Exit 2
    is counted apart, as "invalid": it is neither a pass nor a catch.
    `workloads` are injected (BENCH_INJECT_WORKLOADS); None picks "noio" when
    the run has it (the cheapest, most CPU-bound view), else every workload.
    Runs: rounds × (2 + len(levels)).
    """
    note = progress or (lambda _msg: None)
    kwargs = dict(compare_kwargs or {})
    rng = random.Random(seed)
    plan: dict[str, Any] | None = None
    aa = _Tally()
    det = {d: _Tally() for d in levels}
    times: list[float] = []
    labels: list[str] = []
    for r in range(rounds):
        kinds: list[str | float] = ["A", "A2", *levels]
        # round 0's A must come first: it sets the injection for everything after
        first = 1 if r == 0 else 0
        order = kinds[:first] + rng.sample(kinds[first:], len(kinds) - first)
        runs: dict[str | float, Run] = {}
        for kind in order:
            if isinstance(kind, float):
                assert plan is not None and workloads is not None
                level = next(x for x in plan["levels"] if x["slowdown"] == kind)
                env = injection_env(level["inject_cpu_us"], workloads)
                label = f"r{r}-inject{round(kind * 100)}"
            else:
                env = {}
                label = f"r{r}-{kind}"
            note(f"gate accuracy: measuring {label} ({env or 'clean'})")
            runs[kind] = measure(env, label)
            labels.append(label)
            if kind == "A" and plan is None:
                if workloads is None:
                    present = sorted({c.workload for c in runs["A"].cells})
                    workloads = ["noio"] if "noio" in present else present
                plan = plan_injection(runs["A"], workloads, levels, target=target)
                note(
                    "gate accuracy: injection for "
                    + ", ".join(f"{fmt_pct(x['slowdown'], 2)}: {x['inject_cpu_us']} µs" for x in plan["levels"])
                    + f" (target {plan['target']})"
                )
        assert plan is not None and workloads is not None
        result, dt = _timed_compare(runs["A"], runs["A2"], kwargs, clock)
        times.append(dt)
        aa.count(result)
        if result.exit_code == EXIT_REGRESSION:
            aa.alarm_cells.extend(f"r{r}: {c.key} {c.metric}" for c in result.regressions)
        injected_keys = [c.key for c in injectable_cells(runs["A"], workloads)]
        for d in levels:
            result, dt = _timed_compare(runs["A"], runs[d], kwargs, clock)
            times.append(dt)
            det[d].count(result)
            if result.exit_code == EXIT_REGRESSION and any(c.key == plan["target"] for c in result.regressions):
                det[d].hits_on_target += 1
            det[d].add_achieved(_achieved(runs["A"], runs[d], injected_keys), plan["target"])
    assert plan is not None
    return {
        "method": METHOD_MEASURED,
        "rounds": rounds,
        "runs": labels,
        "compare_kwargs": {k: v for k, v in kwargs.items() if k != "clock"},
        "injection": plan,
        "false_alarm": {**rate(aa.hits, aa.trials), "invalid": aa.invalid, "alarm_cells": aa.alarm_cells},
        "detection": [
            {
                "slowdown": d,
                "inject_cpu_us": next(x["inject_cpu_us"] for x in plan["levels"] if x["slowdown"] == d),
                **rate(det[d].hits, det[d].trials),
                "hits_on_target": det[d].hits_on_target,
                "invalid": det[d].invalid,
                "achieved_slowdown_target": {
                    "median": median(det[d].achieved) if det[d].achieved else None,
                    "values": det[d].achieved,
                },
                "achieved_slowdown_cells": {k: median(v) for k, v in sorted(det[d].achieved_cells.items())},
            }
            for d in levels
        ],
        "gate_wall_time": wall_times(times),
    }
