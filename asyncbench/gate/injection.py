"""How much CPU to inject into the servers for a chosen slowdown.

The bench site's fault-injection knob (BENCH_INJECT_CPU_US, limited to chosen
workloads with BENCH_INJECT_WORKLOADS) adds CPU to every request. To size it
for a slowdown d (see `injection_for`): treat the cell as a closed queueing
system (locust users with no think time) and use the asymptotic bounds of
operational analysis. Throughput X is bounded by each resource's parallelism
over the time a request holds it:
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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncbench.model.results import Cell, Run

ENV_CPU_US = "BENCH_INJECT_CPU_US"
ENV_WORKLOADS = "BENCH_INJECT_WORKLOADS"


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
    x = cell.summary.rps
    if x is None or x <= 0:
        raise ValueError(f"{cell.key}: no throughput to model")
    cpu_ms = cell.summary.cpu_ms_per_request
    # no CPU recorded (0) is no model of the CPU, not a free CPU
    s_cpu = cpu_ms / 1000.0 if cpu_ms else None
    info = run.setups.get(cell.setup)
    cpu_count = run.environment.cpu_count or 1
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
    return [c for c in run.cells if c.workload in workloads and c.status == "ok" and (c.summary.rps or 0.0) > 0]


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
    return {ENV_CPU_US: str(round(inject_cpu_us)), ENV_WORKLOADS: ",".join(workloads)}
