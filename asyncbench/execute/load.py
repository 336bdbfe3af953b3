"""Driving load: one or more locust load-driver processes, one measurement at a time.

With `processes` > 1 the users of a cell are split across that many driver
processes (each a locust LocalRunner on its own core share), and their
histograms, counts and per-second series are merged, the way locust's own
`--processes` splits users across workers.
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
    generator_cpu_percent: float  # busiest driver process, percent of one core
    generator_cpu_peak_percent: float
    stop_reason: str
    driver_cpu_percents: tuple[float, ...] = ()  # each driver's own CPU, percent of one core
    # Open model only (a fixed arrival rate): target_rps, due, dropped,
    # unfinished, send_lag {p50_ms, p99_ms, max_ms}; None for a closed loop.
    open: dict[str, Any] | None = None


class LoadGenerator:
    """A pool of long-lived load-driver processes."""

    def __init__(
        self,
        *,
        processes: int,
        cpus: tuple[int, ...],
        log_dir: Path,
        env: dict[str, str],
    ) -> None:
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
    ) -> Measurement:
        """One window. With `rate` (req/s) the load is an open model at that
        arrival rate over `min_s` (see openloop), split evenly across the
        drivers, with `connections` (default `users`, at least 64) in the pool;
        otherwise `users` closed-loop users."""
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
    ) -> list[Measurement]:
        """Several arms in one open-model window, each at `rate` req/s, their
        requests interleaved (see openloop): one Measurement per target, in order.
        The rate is split evenly across the drivers; each loads every target."""
        n = len(self.drivers)
        for idx, d in enumerate(self.drivers):
            cmd = {
                "op": "measure",
                "driver": idx,
                "drivers": n,
                "targets": [{"host": h, "path": p} for h, p in targets],
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
                        raise ProcessError(f"{d.name}: {msg.get('error')}")
                    results[key] = msg
                    del pending[key]
        return [results[id(d)] for d, _ in active]

    def restart(self) -> None:
        self.close()
        self.__enter__()


def _merge(results: list[dict[str, Any]]) -> Measurement:
    hist = Histogram.merged(Histogram.from_dict(r["histogram"]) for r in results)
    failures: dict[str, int] = {}
    for r in results:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
    # Each driver ends its own window; the pool's throughput is the sum of the
    # drivers' rates, expressed over the shortest window.
    duration = min(r["duration_s"] for r in results)
    rate = sum(r["requests"] / r["duration_s"] for r in results if r["duration_s"] > 0)
    length = min(len(r["series"]) for r in results)
    series = []
    for i in range(length):
        parts = [r["series"][i] for r in results]
        series.append(
            {
                "t": parts[0]["t"],
                "requests": sum(p["requests"] for p in parts),
                "failures": sum(p["failures"] for p in parts),
                # per-second percentiles of the busiest driver: an approximation
                # when several drivers run; the window's percentiles are exact merges
                "p50_ms": max((p["p50_ms"] for p in parts if p["p50_ms"] is not None), default=None),
                "p99_ms": max((p["p99_ms"] for p in parts if p["p99_ms"] is not None), default=None),
            }
        )
    locust = {
        "requests": sum(r["locust"]["requests"] for r in results),
        "failures": sum(r["locust"]["failures"] for r in results),
        "rps": sum(r["locust"]["rps"] for r in results),
        "median_ms": max(r["locust"]["median_ms"] for r in results),
        "p99_ms": max(r["locust"]["p99_ms"] for r in results),
        "avg_ms": sum(r["locust"]["avg_ms"] * r["locust"]["requests"] for r in results)
        / max(1.0, sum(r["locust"]["requests"] for r in results)),
    }
    return Measurement(
        started_at=min(r["started_at"] for r in results),
        duration_s=duration,
        warmup_s=results[0]["warmup_s"],
        requests=sum(r["requests"] for r in results),
        throughput_rps=rate,
        failures=failures,
        histogram=hist,
        series=series,
        locust=locust,
        generator_cpu_percent=max(r["generator_cpu_percent"] for r in results),
        generator_cpu_peak_percent=max(r["generator_cpu_peak_percent"] for r in results),
        stop_reason=",".join(sorted({r["stop_reason"] for r in results})),
        driver_cpu_percents=tuple(r["generator_cpu_percent"] for r in results),
        open=_merge_open([r["open"] for r in results if r.get("open")]),
    )


def _merge_open(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not parts:
        return None
    lag = [p["send_lag"] for p in parts]
    return {
        "target_rps": sum(p["target_rps"] for p in parts),
        "due": sum(p["due"] for p in parts),
        "dropped": sum(p["dropped"] for p in parts),
        "unfinished": sum(p["unfinished"] for p in parts),
        # the latest driver's: a pool is as late as its slowest member
        "send_lag": {k: max(x[k] for x in lag) for k in ("p50_ms", "p99_ms", "max_ms")},
    }
