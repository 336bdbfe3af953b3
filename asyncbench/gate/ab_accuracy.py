"""How good is the default (A/B, fixed-rate) gate, measured: rounds of real A/B runs.

Each round runs the gate's scenario A/B in one job several times, in a
shuffled (seeded) order:
- "aa": base and head are the same tree with nothing injected: the gate must pass;
- each injected level d: head's servers get d more CPU per request on the
  no-I/O views, through the bench site's knob (BENCH_INJECT_CPU_US), sized
  per setup from round 0's A/A run: d x the base's CPU per request of that
  setup's cheapest no-I/O arm (its sync view), so that arm costs d more and
  the setup's other arms at least d x (cheapest / theirs);
- "middleware" (optional): head is a git worktree of HEAD with a middleware
  of its own added to settings.MIDDLEWARE, burning a fixed CPU time per
  request: a real code change outside the knob, on every view.
A run whose gate exits 1 is a false alarm (aa) or a detection (injected);
exit 2 is counted apart (neither a pass nor a catch). Per injected arm, the
result also says whether that arm itself was called a regression and the
change the gate measured there.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median
from typing import Any

from asyncbench.gate.api import REVISION_BASE, REVISION_HEAD, compare
from asyncbench.gate.decide import EXIT_INVALID, EXIT_OK, EXIT_REGRESSION, GateResult
from asyncbench.gate.injection import ENV_CPU_US, ENV_WORKLOADS
from asyncbench.gate.measured import rate
from asyncbench.model.results import Run

INJECTED_WORKLOAD = "noio"
MIDDLEWARE_MODULE = "bench_site/accuracy_burn.py"
MIDDLEWARE_PATH = "bench_site.accuracy_burn.BurnMiddleware"

# head's trees and server environment for one kind of run -> the run
Measure = Callable[[str, dict[str, Path] | None, dict[str, dict[str, str]]], Run]


def injection_sizes(run: Run, levels: Sequence[float]) -> dict[str, dict[float, int]]:
    """Per setup: microseconds of CPU to inject for each level, from an A/A run."""
    out: dict[str, dict[float, int]] = {}
    cheapest: dict[str, float] = {}
    for cell in run.cells:
        if cell.workload != INJECTED_WORKLOAD or cell.revision != REVISION_BASE:
            continue
        values = [r.cpu_s_per_1k_requests for r in cell.repeats if r.cpu_s_per_1k_requests]
        if not values:
            continue
        ms = median(v for v in values if v is not None)
        cheapest[cell.setup] = min(cheapest.get(cell.setup, ms), ms)
    for setup, ms in cheapest.items():
        out[setup] = {d: max(1, round(d * ms * 1000)) for d in levels}
    return out


def middleware_source(burn_us: int) -> str:
    """A middleware of our own, sync and async capable (no thread hop either
    way), that burns `burn_us` of thread CPU time per request."""
    return f'''"""Added by the gate's accuracy benchmark to head's tree only: a regression outside the knob."""

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

BURN_NS = {burn_us} * 1000


def _burn():
    deadline = time.thread_time_ns() + BURN_NS
    n = 0
    while time.thread_time_ns() < deadline:
        for _ in range(50):
            n += 1


class BurnMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        _burn()
        return self.get_response(request)

    async def _acall(self, request):
        _burn()
        return await self.get_response(request)
'''


def add_middleware(tree: Path, burn_us: int) -> None:
    """Write the middleware into `tree` and append it to its settings' MIDDLEWARE."""
    (tree / MIDDLEWARE_MODULE).write_text(middleware_source(burn_us))
    settings = tree / "bench_site" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f'\n# gate accuracy: a regression outside the knob\nMIDDLEWARE = [*MIDDLEWARE, "{MIDDLEWARE_PATH}"]\n'
    )


def _arm_findings(result: GateResult, setups: dict[str, dict[float, int]], level: float) -> list[dict[str, Any]]:
    out = []
    for c in result.comparisons:
        if c.metric != "cpu_per_request" or c.workload != INJECTED_WORKLOAD:
            continue
        out.append(
            {
                "arm": c.key,
                "inject_us": setups.get(c.setup, {}).get(level),
                "measured_change": c.change,
                "regression": c.verdict == "regression",
            }
        )
    return out


def ab_accuracy(
    measure: Measure,
    *,
    rounds: int,
    levels: Sequence[float] = (0.05, 0.10),
    aa_per_round: int = 1,
    middleware_rounds: int | None = None,
    middleware_us: int | None = None,
    middleware_tree: Path | None = None,
    seed: int = 20261127,
    note: Callable[[str], None] = print,
    out: Path | None = None,
) -> dict[str, Any]:
    if aa_per_round < 1:
        raise ValueError("aa_per_round must be >= 1: the first A/A run sizes the injection")
    rng = random.Random(seed)
    sizes: dict[str, dict[float, int]] = {}
    trials: list[dict[str, Any]] = []
    t_start = time.monotonic()

    def save() -> dict[str, Any]:
        summary = summarize(trials, sizes, levels, middleware_us)
        summary["elapsed_s"] = round(time.monotonic() - t_start, 1)
        if out is not None:
            out.write_text(json.dumps(summary, indent=1))
        return summary

    for r in range(rounds):
        kinds: list[str | float] = ["aa"] * aa_per_round + list(levels)
        if middleware_us and middleware_tree is not None and (middleware_rounds is None or r < middleware_rounds):
            kinds.append("middleware")
        order = kinds[:1] + rng.sample(kinds[1:], len(kinds) - 1) if r == 0 else rng.sample(kinds, len(kinds))
        for kind in order:
            trees: dict[str, Path] | None = None
            env: dict[str, dict[str, str]] = {}
            if isinstance(kind, float):
                if not sizes:
                    raise RuntimeError("no injection size: the first A/A run measured no no-I/O base arm")
                for setup, by_level in sizes.items():
                    env[f"{REVISION_HEAD}@{setup}"] = {
                        ENV_CPU_US: str(by_level[kind]),
                        ENV_WORKLOADS: INJECTED_WORKLOAD,
                    }
            elif kind == "middleware" and middleware_tree is not None:
                trees = {REVISION_HEAD: middleware_tree}
            label = f"r{r}-{kind if isinstance(kind, str) else f'inject{round(kind * 100)}'}"
            note(f"gate accuracy: {label} {env or ''}")
            t0 = time.monotonic()
            run = measure(label, trees, env)
            wall = time.monotonic() - t0
            result = compare(run)
            if kind == "aa" and not sizes:
                sizes = injection_sizes(run, levels)
                note(f"gate accuracy: injection per setup (µs per request): {sizes}")
            trial: dict[str, Any] = {
                "round": r,
                "kind": kind,
                "run_id": run.run_id,
                "exit_code": int(result.exit_code),
                "wall_s": round(wall, 1),
                "regressions": [
                    f"{c.key} {c.metric} {c.change:+.2%}" for c in result.regressions if c.change is not None
                ],
                "problems": [x for x in result.reasons if result.exit_code == EXIT_INVALID][:5],
            }
            if isinstance(kind, float):
                trial["arms"] = _arm_findings(result, sizes, kind)
            trials.append(trial)
            note(f"gate accuracy: {label}: exit {result.exit_code}; {result.headline}")
            save()
    return save()


def summarize(
    trials: list[dict[str, Any]], sizes: dict[str, dict[float, int]], levels: Sequence[float], middleware_us: int | None
) -> dict[str, Any]:
    def tally(kind: str | float) -> dict[str, Any]:
        ts = [t for t in trials if t["kind"] == kind]
        hits = sum(t["exit_code"] == EXIT_REGRESSION for t in ts)
        return {
            **rate(hits, len(ts)),
            "passed": sum(t["exit_code"] == EXIT_OK for t in ts),
            "invalid": sum(t["exit_code"] == EXIT_INVALID for t in ts),
            "wall_s_max": max((t["wall_s"] for t in ts), default=None),
        }

    per_arm: dict[str, dict[str, Any]] = {}
    for level in levels:
        for t in (t for t in trials if t["kind"] == level):
            for a in t.get("arms", ()):
                d = per_arm.setdefault(f"{a['arm']} @ {level:.0%}", {"hits": 0, "trials": 0, "changes": []})
                d["trials"] += 1
                d["hits"] += bool(a["regression"])
                if a["measured_change"] is not None:
                    d["changes"].append(round(a["measured_change"], 4))
    return {
        "method": "measured: rounds of real A/B runs of the gate's scenario (see asyncbench/gate/ab_accuracy.py)",
        "injection_us_per_setup": {s: {f"{k:.0%}": v for k, v in by.items()} for s, by in sizes.items()},
        "middleware_us": middleware_us,
        "aa": tally("aa"),
        "levels": {f"{level:.0%}": tally(level) for level in levels},
        "middleware": tally("middleware") if middleware_us else None,
        "per_arm": per_arm,
        "trials": trials,
    }
