"""The upstream stub the fan-out views call, and the load generator's ceiling
measured against it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asyncbench.execute import ROOT
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.processes import LOOPBACK, ManagedProcess, cpu_pinning_prefix, free_port
from asyncbench.model.machine import Ceiling
from asyncbench.model.scenario import Scenario

CEILING_USERS = 32


@contextmanager
def upstream(
    scenario: Scenario, *, cpus: tuple[int, ...], log_dir: Path, env: dict[str, str], delay_ms: int, name: str
) -> Iterator[ManagedProcess]:
    """The upstream stub, pinned to `cpus`, ready, and stopped on exit."""
    port = free_port()
    up = scenario.upstream
    argv = [
        *cpu_pinning_prefix(cpus),
        sys.executable, "-m", "upstream",
        "--host", LOOPBACK,
        "--port", str(port),
        "--delay-ms", str(delay_ms),
        "--jitter-ms", str(up.jitter_ms),
        "--error-rate", str(up.error_rate),
    ]  # fmt: skip
    with ManagedProcess(name, argv, log_path=log_dir / f"{name}.log", env=env, cwd=ROOT, port=port) as proc:
        proc.wait_ready()
        yield proc


def measure_ceiling(
    scenario: Scenario, gen: LoadGenerator, server_cpus: tuple[int, ...], log_dir: Path, env: dict[str, str]
) -> Ceiling:
    """locust's own ceiling: its throughput against a trivial endpoint (the
    upstream stub, no delay) served from the server's CPUs."""
    with upstream(scenario, cpus=server_cpus, log_dir=log_dir, env=env, delay_ms=0, name="upstream-calibration") as up:
        m = gen.measure(
            host=f"http://{LOOPBACK}:{up.port}",
            path="/health",
            users=CEILING_USERS,
            warmup_s=1.0,
            min_s=3.0,
            max_s=3.0,
            target_rse=1.0,
            min_requests_per_user=1,
        )
    rps = m.throughput_rps
    # The figure is locust's ceiling only if locust was the limit; if it
    # idled, the stub was, and flagging against it would be wrong.
    # Several local load workers sharing fewer CPUs: the limit is those CPUs, all busy.
    local = sum(1 for w in m.workers if w.get("local", True)) if m.workers else len(m.driver_cpu_percents)
    shared = min(len(gen.cpus), local) if gen.cpus and local > 1 else 0
    busy = m.generator_cpu_percent >= 85.0 or (shared > 0 and m.local_driver_cpu_percent >= 85.0 * shared)
    valid = busy and not m.failures
    who = (
        f"locust reached only {m.generator_cpu_percent:.0f}% of a core"
        if len(m.driver_cpu_percents) <= 1
        else f"the {len(m.driver_cpu_percents)} load workers reached only {m.local_driver_cpu_percent:.0f}% of "
        f"a core together here (the busiest {m.generator_cpu_percent:.0f}%)"
    )
    return Ceiling(
        valid=valid,
        note=""
        if valid
        else (
            f"{who} in the ceiling measurement "
            f"({sum(m.failures.values())} failures): the stub, not locust, was the limit; cells are not "
            "flagged against this ceiling"
        ),
        rps=round(rps, 1),
        cpu_percent=round(m.generator_cpu_percent, 1),
        users=CEILING_USERS,
        processes=gen.processes,  # load workers, local and remote
        endpoint="upstream stub /health, no delay, served from the server CPUs",
        duration_s=round(m.duration_s, 2),
        failures=sum(m.failures.values()),
        extra=gen.info(),  # with several load workers: the master and every worker
    )
