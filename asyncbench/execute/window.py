"""One measured window, whoever generates its load: the tick grid, the closed
loop's stop rule, and the merge of several generators' results over the window
they share.

Pure functions, no locust: the load driver, the locust master and worker
(asyncbench.execute.locustmaster, locustworker) and the runner all use them.

The window of a slice is a grid of `TICK_S` ticks from its start. An answer
belongs to the tick its completion time falls in, so a window of `n` ticks is
exactly [start, start + n * TICK_S) for every process that loads it: a closed
loop's stop is decided on the summed tick counts and always falls on a tick
boundary, known to every worker. An open-model window is fixed in advance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from asyncbench.model.histogram import Histogram

TICK_S = 0.5


def rse(ticks: Sequence[int]) -> float:
    """Relative standard error of the mean tick count (inf below 4 ticks)."""
    n = len(ticks)
    if n < 4:
        return math.inf
    mean = sum(ticks) / n
    if mean <= 0:
        return math.inf
    var = sum((x - mean) ** 2 for x in ticks) / (n - 1)
    return math.sqrt(var / n) / mean


def closed_loop_stop(
    ticks: Sequence[int],
    *,
    users: int,
    min_s: float,
    max_s: float,
    slow_max_s: float,
    target_rse: float,
    min_requests_per_user: int,
) -> str | None:
    """Why a closed-loop window of these tick counts (answers per tick, summed
    over every generator) ends now, or None to go on.

    From `min_s` up to `max_s`: ended early once the tick counts are stable
    (relative standard error <= `target_rse`) and users completed at least
    `min_requests_per_user` requests on average; a slow cell that has not
    reached that count by `max_s` runs on to `slow_max_s`.
    """
    elapsed = len(ticks) * TICK_S
    done = sum(ticks)
    enough = done >= min_requests_per_user * users
    if elapsed >= max(slow_max_s, max_s) or (elapsed >= max_s and enough):
        return "max_s"
    if elapsed >= min_s and enough and rse(ticks) <= target_rse:
        return "stable"
    return None


def stop_rule(cmd: dict[str, Any]) -> dict[str, Any]:
    """The closed-loop stop rule's parameters from a measure command (see closed_loop_stop)."""
    min_s = float(cmd.get("min_s", 2.0))
    max_s = max(min_s, float(cmd.get("max_s", 6.0)))
    return {
        "users": int(cmd["users"]),
        "min_s": min_s,
        "max_s": max_s,
        # Slow cells (a saturated worker, a long upstream delay) may run past
        # max_s, up to slow_max_s, until users completed min_requests_per_user
        # requests on average: otherwise the percentiles describe a handful.
        "slow_max_s": max(max_s, float(cmd.get("slow_max_s", max_s))),
        "target_rse": float(cmd.get("target_rse", 0.02)),
        "min_requests_per_user": int(cmd.get("min_requests_per_user", 5)),
    }


def split_users(users: int, workers: int) -> list[int]:
    """Users per worker, as even as possible, the first workers taking the remainder."""
    return [users // workers + (1 if i < users % workers else 0) for i in range(workers)]


def tick_of(t: float, start: float) -> int:
    """The tick of the window an answer at wall time `t` belongs to (negative before the window)."""
    return math.floor((t - start) / TICK_S)


def second_histograms(ticks: dict[int, Histogram], n: int) -> list[Histogram]:
    """The window's whole seconds, each the merge of its ticks (a trailing
    partial second would read as a dip, so it is left out)."""
    seconds = int(n * TICK_S)
    out = [Histogram() for _ in range(seconds)]
    for k, h in ticks.items():
        s = int(k * TICK_S)
        if 0 <= k < n and s < seconds:
            out[s].merge(h)
    return out


def series(seconds: Sequence[Histogram], failures: Sequence[int]) -> list[dict[str, Any]]:
    """The window second by second: answers, failures, p50 and p99 (ms)."""
    out = []
    for sec, sh in enumerate(seconds):
        out.append(
            {
                "t": float(sec),
                "requests": sh.count,
                "failures": failures[sec] if sec < len(failures) else 0,
                "p50_ms": ms(sh.percentile(50)) if sh.count else None,
                "p99_ms": ms(sh.percentile(99)) if sh.count else None,
            }
        )
    return out


def ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _sum_dicts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def merge_results(
    results: Sequence[dict[str, Any]], *, window: tuple[float, float], stop_reason: str | None = None
) -> dict[str, Any]:
    """The results of several workers over one common window, as one result.

    Every worker counted the answers of the same [start, stop): the requests
    add up, the throughput is their total over that one window, the
    histograms merge bucket by bucket (the merged count is the sum of the
    workers'), the per-second series merge second by second from the
    workers' per-second histograms. Each worker's own CPU and window are kept
    under "workers"; the result's generator CPU is the busiest worker's, so a
    slice is generator-bound when any worker was.
    """
    if not results:
        raise ValueError("no worker result to merge")
    start, stop = window
    duration = max(stop - start, 1e-9)
    hist = Histogram.merged(Histogram.from_dict(r["histogram"]) for r in results)
    n_seconds = min(len(r.get("second_histograms") or []) for r in results)
    seconds = [
        Histogram.merged(Histogram.from_dict(r["second_histograms"][i]) for r in results) for i in range(n_seconds)
    ]
    second_failures = [sum(r["series"][i]["failures"] for r in results) for i in range(n_seconds)]
    requests = sum(int(r["requests"]) for r in results)
    loc = [r["locust"] for r in results]
    locust_requests = sum(x["requests"] for x in loc)
    tick_requests = [sum(t) for t in zip(*(r.get("tick_requests") or [] for r in results), strict=False)]
    workers = [w for r in results for w in r.get("workers") or []]
    out: dict[str, Any] = {
        "ok": True,
        "started_at": start,
        "duration_s": duration,
        "warmup_s": results[0]["warmup_s"],
        "stop_reason": stop_reason or ",".join(sorted({r["stop_reason"] for r in results})),
        "requests": requests,
        "failures": _sum_dicts(r["failures"] for r in results),
        "histogram": hist.to_dict(),
        "second_histograms": [h.to_dict() for h in seconds],
        "series": series(seconds, second_failures),
        "locust": {
            "requests": float(locust_requests),
            "failures": float(sum(x["failures"] for x in loc)),
            "rps": locust_requests / duration,
            # locust's own rounded figures are a cross-check only: the busiest worker's
            "median_ms": max(x["median_ms"] for x in loc),
            "p99_ms": max(x["p99_ms"] for x in loc),
            "avg_ms": sum(x["avg_ms"] * x["requests"] for x in loc) / max(1.0, locust_requests),
        },
        "throughput_rps": requests / duration,
        "generator_cpu_percent": max(r["generator_cpu_percent"] for r in results),
        "generator_cpu_peak_percent": max(r["generator_cpu_peak_percent"] for r in results),
        "tick_requests": tick_requests,
        "window": [start, stop],
        "workers": workers,
    }
    opens = [r["open"] for r in results if r.get("open")]
    if opens:
        out["open"] = merge_open(opens)
    return out


def merge_open(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The open-model facts of several workers sharing a rate."""
    lag = [p["send_lag"] for p in parts]
    return {
        "target_rps": sum(p["target_rps"] for p in parts),
        "due": sum(p["due"] for p in parts),
        "dropped": sum(p["dropped"] for p in parts),
        "unfinished": sum(p["unfinished"] for p in parts),
        # the latest worker's: a pool is as late as its slowest member
        "send_lag": {k: max(x[k] for x in lag) for k in ("p50_ms", "p99_ms", "max_ms")},
    }
