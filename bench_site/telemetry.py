"""Per-process counters inside the servers, read by the runner after a slice.

Off unless BENCH_TELEMETRY_DIR names a directory. Then every server process
that bumps a counter maps a small file of its own, ``<dir>/<pid>.counters``
(64 unsigned 64-bit slots, native byte order), and increments slots in place:
a memory write under a lock, no system call, no I/O on the request path. The
runner (``read_counters``) sums every process's file; the difference between
two reads is what happened in between. Files of processes that exited stay, so
the sums never go backwards when a server restarts a worker.

The slots are named in ``COUNTERS`` (append only: a slot's index is its
meaning in files already written). What bumps each one:

- ``requests``: HTTP requests that reached Django (the entry points' wrapper);
- ``sync_to_async`` / ``async_to_sync``: asgiref adapter calls (thread hops),
  counted by patching the two classes' ``__call__`` at process start;
- ``db_connects``: Django's ``connection_created`` signal (a real open on
  SQLite and MariaDB; a pool checkout on PostgreSQL with psycopg's pool);
- ``thread_wait_ns``: summed time from a ``sync_to_async`` call to its
  function starting in a thread (the wait for a free or the dedicated thread);
- ``loop_lag_*``: event-loop lag in ASGI processes, sampled every
  ``LOOP_LAG_INTERVAL_S`` by a task that sleeps and measures its overshoot
  (samples, summed lag, the largest since the runner last reset it, and how
  many samples were later than 1, 10 and 100 ms);
- ``gc_collections`` / ``gc_pause_ns``: the cyclic garbage collector's runs and
  the time they stopped the process (``gc.callbacks``); ``gc_full_collections``
  / ``gc_full_pause_ns`` the same for the full (oldest-generation) ones alone,
  which traverse every tracked object of the process (Django's included,
  unless ``gc.freeze()`` moved them out of the collector's sight);
  ``gc_frozen_objects`` the objects a process froze at start
  (bench_site.gcpolicy, BENCH_GC=freeze; 0 otherwise).
- ``ws_messages``: WebSocket messages the consumers answered
  (bench_site.workloads.ws.reply_for, the same call in both twins).

What it costs is measured, not assumed: the same arm with and without
BENCH_TELEMETRY_DIR (README, "Telemetry").
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import mmap
import os
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

COUNTERS: tuple[str, ...] = (
    "requests",
    "sync_to_async",
    "async_to_sync",
    "db_connects",
    "thread_wait_ns",
    "loop_lag_samples",
    "loop_lag_ns",
    "loop_lag_max_ns",
    "gc_collections",
    "gc_pause_ns",
    "loop_lag_over_1ms",
    "loop_lag_over_10ms",
    "loop_lag_over_100ms",
    "ws_messages",
    "gc_full_collections",
    "gc_full_pause_ns",
    "gc_frozen_objects",
)
SLOTS = 64
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
_SUFFIX = ".counters"
assert len(COUNTERS) <= SLOTS

ENV = "BENCH_TELEMETRY_DIR"
LOOP_LAG_INTERVAL_S = 0.02
_MAXIMA = frozenset({"loop_lag_max_ns"})


class _Counters:
    """This process's slots (created on first use, again after a fork)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = -1
        self.lock = threading.Lock()
        self.view: memoryview | None = None

    def forked(self) -> None:
        # after a fork (gunicorn's workers are forked from the arbiter), the
        # child must not write into its parent's file: it maps its own on first use
        self.view = None
        self.lock = threading.Lock()

    def _open(self) -> memoryview:
        if self.view is None:
            pid = os.getpid()
            path = self.directory / f"{pid}{_SUFFIX}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, SLOTS * 8)
                mapped = mmap.mmap(fd, SLOTS * 8)
            finally:
                os.close(fd)
            self.view = memoryview(mapped).cast("Q")
            self.pid = pid
        return self.view

    def add(self, name: str, amount: int = 1) -> None:
        view = self._open()
        i = _INDEX[name]
        with self.lock:
            view[i] += amount

    def maximum(self, name: str, value: int) -> None:
        view = self._open()
        i = _INDEX[name]
        with self.lock:
            view[i] = max(view[i], value)


class _State:
    counters: _Counters | None = None


_state = _State()


def enabled() -> bool:
    return _state.counters is not None


def add(name: str, amount: int = 1) -> None:
    """Add to a counter of this process (a no-op when telemetry is off)."""
    counters = _state.counters
    if counters is not None:
        counters.add(name, amount)


def maximum(name: str, value: int) -> None:
    counters = _state.counters
    if counters is not None:
        counters.maximum(name, value)


def _count_hops() -> None:
    from asgiref import sync

    s2a_call = sync.SyncToAsync.__call__
    a2s_call = sync.AsyncToSync.__call__
    restore_context = sync._restore_context
    if getattr(s2a_call, "_bench_counted", False):
        return

    async def counted_s2a(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        add("sync_to_async")
        # read back in the thread, inside the context asgiref copies from here
        _S2A_CALLED_AT.set(time.perf_counter_ns())
        return await s2a_call(self, *args, **kwargs)

    def timed_restore(context):  # type: ignore[no-untyped-def]
        # asgiref calls this first thing in the worker thread (inside the
        # copied context, so the call time set above is visible), and again on
        # the loop after the call, where the value is already cleared.
        restore_context(context)
        called_at = _S2A_CALLED_AT.get()
        if called_at:
            _S2A_CALLED_AT.set(0)
            add("thread_wait_ns", time.perf_counter_ns() - called_at)

    def counted_a2s(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        add("async_to_sync")
        return a2s_call(self, *args, **kwargs)

    counted_s2a._bench_counted = True  # type: ignore[attr-defined]
    sync.SyncToAsync.__call__ = counted_s2a  # type: ignore[method-assign]
    sync.AsyncToSync.__call__ = counted_a2s  # type: ignore[method-assign]
    sync._restore_context = timed_restore


_S2A_CALLED_AT: contextvars.ContextVar[int] = contextvars.ContextVar("bench_s2a_called_at", default=0)
_gc_started_at = [0]  # a collection holds the GIL from start to stop: one slot is enough
_OLDEST = len(gc.get_threshold()) - 1  # the generation a full collection collects


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started_at[0] = time.perf_counter_ns()
    elif _gc_started_at[0]:
        pause = time.perf_counter_ns() - _gc_started_at[0]
        add("gc_collections")
        add("gc_pause_ns", pause)
        if info.get("generation") == _OLDEST:
            add("gc_full_collections")
            add("gc_full_pause_ns", pause)
        _gc_started_at[0] = 0


async def _sample_loop_lag() -> None:
    """Sleep LOOP_LAG_INTERVAL_S, again and again, and count how late each wake-up was."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(LOOP_LAG_INTERVAL_S)
        lag_ns = max(0, int((loop.time() - asked - LOOP_LAG_INTERVAL_S) * 1e9))
        add("loop_lag_samples")
        add("loop_lag_ns", lag_ns)
        maximum("loop_lag_max_ns", lag_ns)
        if lag_ns > 1_000_000:
            add("loop_lag_over_1ms")
            if lag_ns > 10_000_000:
                add("loop_lag_over_10ms")
                if lag_ns > 100_000_000:
                    add("loop_lag_over_100ms")


_sampled_loops: set[int] = set()
_sampler_tasks: set[asyncio.Task[None]] = set()


def _ensure_lag_sampler() -> None:
    loop = asyncio.get_running_loop()
    if id(loop) in _sampled_loops:
        return
    _sampled_loops.add(id(loop))
    task = loop.create_task(_sample_loop_lag())
    _sampler_tasks.add(task)  # a strong reference: the loop keeps only weak ones


def _count_connections() -> None:
    from django.db.backends.signals import connection_created

    def on_connect(sender: object, **kwargs: object) -> None:
        add("db_connects")

    connection_created.connect(on_connect, weak=False, dispatch_uid="bench_telemetry_db_connects")


def install() -> bool:
    """Turn the counters on in this process when BENCH_TELEMETRY_DIR is set.

    Called by the entry points (wsgi.py, asgi.py) before Django loads. Returns
    whether telemetry is on.
    """
    raw = os.environ.get(ENV, "")
    if not raw:
        return False
    if _state.counters is None:
        directory = Path(raw)
        directory.mkdir(parents=True, exist_ok=True)
        _state.counters = _Counters(directory)
        os.register_at_fork(after_in_child=_state.counters.forked)
        _count_hops()
        _count_connections()
        gc.callbacks.append(_on_gc)
    return True


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def wrap_wsgi(app: WSGIApp) -> WSGIApp:
    """Count requests around a WSGI application (only when telemetry is on)."""
    if not enabled():
        return app

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        add("requests")
        return app(environ, start_response)

    return counted


def wrap_asgi(app: ASGIApp) -> ASGIApp:
    """Count HTTP requests around an ASGI application (only when telemetry is on)."""
    if not enabled():
        return app

    async def counted(
        scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] == "http":
            _ensure_lag_sampler()
            add("requests")
        return await app(scope, receive, send)

    return counted


# --- the runner's side ------------------------------------------------------------


def read_counters(directory: Path) -> dict[str, int]:
    """The sum of every process's counters under `directory` (zeros when none)."""
    totals = dict.fromkeys(COUNTERS, 0)
    maxima = _MAXIMA
    if not directory.is_dir():
        return totals
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if len(data) < SLOTS * 8:
            continue
        values = struct.unpack(f"={SLOTS}Q", data[: SLOTS * 8])
        for name, i in _INDEX.items():
            if name in maxima:
                totals[name] = max(totals[name], values[i])
            else:
                totals[name] += values[i]
    return totals


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What happened between two reads (maxima are not differences: kept as read)."""
    return {name: (after[name] if name in _MAXIMA else after[name] - before.get(name, 0)) for name in after}


def reset_maxima(directory: Path) -> None:
    """Zero every process's maxima, so the next read's maxima are the window's.

    The runner calls this at a window's start; a process writing a new maximum
    at the same instant may have it lost, which only ever lowers a maximum.
    """
    if not directory.is_dir():
        return
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            with open(path, "r+b") as f:
                for name in _MAXIMA:
                    f.seek(_INDEX[name] * 8)
                    f.write(b"\0" * 8)
        except FileNotFoundError:
            continue
