"""Open-model load: requests at a fixed arrival rate, latency from the intended send time.

A closed loop (locust's users with no think time) waits for each answer
before sending the next request, so a slow server slows its own load and
latency at saturation only mirrors throughput (p99 ~ users / throughput).
Here a schedule says when each request is due, independent of the answers:
evenly spaced (`uniform`, as k6's constant-arrival-rate) or with exponential
gaps (`poisson`, seeded). Each due request goes out on a free connection of
a fixed pool; its latency runs from the time it was *due*, not from when it
left (coordinated-omission-correct, as wrk2 measures), so a generator or a
server that falls behind shows up as latency. A request due while every
connection is busy is not sent and is counted as dropped (k6's "dropped
iterations"): the rate was not held.

Runs inside the load driver process (gevent-patched by locust), on locust's
FastHttpSession (geventhttpclient): one session per connection, keep-alive.
Only the requests due inside the measured window count; the ones due in the
settle time before it warm the connections and are discarded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from asyncbench.model.histogram import Histogram
from locustfiles.causes import failure_kind, response_failure
from locustfiles.request import RequestSpec

ARRIVALS = ("uniform", "poisson")
DEFAULT_CONNECTIONS = 64
# A request due in the window and still unanswered this long after the
# window's end is filed as a failure, "unfinished".
COMPLETION_GRACE_S = 5.0
SEED = 20261127


@dataclass
class OpenTally:
    """What the measured window saw."""

    hist: Histogram = field(default_factory=Histogram)
    seconds: dict[int, Histogram] = field(default_factory=dict)
    second_failures: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    due: int = 0  # requests whose due time fell in the window
    dropped: int = 0  # due, but no free connection: not sent
    unfinished: int = 0  # sent, still unanswered after the grace time
    lags_us: list[float] = field(default_factory=list)  # send time - due time

    def fail(self, kind: str, sec: int) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.second_failures[sec] = self.second_failures.get(sec, 0) + 1

    def record(self, us: float, sec: int) -> None:
        self.ok += 1
        record_latency(self.hist, self.seconds, us, sec)


def record_latency(hist: Histogram, seconds: dict[int, Histogram], us: float, sec: int) -> None:
    """One answer's latency into the window's histogram and its second's (both loops use it)."""
    hist.record(us)
    h = seconds.get(sec)
    if h is None:
        h = seconds[sec] = Histogram()
    h.record(us)


def schedule(rate: float, arrival: str, rng: random.Random) -> Callable[[], float]:
    """Gaps between due times, in seconds."""
    if arrival == "poisson":
        return lambda: rng.expovariate(rate)
    gap = 1.0 / rate
    return lambda: gap


def _session(host: str, timeout: float) -> tuple[FastHttpSession, dict[str, Any]]:
    """One keep-alive connection; the dict receives what locust's request event says."""
    seen: dict[str, Any] = {}

    def on_request(exception: BaseException | None = None, **_: Any) -> None:
        seen["exception"] = exception

    hook = EventHook()  # type: ignore[no-untyped-call]
    hook.add_listener(on_request)  # type: ignore[no-untyped-call]
    session = FastHttpSession(
        host, hook, None, concurrency=1, network_timeout=timeout, connection_timeout=min(timeout, 10.0)
    )
    return session, seen


def measure_open(
    *,
    targets: list[tuple[str, str]],
    rate: float,
    arrival: str,
    connections: int,
    settle_s: float,
    window_s: float,
    on_window_start: Callable[[], None],
    on_window_end: Callable[[], None],
    timeout: float = 60.0,
    driver: int = 0,
    drivers: int = 1,
    requests: list[RequestSpec] | None = None,
    window_at: float | None = None,
    seed: int = 0,
) -> tuple[list[OpenTally], float]:
    """Run the schedule for settle_s + window_s; returns (one tally per target, window start (unix)).

    `targets` are (host, path) pairs, each loaded at `rate`: the due times of
    all targets interleave, target after target, in a fresh random order each
    round, so that several arms measured in one window (base and head of a
    revision comparison, a sync view and its twin) see the same machine at
    the same moments. Each target has its own pool of `connections`.
    `requests`: each target's method, headers, body and expected status (by
    default a GET that any 2xx answers). `window_at`: the window's start
    (wall time); by default `settle_s` from now. `seed`: another schedule
    (Poisson gaps) than the default's; 0, the same every call (paired arms
    see the same arrivals), a slice number, a fresh draw per slice.
    """
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival: unknown {arrival!r}; allowed: {', '.join(ARRIVALS)}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0 req/s, got {rate!r}")
    if not targets:
        raise ValueError("no target to load")
    k = len(targets)
    specs = requests or [RequestSpec()] * k
    if len(specs) != k:
        raise ValueError(f"{len(specs)} request specs for {k} targets")
    # several driver processes share the rate: each its own seed, and evenly
    # spaced schedules offset by a fraction of the gap, so they interleave
    rng = random.Random(SEED + driver + 1_000 * seed)
    pools: list[list[tuple[FastHttpSession, dict[str, Any]]]] = [
        [_session(host, timeout) for _ in range(max(1, connections))] for host, _ in targets
    ]
    tallies = [OpenTally() for _ in targets]
    # one schedule at k x rate; each round of k due times serves every target once
    gap = schedule(rate * k, arrival, rng)
    in_flight: set[gevent.Greenlet] = set()
    # The window starts after the settle from now or, on a locust worker, at
    # the wall time `window_at` the master chose for every worker.
    now = time.perf_counter()
    w_start = now + settle_s if window_at is None else now + (window_at - time.time())
    t_start = w_start - settle_s
    w_end = w_start + window_s
    state = {"open": False}

    def fire(i: int, slot: tuple[FastHttpSession, dict[str, Any]], due: float, counted: bool) -> None:
        session, seen = slot
        tally, path, spec = tallies[i], targets[i][1], specs[i]
        sent = time.perf_counter()
        sec = int(due - w_start)
        if counted:
            tally.lags_us.append((sent - due) * 1e6)
        seen.clear()
        try:
            with session.request(
                spec.method,
                path,
                name=path,
                data=spec.body or None,  # type: ignore[arg-type]  # bytes go out as they are (geventhttpclient)
                headers=spec.header_dict() or None,
                catch_response=True,
                allow_redirects=False,
            ) as response:
                status = response.status_code
                if status and not spec.accepts(status):
                    response.failure(response_failure(status, response.content, spec.status))
        except Exception as exc:  # a connection error locust did not catch
            seen["exception"] = exc
        done = time.perf_counter()
        # last in, first out: the connection used most recently is reused
        # first, so a light load keeps few connections busy, as a client pool does
        pools[i].append(slot)
        if not counted:
            return
        error = seen.get("exception")
        if error is not None:
            tally.fail(failure_kind(error), sec)
        else:
            tally.record((done - due) * 1e6, sec)

    due = t_start + (driver / max(1, drivers)) / (rate * k) if arrival == "uniform" else t_start
    order: list[int] = []
    while due < w_end:
        if not order:
            order = rng.sample(range(k), k)
        i = order.pop()
        now = time.perf_counter()
        if due > now:
            gevent.sleep(due - now)
        if not state["open"] and due >= w_start:
            state["open"] = True
            on_window_start()
        counted = due >= w_start
        if counted:
            tallies[i].due += 1
        if pools[i]:
            g = gevent.spawn(fire, i, pools[i].pop(), due, counted)
            in_flight.add(g)
            g.link(in_flight.discard)
        elif counted:
            tallies[i].dropped += 1
        due += gap()
    now = time.perf_counter()
    if now < w_end:
        gevent.sleep(w_end - now)
    if not state["open"]:
        on_window_start()
    on_window_end()
    # Answers to requests due in the window still count; wait for them, bounded.
    gevent.joinall(list(in_flight), timeout=COMPLETION_GRACE_S)
    still = [g for g in in_flight if not g.dead]
    for g in still:
        # fire(i, slot, due, counted): only a request due in the window counts
        i, _, due_at, counted = g.args
        if counted:
            tallies[i].unfinished += 1
            tallies[i].fail("unfinished", int(due_at - w_start))
    # killed now, not at the driver's next switch (which may be inside the next window)
    gevent.killall(still, block=True, timeout=1.0)
    return tallies, time.time() - (time.perf_counter() - w_start)


def lag_summary(lags_us: list[float]) -> dict[str, float]:
    """How late the generator sent: p50, p99 and max of send time - due time, in ms."""
    if not lags_us:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    xs = sorted(lags_us)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] / 1000.0

    return {"p50_ms": round(q(0.5), 4), "p99_ms": round(q(0.99), 4), "max_ms": round(xs[-1] / 1000.0, 4)}
