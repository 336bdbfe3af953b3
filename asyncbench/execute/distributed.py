"""Load from a locust master and its workers: several processes, or several
machines, measuring one common window per slice.

`--workers N` starts a locust master (asyncbench.execute.locustmaster) and N
local worker processes (asyncbench.execute.locustworker), each pinned to the
generator's CPUs; `--expect-workers M` makes the master wait for M more,
started on other machines with `python runner.py worker --master HOST:PORT`
(the master listens on `--master-bind`, by default 127.0.0.1 and a free
port). They speak locust's own distributed protocol (MasterRunner and
WorkerRunner over ZeroMQ); slices travel as custom messages.

The master decides the window of every slice for all workers together: a
start a little in the future, and (closed loop) a stop on a tick boundary
decided from the sum of every worker's answers per tick, so each worker
counts exactly the answers completed in the same [start, stop). The pool's
throughput is all answers over that one window; the histograms merge bucket
by bucket; each worker's CPU over the window is kept, and the slice is
generator-bound when any worker was.

`DistributedLoad` has `LoadGenerator`'s interface (measure, measure_joint,
restart, close; `drivers` is the process it speaks the driver protocol to,
here the master); `make_load_generator` picks the single driver for one
local worker and no remote ones, this otherwise.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncbench.execute.load import ROOT, LoadGenerator
from asyncbench.execute.processes import LOOPBACK, ManagedProcess, ProcessError, cpu_pinning_prefix
from asyncbench.model.scenario_keys import ScenarioError

# How long the master waits for the local workers to join.
LOCAL_JOIN_S = 60.0
WILDCARDS = ("*", "0.0.0.0", "::", "")


@dataclass(frozen=True)
class PoolOptions:
    """Where the load comes from beyond the scenario's `load.workers` (the command line's)."""

    expect_workers: int = 0  # workers on other machines the master waits for, beside the local ones
    master_bind: str = ""  # HOST:PORT (or HOST) the master listens on; "" = 127.0.0.1, a free port
    wait_s: float = 300.0  # how long to wait for the remote workers to join


def parse_bind(text: str) -> tuple[str, int]:
    """HOST[:PORT] -> (host, port); port 0 = a free one."""
    if not text:
        return LOOPBACK, 0
    if text.count(":") > 1 and not text.startswith("["):
        return text, 0  # a bare IPv6 address
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 0
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--master-bind: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or LOOPBACK, int(port)


def make_load_generator(
    *,
    workers: int,
    cpus: tuple[int, ...],
    log_dir: Path,
    env: dict[str, str],
    pool: PoolOptions | None = None,
    note: Callable[[str], None] | None = None,
) -> LoadGenerator:
    """The load generator a run uses: one driver process for one local worker
    and no remote ones (the default, what `make bench` runs), a locust master
    and its workers otherwise."""
    pool = pool or PoolOptions()
    if workers < 0 or pool.expect_workers < 0:
        raise ScenarioError(f"load workers must be >= 0, got {workers} local and {pool.expect_workers} remote")
    if workers + pool.expect_workers < 1:
        raise ScenarioError("no load worker: load.workers = 0 means every worker is remote; give --expect-workers N")
    if workers <= 1 and pool.expect_workers == 0 and not pool.master_bind:
        return LoadGenerator(processes=1, cpus=cpus, log_dir=log_dir, env=env)
    return DistributedLoad(workers=workers, cpus=cpus, log_dir=log_dir, env=env, pool=pool, note=note)


class DistributedLoad(LoadGenerator):
    """A locust master, `workers` local worker processes and `pool.expect_workers` remote ones."""

    def __init__(
        self,
        *,
        workers: int,
        cpus: tuple[int, ...],
        log_dir: Path,
        env: dict[str, str],
        pool: PoolOptions | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(processes=1, cpus=cpus, log_dir=log_dir, env=env)
        self.pool = pool or PoolOptions()
        self.local_workers = workers
        self.processes = workers + self.pool.expect_workers  # every worker, local and remote
        self.master: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []  # the local worker processes
        self.joined: list[dict[str, Any]] = []  # every worker as it introduced itself
        self.address = ""  # HOST:PORT remote workers connect to
        self.note = note or (lambda text: print(text, file=sys.stderr, flush=True))
        self._sync = 0

    def __enter__(self) -> DistributedLoad:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        bind_host, bind_port = parse_bind(self.pool.master_bind)
        argv = [
            *cpu_pinning_prefix(self.cpus),
            sys.executable, "-m", "asyncbench.execute.locustmaster",
            "--bind", bind_host, "--port", str(bind_port),
        ]  # fmt: skip
        master = ManagedProcess(
            "locust master",
            argv,
            log_path=self.log_dir / "locust-master.log",
            env=self.env,
            cwd=ROOT,
            pipe_stdio=True,
            stop_timeout=5,
        )
        master.start()
        self.master = master
        self.drivers = [master]
        ready = json.loads(self._read_line(master, timeout=60))
        if not ready.get("ready"):
            raise ProcessError(f"the locust master did not report ready: {ready!r}")
        port = int(ready["port"])
        connect = LOOPBACK if bind_host in WILDCARDS else bind_host
        shown = socket.gethostname() if bind_host in WILDCARDS else bind_host
        self.address = f"{shown}:{port}"
        for i in range(self.local_workers):
            argv = [
                *cpu_pinning_prefix(self.cpus),
                sys.executable, "-m", "asyncbench.execute.locustworker",
                "--master", f"{connect}:{port}", "--local",
            ]  # fmt: skip
            w = ManagedProcess(
                f"load worker {i}",
                argv,
                log_path=self.log_dir / f"locust-worker-{i}.log",
                env=self.env,
                cwd=ROOT,
                health_path=None,
                stop_timeout=5,
            )
            w.start()
            self.workers.append(w)
        timeout = LOCAL_JOIN_S
        if self.pool.expect_workers:
            timeout = max(timeout, self.pool.wait_s)
            self.note(
                f"waiting up to {timeout:.0f} s for {self.pool.expect_workers} remote load worker(s): on each "
                f"load machine run `python runner.py worker --master {self.address}`"
            )
        answer = self._ask({"op": "wait", "workers": self.processes, "timeout": timeout}, timeout + 30)
        if not answer.get("ok"):
            raise ProcessError(f"locust master: {answer.get('error')}")
        self.joined = list(answer["workers"])

    def _send(self, cmd: dict[str, Any]) -> None:
        m = self.master
        if m is None or m.proc is None or m.proc.stdin is None:
            raise ProcessError("the locust master is not running")
        try:
            m.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            m.proc.stdin.flush()
        except OSError as exc:
            raise ProcessError(f"the locust master is gone: {exc}") from None

    def _ask(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.master is not None
        self._send(cmd)
        answer: dict[str, Any] = json.loads(self._read_line(self.master, timeout=timeout))
        return answer

    def info(self) -> dict[str, Any]:
        return {
            "local_workers": self.local_workers,
            "remote_workers": self.pool.expect_workers,
            "master": self.address,
            "workers": self.joined,
        }

    def close(self) -> None:
        master = self.master
        if master is not None and master.alive():
            # the master tells every worker (local and remote) to quit, then exits
            with contextlib.suppress(ProcessError):
                self._send({"op": "quit"})
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and (master.alive() or any(w.alive() for w in self.workers)):
                time.sleep(0.05)
        for w in self.workers:
            w.stop()
        if master is not None:
            master.stop()
        self.master = None
        self.workers = []
        self.drivers = []
        self._buffers = {}

    def restart(self) -> None:
        """After a failed slice: keep the pool when the master is in step and
        every worker is still there (remote workers cannot be restarted from
        here), else start it afresh."""
        m = self.master
        if m is not None and m.alive() and all(w.alive() for w in self.workers):
            self._sync += 1
            try:
                self._send({"op": "sync", "id": self._sync})
                while json.loads(self._read_line(m, timeout=60)).get("synced") != self._sync:
                    pass  # a late answer of the failed slice
                if self._ask({"op": "wait", "workers": self.processes, "timeout": 15}, 45).get("ok"):
                    return
            except ProcessError:
                pass
        self.close()
        self.__enter__()
