"""Resource sampling of the server's whole process tree during a measured window.

CPU is taken as the difference of cumulative CPU times between the start and
the end of the window (exact, not sampled); peak RSS and worker churn come
from a background thread sampling every `interval` seconds.

The CPU time of a process is read from its kernel CPU clock
(clock_getcpuclockid + clock_gettime): nanoseconds, and it includes threads
that have already exited (asgiref starts a thread per async_to_sync call under
WSGI). /proc/<pid>/stat, which psutil reads, counts in clock ticks of 10 ms:
at a fixed rate of a few hundred requests per second a 1-s window holds
about 100 ms of server CPU, so ticks alone would be a 10% quantization error
on CPU per request. psutil stays as the fallback where the clock cannot be read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import psutil


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds used by process `pid` (all its threads, dead ones included), ns resolution.

    None when the kernel clock cannot be read (no such process, not Linux).
    """
    if _LIBC is None:
        return None
    clock = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return None
    ts = _Timespec()
    if _LIBC.clock_gettime(clock, ctypes.byref(ts)) != 0:
        return None
    return float(ts.tv_sec) + float(ts.tv_nsec) / 1e9


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_times(procs: list[psutil.Process]) -> dict[tuple[int, float], float]:
    """CPU seconds per process, keyed by (pid, start time): a pid reused within
    a window is a new process, counted from zero, not a negative difference."""
    out: dict[tuple[int, float], float] = {}
    for p in procs:
        try:
            key = (p.pid, p.create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        precise = process_cpu_s(p.pid)
        if precise is not None:
            out[key] = precise
            continue
        try:
            t = p.cpu_times()
            out[key] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


@dataclass(frozen=True)
class WindowUsage:
    # None: not measured (an existing deployment without a resource agent,
    # or a window its agent did not answer for), never zero
    cpu_s: float | None
    cpu_percent: float | None  # of one core, averaged over the window
    rss_peak_mb: float | None
    worker_changes: int  # processes that appeared or vanished in the tree
    alive: bool


NOT_MEASURED = WindowUsage(cpu_s=None, cpu_percent=None, rss_peak_mb=None, worker_changes=0, alive=True)


class ServerMonitor(Protocol):
    """What brackets a server's measured windows: TreeMonitor for a local
    server, the target module's agent reader (or nothing) for a deployment."""

    def begin(self) -> None: ...

    def end(self) -> WindowUsage: ...

    def busy_fraction(self, interval: float) -> float | None: ...

    def close(self) -> None: ...


class TreeMonitor:
    """Samples one process tree; `begin()`/`end()` bracket a measured window."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._rss_peak = 0
        self._pids: set[int] = set()
        self._changes = 0
        self._start_cpu: dict[tuple[int, float], float] = {}
        self._start_wall = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{pid}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        procs = _tree(self.pid)
        rss = 0
        for p in procs:
            try:
                rss += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        pids = {p.pid for p in procs}
        with self._lock:
            self._rss_peak = max(self._rss_peak, rss)
            if self._pids and pids != self._pids:
                self._changes += len(pids ^ self._pids)
            self._pids = pids

    def busy_fraction(self, interval: float) -> float:
        """CPU used by the tree over `interval` seconds, as a fraction of one core."""
        before = _cpu_times(_tree(self.pid))
        t0 = time.monotonic()
        time.sleep(interval)
        after = _cpu_times(_tree(self.pid))
        used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
        return used / max(time.monotonic() - t0, 1e-9)

    def begin(self) -> None:
        procs = _tree(self.pid)
        with self._lock:
            self._rss_peak = 0
            self._changes = 0
            self._pids = {p.pid for p in procs}
        self._start_cpu = _cpu_times(procs)
        self._start_wall = time.monotonic()
        self._sample()

    def end(self) -> WindowUsage:
        self._sample()
        procs = _tree(self.pid)
        now = _cpu_times(procs)
        wall = max(time.monotonic() - self._start_wall, 1e-9)
        # Processes born during the window count from zero.
        cpu = sum(t - self._start_cpu.get(pid, 0.0) for pid, t in now.items())
        with self._lock:
            return WindowUsage(
                cpu_s=cpu,
                cpu_percent=100.0 * cpu / wall,
                rss_peak_mb=self._rss_peak / 2**20,
                worker_changes=self._changes,
                alive=bool(procs),
            )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def cpu_busy_idle(cpus: tuple[int, ...]) -> list[tuple[float, float]]:
    """(busy, idle) cumulative seconds of each CPU, every process on it counted.

    Busy is everything but idle and iowait, including steal (the CPU was not
    ours to use). Linux counts guest time inside user and guest_nice inside
    nice, so those two are not added again.
    """
    per = psutil.cpu_times(percpu=True)
    out = []
    for c in cpus:
        t = per[c]
        idle = t.idle + getattr(t, "iowait", 0.0)
        double = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
        out.append((sum(t) - idle - double, idle))
    return out


class CoreMonitor:
    """How busy a set of CPUs is over a window: every process on them counts
    (locust, the upstream, the runner, its monitor threads, anything else)."""

    def __init__(self, cpus: tuple[int, ...]) -> None:
        self.cpus = cpus
        self._start: list[tuple[float, float]] = []

    def begin(self) -> None:
        self._start = cpu_busy_idle(self.cpus) if self.cpus else []

    def end(self) -> float | None:
        """Percent busy, averaged over the CPUs (None when nothing is pinned)."""
        if not self.cpus or not self._start:
            return None
        now = cpu_busy_idle(self.cpus)
        busy = sum(n[0] - s[0] for n, s in zip(now, self._start, strict=True))
        idle = sum(n[1] - s[1] for n, s in zip(now, self._start, strict=True))
        total = busy + idle
        return 100.0 * busy / total if total > 0 else None
