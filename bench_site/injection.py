"""Fault injection for the regression gate: a known slowdown, off by default.

Configured from settings (read from the environment at start-up) and applied by
`dispatch.measured_view`, the one wrapper every measured view goes through, so
sync and async twins get exactly the same extra work.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from django.conf import settings


def burn_cpu_us(microseconds: int) -> None:
    """Spend `microseconds` of this thread's CPU time in pure Python.

    Spins on the thread CPU clock, not the wall clock: the injected cost is then
    the same amount of CPU whether or not the thread is descheduled or waiting
    for the GIL, which is what a real regression in view code looks like.
    """
    deadline = time.thread_time_ns() + microseconds * 1000
    spins = 0
    while time.thread_time_ns() < deadline:
        # Some interpreted work between clock reads, so the loop is mostly
        # bytecode rather than clock_gettime system calls.
        for _ in range(50):
            spins += 1


def burn_loops(iterations: int) -> int:
    """Run `iterations` rounds of a fixed pure-Python loop.

    The instruction-count gate's knob: unlike `burn_cpu_us`, which spins on a
    clock, this executes the same instructions every time, so under callgrind
    it adds an exact, repeatable count per request (about 610 instructions per
    iteration with CPython 3.12 here; see the README's instruction-count gate).
    """
    total = 0
    for i in range(iterations):
        total += i & 7
    return total


@dataclass(frozen=True)
class Injection:
    cpu_us: int = 0
    delay_ms: int = 0
    # Empty: every workload.
    workloads: frozenset[str] = frozenset()
    # A fixed number of pure-Python loop iterations (deterministic work).
    loops: int = 0

    @property
    def active(self) -> bool:
        return self.cpu_us > 0 or self.delay_ms > 0 or self.loops > 0

    def applies_to(self, workload: str) -> bool:
        return self.active and (not self.workloads or workload in self.workloads)

    def apply_sync(self) -> None:
        if self.loops:
            burn_loops(self.loops)
        if self.cpu_us:
            burn_cpu_us(self.cpu_us)
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)

    async def apply_async(self) -> None:
        if self.loops:
            burn_loops(self.loops)
        if self.cpu_us:
            burn_cpu_us(self.cpu_us)
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)


def injection_from_settings() -> Injection:
    return Injection(
        cpu_us=settings.BENCH_INJECT_CPU_US,
        delay_ms=settings.BENCH_INJECT_DELAY_MS,
        workloads=frozenset(settings.BENCH_INJECT_WORKLOADS),
        loops=settings.BENCH_INJECT_LOOPS,
    )
