"""Profiling slices: py-spy attached to an arm's server for one extra window.

After a group's measured blocks (run --profile, or `[profile] enabled`), each
arm gets one more slice at the group's load (its users, or the open model's
rate) with py-spy sampling the server's process tree (``--subprocesses``:
gunicorn's arbiter and its workers, uvicorn's supervisor and its workers)
from before the load starts until its window closes: py-spy is started and
given time to attach (attaching to a process tree takes seconds on a busy
machine, and a SIGINT that comes before py-spy has installed its handler
kills it without a file: CI saw that, exit -2), then the load runs its
settle and its window, and SIGINT (py-spy then writes its file) stops it
when the window closes. Its samples cover the settle and the window, at the
same load; shares, not times, are taken from them. py-spy runs without
``--idle``: a thread is sampled only when it is not waiting, so a part's
share of the samples stands for its share of the CPU (see
asyncbench.analysis.cpu_split for what that misses). By default it reads the
stacks without pausing the server (``--nonblocking``; `[profile] nonblocking
= false` pauses it at every sample: consistent stacks, a much slower server).
Either way the slice is not a measured one: it is recorded as a
`ProfileRecord` (asyncbench.model.profiles), never as a slice of the cell.

Files, in the run folder: ``profiles/<arm>.txt`` (py-spy's raw collapsed
stacks), ``profiles/<arm>.svg`` (the flame graph drawn from them) and
``profiles/<arm>.log`` (py-spy's own output).

py-spy reads another process's memory (ptrace / process_vm_readv): without
the permission (not root, Yama's ptrace_scope, a container without
CAP_SYS_PTRACE) the first attempt says so, and every later arm of the run is
recorded as skipped with that reason, without a slice.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from asyncbench.analysis.cpu_split import WAITING, is_waiting, parse_collapsed, part_counts, top_frames
from asyncbench.execute.groups import Group
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.monitor import WindowUsage
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import ManagedProcess, ProcessError
from asyncbench.execute.servers import drain_server
from asyncbench.execute.slices import RunContext
from asyncbench.model.profiles import (
    PROFILE_ERROR,
    PROFILE_OK,
    PROFILE_SKIPPED,
    ProfileConfig,
    ProfileRecord,
)
from asyncbench.render.flamegraph import flamegraph_svg

PROFILES_DIR = "profiles"
# What py-spy says when the kernel refuses it another process's memory
_NO_PERMISSION = re.compile(r"permission denied|operation not permitted|ptrace|EPERM|elevated", re.IGNORECASE)
_STOP_TIMEOUT_S = 20.0  # py-spy writes its file after SIGINT; a large profile takes a moment
_READY_TIMEOUT_S = 30.0  # attaching to a server's process tree on a loaded machine
# What py-spy prints once attached, just before it installs its Ctrl-C handler
_READY = "Sampling process"


def py_spy_binary() -> str | None:
    """The py-spy beside this interpreter (the venv's), else one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def arm_file_stem(item: Planned) -> str:
    """A file name for an arm at a load level: workload, users, parameters, setup, variant, revision."""
    parts = [item.workload, f"u{item.users}", *(f"{k}{v}" for k, v in item.params), item.setup, item.variant]
    if item.revision:
        parts.append(item.revision)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts))


class Profiler:
    """The profiling phase of one run: its settings, its records, whether py-spy may attach."""

    def __init__(self, config: ProfileConfig, run_dir: Path, note: Callable[[str], None]) -> None:
        self.config = config
        self.run_dir = run_dir
        self.note = note
        self.records: list[ProfileRecord] = []
        self.spent_s = 0.0  # time in profiling slices: not the measuring budget's
        binary = py_spy_binary()
        self.binary = binary or ""
        # why no arm of this run can be profiled, once known
        self.unavailable = "" if binary else "py-spy is not installed (pip install py-spy; it is in requirements.lock)"

    def profile_group(self, group: Group, ctx: RunContext, gen: LoadGenerator, rate: float | None) -> None:
        """One profiling slice per arm of the group with a measured cell, in a random order."""
        if not self.config.profiles(group.users):
            return
        t0 = time.monotonic()
        arms = list(group.arms)
        random.Random(f"{ctx.scenario.name}/{group.label}/profile").shuffle(arms)
        try:
            for item in arms:
                cell = ctx.cells.get(item.cell_id)
                if cell is None or cell.status != "ok" or not cell.repeats:
                    continue  # nothing measured to split: a profile of it would explain nothing
                self.records.append(self._profile_arm(item, ctx, gen, rate))
        finally:
            self.spent_s += time.monotonic() - t0

    def _record(self, item: Planned, **kw: object) -> ProfileRecord:
        """The arm's record; `kw` what this slice found (window_s: the window it really had)."""
        found: dict[str, object] = {"window_s": self.config.seconds, "rate_hz": self.config.rate, **kw}
        return ProfileRecord(
            setup=item.setup,
            workload=item.workload,
            variant=item.variant,
            kind=item.kind,
            users=item.users,
            params=dict(item.params),
            revision=item.revision,
            **found,  # type: ignore[arg-type]
        )

    def _profile_arm(self, item: Planned, ctx: RunContext, gen: LoadGenerator, rate: float | None) -> ProfileRecord:
        extra = "".join(f" {k}={v}" for k, v in item.params) + (f" [{item.revision}]" if item.revision else "")
        label = f"{item.setup} {item.workload}/{item.variant} u={item.users}{extra} (profiling slice)"
        if self.unavailable:
            return self._record(item, status=PROFILE_SKIPPED, reason=self.unavailable)
        server, _ = ctx.running(item)
        if server is None or server.proc is None:
            why = "an existing deployment (--target) is not profiled" if server is not None else "server not running"
            return self._record(item, status=PROFILE_SKIPPED, reason=why)
        out_dir = self.run_dir / PROFILES_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = arm_file_stem(item)
        raw = out_dir / f"{stem}.txt"
        raw.unlink(missing_ok=True)
        (out_dir / f"{stem}.log").unlink(missing_ok=True)  # its readiness is read from it
        argv = [
            self.binary,
            "record",
            "--pid",
            str(server.proc.pid),
            "--subprocesses",
            *(["--nonblocking"] if self.config.nonblocking else []),
            "--rate",
            str(self.config.rate),
            "--format",
            "raw",
            "--output",
            str(raw),
        ]
        spy = ManagedProcess(
            f"py-spy {stem}",
            argv,
            log_path=out_dir / f"{stem}.log",
            health_path=None,
            stop_timeout=_STOP_TIMEOUT_S,
        )
        usage: dict[str, WindowUsage] = {}
        opened: list[float] = []

        def window_start() -> None:
            opened.append(time.time())
            server.monitor.begin()

        def window_end() -> None:
            # py-spy writes its file on SIGINT (as on Ctrl-C)
            if spy.alive():
                os.kill(spy.pid, signal.SIGINT)
            usage["server"] = server.monitor.end()

        load = ctx.scenario.load
        ctx.progress.note(f"  {label}: py-spy at {self.config.rate} Hz for {self.config.seconds:g} s")
        spy.start()
        if not self._wait_ready(spy):
            code = self._stop(spy)
            problem = self._problem(spy, code, raw) if code not in (0, None) else ""
            return self._record(
                item,
                status=PROFILE_SKIPPED if self.unavailable else PROFILE_ERROR,
                reason=problem or f"py-spy did not start sampling within {_READY_TIMEOUT_S:g} s",
            )
        try:
            m = gen.measure(
                host=server.base_url,
                path=server.prefix + item.path,
                users=item.users,
                warmup_s=load.settle_s,
                min_s=self.config.seconds,
                max_s=self.config.seconds,
                slow_max_s=self.config.seconds,
                target_rse=0.0,
                min_requests_per_user=1,
                on_window_start=window_start,
                on_window_end=window_end,
                rate=rate,
                arrival=load.arrival,
                connections=load.connections or None,
                request=None if item.request.plain else item.request.to_dict(),
            )
        except ProcessError as exc:
            if "server" not in usage and opened:
                server.monitor.end()
            return self._record(item, status=PROFILE_ERROR, reason=f"the load failed: {exc}")
        finally:
            code = self._stop(spy)
            drain_server(server, load.drain_timeout_s)
        problem = self._problem(spy, code, raw)
        if problem:
            return self._record(item, status=PROFILE_SKIPPED if self.unavailable else PROFILE_ERROR, reason=problem)
        stacks = parse_collapsed(raw.read_text(encoding="utf-8", errors="replace"))
        counts = part_counts(stacks)
        samples = sum(n for part, n in counts.items() if part != WAITING)
        svg = out_dir / f"{stem}.svg"
        svg.write_text(
            flamegraph_svg(
                [(frames, n) for frames, n in stacks if not is_waiting(frames)],
                title=f"{item.workload} · {item.setup} / {item.variant} · {item.users} users",
                subtitle=f"{samples:,} on-CPU samples at {self.config.rate} Hz over the {load.settle_s:g}-s settle "
                f"and the {m.duration_s:.1f}-s window "
                f"({m.requests:,} requests; py-spy without --idle; {counts[WAITING]:,} samples of threads "
                "waking from a wait left out; a profiling slice, not a measured one)",
            ),
            encoding="utf-8",
        )
        cpu = usage["server"].cpu_s if "server" in usage else None
        ctx.progress.note(f"  {label}: {samples:,} on-CPU samples, {m.requests:,} requests")
        return self._record(
            item,
            status=PROFILE_OK,
            started_at=m.window_start or (opened[0] if opened else m.started_at),
            window_s=round(m.duration_s, 3),
            requests=m.requests,
            throughput_rps=round(m.throughput_rps, 2),
            server_cpu_s=round(cpu, 4) if cpu is not None else None,
            samples=samples,
            parts=counts,
            top_frames=top_frames(stacks),
            collapsed=f"{PROFILES_DIR}/{raw.name}",
            flamegraph=f"{PROFILES_DIR}/{svg.name}",
            profiler=" ".join(["py-spy", *argv[1:]]),
        )

    @staticmethod
    def _wait_ready(spy: ManagedProcess, timeout: float = _READY_TIMEOUT_S) -> bool:
        """Whether py-spy has attached and says it samples (False: it exited, or took too long)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if spy.log_path.exists() and _READY in spy.log_path.read_text(encoding="utf-8", errors="replace"):
                time.sleep(0.05)  # the message comes just before the Ctrl-C handler
                return True
            if not spy.alive():
                return False
            time.sleep(0.02)
        return False

    @staticmethod
    def _stop(spy: ManagedProcess) -> int | None:
        """Wait for py-spy to write its file and exit; stop its group whatever happens."""
        if spy.proc is None:
            return None
        try:
            if spy.alive():
                os.kill(spy.pid, signal.SIGINT)
            return spy.proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
        finally:
            spy.stop()

    def _problem(self, spy: ManagedProcess, code: int | None, raw: Path) -> str:
        """Why this profile is unusable ("" when it is fine); a missing permission disables the rest."""
        if spy.proc is None:
            return "py-spy was not started (the load's window never opened)"
        log = spy.log_path.read_text(encoding="utf-8", errors="replace") if spy.log_path.exists() else ""
        tail = " ".join(log.strip().splitlines()[-3:])[-400:]
        if code not in (0, None) or not raw.exists():
            if _NO_PERMISSION.search(log):
                self.unavailable = (
                    "py-spy may not read the server's memory (ptrace not permitted: run as root, set "
                    f"kernel.yama.ptrace_scope=0, or grant CAP_SYS_PTRACE): {tail}"
                )
                self.note(f"profiling skipped for the rest of the run: {self.unavailable}")
                return self.unavailable
            return f"py-spy exited with code {code}: {tail or '(no output)'}"
        return ""
