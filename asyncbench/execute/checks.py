"""What is checked around a measurement: the body before load, the flags of a
repeat and of a cell, and the repeat as stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asyncbench.analysis import stats
from asyncbench.execute.load import Measurement
from asyncbench.execute.monitor import WindowUsage
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import LOOPBACK, http_request
from asyncbench.execute.servers import Drain
from asyncbench.execute.target import url_get
from asyncbench.model import flags
from asyncbench.model.results import Flag, Latency, Repeat, Second
from asyncbench.model.scenario import Scenario

# (workload, params) -> (where it came from, content type, body) of the first answer
References = dict[tuple[str, tuple[tuple[str, int], ...]], tuple[str, str, bytes]]


@dataclass(frozen=True)
class WindowProbe:
    """What was measured beside the load over one measured window."""

    server: WindowUsage
    upstream_cpu_percent: float | None
    generator_cores_busy_percent: float | None
    generator_cpus: tuple[int, ...] = ()
    # the server's CPUs as a whole (every server pinned there, in a window that loads several)
    server_cpus_busy_percent: float | None = None
    # the server's own counters over the window (bench_site.telemetry); None: telemetry off
    server_counters: dict[str, int] | None = None
    # connections the database server saw opened in the window; None: not read
    db_connections: int | None = None


def check_body(item: Planned, port: int, references: References, *, origin: str = "", prefix: str = "") -> str | None:
    """Request the endpoint once: it must answer 200 (a scenario's endpoint:
    the status it names) with a well-formed body, and the same status,
    content type and bytes as its twins on every setup (an endpoint with
    identical_bodies = false: the status only). Returns the problem, or None.
    `origin` and `prefix`: an existing deployment's scheme://host:port and
    path prefix (else the local `port`)."""
    arm = item.arm
    spec = arm.request
    method, sent, data = spec.method, spec.header_dict(), spec.body
    what = item.path if spec.method == "GET" else f"{spec.method} {item.path}"
    try:
        if origin:
            status, body, headers = url_get(
                origin, prefix + item.path, timeout=30, method=method, headers=sent, body=data
            )
        else:
            status, body, headers = http_request(LOOPBACK, port, method, item.path, headers=sent, body=data, timeout=30)
    except OSError as exc:
        return f"request to {prefix + what} failed: {exc}"
    expected = spec.status or 200
    if status != expected:
        return f"{what} answered HTTP {status} (expected {expected}): {body[:200].decode('utf-8', 'replace')}"
    ctype = headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            json.loads(body)
        except ValueError:
            return f"{item.path} answered {ctype} that is not valid JSON: {body[:120]!r}"
    if not arm.identical_bodies:
        return None
    key = (item.workload, item.params)
    ref = references.get(key)
    if ref is None:
        references[key] = (f"{item.setup} {item.variant}", ctype, body)
        return None
    where, ref_ctype, ref_body = ref
    if ref_ctype != ctype:
        return f"{item.path} on {item.setup} answered content type {ctype!r}, its twin ({where}) {ref_ctype!r}"
    if ref_body != body:
        at = next(
            (i for i, (a, b) in enumerate(zip(ref_body, body, strict=False)) if a != b),
            min(len(ref_body), len(body)),
        )
        return (
            f"body of {item.path} on {item.setup} differs from its twin ({where}) at byte {at} "
            f"({len(body)} vs {len(ref_body)} bytes)"
        )
    return None


# What a view answers (bench_site.dispatch, bench_site.workloads.fanout) when a
# service it needs is not there; the load driver keeps it in the failure kind
# ("HTTP 503: database unreachable"), and the window is flagged `outage`.
OUTAGE_CAUSES = ("database unreachable", "upstream unreachable")


def generator_flags(
    m: Measurement, probe: WindowProbe, limit: float, ceiling: tuple[float, float] | None
) -> list[Flag]:
    """generator-bound: locust, or the generator's CPUs, or the ceiling was the limit.

    The generator's CPUs count whoever ran on them during the window: locust,
    the upstream, the runner and its monitor threads, anything else. When they
    are >= `limit` percent busy on average, locust competed for them, so the
    figure is a lower bound however little CPU locust itself reported.
    `ceiling` is (the generator's measured ceiling, the throughput from which a
    window counts as at the ceiling), both in req/s, or None when unmeasured.
    """
    if m.open is not None:
        return _open_generator_flags(m, limit)
    busy = probe.generator_cores_busy_percent
    ncpus = len(probe.generator_cpus) or 1
    # the load workers on this machine (remote ones use their own CPUs)
    locust_cpu = m.local_driver_cpu_percent
    upstream = probe.upstream_cpu_percent
    ours = None if upstream is None else locust_cpu + upstream
    if m.generator_cpu_percent >= limit:
        why = _busiest(m, limit)
    elif busy is not None and busy >= limit:
        parts = f"locust {locust_cpu:.0f}%" + ("" if upstream is None else f", the upstream {upstream:.0f}%")
        why = (
            f"the generator's {ncpus} CPU(s) were {busy:.0f}% busy (limit {limit:.0f}%; {parts} of one core, "
            "the rest the runner, its monitors and other processes)"
        )
    elif ours is not None and ours >= limit * ncpus:
        # unpinned (no CPU list): locust and the upstream together
        why = (
            f"locust ({locust_cpu:.0f}%) and the upstream ({upstream or 0:.0f}%) used {ours:.0f}% "
            f"of the generator's {ncpus} CPU(s) (limit {limit:.0f}% each)"
        )
    elif ceiling is not None and m.throughput_rps >= ceiling[1]:
        rps, at = m.throughput_rps, ceiling[0]
        why = f"{rps:,.0f} req/s is {rps / at:.0%} of the generator's measured ceiling ({at:,.0f} req/s)"
    else:
        return []
    return [Flag(flags.GENERATOR_BOUND, why)]


def _busiest(m: Measurement, limit: float) -> str:
    """locust's own CPU at the limit: the busiest load worker's, when there are several."""
    who = f"the busiest of {len(m.driver_cpu_percents)} load workers" if len(m.driver_cpu_percents) > 1 else "locust"
    return f"{who} used {m.generator_cpu_percent:.0f}% of a core (limit {limit:.0f}%)"


# Open model: the generator sent late on average by more than this (ms).
SEND_LAG_LIMIT_MS = 5.0


def _open_generator_flags(m: Measurement, limit: float) -> list[Flag]:
    """At a fixed rate the generator is the limit when it cannot keep its
    schedule: its own CPU at the limit, or its median send later than
    SEND_LAG_LIMIT_MS. How busy its CPUs were is recorded but not a flag here:
    a late send is already in the latency (measured from the intended time),
    and nothing else says the generator was short."""
    assert m.open is not None
    lag = float((m.open.get("send_lag") or {}).get("p50_ms") or 0.0)
    if m.generator_cpu_percent >= limit:
        why = _busiest(m, limit)
    elif lag > SEND_LAG_LIMIT_MS:
        why = f"the generator sent requests {lag:.1f} ms late (median; limit {SEND_LAG_LIMIT_MS:g} ms)"
    else:
        return []
    return [Flag(flags.GENERATOR_BOUND, why)]


def outage_causes(failures: dict[str, int]) -> dict[str, int]:
    """Failed requests per outage cause named in their failure kind."""
    found: dict[str, int] = {}
    for kind, count in failures.items():
        low = kind.lower()
        for cause in OUTAGE_CAUSES:
            if cause in low:
                found[cause] = found.get(cause, 0) + count
    return found


def repeat_flags(
    m: Measurement,
    probe: WindowProbe,
    users: int,
    scenario: Scenario,
    ceiling_rps: float | None,
    *,
    previous_drain: Drain | None = None,
) -> list[Flag]:
    """The flags of one measured window: generator-bound, outage, failures,
    server crash, backlog, few requests.

    `previous_drain`: how the drain after the previous window on the same
    server ended; one that timed out means this window started on a backlog.
    """
    load = scenario.load
    usage = probe.server
    ceiling = (ceiling_rps, load.ceiling_fraction * ceiling_rps) if ceiling_rps else None
    found = generator_flags(m, probe, load.generator_cpu_limit, ceiling)
    nfail = sum(m.failures.values())
    causes = outage_causes(m.failures)
    for cause, count in sorted(causes.items()):
        found.append(Flag(flags.OUTAGE, f"{cause}: {count} of {nfail + m.requests} requests failed for that reason"))
    if nfail:
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(m.failures.items(), key=lambda kv: -kv[1])[:3])
        found.append(Flag(flags.FAILURES, f"{nfail} of {nfail + m.requests} requests failed: {kinds}"))
    if usage.worker_changes or not usage.alive:
        found.append(
            Flag(
                flags.SERVER_CRASH,
                "server died"
                if not usage.alive
                else f"{usage.worker_changes} server processes appeared or vanished (crash or respawn)",
            )
        )
    if previous_drain is not None and previous_drain.timed_out:
        found.append(
            Flag(
                flags.BACKLOG,
                f"the drain after the previous window on this server gave up after {previous_drain.seconds:.1f} s: "
                "this window started while the server still worked off that backlog",
            )
        )
    if m.open is not None:
        found.extend(open_model_flags(m, probe, load.window_s))
    # An outage explains too few requests: it is named instead.
    few = m.requests < OPEN_MIN_REQUESTS if m.open is not None else m.requests < load.min_requests_per_user * users
    if not causes and few:
        found.append(
            Flag(
                flags.FEW_REQUESTS,
                f"{m.requests} requests in {m.duration_s:.1f} s for {users} users "
                f"(< {load.min_requests_per_user} per user): percentiles describe few requests",
            )
        )
    return found


# Open model: below this many answers in a window its percentiles say little.
OPEN_MIN_REQUESTS = 15
# Open model: requests lost (dropped or unanswered) beyond this share of those due.
RATE_LOSS_LIMIT = 0.01
# Open model: the server's CPUs busier than this means the rate was not "well below capacity".
NEAR_CAPACITY_PERCENT = 75.0


def open_model_flags(m: Measurement, probe: WindowProbe, window_s: float) -> list[Flag]:
    """rate-not-held and near-capacity, for a window at a fixed arrival rate."""
    assert m.open is not None
    out: list[Flag] = []
    due = int(m.open.get("due") or 0)
    lost = int(m.open.get("dropped") or 0) + int(m.open.get("unfinished") or 0)
    if due and lost / due > RATE_LOSS_LIMIT:
        out.append(
            Flag(
                flags.RATE_NOT_HELD,
                f"{lost} of {due} requests due at {m.open.get('target_rps', 0):,.0f} req/s were dropped "
                f"(no free connection: {m.open.get('dropped', 0)}) or unanswered ({m.open.get('unfinished', 0)})",
            )
        )
    busy = probe.server_cpus_busy_percent
    if busy is not None and busy >= NEAR_CAPACITY_PERCENT:
        out.append(
            Flag(
                flags.NEAR_CAPACITY,
                f"the server's CPUs were {busy:.0f}% busy at the fixed rate (limit {NEAR_CAPACITY_PERCENT:.0f}%): "
                "latency includes queueing, CPU per request the cost of a loaded server",
            )
        )
    return out


def cell_flags(repeats: tuple[Repeat, ...], scenario: Scenario) -> list[Flag]:
    """The flags of a cell across its repeats: a wide spread of throughput."""
    c = stats.cv([r.throughput_rps for r in repeats])
    if c is not None and c >= scenario.load.unstable_cv:
        return [
            Flag(
                flags.UNSTABLE,
                f"throughput varies {c:.0%} across {len(repeats)} repeats "
                f"(coefficient of variation; limit {scenario.load.unstable_cv:.0%})",
            )
        ]
    return []


def error_flags(message: str) -> tuple[Flag, ...]:
    """The flags of a cell that could not be measured."""
    return (Flag(flags.ERROR, message),)


def make_repeat(index: int, m: Measurement, probe: WindowProbe, found: list[Flag]) -> Repeat:
    """One measured window as the results file stores it."""
    h = m.histogram
    usage = probe.server

    def ms(q: float) -> float:
        v = h.percentile(q)
        return round(v / 1000.0, 4) if v is not None else 0.0

    return Repeat(
        index=index,
        started_at=m.started_at,
        duration_s=round(m.duration_s, 3),
        warmup_s=m.warmup_s,
        requests=m.requests,
        failures=dict(m.failures),
        throughput_rps=round(m.throughput_rps, 3),
        latency=Latency(
            count=h.count,
            mean_ms=round((h.mean_us or 0.0) / 1000.0, 4),
            p50_ms=ms(50),
            p90_ms=ms(90),
            p95_ms=ms(95),
            p99_ms=ms(99),
            max_ms=round(h.max_us / 1000.0, 4),
        ),
        locust={k: round(v, 4) for k, v in m.locust.items()},
        # None when not measured (an existing deployment without an agent), never 0
        server_cpu_s=None if usage.cpu_s is None else round(usage.cpu_s, 4),
        server_cpu_percent=None if usage.cpu_percent is None else round(usage.cpu_percent, 1),
        server_rss_peak_mb=None if usage.rss_peak_mb is None else round(usage.rss_peak_mb, 1),
        generator_cpu_percent=round(m.generator_cpu_percent, 1),
        generator_cpu_peak_percent=round(m.generator_cpu_peak_percent, 1),
        worker_cpu_percents=tuple(round(c, 1) for c in m.driver_cpu_percents),
        worker_windows=(
            tuple((round(a, 4), round(b, 4)) for a, b in m.worker_windows) if len(m.worker_windows) > 1 else ()
        ),
        server_worker_changes=usage.worker_changes,
        series=tuple(Second(**s) for s in m.series),
        flags=tuple(found),
        generator_cores_busy_percent=(
            None if probe.generator_cores_busy_percent is None else round(probe.generator_cores_busy_percent, 1)
        ),
        upstream_cpu_percent=None if probe.upstream_cpu_percent is None else round(probe.upstream_cpu_percent, 1),
        stop_reason=m.stop_reason,
        server_counters=dict(probe.server_counters) if probe.server_counters is not None else None,
        db_connections=probe.db_connections,
        **_open_fields(m),
    )


def _open_fields(m: Measurement) -> dict[str, Any]:
    if m.open is None:
        return {}
    lag = m.open.get("send_lag") or {}
    return {
        "target_rps": round(float(m.open["target_rps"]), 3),
        "due": int(m.open["due"]),
        "dropped": int(m.open["dropped"]),
        "unfinished": int(m.open["unfinished"]),
        "send_lag_p99_ms": lag.get("p99_ms"),
    }
