"""Synthetic `Run` objects for tests of the report, the verdicts and the gate.

Nothing here measures anything: a test states the numbers it wants and gets a
`Run` shaped exactly like one loaded from results.json.

    from tests.synthetic import make_cell, make_run

    run = make_run([
        make_cell("uvicorn", "fanout", "async", 32, rps=[300, 303, 297]),
        make_cell("gunicorn-sync", "fanout", "sync", 32, rps=[100, 101, 99]),
    ])

- `rps` is one value per repeat (a single float means one repeat); use
  `spread(base, n)` for n repeats with a small deterministic spread.
- Latency defaults follow Little's law (users / rps) so charts look sane;
  pass `p50_ms`/`p99_ms` (one value, or one per repeat) to control them.
- `flags=[("generator-bound", "locust at 97% CPU")]` flags the cell;
  `repeat_flags` flags individual repeats; `status="error", error="..."`
  makes an error cell.
- `make_run(..., missing=[("uvicorn", "noio", "async", 64)])` records planned
  cells that have no result; `complete=False` makes an interrupted run.
- Version-2 cells (slices in blocks): `make_cell(..., blocks=[0, 1, 2, ...])`
  says which block each slice ran in (default: slice i in block i), and
  `histogram=latency_histogram(p50_ms, p99_ms, samples)` gives the cell its
  merged histogram; `v2_cell(...)` does both from a base throughput and a
  number of blocks. `make_run(..., schema_version=1)` makes a version-1 run,
  `groups=[make_group(...)]` records how groups stopped.
- `make_matrix(...)` builds a whole setup x workload x variant x users grid
  from a function; `demo_run()` is a realistic run with every feature (used to
  look at the page and by the browser test).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from asyncbench.model.histogram import Histogram
from asyncbench.model.machine import Ceiling, Environment
from asyncbench.model.results import (
    SCHEMA_VERSION,
    Cell,
    Flag,
    GroupRecord,
    Latency,
    Repeat,
    Run,
    Second,
    SetupInfo,
)

# Multipliers for successive repeats: a ±2% spread, deterministic, median 1.0
# for odd counts so a constructed ratio comes out exactly.
_JITTER = (1.0, 0.98, 1.02, 0.99, 1.01, 0.985, 1.015, 0.995, 1.005)


def spread(base: float, n: int = 3, *, jitter: Sequence[float] = _JITTER) -> list[float]:
    """n values around `base` with a small deterministic spread."""
    return [base * jitter[i % len(jitter)] for i in range(n)]


def make_setup(
    name: str,
    *,
    server: str | None = None,
    interface: str | None = None,
    workers: int = 1,
    threads: int = 1,
    worker_class: str | None = None,
    event_loop: str | None = None,
    keepalive: bool | None = None,
    cpu_affinity: Sequence[int] = (0,),
    notes: str = "",
) -> SetupInfo:
    """A SetupInfo whose defaults are guessed from the name (wsgi unless it
    mentions an ASGI server)."""
    asgi = any(s in name for s in ("uvicorn", "daphne", "asgi", "hypercorn"))
    interface = interface or ("asgi" if asgi else "wsgi")
    server = server or name.split("-", maxsplit=1)[0]
    worker_class = worker_class or ("gthread" if "gthread" in name else "asgi" if asgi else "sync")
    return SetupInfo(
        name=name,
        server=server,
        interface=interface,
        workers=workers,
        threads=threads,
        worker_class=worker_class,
        event_loop=event_loop or ("asyncio" if interface == "asgi" else "none"),
        keepalive=keepalive if keepalive is not None else worker_class != "sync",
        command=(server, "bench_site.wsgi" if interface == "wsgi" else "bench_site.asgi"),
        env={},
        cpu_affinity=tuple(cpu_affinity),
        notes=notes,
    )


DEFAULT_SETUPS: dict[str, SetupInfo] = {
    s.name: s
    for s in (
        make_setup("gunicorn-sync", workers=1, threads=1),
        make_setup("gunicorn-gthread", workers=1, threads=8),
        make_setup("uvicorn", server="uvicorn"),
        make_setup("gunicorn-uvicorn", server="gunicorn", worker_class="uvicorn_worker.UvicornWorker"),
    )
}


def _per_repeat(value: float | Sequence[float] | None, n: int) -> list[float | None]:
    if value is None:
        return [None] * n
    if isinstance(value, (int, float)):
        return [float(value)] * n
    vals = [float(v) for v in value]
    if len(vals) != n:
        raise ValueError(f"expected {n} values (one per repeat), got {len(vals)}")
    return list(vals)


def _flags(items: Iterable[Flag | tuple[str, str] | str]) -> tuple[Flag, ...]:
    out = []
    for f in items:
        if isinstance(f, Flag):
            out.append(f)
        elif isinstance(f, str):
            out.append(Flag(f, ""))
        else:
            out.append(Flag(*f))
    return tuple(out)


def make_repeat(
    rps: float,
    *,
    users: int = 1,
    index: int = 0,
    p50_ms: float | None = None,
    p99_ms: float | None = None,
    duration_s: float = 10.0,
    cpu_ms_per_request: float = 1.0,
    rss_mb: float = 80.0,
    generator_cpu_percent: float = 30.0,
    failures: dict[str, int] | None = None,
    worker_changes: int = 0,
    flags: Iterable[Flag | tuple[str, str] | str] = (),
    started_at: float = 1_700_000_000.0,
) -> Repeat:
    requests = round(rps * duration_s)
    # Little's law for a closed loop: mean time in system = users / throughput.
    mean_ms = users / rps * 1000.0 if rps > 0 else 0.0
    p50 = p50_ms if p50_ms is not None else mean_ms * 0.9
    p99 = p99_ms if p99_ms is not None else max(p50, mean_ms * 2.2)
    lat = Latency(
        count=requests,
        mean_ms=mean_ms,
        p50_ms=p50,
        p90_ms=(p50 + p99) / 2 * 0.8,
        p95_ms=(p50 + p99) / 2,
        p99_ms=p99,
        max_ms=p99 * 1.5,
    )
    per_s = max(1, round(rps))
    series = tuple(Second(float(t), per_s, 0, p50, p99) for t in range(int(duration_s)))
    return Repeat(
        index=index,
        started_at=started_at + index * (duration_s + 5),
        duration_s=duration_s,
        warmup_s=2.0,
        requests=requests,
        failures=dict(failures or {}),
        throughput_rps=float(rps),
        latency=lat,
        locust={"rps": round(rps, -1), "p50_ms": round(p50, -1)},
        server_cpu_s=requests * cpu_ms_per_request / 1000.0,
        server_cpu_percent=rps * cpu_ms_per_request / 10.0,
        server_rss_peak_mb=rss_mb,
        generator_cpu_percent=generator_cpu_percent,
        generator_cpu_peak_percent=generator_cpu_percent + 5,
        server_worker_changes=worker_changes,
        series=series,
        flags=_flags(flags),
    )


def make_cell(
    setup: str,
    workload: str,
    variant: str,
    users: int,
    rps: float | Sequence[float],
    *,
    p50_ms: float | Sequence[float] | None = None,
    p99_ms: float | Sequence[float] | None = None,
    params: dict[str, int] | None = None,
    flags: Iterable[Flag | tuple[str, str] | str] = (),
    repeat_flags: dict[int, Iterable[Flag | tuple[str, str] | str]] | None = None,
    status: str = "ok",
    error: str | None = None,
    kind: str | None = None,
    cpu_ms_per_request: float = 1.0,
    rss_mb: float = 80.0,
    revision: str = "",
    blocks: Sequence[int] | None = None,
    histogram: dict[str, Any] | None = None,
) -> Cell:
    """One cell; `rps` is one value per repeat (a float means a single repeat).

    `blocks`: the block of each slice (version 2); by default slice i ran in block i.
    """
    values = [float(rps)] if isinstance(rps, (int, float)) else [float(v) for v in rps]
    n = len(values)
    p50s, p99s = _per_repeat(p50_ms, n), _per_repeat(p99_ms, n)
    rflags = repeat_flags or {}
    repeats = tuple(
        make_repeat(
            v,
            users=users,
            index=i,
            p50_ms=p50s[i],
            p99_ms=p99s[i],
            cpu_ms_per_request=cpu_ms_per_request,
            rss_mb=rss_mb,
            flags=rflags.get(i, ()),
        )
        for i, v in enumerate(values)
    )
    if blocks is not None:
        if len(blocks) != n:
            raise ValueError(f"expected {n} blocks (one per slice), got {len(blocks)}")
        repeats = tuple(replace(r, block=b) for r, b in zip(repeats, blocks, strict=True))
    if kind is None:
        kind = "async" if variant.startswith("async") else "sync"
    query = "".join(f"{'&' if i else '?'}{k}={v}" for i, (k, v) in enumerate(sorted((params or {}).items())))
    return Cell(
        setup=setup,
        workload=workload,
        variant=variant,
        kind=kind,
        users=users,
        path=f"/{variant}/{workload}/{query}",
        params=dict(params or {}),
        repeats=repeats if status == "ok" or values else (),
        flags=_flags(flags),
        status=status,
        error=error,
        revision=revision,
        histogram=histogram,
    )


def latency_histogram(p50_ms: float, p99_ms: float, samples: int) -> dict[str, Any]:
    """A merged histogram (to_dict form) of `samples` requests whose p50 and p99
    come out as asked (within the histogram's 0.5% resolution)."""
    h = Histogram()
    low = math.ceil(samples / 2)  # the median's rank is the last of these
    slow = min(samples - low, samples // 100 + 1)  # one more than 1%: p99 falls among them
    for _ in range(low):
        h.record(p50_ms * 1000.0)
    for _ in range(samples - low - slow):
        h.record((p50_ms + p99_ms) / 2 * 1000.0)
    for _ in range(slow):
        h.record(p99_ms * 1000.0)
    return h.to_dict()


def v2_cell(
    setup: str,
    workload: str,
    variant: str,
    users: int,
    rps: float,
    *,
    n_blocks: int = 12,
    noise: float = 0.04,
    seed: int = 1,
    samples: int = 5000,
    p50_ms: float | None = None,
    p99_ms: float | None = None,
    **kw: Any,
) -> Cell:
    """A version-2 cell: one slice per block, lognormal noise of `noise`, a merged histogram."""
    import random

    rng = random.Random(f"{seed}/{setup}/{variant}/{users}")
    values = [rps * math.exp(rng.gauss(0.0, noise)) for _ in range(n_blocks)]
    p50 = p50_ms if p50_ms is not None else users / rps * 900.0
    p99 = p99_ms if p99_ms is not None else p50 * 2.4
    return make_cell(
        setup,
        workload,
        variant,
        users,
        values,
        blocks=list(range(n_blocks)),
        histogram=latency_histogram(p50, p99, samples),
        **kw,
    )


def make_group(
    workload: str,
    users: int,
    *,
    params: dict[str, int] | None = None,
    blocks: int = 30,
    precision_target: float = 0.05,
    precision_achieved: float | None = 0.04,
    stop_reason: str = "precision",
    budget_s: float = 60.0,
) -> GroupRecord:
    return GroupRecord(
        workload=workload,
        users=users,
        params=dict(params or {}),
        revision_pairs=False,
        blocks=blocks,
        elapsed_s=blocks * 2.0,
        budget_s=budget_s,
        precision_target=precision_target,
        precision_achieved=precision_achieved,
        stop_reason=stop_reason,
    )


PlannedCell = tuple[str, str, str, int] | tuple[str, str, str, int, dict[str, int]]


def make_run(
    cells: Iterable[Cell],
    *,
    setups: dict[str, SetupInfo] | None = None,
    missing: Iterable[PlannedCell] = (),
    complete: bool = True,
    interrupted: bool | None = None,
    scenario: str = "synthetic",
    scenario_resolved: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    generator_ceiling: dict[str, Any] | None = None,
    command: Sequence[str] = ("python", "runner.py", "run", "--scenario", "synthetic"),
    run_id: str = "synthetic-run",
    notes: Sequence[str] = (),
    schema_version: int = SCHEMA_VERSION,
    groups: Sequence[GroupRecord] = (),
) -> Run:
    """A Run holding `cells`.

    scenario_resolved["cells"] lists every planned cell (those given plus
    `missing`), which is how the report tells a missing cell from an unplanned
    one. Setups not in `setups` are made with `make_setup(name)`.
    """
    cells = tuple(cells)
    setups = dict(setups if setups is not None else {})
    names = {c.setup for c in cells} | {m[0] for m in missing}
    for name in sorted(names):
        if name not in setups:
            setups[name] = DEFAULT_SETUPS.get(name) or make_setup(name)
    planned = [
        {"setup": c.setup, "workload": c.workload, "variant": c.variant, "users": c.users, "params": dict(c.params)}
        for c in cells
    ]
    for m in missing:
        planned.append(
            {
                "setup": m[0],
                "workload": m[1],
                "variant": m[2],
                "users": m[3],
                "params": dict(m[4]) if len(m) > 4 else {},
            }
        )
    sr: dict[str, Any] = {
        "name": scenario,
        "setups": sorted(names),
        "workloads": sorted({c.workload for c in cells} | {m[1] for m in missing}),
        "users": sorted({c.users for c in cells} | {m[3] for m in missing}),
        "repeats": max((len(c.repeats) for c in cells), default=0),
        "warmup_s": 2.0,
        "duration_s": 10.0,
        "database": "sqlite",
        "upstream": {"delay_ms": 50},
        "cells": planned,
    }
    if scenario_resolved is not None:
        sr = {**sr, **scenario_resolved}
    env = {
        "cpu_model": "AMD EPYC (synthetic)",
        "cores": 2,
        "os": "Linux",
        "python": "3.12.1",
        "packages": {"django": "6.1.3", "gunicorn": "27.0.1", "uvicorn": "0.54.0", "locust": "2.47.0"},
        "git_commit": "0000000",
        "database": {"vendor": "sqlite", "version": "3.40"},
    }
    if environment is not None:
        env = {**env, **environment}
    started = 1_700_000_000.0
    return Run(
        schema_version=schema_version,
        run_id=run_id,
        scenario=scenario,
        scenario_resolved=sr,
        command=tuple(command),
        started_at=started,
        finished_at=started + 600.0 if complete else None,
        complete=complete,
        interrupted=(not complete) if interrupted is None else interrupted,
        environment=Environment.from_dict(env),
        generator_ceiling=Ceiling.from_dict(
            generator_ceiling if generator_ceiling is not None else {"rps": 4000.0, "cpu_percent": 99.0, "users": 64}
        ),
        setups=setups,
        cells=cells,
        notes=tuple(notes),
        groups=tuple(groups),
    )


def make_matrix(
    setups: Sequence[str],
    workloads: dict[str, Sequence[str]],
    users: Sequence[int],
    rps: Callable[[str, str, str, int], float | Sequence[float] | None],
    *,
    repeats: int = 3,
    **cell_kw: Any,
) -> list[Cell]:
    """Every setup x workload x variant x users; `rps` returns a base figure
    (spread over `repeats`), explicit per-repeat values, or None to skip."""
    out: list[Cell] = []
    for s in setups:
        for w, variants in workloads.items():
            for v in variants:
                for u in users:
                    r = rps(s, w, v, u)
                    if r is None:
                        continue
                    vals = spread(r, repeats) if isinstance(r, (int, float)) else list(r)
                    out.append(make_cell(s, w, v, u, vals, **cell_kw))
    return out


def demo_run(*, complete: bool = True) -> Run:
    """A realistic run with every feature the report has to show.

    Numbers are shaped after ../shared/MEASURED.md: no-I/O favours WSGI sync,
    fan-out favours async with aiohttp but not with httpx, the ORM is a wash,
    the GIN index matters; plus a delay sweep, flagged cells of each kind, a
    single-repeat workload and a missing cell.
    """
    users = [1, 8, 32, 64]
    setups = ["gunicorn-sync", "gunicorn-gthread", "uvicorn", "gunicorn-uvicorn"]
    asgi = {"uvicorn", "gunicorn-uvicorn"}
    slots = {"gunicorn-sync": 1, "gunicorn-gthread": 8}

    def rps(s: str, w: str, v: str, u: int) -> float | None:
        if w == "noio":
            base = {"gunicorn-sync": 2500, "gunicorn-gthread": 2300, "uvicorn": 750, "gunicorn-uvicorn": 866}[s]
            if v == "async":
                base = {"gunicorn-sync": 1070, "gunicorn-gthread": 950, "uvicorn": 703, "gunicorn-uvicorn": 1163}[s]
            return base * min(1.0, 0.35 + u / 12)
        if w == "fanout":
            t = 0.15 if v == "sync" else 0.05
            if s in slots:
                cap = min(u, slots[s]) / t * 0.92
            else:
                cap = u / t * 0.9
                if v == "async":
                    cap = min(cap, 45.0)  # httpx's CPU cost
                if v == "sync":
                    cap = min(cap, 90.0)
                if v == "sync-threads":
                    cap = min(cap, 120.0)
                if v == "async-aiohttp":
                    cap = min(cap, 480.0)
            return max(cap, 1.0)
        if w in ("orm", "json", "json-noindex"):
            base = {"gunicorn-sync": 634, "gunicorn-gthread": 657, "uvicorn": 320, "gunicorn-uvicorn": 394}[s]
            if v == "async":
                base = {"gunicorn-sync": 364, "gunicorn-gthread": 292, "uvicorn": 358, "gunicorn-uvicorn": 436}[s]
            if v == "async-s2a":
                base = {"gunicorn-sync": 403, "gunicorn-gthread": 353, "uvicorn": 348, "gunicorn-uvicorn": 336}[s]
            if w == "json-noindex":
                return base * 0.12 * min(1.0, 0.4 + u / 16)
            return base * min(1.0, 0.4 + u / 16)
        return None

    cells = make_matrix(
        setups,
        {
            "noio": ["sync", "async"],
            "fanout": ["sync", "sync-threads", "async", "async-aiohttp"],
            "orm": ["sync", "async-s2a", "async"],
            "json": ["sync", "async-s2a", "async"],
            "json-noindex": ["sync", "async-s2a", "async"],
        },
        users,
        rps,
        repeats=3,
    )
    # ASGI costs Django 2-3x more CPU per request (MEASURED.md); httpx more again.
    cpu_ms = {"noio": 0.4, "fanout": 2.0, "orm": 1.5, "json": 1.6, "json-noindex": 9.0}
    cells = [
        replace(
            c,
            repeats=tuple(
                replace(
                    r,
                    server_cpu_s=r.requests
                    * cpu_ms[c.workload]
                    / 1000.0
                    * (2.5 if c.setup in asgi else 1.0)
                    * (3.0 if c.variant == "async" and c.workload == "fanout" else 1.0),
                    server_rss_peak_mb={
                        "gunicorn-sync": 62.0,
                        "gunicorn-gthread": 71.0,
                        "uvicorn": 58.0,
                        "gunicorn-uvicorn": 96.0,
                    }[c.setup],
                )
                for r in c.repeats
            ),
        )
        for c in cells
    ]
    cells = [_with_params(c) for c in cells]
    # an upstream-delay sweep for fan-out at 32 users
    for s in ("gunicorn-gthread", "uvicorn"):
        for v in ("sync", "async-aiohttp"):
            for d in (5, 20, 200):
                t = (3 if v == "sync" else 1) * d / 1000.0
                cap = min(32, slots.get(s, 32)) / t * 0.9
                cap = min(cap, 2000.0 if s in asgi else 1500.0)
                cells.append(make_cell(s, "fanout", v, 32, spread(cap), params={"calls": 3, "delay_ms": d}))
    # a single-repeat workload: no claim possible
    for s in ("gunicorn-sync", "uvicorn"):
        for v in ("sync", "async"):
            for u in (1, 8):
                cells.append(make_cell(s, "cpu", v, u, 120.0 if v == "sync" else 95.0))
    cells = _flag(cells, "gunicorn-sync", "noio", "sync", 64, ("generator-bound", "locust at 96% of a core"))
    cells = _flag(cells, "uvicorn", "orm", "async", 64, ("failures", "12 of 3,400 requests failed (ConnectionReset)"))
    cells = _flag(cells, "gunicorn-uvicorn", "json", "async-s2a", 8, ("unstable", "CV 14% across repeats"))
    cells = [c for c in cells if (c.setup, c.workload, c.variant, c.users) != ("gunicorn-uvicorn", "noio", "async", 64)]
    cells.append(
        make_cell("gunicorn-uvicorn", "orm", "async", 64, [], status="error", error="server did not start: exit 3")
    )
    failed = ("gunicorn-uvicorn", "orm", "async", 64)
    cells = [c for c in cells if (c.setup, c.workload, c.variant, c.users) != failed or c.status == "error"]
    return make_run(
        cells,
        missing=[("gunicorn-uvicorn", "noio", "async", 64)],
        complete=complete,
        scenario="demo",
        command=("python", "runner.py", "run", "--scenario", "full"),
        scenario_resolved={"upstream": {"delay_ms": 50}, "workloads": {"fanout": {"calls": 3}}},
        notes=("Synthetic numbers shaped after MEASURED.md; not a measurement.",),
    )


def _with_params(c: Cell) -> Cell:
    if c.workload == "fanout":
        return replace(c, params={"calls": 3, "delay_ms": 50}, path=c.path + "?calls=3&delay_ms=50")
    return c


def _flag(cells: list[Cell], setup: str, workload: str, variant: str, users: int, flag: tuple[str, str]) -> list[Cell]:
    return [
        replace(c, flags=(*c.flags, Flag(*flag)))
        if (c.setup, c.workload, c.variant, c.users) == (setup, workload, variant, users)
        and c.params.get("delay_ms", 50) == 50
        else c
        for c in cells
    ]


# ------------------------------------------------------------------ latency at the same load


def make_latency_curves(
    workload: str,
    capacities: dict[str, tuple[str, float]],
    latency: Callable[[str, float], tuple[float, float, int]],
    *,
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 0.9),
    equal_load: bool = True,
    slices: int = 5,
    params: dict[str, int] | None = None,
) -> Any:
    """A workload's `LatencyCurves` as the latency phase records them.

    `capacities`: "setup/variant" -> (kind, closed-loop req/s). The points are
    planned as the runner plans them (asyncbench.analysis.latency.plan_points);
    `latency(arm, rate)` gives each point's (p50 ms, p99 ms, requests lost per
    slice), spread over `slices` slices by the same ±2% jitter as `spread`.
    """
    from asyncbench.analysis.latency import plan_points
    from asyncbench.model.latency import ArmCapacity, LatencyCurves, LatencyPoint, LatencySlice

    caps = [
        ArmCapacity(arm.split("/")[0], arm.split("/")[1], kind, cap, "closed loop", 32, 5)
        for arm, (kind, cap) in capacities.items()
    ]
    points = []
    for p in plan_points(caps, fractions, equal_load=equal_load):
        p50, p99, lost = latency(p.arm, p.rate_rps)
        due = max(1, round(p.rate_rps))
        sl = tuple(
            LatencySlice(
                block=b,
                started_at=1_700_000_000.0 + b,
                duration_s=1.0,
                target_rps=p.rate_rps,
                due=due,
                requests=due - lost,
                failures={},
                dropped=lost,
                unfinished=0,
                throughput_rps=float(due - lost),
                p50_ms=p50 * _JITTER[b % len(_JITTER)],
                p90_ms=(p50 + p99) / 2,
                p99_ms=p99 * _JITTER[b % len(_JITTER)],
                max_ms=p99 * 1.2,
            )
            for b in range(slices)
        )
        if p.skip:  # far past the arm's capacity: listed, not measured (as the runner does)
            sl, error = (), p.skip
        else:
            error = None
        points.append(
            LatencyPoint(p.setup, p.variant, p.kind, p.rate_rps, p.fraction, p.of_arm, p.equal_load, sl, error=error)
        )
    return LatencyCurves(
        workload=workload,
        params=dict(params or {}),
        capacities=tuple(caps),
        points=tuple(points),
        fractions=tuple(fractions),
        arrival="poisson",
        window_s=1.0,
        connections=64,
        blocks=slices,
        stop_reason="blocks",
    )
