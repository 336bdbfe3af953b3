"""The load driver: a long-lived locust process that measures one cell per command.

Runs as its own process (`python -m asyncbench.execute.loaddriver`), started and stopped
by the runner like any other child. It uses locust as a library (Environment +
LocalRunner + the FastHttpUser in locustfiles/endpoint.py) rather than the
locust command line, because a locust process costs about 2 s to start: one
process per setup instead of one per measurement is what lets the `quick`
scenario fit its budget.

Protocol: one JSON object per line on stdin, one JSON object per line on
stdout. `{"op": "measure", ...}` -> a measurement; `{"op": "quit"}` -> exit.
Everything else (locust's own logging) goes to stderr, which the runner keeps
in the run's folder.

What it measures, per command:
- warm-up: users spawned and loading for `warmup_s`, then discarded;
- measured window: from `min_s` up to `max_s`, ended early once throughput
  per 0.5 s tick is stable (relative standard error below `target_rse`) and
  users completed at least `min_requests_per_user` requests on average; a
  slow cell that has not reached that count by `max_s` runs on to
  `slow_max_s`;
- response times at microsecond resolution (asyncbench.model.histogram) from
  locust's request event, per window and per second; locust's own rounded
  statistics beside them as a cross-check;
- its own CPU (process time) per tick, to flag a generator-bound cell.
"""

# locust must be imported first: it monkey-patches the standard library with gevent.
import locust  # noqa: F401  isort: skip

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from asyncbench.execute.openloop import DEFAULT_CONNECTIONS, OpenTally, lag_summary, measure_open, record_latency
from asyncbench.model.histogram import Histogram
from locustfiles.causes import failure_kind
from locustfiles.endpoint import EndpointUser

TICK_S = 0.5


class Recorder:
    """Receives locust's request events; records only inside the measured window."""

    def __init__(self) -> None:
        self.active = False
        self.t0 = 0.0
        self.hist = Histogram()
        self.seconds: dict[int, Histogram] = {}
        self.second_failures: dict[int, int] = {}
        self.failures: dict[str, int] = {}
        self.ok = 0

    def start(self) -> None:
        self.__init__()  # type: ignore[misc]
        self.t0 = time.time()
        self.active = True

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if not self.active:
            return
        sec = int(time.time() - self.t0)
        if exception is not None:
            kind = _failure_kind(exception)
            self.failures[kind] = self.failures.get(kind, 0) + 1
            self.second_failures[sec] = self.second_failures.get(sec, 0) + 1
            return
        self.ok += 1
        record_latency(self.hist, self.seconds, response_time * 1000.0, sec)


def _failure_kind(exc: BaseException) -> str:
    # The cause a view named ("HTTP 503: database unreachable") is kept, see
    # locustfiles/causes.py.
    return failure_kind(exc)


def measure(cmd: dict[str, Any], recorder: Recorder, emit: Any = None) -> dict[str, Any]:
    if cmd.get("rate"):
        return measure_at_rate(cmd, emit)
    host = cmd["host"]
    path = cmd["path"]
    users = int(cmd["users"])
    warmup_s = float(cmd.get("warmup_s", 1.0))
    min_s = float(cmd.get("min_s", 2.0))
    max_s = max(min_s, float(cmd.get("max_s", 6.0)))
    # Slow cells (a saturated worker, a long upstream delay) may run past
    # max_s, up to slow_max_s, until users completed min_requests_per_user
    # requests on average: otherwise the percentiles describe a handful.
    slow_max_s = max(max_s, float(cmd.get("slow_max_s", max_s)))
    target_rse = float(cmd.get("target_rse", 0.02))
    min_per_user = int(cmd.get("min_requests_per_user", 5))

    user_class = type("CellUser", (EndpointUser,), {"path": path, "host": host})
    env = Environment(user_classes=[user_class], host=host)
    request_hook: Any = env.events.request  # locust's EventHook methods carry no annotations
    request_hook.add_listener(recorder.on_request)
    runner = env.create_local_runner()
    try:
        # Users start spread over the settle time, not all at once: users
        # started together stay in step on a slow, steady endpoint, and a
        # short window then counts their completions in bursts of `users`.
        t_spawn = time.monotonic()
        runner.start(users, spawn_rate=users / max(warmup_s, 0.05))
        deadline = t_spawn + 10
        while runner.user_count < users and time.monotonic() < deadline:
            gevent.sleep(0.01)
        gevent.sleep(max(0.05, warmup_s - (time.monotonic() - t_spawn)))

        env.stats.reset_all()
        # Tell the runner the measured window starts now, so the server's CPU
        # is counted over the same window as the requests (not the warm-up).
        if emit is not None:
            emit({"event": "window-start"})
        recorder.start()
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        ticks: list[int] = []
        tick_cpu: list[float] = []
        last_count = 0
        stop_reason = "max_s"
        while True:
            t_cpu, t_wall = time.process_time(), time.monotonic()
            gevent.sleep(TICK_S)
            done = recorder.ok + sum(recorder.failures.values())
            ticks.append(done - last_count)
            last_count = done
            dt = time.monotonic() - t_wall
            tick_cpu.append(100.0 * (time.process_time() - t_cpu) / dt if dt > 0 else 0.0)
            elapsed = time.monotonic() - wall0
            if elapsed >= slow_max_s or (elapsed >= max_s and done >= min_per_user * users):
                break
            if elapsed >= min_s and done >= min_per_user * users and _rse(ticks) <= target_rse:
                stop_reason = "stable"
                break
        recorder.active = False
        duration = time.monotonic() - wall0
        if emit is not None:
            emit({"event": "window-end"})
        cpu = time.process_time() - cpu0
        total = env.stats.total
        locust_stats = {
            "requests": float(total.num_requests),
            "failures": float(total.num_failures),
            "median_ms": float(total.median_response_time or 0),
            "p99_ms": float(total.get_response_time_percentile(0.99) or 0),
            "avg_ms": float(total.avg_response_time or 0),
            "rps": total.num_requests / duration if duration > 0 else 0.0,
        }
    finally:
        runner.quit()
        request_hook.remove_listener(recorder.on_request)

    h = recorder.hist
    # whole seconds only: a trailing partial second would read as a dip
    series = _series(recorder.seconds, recorder.second_failures, int(duration))
    return {
        "ok": True,
        "started_at": recorder.t0,
        "duration_s": duration,
        "warmup_s": warmup_s,
        "stop_reason": stop_reason,
        "requests": recorder.ok,
        "failures": recorder.failures,
        "histogram": h.to_dict(),
        "series": series,
        "locust": locust_stats,
        "generator_cpu_percent": 100.0 * cpu / duration if duration > 0 else 0.0,
        "generator_cpu_peak_percent": max(tick_cpu) if tick_cpu else 0.0,
        "tick_requests": ticks,
    }


def measure_at_rate(cmd: dict[str, Any], emit: Any = None) -> dict[str, Any]:
    """Open model: a fixed arrival rate, latency from the intended send time (see openloop).

    `targets` ([{host, path}, ...]) loads several arms in one window, each at
    `rate`, their requests interleaved: the answer then has one result per
    target under "parts". Without it, `host` and `path` are the one target.
    """
    rate = float(cmd["rate"])
    settle_s = float(cmd.get("warmup_s", 0.5))
    window_s = float(cmd.get("min_s", 1.0))
    targets = [(t["host"], t["path"]) for t in cmd.get("targets") or [{"host": cmd["host"], "path": cmd["path"]}]]
    marks: dict[str, float] = {}

    def on_start() -> None:
        marks["cpu0"], marks["wall0"] = time.process_time(), time.monotonic()
        if emit is not None:
            emit({"event": "window-start"})

    def on_end() -> None:
        marks["cpu1"], marks["wall1"] = time.process_time(), time.monotonic()
        if emit is not None:
            emit({"event": "window-end"})

    tallies, started_at = measure_open(
        targets=targets,
        rate=rate,
        arrival=str(cmd.get("arrival", "uniform")),
        connections=int(cmd.get("connections") or DEFAULT_CONNECTIONS),
        settle_s=settle_s,
        window_s=window_s,
        on_window_start=on_start,
        on_window_end=on_end,
        driver=int(cmd.get("driver", 0)),
        drivers=int(cmd.get("drivers", 1)),
    )
    duration = max(marks["wall1"] - marks["wall0"], 1e-9)
    # the generator's CPU is shared by the targets of one window
    cpu_percent = 100.0 * (marks["cpu1"] - marks["cpu0"]) / duration
    parts = [_open_result(t, rate, started_at, duration, settle_s, window_s, cpu_percent) for t in tallies]
    if cmd.get("targets"):
        return {"ok": True, "parts": parts}
    return parts[0]


def _open_result(  # noqa: PLR0917  one window's facts, all positional from one call site
    tally: OpenTally, rate: float, started_at: float, duration: float, settle_s: float, window_s: float, cpu: float
) -> dict[str, Any]:
    series = _series(tally.seconds, tally.second_failures, int(window_s))
    h = tally.hist
    return {
        "ok": True,
        "started_at": started_at,
        "duration_s": duration,
        "warmup_s": settle_s,
        "stop_reason": "rate",
        "requests": tally.ok,
        "failures": tally.failures,
        "histogram": h.to_dict(),
        "series": series,
        "locust": {
            "requests": float(tally.ok + sum(tally.failures.values())),
            "failures": float(sum(tally.failures.values())),
            "median_ms": _ms(h.percentile(50)) or 0.0,
            "p99_ms": _ms(h.percentile(99)) or 0.0,
            "avg_ms": (h.mean_us or 0.0) / 1000.0,
            "rps": tally.ok / duration,
        },
        "generator_cpu_percent": cpu,
        "generator_cpu_peak_percent": cpu,
        "tick_requests": [],
        "open": {
            "target_rps": rate,
            "due": tally.due,
            "dropped": tally.dropped,
            "unfinished": tally.unfinished,
            "send_lag": lag_summary(tally.lags_us),
        },
    }


def _series(seconds: dict[int, Histogram], failures: dict[int, int], n: int) -> list[dict[str, Any]]:
    """The window second by second: answers, failures, p50 and p99."""
    out = []
    for sec in range(n):
        sh = seconds.get(sec)
        out.append(
            {
                "t": float(sec),
                "requests": sh.count if sh else 0,
                "failures": failures.get(sec, 0),
                "p50_ms": _ms(sh.percentile(50)) if sh else None,
                "p99_ms": _ms(sh.percentile(99)) if sh else None,
            }
        )
    return out


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _rse(ticks: list[int]) -> float:
    """Relative standard error of the mean tick count (inf below 4 ticks)."""
    n = len(ticks)
    if n < 4:
        return math.inf
    mean = sum(ticks) / n
    if mean <= 0:
        return math.inf
    var = sum((x - mean) ** 2 for x in ticks) / (n - 1)
    return math.sqrt(var / n) / mean


def main() -> int:
    recorder = Recorder()
    # The protocol gets a private copy of stdout; fd 1 itself is pointed at
    # stderr, so anything locust, gevent or a library prints lands in the log
    # instead of corrupting the protocol.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    print(json.dumps({"ready": True}), file=out, flush=True)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break

        def emit(obj: dict[str, Any]) -> None:
            out.write(json.dumps(obj) + "\n")
            out.flush()

        try:
            result = measure(cmd, recorder, emit)
        except Exception as exc:  # report, keep serving: one bad cell must not end the run
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
