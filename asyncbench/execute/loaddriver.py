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
- measured window: a grid of 0.5-s ticks from its start (see
  asyncbench.execute.window), from `min_s` up to `max_s`, ended early once
  the answers per tick are stable (relative standard error below
  `target_rse`) and users completed at least `min_requests_per_user`
  requests on average; a slow cell that has not reached that count by
  `max_s` runs on to `slow_max_s`. An answer counts in the tick its
  completion time falls in, so the window is exactly [start, start + ticks x 0.5 s);
- response times at microsecond resolution (asyncbench.model.histogram) from
  locust's request event, per window and per second; locust's own rounded
  statistics beside them as a cross-check;
- its own CPU (process time) per tick, to flag a generator-bound cell.

The same functions measure on a locust worker (asyncbench.execute.locustworker),
in a window whose start the master chose and whose end it decides from every
worker's tick counts: `measure_closed` and `measure_at_rate` take the window's
start and the stop policy.
"""

# locust must be imported first: it monkey-patches the standard library with gevent.
import locust  # noqa: F401  isort: skip

import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gevent
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from asyncbench.execute.openloop import DEFAULT_CONNECTIONS, OpenTally, lag_summary, measure_open
from asyncbench.execute.window import TICK_S, closed_loop_stop, ms, second_histograms, series, stop_rule
from asyncbench.model.histogram import Histogram
from locustfiles.causes import failure_kind
from locustfiles.endpoint import EndpointUser
from locustfiles.request import RequestSpec
from locustfiles.ws import WebSocketUser

Emit = Callable[[dict[str, Any]], None]


class Recorder:
    """Receives locust's request events; files each answer under the tick of
    the window its completion time falls in (nothing before the window)."""

    def __init__(self) -> None:
        self.reset(math.inf)

    def reset(self, start: float) -> None:
        self.start = start  # wall time of the window's start
        self.ticks: dict[int, Histogram] = {}
        self.tick_failures: dict[int, dict[str, int]] = {}

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        now = time.time()
        if now < self.start:
            return
        k = int((now - self.start) / TICK_S)
        if exception is not None:
            # The cause a view named ("HTTP 503: database unreachable") is kept,
            # see locustfiles/causes.py.
            kind = failure_kind(exception)
            f = self.tick_failures.setdefault(k, {})
            f[kind] = f.get(kind, 0) + 1
            return
        h = self.ticks.get(k)
        if h is None:
            h = self.ticks[k] = Histogram()
        h.record(response_time * 1000.0)

    def count(self, k: int) -> int:
        """Answers (and failures) completed in tick k."""
        h = self.ticks.get(k)
        return (h.count if h else 0) + sum(self.tick_failures.get(k, {}).values())

    def window(self, n: int) -> dict[str, Any]:
        """The first `n` ticks as a result's fields: answers, failures, histogram, seconds."""
        inside = {k: h for k, h in self.ticks.items() if k < n}
        hist = Histogram.merged(inside.values())
        failures: dict[str, int] = {}
        seconds = second_histograms(inside, n)
        second_failures = [0] * len(seconds)
        for k, f in self.tick_failures.items():
            if k >= n:
                continue
            for kind, c in f.items():
                failures[kind] = failures.get(kind, 0) + c
            s = int(k * TICK_S)
            if s < len(second_failures):
                second_failures[s] += sum(f.values())
        return {
            "requests": hist.count,
            "failures": failures,
            "histogram": hist.to_dict(),
            "second_histograms": [h.to_dict() for h in seconds],
            "series": series(seconds, second_failures),
            "tick_requests": [self.count(k) for k in range(n)],
        }


class StopPolicy(Protocol):
    """Who ends a closed-loop window: this process alone, or a locust master."""

    reason: str

    def wait(self, until: float, passed: int) -> int | None:
        """Sleep to wall time `until` (the next tick boundary); the window's
        length in ticks if it is known to have ended by `passed` ticks."""

    def tick(self, k: int, count: int) -> int | None:
        """Tick k ended with `count` answers; the window's length in ticks if known."""


class LocalStop:
    """The single driver's own stop rule (asyncbench.execute.window.closed_loop_stop)."""

    def __init__(self, rule: dict[str, Any]) -> None:
        self.rule = rule
        self.ticks: list[int] = []
        self.reason = "max_s"

    def wait(self, until: float, passed: int) -> int | None:
        sleep_until(until)
        return None

    def tick(self, k: int, count: int) -> int | None:
        self.ticks.append(count)
        why = closed_loop_stop(self.ticks, **self.rule)
        if why is None:
            return None
        self.reason = why
        return k + 1


def sleep_until(t: float) -> None:
    """Sleep (cooperatively) until wall time t; never wakes early."""
    while (d := t - time.time()) > 0:
        gevent.sleep(d)


def run_window(
    recorder: Recorder, start: float, policy: StopPolicy, on_open: Callable[[], None] | None = None
) -> tuple[int, list[tuple[float, float]]]:
    """Wake at every tick boundary from `start` until the policy knows the
    window's end: (its length in ticks, (wall time, process time) at each boundary passed)."""
    sleep_until(start)
    if on_open is not None:
        on_open()
    samples = [(time.time(), time.process_time())]
    passed = 0
    while True:
        stop = policy.wait(start + (passed + 1) * TICK_S, passed)
        if stop is not None and stop <= passed:
            return stop, samples
        passed += 1
        samples.append((time.time(), time.process_time()))
        stop = policy.tick(passed - 1, recorder.count(passed - 1))
        if stop is not None and stop <= passed:
            return stop, samples


def _cpu(samples: list[tuple[float, float]], n: int) -> tuple[float, float]:
    """(CPU over the first n ticks, the busiest tick's), percent of one core."""
    (w0, c0), (w1, c1) = samples[0], samples[n]
    cpu = 100.0 * (c1 - c0) / (w1 - w0) if w1 > w0 else 0.0
    peak = max(
        (
            100.0 * (samples[i][1] - samples[i - 1][1]) / (samples[i][0] - samples[i - 1][0])
            for i in range(1, n + 1)
            if samples[i][0] > samples[i - 1][0]
        ),
        default=0.0,
    )
    return cpu, peak


def identity() -> dict[str, Any]:
    """Who measured: this process on this host (a worker adds its index and clock)."""
    return {"index": 0, "host": socket.gethostname(), "pid": os.getpid(), "local": True}


def measure(cmd: dict[str, Any], recorder: Recorder, emit: Emit | None = None) -> dict[str, Any]:
    if cmd.get("rate"):
        return measure_at_rate(cmd, emit)
    return measure_closed(cmd, recorder, emit=emit)


def measure_closed(
    cmd: dict[str, Any],
    recorder: Recorder,
    *,
    emit: Emit | None = None,
    start_at: float | None = None,
    policy: StopPolicy | None = None,
    clock_offset: float = 0.0,
    me: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Closed loop: `users` users with no think time, a settle, then the window.

    Alone (`start_at` None) the window starts once the users are spawned and
    the settle is over, and ends by this process's own stop rule. On a locust
    worker it starts at wall time `start_at` (this machine's clock) and ends
    when the `policy` learns the master's decision. Times in the result are
    on the master's clock (this one's + `clock_offset`).
    """
    host = cmd["host"]
    path = cmd["path"]
    users = int(cmd["users"])
    warmup_s = float(cmd.get("warmup_s", 1.0))
    policy = policy or LocalStop(stop_rule(cmd))

    # "request": method, headers, body, expected status (absent: a plain GET)
    request = RequestSpec.from_dict(cmd.get("request"))
    user_class: type[Any]
    if cmd.get("protocol") == "websocket":
        # one held connection per user; each message's round trip is a "request"
        user_class = type("CellUser", (WebSocketUser,), {"path": path, "host": host})
    else:
        user_class = type("CellUser", (EndpointUser,), {"path": path, "host": host, "request": request})
    env = Environment(user_classes=[user_class], host=host)
    request_hook: Any = env.events.request  # locust's EventHook methods carry no annotations
    request_hook.add_listener(recorder.on_request)
    runner = env.create_local_runner()
    try:
        if start_at is not None:
            recorder.reset(start_at)  # answers before it belong to the settle
        # Users start spread over the settle time, not all at once: users
        # started together stay in step on a slow, steady endpoint, and a
        # short window then counts their completions in bursts of `users`.
        t_spawn = time.monotonic()
        runner.start(users, spawn_rate=users / max(warmup_s, 0.05))
        if start_at is None:
            deadline = t_spawn + 10
            while runner.user_count < users and time.monotonic() < deadline:
                gevent.sleep(0.01)
            # WebSocket users hold one connection each: every handshake done
            # before the window, so none is in it (they are not requests)
            while getattr(user_class, "opened", users) < users and time.monotonic() < deadline:
                gevent.sleep(0.01)
            gevent.sleep(max(0.05, warmup_s - (time.monotonic() - t_spawn)))
            start = time.time()
            recorder.reset(start)
        else:
            start = start_at

        def on_open() -> None:
            env.stats.reset_all()
            # Tell the runner the measured window starts now, so the server's CPU
            # is counted over the same window as the requests (not the warm-up).
            if emit is not None:
                emit({"event": "window-start"})

        n, samples = run_window(recorder, start, policy, on_open)
        if emit is not None:
            emit({"event": "window-end"})
        duration = n * TICK_S
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

    got = recorder.window(n)
    recorder.reset(math.inf)
    cpu, peak = _cpu(samples, n)
    off = clock_offset
    worker = {
        **(me or identity()),
        "cpu_percent": cpu,
        "cpu_peak_percent": peak,
        # when this process saw the window open and its last tick end (master's clock)
        "window": [samples[0][0] + off, samples[n][0] + off],
        "requests": got["requests"],
        "latency_count": got["requests"],
    }
    return {
        "ok": True,
        "started_at": start + off,
        "duration_s": duration,
        "warmup_s": warmup_s,
        "stop_reason": policy.reason,
        **got,
        "locust": locust_stats,
        "generator_cpu_percent": cpu,
        "generator_cpu_peak_percent": peak,
        "window": [start + off, start + duration + off],
        "workers": [worker],
    }


def measure_at_rate(
    cmd: dict[str, Any],
    emit: Emit | None = None,
    *,
    start_at: float | None = None,
    clock_offset: float = 0.0,
    me: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Open model: a fixed arrival rate, latency from the intended send time (see openloop).

    `targets` ([{host, path}, ...]) loads several arms in one window, each at
    `rate`, their requests interleaved: the answer then has one result per
    target under "parts". Without it, `host` and `path` are the one target.
    Each target (or the command) may carry a "request" (method, headers,
    body, expected status); absent, a plain GET. `start_at`: the window's
    start (wall time, this machine's clock; default after the settle from now).
    """
    rate = float(cmd["rate"])
    settle_s = float(cmd.get("warmup_s", 0.5))
    window_s = float(cmd.get("min_s", 1.0))
    given = cmd.get("targets") or [{"host": cmd["host"], "path": cmd["path"], "request": cmd.get("request")}]
    targets = [(t["host"], t["path"]) for t in given]
    requests = [RequestSpec.from_dict(t.get("request")) for t in given]
    marks: dict[str, float] = {}

    def on_start() -> None:
        marks["cpu0"], marks["wall0"] = time.process_time(), time.time()
        if emit is not None:
            emit({"event": "window-start"})

    def on_end() -> None:
        marks["cpu1"], marks["wall1"] = time.process_time(), time.time()
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
        requests=requests,
        window_at=start_at,
        seed=int(cmd.get("seed", 0)),
    )
    observed = max(marks["wall1"] - marks["wall0"], 1e-9)
    # the generator's CPU is shared by the targets of one window
    cpu_percent = 100.0 * (marks["cpu1"] - marks["cpu0"]) / observed
    off = clock_offset
    worker = {
        **(me or identity()),
        "cpu_percent": cpu_percent,
        "cpu_peak_percent": cpu_percent,
        "window": [marks["wall0"] + off, marks["wall1"] + off],
    }
    parts = [_open_result(t, rate, started_at + off, settle_s, window_s, cpu_percent, worker) for t in tallies]
    if cmd.get("targets"):
        return {"ok": True, "parts": parts}
    return parts[0]


def _open_result(  # noqa: PLR0917  one window's facts, all positional from one call site
    tally: OpenTally,
    rate: float,
    started_at: float,
    settle_s: float,
    window_s: float,
    cpu: float,
    worker: dict[str, Any],
) -> dict[str, Any]:
    # The requests due in [start, start + window_s) are the window's, answered
    # or not: the window is the schedule's, the same for every worker.
    seconds = [tally.seconds.get(s) or Histogram() for s in range(int(window_s))]
    h = tally.hist
    return {
        "ok": True,
        "started_at": started_at,
        "duration_s": window_s,
        "warmup_s": settle_s,
        "stop_reason": "rate",
        "requests": tally.ok,
        "failures": tally.failures,
        "histogram": h.to_dict(),
        "second_histograms": [s.to_dict() for s in seconds],
        "series": series(seconds, [tally.second_failures.get(s, 0) for s in range(len(seconds))]),
        "locust": {
            "requests": float(tally.ok + sum(tally.failures.values())),
            "failures": float(sum(tally.failures.values())),
            "median_ms": ms(h.percentile(50)) or 0.0,
            "p99_ms": ms(h.percentile(99)) or 0.0,
            "avg_ms": (h.mean_us or 0.0) / 1000.0,
            "rps": tally.ok / window_s,
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
        "window": [started_at, started_at + window_s],
        "workers": [{**worker, "requests": tally.ok, "latency_count": h.count}],
    }


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
