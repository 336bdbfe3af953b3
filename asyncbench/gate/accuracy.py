"""How good is the gate? False-alarm rate, detection rate, wall time.

Two ways, never to be confused:

1. `measure_accuracy` — the real thing. Repeated rounds of real runs of the
   gate's scenario: two clean runs (an A/A pair: the gate should pass) and one
   run per injected slowdown level (the gate should fail), using the bench
   site's fault-injection knob (BENCH_INJECT_CPU_US, limited to chosen
   workloads with BENCH_INJECT_WORKLOADS). The caller supplies
   `measure(server_env, label) -> Run`, which runs the scenario with those
   variables in the servers' environment.

2. `resampling_estimate` — a cheap statistical estimate from ONE real run with
   many repeats: split each cell's repeats into two halves at random many
   times (A/A) and, for detection power, scale one half's figures
   synthetically. It sees only within-run noise (no run-to-run drift, no new
   server process), so it is an optimistic estimate of the false-alarm rate
   and says nothing about whether the knob produces the slowdown it claims.

How much CPU to inject for a slowdown d (see `injection_for`): treat the cell
as a closed queueing system (locust users with no think time) and use the
asymptotic bounds of operational analysis. Throughput X is bounded by each
resource's parallelism over the time a request holds it:
    users:         X <= N / R        (Little's law; R = N / X, measured)
    worker slots:  X <= W / H        (sync workers/threads, when N > W; H = W / X)
    server CPU:    X <= k / S        (k usable cores, S = CPU seconds per request, measured)
Injected CPU adds Δ to every holding time. The slowdown reaches d as soon as
one bound falls to (1 - d)·X, so Δ = min over the resources of
c / ((1 - d)·X) - D (c the parallelism, D the holding time). For a saturated
single-core CPU-bound cell (k = 1, S = 1/X) this is Δ = S·d/(1 - d): 10% needs
S/9, 20% S/4, 50% S. For an unsaturated cell it is R·d/(1 - d). The bounds
are optimistic near the knee, so the achieved slowdown is always measured and
reported beside the target.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from asyncbench.gate import core as gate

from asyncbench.analysis import stats
from asyncbench.render.format import fmt, fmt_pct
from asyncbench.model.results import Cell, Latency, Repeat, Run, load_run

LEVELS = (0.10, 0.20, 0.50)
ENV_CPU_US = "BENCH_INJECT_CPU_US"
ENV_DELAY_MS = "BENCH_INJECT_DELAY_MS"
ENV_WORKLOADS = "BENCH_INJECT_WORKLOADS"

METHOD_MEASURED = "measured: real runs, CPU injected into the servers"
METHOD_RESAMPLED = (
    "resampling estimate: halves of one run's repeats, slowdown applied synthetically "
    "(within-run noise only; not a measurement)"
)

Measure = Callable[[dict[str, str], str], Run]
Progress = Callable[[str], None]


# ------------------------------------------------------------------ how much to inject


@dataclass(frozen=True)
class ServiceModel:
    """What one cell of a clean run says about where its time goes."""

    key: str
    throughput_rps: float  # X, median over repeats
    users: int  # N
    response_s: float  # R = N / X (Little's law, includes client and network time)
    cpu_s_per_request: float | None  # S, server process tree
    cores: int  # k: CPUs the server may use, at most one per process (the GIL)
    slots: float  # W: requests a WSGI/sync server can hold at once (inf for async)
    cpu_utilisation: float | None  # X·S / k

    def bounds(self, delta_s: float) -> dict[str, float]:
        """Throughput bound of each resource with delta_s extra per request."""
        out = {"users": self.users / (self.response_s + delta_s)}
        if math.isfinite(self.slots) and self.slots < self.users:
            out["slots"] = self.slots / (self.slots / self.throughput_rps + delta_s)
        if self.cpu_s_per_request is not None:
            out["cpu"] = self.cores / (self.cpu_s_per_request + delta_s)
        return out

    def predicted_slowdown(self, delta_s: float) -> float:
        """1 - X'/X under the bounds model (the measured X stands for the bound at 0)."""
        return max(0.0, 1.0 - min(self.bounds(delta_s).values()) / self.throughput_rps)


def service_model(run: Run, cell: Cell) -> ServiceModel:
    x = median(cell.throughputs)
    if x <= 0:
        raise ValueError(f"{cell.key}: no throughput to model")
    cpu = [r.server_cpu_s / r.requests for r in cell.repeats if r.requests > 0 and r.server_cpu_s > 0]
    s_cpu = median(cpu) if cpu else None
    info = run.setups.get(cell.setup)
    cpu_count = int(run.environment.get("cpu_count") or 1)
    workers = info.workers if info and info.workers > 0 else cpu_count
    usable = len(info.cpu_affinity) if info and info.cpu_affinity else cpu_count
    cores = max(1, min(usable, workers))
    if info is None:
        slots = math.inf
    elif info.interface == "wsgi":
        slots = float(workers * max(1, info.threads))
    elif cell.kind == "sync":
        # Django runs sync views under ASGI in one thread per process
        # (sync_to_async, thread_sensitive=True): one request at a time.
        slots = float(workers)
    else:
        slots = math.inf
    util = x * s_cpu / cores if s_cpu is not None else None
    return ServiceModel(cell.key, x, cell.users, cell.users / x, s_cpu, cores, slots, util)


def injection_for(model: ServiceModel, slowdown: float) -> float:
    """Seconds of CPU per request that bring the cell's throughput down by `slowdown`."""
    if not 0 < slowdown < 1:
        raise ValueError(f"slowdown must be a fraction in (0, 1), got {slowdown!r}")
    target = (1.0 - slowdown) * model.throughput_rps
    candidates = [model.users / target - model.response_s]
    if math.isfinite(model.slots) and model.slots < model.users:
        candidates.append(model.slots / target - model.slots / model.throughput_rps)
    if model.cpu_s_per_request is not None:
        candidates.append(model.cores / target - model.cpu_s_per_request)
    return max(0.0, min(candidates))


def injectable_cells(run: Run, workloads: Sequence[str]) -> list[Cell]:
    return [
        c
        for c in run.cells
        if c.workload in workloads and c.status == "ok" and c.repeats and median(c.throughputs) > 0
    ]


def plan_injection(
    run: Run, workloads: Sequence[str], levels: Sequence[float], *, target: str | None = None
) -> dict[str, Any]:
    """Injected µs per level, derived from a clean run, plus per-cell predictions.

    One knob value applies to every cell of the injected workloads, and cells
    differ in service time, so the level is set for one target cell: the one
    named, else the most sensitive (the cell needing the least CPU for the
    first level). The other injected cells get their own, predicted, slowdown.
    """
    cells = injectable_cells(run, workloads)
    if not cells:
        raise ValueError(f"no measured cell of workload(s) {', '.join(workloads)} in run {run.run_id}")
    models = {c.key: service_model(run, c) for c in cells}
    if target is None:
        target = min(models, key=lambda k: (injection_for(models[k], levels[0]), k))
    elif target not in models:
        raise ValueError(f"target cell {target!r} is not among the injected cells: {', '.join(sorted(models))}")
    tm = models[target]
    plan: dict[str, Any] = {
        "target": target,
        "workloads": list(workloads),
        "model": {
            "throughput_rps": tm.throughput_rps,
            "users": tm.users,
            "response_ms": tm.response_s * 1000.0,
            "cpu_ms_per_request": tm.cpu_s_per_request * 1000.0 if tm.cpu_s_per_request is not None else None,
            "cores": tm.cores,
            "slots": tm.slots if math.isfinite(tm.slots) else None,
            "cpu_utilisation": tm.cpu_utilisation,
        },
        "levels": [],
    }
    for d in levels:
        delta = injection_for(tm, d)
        plan["levels"].append(
            {
                "slowdown": d,
                "inject_cpu_us": round(delta * 1e6, 1),
                "binding": min(tm.bounds(delta).items(), key=lambda kv: kv[1])[0],
                "predicted": {k: m.predicted_slowdown(delta) for k, m in sorted(models.items())},
            }
        )
    return plan


def injection_env(inject_cpu_us: float, workloads: Sequence[str]) -> dict[str, str]:
    return {ENV_CPU_US: str(int(round(inject_cpu_us))), ENV_WORKLOADS: ",".join(workloads)}


# ------------------------------------------------------------------ the real measurement


def _rate(hits: int, trials: int) -> dict[str, Any]:
    lo, hi = stats.wilson_interval(hits, trials)
    return {"hits": hits, "trials": trials, "rate": hits / trials if trials else None, "ci95": [lo, hi]}


def _achieved(baseline: Run, injected: Run, keys: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    by_key_b = {c.key: c for c in baseline.cells if not c.revision}
    by_key_i = {c.key: c for c in injected.cells if not c.revision}
    for k in keys:
        b, i = by_key_b.get(k), by_key_i.get(k)
        if b is None or i is None or not b.repeats or not i.repeats:
            out[k] = None
            continue
        bm, im = median(b.throughputs), median(i.throughputs)
        out[k] = 1.0 - im / bm if bm > 0 else None
    return out


def _timed_compare(
    baseline: Run, current: Run, compare_kwargs: Mapping[str, Any], clock: Callable[[], float]
) -> tuple[gate.GateResult, float]:
    t0 = clock()
    result = gate.compare(baseline, current, **compare_kwargs)
    return result, clock() - t0


def _summary_times(times: Sequence[float]) -> dict[str, Any]:
    if not times:
        return {"n": 0, "median_s": None, "max_s": None}
    return {"n": len(times), "median_s": median(times), "max_s": max(times)}


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
    aa = {"alarms": 0, "invalid": 0, "trials": 0, "alarm_cells": []}
    det = {d: {"hits": 0, "hits_on_target": 0, "invalid": 0, "trials": 0, "achieved": []} for d in levels}
    achieved_cells: dict[float, dict[str, list[float]]] = {d: {} for d in levels}
    times: list[float] = []
    labels: list[str] = []
    for r in range(rounds):
        kinds: list[str | float] = ["A", "A2"] + list(levels)
        first, rest = kinds[0], kinds[1:]
        if r == 0:
            # round 0's A must come first: it sets the injection for everything after
            order = [first] + rng.sample(rest, len(rest))
        else:
            order = rng.sample(kinds, len(kinds))
        runs: dict[str | float, Run] = {}
        for kind in order:
            if isinstance(kind, float):
                assert plan is not None and workloads is not None
                level = next(x for x in plan["levels"] if x["slowdown"] == kind)
                env = injection_env(level["inject_cpu_us"], workloads)
                label = f"r{r}-inject{int(round(kind * 100))}"
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
        aa["trials"] += 1
        if result.exit_code == gate.EXIT_REGRESSION:
            aa["alarms"] += 1
            aa["alarm_cells"].extend(f"r{r}: {c.key} {c.metric}" for c in result.regressions)
        elif result.exit_code == gate.EXIT_INVALID:
            aa["invalid"] += 1
        injected_keys = [c.key for c in injectable_cells(runs["A"], workloads)]
        for d in levels:
            result, dt = _timed_compare(runs["A"], runs[d], kwargs, clock)
            times.append(dt)
            slot = det[d]
            slot["trials"] += 1
            if result.exit_code == gate.EXIT_REGRESSION:
                slot["hits"] += 1
                if any(c.key == plan["target"] for c in result.regressions):
                    slot["hits_on_target"] += 1
            elif result.exit_code == gate.EXIT_INVALID:
                slot["invalid"] += 1
            got = _achieved(runs["A"], runs[d], injected_keys)
            if got.get(plan["target"]) is not None:
                slot["achieved"].append(got[plan["target"]])
            for k, v in got.items():
                if v is not None:
                    achieved_cells[d].setdefault(k, []).append(v)
    assert plan is not None
    return {
        "method": METHOD_MEASURED,
        "rounds": rounds,
        "runs": labels,
        "compare_kwargs": {k: v for k, v in kwargs.items() if k != "clock"},
        "injection": plan,
        "false_alarm": {
            **_rate(aa["alarms"], aa["trials"]),
            "invalid": aa["invalid"],
            "alarm_cells": aa["alarm_cells"],
        },
        "detection": [
            {
                "slowdown": d,
                "inject_cpu_us": next(x["inject_cpu_us"] for x in plan["levels"] if x["slowdown"] == d),
                **_rate(det[d]["hits"], det[d]["trials"]),
                "hits_on_target": det[d]["hits_on_target"],
                "invalid": det[d]["invalid"],
                "achieved_slowdown_target": {
                    "median": median(det[d]["achieved"]) if det[d]["achieved"] else None,
                    "values": det[d]["achieved"],
                },
                "achieved_slowdown_cells": {k: median(v) for k, v in sorted(achieved_cells[d].items())},
            }
            for d in levels
        ],
        "gate_wall_time": _summary_times(times),
    }


# ------------------------------------------------------------------ the resampling estimate


def _slowed(repeat: Repeat, slowdown: float) -> Repeat:
    """The same repeat as if every request took 1/(1-d) as long (a pure slowdown)."""
    f = 1.0 - slowdown
    lat = repeat.latency
    return replace(
        repeat,
        throughput_rps=repeat.throughput_rps * f,
        requests=max(1, int(round(repeat.requests * f))),
        latency=Latency(
            count=max(1, int(round(lat.count * f))),
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
    cells (workloads; default every cell except a calibration cell) is slowed
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
        raise ValueError(f"run {run.run_id} has {len(indexes)} common repeats; resampling needs at least 4")
    notes: list[str] = []
    config_keys = ("threshold", "alpha", "metrics", "min_repeats", "normalize")
    cfg = gate.resolve_config(run.scenario_resolved, **{k: v for k, v in kwargs.items() if k in config_keys})
    if cfg.min_repeats > h:
        notes.append(
            f"halves have {h} repeats, fewer than the gate's min_repeats {cfg.min_repeats}: "
            f"the estimate runs the gate with min_repeats={h} (less power than the real gate)"
        )
        kwargs["min_repeats"] = h
    calib_keys: set[str] = set()
    if cfg.normalize == gate.NORMALIZE_CALIBRATION and cfg.calibration:
        calib_keys = {c.key for c in gate.calibration_cells(run.cells, cfg.calibration).values()}
    slow_keys = {
        c.key for c in run.cells if c.key not in calib_keys and (workloads is None or c.workload in workloads)
    }
    alarms = invalid = 0
    hits = {d: 0 for d in levels}
    det_invalid = {d: 0 for d in levels}
    times: list[float] = []
    for _ in range(splits):
        shuffled = rng.sample(indexes, len(indexes))
        a_idx, b_idx = set(shuffled[:h]), set(shuffled[h : 2 * h])
        a = _half(run, a_idx)
        t0 = clock()
        res = gate.compare(a, _half(run, b_idx), **kwargs)
        times.append(clock() - t0)
        alarms += res.exit_code == gate.EXIT_REGRESSION
        invalid += res.exit_code == gate.EXIT_INVALID
        for d in levels:
            res = gate.compare(a, _half(run, b_idx, slowdown=d, slow_keys=slow_keys), **kwargs)
            hits[d] += res.exit_code == gate.EXIT_REGRESSION
            det_invalid[d] += res.exit_code == gate.EXIT_INVALID
    return {
        "method": METHOD_RESAMPLED,
        "run_id": run.run_id,
        "splits": splits,
        "half_repeats": h,
        "notes": notes,
        "slowed_cells": sorted(slow_keys),
        "false_alarm": {**_rate(alarms, splits), "invalid": invalid},
        "detection": [{"slowdown": d, **_rate(hits[d], splits), "invalid": det_invalid[d]} for d in levels],
        "gate_wall_time": _summary_times(times),
        "gate_wall_time_note": "bootstrap intervals off during resampling (verdicts do not use them)",
    }


# ------------------------------------------------------------------ reporting


def _rate_text(r: Mapping[str, Any]) -> str:
    if r.get("rate") is None:
        return "–"
    lo, hi = r["ci95"]
    return f"{r['hits']}/{r['trials']} = {fmt_pct(r['rate'], 2)} (95% CI {fmt_pct(lo, 2)}–{fmt_pct(hi, 2)})"


def format_accuracy(result: Mapping[str, Any]) -> str:
    """Markdown for the README: the method named first, then the rates."""
    lines = [f"**Method:** {result['method']}", ""]
    fa = result["false_alarm"]
    invalid = f"; invalid {fa['invalid']}" if fa.get("invalid") else ""
    lines.append(f"- False alarms (A/A): {_rate_text(fa)}{invalid}")
    for d in result["detection"]:
        extra = ""
        if "inject_cpu_us" in d:
            ach = d.get("achieved_slowdown_target", {}).get("median")
            achieved = fmt_pct(ach, 2) if ach is not None else "–"
            extra = f"; injected {fmt(d['inject_cpu_us'])} µs CPU/request, achieved {achieved} on the target"
        inv = f"; invalid {d['invalid']}" if d.get("invalid") else ""
        lines.append(f"- Detection of a {fmt_pct(d['slowdown'], 2)} slowdown: {_rate_text(d)}{extra}{inv}")
    t = result["gate_wall_time"]
    if t.get("n"):
        lines.append(
            f"- Gate wall time: median {fmt(t['median_s'])} s, max {fmt(t['max_s'])} s over {t['n']} comparisons"
        )
    for n in result.get("notes", ()):
        lines.append(f"- Note: {n}")
    return "\n".join(lines) + "\n"


def _fractions(levels: Sequence[float | int | str]) -> tuple[float, ...]:
    """0.1 or 10 both mean 10% (the runner takes percent, the API fractions)."""
    out = []
    for x in levels:
        v = float(x)
        out.append(v / 100.0 if v >= 1 else v)
    return tuple(out)


def runner_measure(args: argparse.Namespace, load_scenario: Callable[[argparse.Namespace], Any]) -> Measure:
    """A `measure` that runs the runner's scenario (with its command-line
    overrides) with extra server environment, one run folder per label."""
    from pathlib import Path

    from asyncbench.execute.run import run_scenario

    scenario = load_scenario(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    extra: dict[str, str] = {}
    for item in getattr(args, "server_env", None) or []:
        k, _, v = str(item).partition("=")
        extra[k] = v
    prepared = False

    def measure(env: dict[str, str], label: str) -> Run:
        nonlocal prepared
        run_dir = run_scenario(
            scenario,
            reports_dir=Path(getattr(args, "reports_dir", "reports")),
            command=[sys.executable, "runner.py", "gate-accuracy", f"# {label}"],
            run_id=f"gate-accuracy-{stamp}-{label}",
            server_env={**extra, **env},
            # seeding is idempotent but not free: once per accuracy session
            skip_prepare=prepared,
        )
        prepared = True
        return load_run(run_dir)

    return measure


def _emit(result: Mapping[str, Any], json_path: str | None) -> None:
    print(format_accuracy(result))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
            fh.write("\n")
        print(f"written: {json_path}")


def _main_from_runner(
    args: argparse.Namespace,
    *,
    measure: Measure | None,
    load_scenario: Callable[[argparse.Namespace], Any] | None,
) -> int:
    """Entry from runner.py's parsed `gate-accuracy` arguments.

    Reads: pairs (rounds), levels (percent or fractions), out (JSON path), and
    optionally resample (a run folder: do the resampling estimate instead),
    splits, inject_workloads (comma list), target, normalize.
    """
    levels = _fractions(getattr(args, "levels", None) or LEVELS)
    kwargs: dict[str, Any] = {}
    if getattr(args, "normalize", None):
        kwargs["normalize"] = args.normalize
    resample = getattr(args, "resample", None)
    if resample:
        result = resampling_estimate(
            load_run(resample), splits=int(getattr(args, "splits", None) or 200), levels=levels, compare_kwargs=kwargs
        )
    else:
        if measure is None:
            if load_scenario is None:
                raise ValueError("gate accuracy needs either `measure` or `load_scenario`")
            measure = runner_measure(args, load_scenario)
        wl = getattr(args, "inject_workloads", None)
        result = measure_accuracy(
            measure,
            rounds=int(getattr(args, "pairs", None) or 5),
            levels=levels,
            workloads=[w for w in str(wl).split(",") if w] if wl else None,
            target=getattr(args, "target", None),
            compare_kwargs=kwargs,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    _emit(result, getattr(args, "out", None))
    return 0


def main(
    argv: Sequence[str] | argparse.Namespace | None = None,
    *,
    measure: Measure | None = None,
    load_scenario: Callable[[argparse.Namespace], Any] | None = None,
) -> int:
    """Command line. Given runner.py's parsed Namespace, runs from it (see
    `_main_from_runner`); given argv, parses its own: `resample RUN_DIR` works
    on a results file alone, `measure` needs `measure` or the runner."""
    if isinstance(argv, argparse.Namespace):
        return _main_from_runner(argv, measure=measure, load_scenario=load_scenario)
    parser = argparse.ArgumentParser(prog="gate-accuracy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rs = sub.add_parser("resample", help="estimate from one run with many repeats (not a measurement)")
    rs.add_argument("run", help="run folder or results.json")
    rs.add_argument("--splits", type=int, default=200)
    rs.add_argument("--seed", type=int, default=12345)
    rs.add_argument("--workloads", default="", help="comma list of workloads to slow (default: all cells)")
    ms = sub.add_parser("measure", help="real runs with injected CPU (slow: rounds x (2 + levels) runs)")
    ms.add_argument("--rounds", type=int, default=5)
    ms.add_argument("--workloads", default="", help="comma list for BENCH_INJECT_WORKLOADS (default: noio)")
    ms.add_argument("--target", default=None, help="cell key the injection is sized for")
    ms.add_argument("--seed", type=int, default=20240601)
    for p in (rs, ms):
        p.add_argument("--levels", default="10,20,50", help="slowdowns in percent (or fractions)")
        p.add_argument("--normalize", choices=gate.NORMALIZE_MODES, default=None)
        p.add_argument("--json", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    levels = _fractions([x for x in args.levels.split(",") if x])
    kwargs: dict[str, Any] = {}
    if args.normalize:
        kwargs["normalize"] = args.normalize
    wl = [w for w in args.workloads.split(",") if w] or None
    if args.command == "resample":
        result = resampling_estimate(
            load_run(args.run), splits=args.splits, levels=levels, workloads=wl, compare_kwargs=kwargs, seed=args.seed
        )
    else:
        if measure is None:
            parser.error("measure needs the runner: run it as `python runner.py gate-accuracy ...`")
        result = measure_accuracy(
            measure,
            rounds=args.rounds,
            levels=levels,
            workloads=wl,
            target=args.target,
            compare_kwargs=kwargs,
            seed=args.seed,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    _emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
