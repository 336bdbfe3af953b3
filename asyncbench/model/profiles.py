"""Profiling slices as data: one record per arm profiled, kept apart from the cells.

A profiling slice is an extra window of an arm, run after the group's measured
blocks, with a sampling profiler (py-spy) attached to the server's processes.
The profiler pauses the server to read its stacks, so a profiling slice is
slower than a measured one: it is never a `Repeat` of a cell, never enters a
throughput, CPU or latency statistic, and lives in `Run.profiles` only. What
it contributes is the *shares* of on-CPU samples per part of the stack (see
asyncbench.analysis.cpu_split), which the report multiplies by the CPU per
request the measured slices gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncbench.model.scenario_keys import ScenarioError, check_keys, int_list

KIND = "profiling slice"  # how results and report label these windows

PROFILE_OK = "ok"
PROFILE_SKIPPED = "skipped"  # not profiled, with the reason (no ptrace, no py-spy, ...)
PROFILE_ERROR = "error"  # the profiler or the load failed on this arm


@dataclass(frozen=True)
class TopFrame:
    """A frame where on-CPU samples ended (its own time), with the part it counts for."""

    frame: str  # "function (file:line)" as py-spy writes it
    part: str
    samples: int


@dataclass(frozen=True)
class ProfileRecord:
    """One arm's profiling slice: what ran, what the profiler saw, where its files are."""

    setup: str
    workload: str
    variant: str
    kind: str  # the variant's kind, "sync" or "async"
    users: int
    params: dict[str, int] = field(default_factory=dict)
    revision: str = ""
    status: str = PROFILE_OK
    reason: str = ""  # why skipped or failed
    label: str = KIND
    started_at: float = 0.0  # unix time the profiled window opened
    window_s: float = 0.0
    rate_hz: int = 0
    # the load during the window (for information: the profiler slows the server)
    requests: int = 0
    throughput_rps: float = 0.0
    server_cpu_s: float | None = None
    # on-CPU samples (py-spy without --idle) in total and per part of the stack
    samples: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    top_frames: tuple[TopFrame, ...] = ()
    # paths relative to the run folder
    collapsed: str = ""  # py-spy's raw (collapsed stacks) output
    flamegraph: str = ""  # the SVG flame graph drawn from it
    profiler: str = ""  # the command that sampled, for reproduction

    @property
    def key(self) -> str:
        """The key of the cell this slice profiled (Cell.key's form)."""
        extra = "".join(f",{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.setup}/{self.workload}/{self.variant}/u{self.users}{extra}"


def profile_from_dict(d: dict[str, Any]) -> ProfileRecord:
    d = dict(d)
    d["top_frames"] = tuple(TopFrame(**t) for t in d.get("top_frames") or ())
    names = set(ProfileRecord.__dataclass_fields__)
    return ProfileRecord(**{k: v for k, v in d.items() if k in names})


# ------------------------------------------------------------------ the scenario's [profile] table

PROFILE_KEYS: Mapping[str, type] = {
    "enabled": bool,
    "seconds": float,
    "rate": int,
    "users": list,
    "nonblocking": bool,
}
MAX_SECONDS = 60.0
MAX_RATE_HZ = 1000  # py-spy pauses the server for every sample: beyond this it is mostly paused


@dataclass(frozen=True)
class ProfileConfig:
    """The `[profile]` table (or `run --profile`): profiling slices after each group.

    `enabled`: off unless asked for (a profiling slice per arm adds its time
    to the run). `seconds`: each profiling slice's window. `rate`: samples per
    second (py-spy ``--rate``). `users`: the load levels whose groups are
    profiled (empty: every level). `nonblocking` (the default): py-spy
    ``--nonblocking``, reading the stacks without pausing the server. py-spy's
    own default pauses every thread at every sample, which with many threads
    stops the server most of the time (measured here: uvicorn's no-I/O async
    arm at 32 users served 77 req/s while profiled against 942 measured; 581
    with --nonblocking), and it under-sampled pool threads' work more (a view
    known to take 82% of the CPU: 26-31% of the samples, 58% without pausing).
    The price: a stack read from a running process can be torn (py-spy drops
    it and counts an error, 10-30% of samples here), and whether a thread is
    idle is guessed from its frames instead of asked of the kernel.
    """

    enabled: bool = False
    seconds: float = 3.0
    rate: int = 250
    users: tuple[int, ...] = ()
    nonblocking: bool = True

    def profiles(self, users: int) -> bool:
        return self.enabled and (not self.users or users in self.users)


def parse_profile(section: dict[str, Any]) -> ProfileConfig:
    check_keys("profile", section, PROFILE_KEYS)
    d = dict(section)
    users = int_list("profile.users", d.pop("users"), 1, 10_000) if "users" in d else ()
    config = ProfileConfig(**d, users=users)
    if not 0 < config.seconds <= MAX_SECONDS:
        raise ScenarioError(f"profile.seconds: must be in (0, {MAX_SECONDS:g}], got {config.seconds!r}")
    if not 1 <= config.rate <= MAX_RATE_HZ:
        raise ScenarioError(f"profile.rate: samples per second in 1..{MAX_RATE_HZ}, got {config.rate!r}")
    return config
