"""Driving load: one locust load-driver process, one measurement at a time.

Several load processes (or machines) go through locust's own master and
workers instead (asyncbench.execute.distributed.DistributedLoad, same
interface): the master decides one common window for all of them.
`make_load_generator` there picks one or the other.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncbench.execute.processes import ManagedProcess, ProcessError, cpu_pinning_prefix, tail
from asyncbench.model.histogram import Histogram

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Measurement:
    started_at: float
    duration_s: float
    warmup_s: float
    requests: int
    throughput_rps: float
    failures: dict[str, int]
    histogram: Histogram
    series: list[dict[str, Any]]
    locust: dict[str, float]
    generator_cpu_percent: float  # busiest driver process (load worker), percent of one core
    generator_cpu_peak_percent: float
    stop_reason: str
    driver_cpu_percents: tuple[float, ...] = ()  # each driver's (worker's) own CPU, percent of one core
    # Open model only (a fixed arrival rate): target_rps, due, dropped,
    # unfinished, send_lag {p50_ms, p99_ms, max_ms}; None for a closed loop.
    open: dict[str, Any] | None = None
    # The window every driver counted answers in: [window_start, window_stop)
    # (wall time, the master's clock); each driver's own view of it (when it
    # saw it open and its last tick end), in the same order as driver_cpu_percents.
    window_start: float | None = None
    window_stop: float | None = None
    worker_windows: tuple[tuple[float, float], ...] = ()
    # Each driver as it reported: index, host, pid, local (on this machine),
    # cpu_percent, window, requests, latency_count, clock_offset_ms, rtt_ms.
    workers: tuple[dict[str, Any], ...] = ()

    @property
    def local_driver_cpu_percent(self) -> float:
        """CPU of the drivers on this machine (percent of one core), summed:
        what competes with the upstream and the runner for the generator's CPUs."""
        if not self.workers:
            return sum(self.driver_cpu_percents) if self.driver_cpu_percents else self.generator_cpu_percent
        return sum(float(w.get("cpu_percent") or 0.0) for w in self.workers if w.get("local", True))


class DriverError(ProcessError):
    """A driver (or the master) answered that a measurement failed: the protocol is still in step."""


class LoadGenerator:
    """A long-lived load-driver process (`processes` must be 1: several go
    through asyncbench.execute.distributed.DistributedLoad)."""

    def __init__(
        self,
        *,
        processes: int,
        cpus: tuple[int, ...],
        log_dir: Path,
        env: dict[str, str],
    ) -> None:
        if processes != 1:
            raise ValueError(
                f"LoadGenerator runs one driver process, not {processes}: several load workers "
                "share one window through asyncbench.execute.distributed (make_load_generator)"
            )
        self.drivers: list[ManagedProcess] = []
        self._buffers: dict[int, bytearray] = {}
        self.processes = processes
        self.cpus = cpus
        self.log_dir = log_dir
        self.env = env

    def __enter__(self) -> LoadGenerator:
        try:
            for i in range(self.processes):
                argv = [*cpu_pinning_prefix(self.cpus), sys.executable, "-m", "asyncbench.execute.loaddriver"]
                d = ManagedProcess(
                    f"load driver {i}",
                    argv,
                    log_path=self.log_dir / f"locust-{i}.log",
                    env=self.env,
                    cwd=ROOT,
                    pipe_stdio=True,
                    stop_timeout=5,
                )
                d.start()
                self.drivers.append(d)
            for d in self.drivers:
                line = self._read_line(d, timeout=60)
                if not json.loads(line).get("ready"):
                    raise ProcessError(f"{d.name} did not report ready: {line!r}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """How the load is generated, for the run's record (the generator ceiling)."""
        return {}

    def close(self) -> None:
        for d in self.drivers:
            d.stop()
        self.drivers = []
        self._buffers = {}

    def _read_line(self, d: ManagedProcess, timeout: float) -> str:
        """One protocol line from a driver, with a deadline.

        Reads the pipe's file descriptor directly into a per-driver buffer:
        a buffered file object would slurp several lines at once and leave
        select() waiting on an empty pipe for a line it already holds.
        """
        assert d.proc is not None and d.proc.stdout is not None
        fd = d.proc.stdout.fileno()
        buf = self._buffers.setdefault(fd, bytearray())
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProcessError(f"{d.name} gave no answer within {timeout:.0f} s; see {d.log_path}")
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise ProcessError(
                    f"{d.name} exited (code {d.proc.poll()}); last lines of {d.log_path}:\n{tail(d.log_path)}"
                )
            buf.extend(chunk)
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        return line.decode()

    def measure(
        self,
        *,
        host: str,
        path: str,
        users: int,
        warmup_s: float,
        min_s: float,
        max_s: float,
        target_rse: float,
        slow_max_s: float | None = None,
        min_requests_per_user: int,
        on_window_start: Callable[[], None] | None = None,
        on_window_end: Callable[[], None] | None = None,
        rate: float | None = None,
        arrival: str = "uniform",
        connections: int | None = None,
        request: dict[str, Any] | None = None,
        protocol: str = "http",
        seed: int = 0,
    ) -> Measurement:
        """One window. With `rate` (req/s) the load is an open model at that
        arrival rate over `min_s` (see openloop), split evenly across the
        drivers, with `connections` (default `users`, at least 64) in the pool;
        otherwise `users` closed-loop users. `request`: method, headers, body
        and expected status (locustfiles.request.RequestSpec.to_dict); None,
        a plain GET. `protocol` "websocket": each user holds one WebSocket
        connection and a message's round trip is a request (locustfiles/ws.py;
        closed loop only). `seed`: the open model's schedule (see openloop.measure_open)."""
        if protocol == "websocket" and rate:
            raise ValueError("a websocket workload is measured closed loop only (no `rate`)")
        n = len(self.drivers)
        if rate:
            pool = connections or max(users, 64)
            active = [(d, max(1, pool // n)) for d in self.drivers]
        else:
            # Split users across drivers as evenly as possible; drivers with no
            # users sit this cell out.
            shares = [users // n + (1 if i < users % n else 0) for i in range(n)]
            active = [(d, u) for d, u in zip(self.drivers, shares, strict=True) if u > 0]
        for idx, (d, u) in enumerate(active):
            cmd = {
                "op": "measure",
                "host": host,
                "path": path,
                "users": u,
                "warmup_s": warmup_s,
                "min_s": min_s,
                "max_s": max_s,
                "slow_max_s": slow_max_s if slow_max_s is not None else max_s,
                "target_rse": target_rse,
                "min_requests_per_user": min_requests_per_user,
            }
            if request:
                cmd["request"] = request
            if protocol != "http":
                cmd["protocol"] = protocol
            if rate and seed:
                cmd["seed"] = seed
            if rate:
                cmd.update(rate=rate / len(active), arrival=arrival, connections=u, driver=idx, drivers=len(active))
            assert d.proc is not None and d.proc.stdin is not None
            d.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            d.proc.stdin.flush()
        try:
            results = self._collect(active, warmup_s + max(max_s, slow_max_s or 0) + 60, on_window_start, on_window_end)
        except ProcessError:
            # A driver that timed out may still answer later and desynchronise
            # the protocol: start a fresh pool for the cells after this one.
            self.restart()
            raise
        return _merge(results)

    def measure_joint(
        self,
        *,
        targets: list[tuple[str, str]],
        rate: float,
        arrival: str,
        settle_s: float,
        window_s: float,
        connections: int,
        on_window_start: Callable[[], None] | None = None,
        on_window_end: Callable[[], None] | None = None,
        requests: list[dict[str, Any] | None] | None = None,
    ) -> list[Measurement]:
        """Several arms in one open-model window, each at `rate` req/s, their
        requests interleaved (see openloop): one Measurement per target, in order.
        The rate is split evenly across the drivers; each loads every target.
        `requests`: each target's request (see `measure`), None for a plain GET."""
        reqs = requests or [None] * len(targets)
        n = len(self.drivers)
        for idx, d in enumerate(self.drivers):
            cmd = {
                "op": "measure",
                "driver": idx,
                "drivers": n,
                "targets": [
                    {"host": h, "path": p, **({"request": r} if r else {})}
                    for (h, p), r in zip(targets, reqs, strict=True)
                ],
                "rate": rate / n,
                "arrival": arrival,
                "connections": max(1, connections // n),
                "warmup_s": settle_s,
                "min_s": window_s,
            }
            assert d.proc is not None and d.proc.stdin is not None
            d.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            d.proc.stdin.flush()
        active = [(d, 0) for d in self.drivers]
        try:
            results = self._collect(active, settle_s + window_s + 60, on_window_start, on_window_end)
        except ProcessError:
            self.restart()
            raise
        return [_merge([r["parts"][i] for r in results]) for i in range(len(targets))]

    def _collect(
        self,
        active: list[tuple[ManagedProcess, int]],
        timeout: float,
        on_window_start: Callable[[], None] | None,
        on_window_end: Callable[[], None] | None,
    ) -> list[dict[str, Any]]:
        """Read every driver's window events and result, in protocol order.

        All drivers got their command at once, so their windows start within
        milliseconds of each other: the window opens when every driver has
        said so and closes when every driver has.
        """
        pending = {id(d): d for d, _ in active}
        started: set[int] = set()
        ended: set[int] = set()
        results: dict[int, dict[str, Any]] = {}
        while pending:
            for key, d in list(pending.items()):
                msg = json.loads(self._read_line(d, timeout=timeout))
                event = msg.get("event")
                if event == "window-start":
                    started.add(key)
                    if len(started) == len(active) and on_window_start:
                        on_window_start()
                elif event == "window-end":
                    ended.add(key)
                    if len(ended) == len(active) and on_window_end:
                        on_window_end()
                else:
                    if not msg.get("ok"):
                        raise DriverError(f"{d.name}: {msg.get('error')}")
                    results[key] = msg
                    del pending[key]
        return [results[id(d)] for d, _ in active]

    def restart(self) -> None:
        self.close()
        self.__enter__()


def _merge(results: list[dict[str, Any]]) -> Measurement:
    """The one driver's result (several drivers' windows differ: they go
    through the distributed master, which merges over one common window)."""
    (r,) = results
    return measurement(r)


def measurement(r: dict[str, Any]) -> Measurement:
    """A Measurement from a driver's (or the locust master's merged) result."""
    workers = tuple(r.get("workers") or ())
    duration = float(r["duration_s"])
    window = r.get("window") or [r["started_at"], r["started_at"] + duration]
    return Measurement(
        started_at=r["started_at"],
        duration_s=duration,
        warmup_s=r["warmup_s"],
        requests=int(r["requests"]),
        # every answer counted in the one window, over that window
        throughput_rps=r["requests"] / duration if duration > 0 else 0.0,
        failures=dict(r["failures"]),
        histogram=Histogram.from_dict(r["histogram"]),
        series=[{k: s[k] for k in ("t", "requests", "failures", "p50_ms", "p99_ms")} for s in r["series"]],
        locust=dict(r["locust"]),
        generator_cpu_percent=r["generator_cpu_percent"],
        generator_cpu_peak_percent=r["generator_cpu_peak_percent"],
        stop_reason=r["stop_reason"],
        driver_cpu_percents=tuple(float(w["cpu_percent"]) for w in workers) or (r["generator_cpu_percent"],),
        open=r.get("open"),
        window_start=float(window[0]),
        window_stop=float(window[1]),
        worker_windows=tuple((float(w["window"][0]), float(w["window"][1])) for w in workers if w.get("window")),
        workers=workers,
    )
