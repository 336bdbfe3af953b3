"""The results model: one JSON file per run, versioned, written cell by cell.

Everything downstream (terminal summary, charts, HTML report, regression
gate) reads these objects and nothing else, so a report can be regenerated and
a gate re-evaluated without measuring again.

Schema changelog (bump SCHEMA_VERSION on any incompatible change):
  1 - first version: run -> setups, cells -> repeats, per-second series,
      microsecond-resolution latency percentiles beside locust's own.
      Fields added later with defaults (readers of 1 accept files without
      them): Repeat.generator_cores_busy_percent, upstream_cpu_percent,
      stop_reason, drain_s.
  2 - slices in randomized blocks: each Repeat is one short slice of an arm
      and carries its `block` (the block it ran in: every arm of a group runs
      once per block, in a fresh random order); Cell.histogram is the merged
      microsecond histogram of its slices (percentiles with their sample
      count); Run.groups records each comparison group's blocks, time, budget
      and why it stopped. Version-1 files are read as such: a repeat is a
      block (repeats ran in interleaved rounds), with no merged histogram.
      Added later with defaults: SetupInfo.resources ("local", "agent" or
      "not measured": where server CPU and RSS came from), target and agent
      (an existing deployment's URL and its resource agent's); a repeat's
      server_cpu_s, server_cpu_percent and server_rss_peak_mb may be null:
      not measured (never 0). Repeat.worker_cpu_percents: each load
      worker's own CPU over the slice's window (several with --workers), and
      worker_windows: each worker's view of that common window.
      Repeat.server_counters: the server's own counters over the slice's
      window (bench_site.telemetry: requests that reached Django,
      sync_to_async and async_to_sync calls, Django's connection_created),
      and db_connections: connections the database server saw opened in it
      (PostgreSQL pg_stat_database.sessions, MariaDB Connections); both null
      when not measured (run --no-telemetry, --target, SQLite's server side).
      Run.profiles: profiling slices (run --profile; asyncbench.model.profiles),
      extra windows with a sampling profiler attached, kept apart from the
      cells and their statistics.
      Run.latency: latency at the same load (asyncbench.model.latency), one
      LatencyCurves per workload with its own `version`: open-model points at
      fractions of each arm's capacity and at equal rates for every arm.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncbench.model.latency import LatencyCurves, curves_from_dict
from asyncbench.model.machine import Ceiling, Environment, flat
from asyncbench.model.profiles import ProfileRecord, profile_from_dict

if TYPE_CHECKING:
    from asyncbench.model.summary import CellSummary

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Flag:
    code: str
    message: str


@dataclass(frozen=True)
class Latency:
    """Percentiles in milliseconds from the harness's own histogram.

    Recorded at microsecond resolution with a bounded relative error (see
    asyncbench.model.histogram), unlike locust's rounded figures.
    """

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Second:
    """One second of the measured window."""

    t: float  # seconds since the start of the measured window
    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Repeat:
    index: int
    started_at: float  # unix time at the start of the measured window
    duration_s: float  # length of the measured window actually used
    warmup_s: float
    requests: int
    failures: dict[str, int]  # kind of failure -> count
    throughput_rps: float
    latency: Latency
    # locust's own rounded statistics, kept only as a cross-check
    locust: dict[str, float]
    # CPU seconds of the server's whole process tree in the window; None (like
    # the two after it) when not measured: an existing deployment without an agent
    server_cpu_s: float | None
    server_cpu_percent: float | None  # percent of one core, averaged over the window
    server_rss_peak_mb: float | None
    generator_cpu_percent: float  # percent of one core (the busiest generator process)
    generator_cpu_peak_percent: float
    server_worker_changes: int  # worker processes that appeared or vanished
    series: tuple[Second, ...] = ()
    flags: tuple[Flag, ...] = ()
    # How busy the generator's CPUs were as a whole (locust and the upstream
    # share them): a saturated core distorts the load even when locust's own
    # process is below its limit.
    generator_cores_busy_percent: float | None = None
    upstream_cpu_percent: float | None = None  # percent of one core
    stop_reason: str = ""  # "stable" (adaptive window converged) or "max_s"
    drain_s: float | None = None  # time the server needed afterwards to work off its backlog
    # The block this slice ran in (version 2); a version-1 repeat's index.
    block: int | None = None
    # Open model only: the arrival rate asked for, the requests due in the
    # window, those not sent for want of a free connection (dropped), those
    # unanswered at the end, and how late the generator sent (ms).
    target_rps: float | None = None
    due: int | None = None
    dropped: int = 0
    unfinished: int = 0
    send_lag_p99_ms: float | None = None
    # Each load worker's (locust process's) own CPU over the window, percent of
    # one core; generator_cpu_percent is the busiest's. Several with --workers,
    # all measuring the same window (the master decides it for every worker).
    worker_cpu_percents: tuple[float, ...] = ()
    # With several load workers: each one's view of the common window (when
    # it saw it open, when its last tick ended; unix time, the master's clock),
    # in the same order; the window itself is [started_at, started_at + duration_s).
    worker_windows: tuple[tuple[float, float], ...] = ()
    # The server's own counters over the window (bench_site.telemetry.COUNTERS:
    # "requests" that reached Django, "sync_to_async" and "async_to_sync" calls,
    # "db_connects" = Django's connection_created); None: not measured (run
    # --no-telemetry, an existing deployment), never zeros.
    server_counters: dict[str, int] | None = None
    # Connections the database server saw opened in the window (PostgreSQL:
    # pg_stat_database.sessions of the bench database; MariaDB: the global
    # Connections status); None: not read (SQLite has no server; a window of
    # several servers cannot be split between them).
    db_connections: int | None = None

    @property
    def cpu_s_per_1k_requests(self) -> float | None:
        if self.requests <= 0 or self.server_cpu_s is None:
            return None
        return self.server_cpu_s / self.requests * 1000.0

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())


@dataclass(frozen=True)
class Cell:
    """One (setup, workload, variant, users[, parameters]) measurement, repeated."""

    setup: str
    workload: str
    variant: str
    kind: str  # "sync" or "async"
    users: int
    path: str  # the URL path loaded, query string included
    params: dict[str, int] = field(default_factory=dict)
    repeats: tuple[Repeat, ...] = ()
    flags: tuple[Flag, ...] = ()
    status: str = "ok"  # "ok" | "error"
    error: str | None = None
    # In an A/B-in-one-job run, which source tree served the cell ("base" or
    # "head"); empty in an ordinary run.
    revision: str = ""
    # The merged latency histogram of every slice (asyncbench.model.histogram
    # to_dict form); None in version-1 results.
    histogram: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """Stable identity of a cell across runs (used by the gate)."""
        extra = "".join(f",{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.setup}/{self.workload}/{self.variant}/u{self.users}{extra}"

    @cached_property
    def summary(self) -> CellSummary:
        """Medians, spread, CPU per request, labels and flags, computed once."""
        from asyncbench.model.summary import summarize

        return summarize(self)

    @property
    def throughputs(self) -> list[float]:
        return [r.throughput_rps for r in self.repeats]

    @property
    def p99s(self) -> list[float]:
        return [r.latency.p99_ms for r in self.repeats]

    @property
    def flag_codes(self) -> set[str]:
        codes = {f.code for f in self.flags}
        for r in self.repeats:
            codes.update(f.code for f in r.flags)
        return codes

    @property
    def all_flags(self) -> list[Flag]:
        """Cell flags and repeat flags, de-duplicated by code and message."""
        seen: dict[tuple[str, str], Flag] = {}
        for f in self.flags:
            seen.setdefault((f.code, f.message), f)
        for r in self.repeats:
            for f in r.flags:
                seen.setdefault((f.code, f.message), f)
        return list(seen.values())


@dataclass(frozen=True)
class SetupInfo:
    """A server setup as it ran: what it is and what it implies."""

    name: str
    server: str  # gunicorn, uvicorn, daphne, granian, hypercorn
    interface: str  # "wsgi" or "asgi"
    workers: int
    threads: int
    worker_class: str
    event_loop: str  # "none", "asyncio", "uvloop", "twisted", "tokio"...
    keepalive: bool
    command: tuple[str, ...]
    env: dict[str, str]
    cpu_affinity: tuple[int, ...]
    notes: str = ""
    # Where server CPU and RSS came from: "local" (the runner's monitor of the
    # server it started), "agent" (a resource agent beside an existing
    # deployment), "not measured".
    resources: str = "local"
    target: str = ""  # an existing deployment's URL: not started by the runner
    agent: str = ""  # its resource agent's URL, if any


@dataclass(frozen=True)
class GroupRecord:
    """One comparison group as it ran: its arms' blocks, time and why it stopped."""

    workload: str
    users: int
    params: dict[str, int]
    revision_pairs: bool  # an A/B group: base and head arms side by side
    blocks: int
    elapsed_s: float
    budget_s: float
    precision_target: float  # the scenario's half-width goal for the group's ratios
    precision_achieved: float | None  # the widest half-width among them when it stopped
    stop_reason: str  # "precision", "budget", "max_blocks", "interrupted", "error"
    # Open model: the arrival rate every arm of the group ran at (req/s), and
    # how it was chosen (the probe's capacities, the fraction, the cap).
    rate_rps: float | None = None
    rate_rule: str = ""


@dataclass(frozen=True)
class Run:
    schema_version: int
    run_id: str
    scenario: str
    scenario_resolved: dict[str, Any]
    command: tuple[str, ...]  # the exact argv that reproduces the run
    started_at: float
    finished_at: float | None
    complete: bool
    interrupted: bool
    environment: Environment
    generator_ceiling: Ceiling
    setups: dict[str, SetupInfo]
    cells: tuple[Cell, ...]
    notes: tuple[str, ...] = ()
    groups: tuple[GroupRecord, ...] = ()
    # profiling slices: never cells, never in a statistic (asyncbench.model.profiles)
    profiles: tuple[ProfileRecord, ...] = ()
    # latency at the same load, per workload (asyncbench.model.latency); () before it existed
    latency: tuple[LatencyCurves, ...] = ()

    def resources(self, setup: str) -> str:
        """Where a setup's server CPU and RSS came from: "local", "agent" or NOT_MEASURED."""
        info = self.setups.get(setup)
        return info.resources if info is not None else "local"


NOT_MEASURED = "not measured"  # SetupInfo.resources of a deployment without an agent


# ---------------------------------------------------------------- (de)serialisation


def to_dict(run: Run) -> dict[str, Any]:
    d = asdict(run)
    d["environment"] = flat(run.environment)
    d["generator_ceiling"] = flat(run.generator_ceiling)
    return d


def _flags(items: Any) -> tuple[Flag, ...]:
    return tuple(Flag(**f) for f in items or ())


def _repeat(d: dict[str, Any]) -> Repeat:
    d = dict(d)
    d["latency"] = Latency(**d["latency"])
    d["series"] = tuple(Second(**s) for s in d.get("series", ()))
    d["flags"] = _flags(d.get("flags"))
    d["worker_cpu_percents"] = tuple(d.get("worker_cpu_percents") or ())
    d["worker_windows"] = tuple(tuple(w) for w in d.get("worker_windows") or ())
    if d.get("block") is None:  # version 1: repeat r of every arm ran in round r
        d["block"] = d.get("index")
    return Repeat(**_known(Repeat, d))


def _cell(d: dict[str, Any]) -> Cell:
    d = dict(d)
    d["repeats"] = tuple(_repeat(r) for r in d.get("repeats", ()))
    d["flags"] = _flags(d.get("flags"))
    return Cell(**_known(Cell, d))


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


class ResultsError(Exception):
    """A results file that cannot be read as this schema."""


def from_dict(d: dict[str, Any]) -> Run:
    version = d.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ResultsError(
            f"results schema_version {version!r} is not supported (this version reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}); regenerate the run with this version of the harness"
        )
    d = dict(d)
    d["setups"] = {
        k: SetupInfo(**{**v, "command": tuple(v["command"]), "cpu_affinity": tuple(v["cpu_affinity"])})
        for k, v in d.get("setups", {}).items()
    }
    d["cells"] = tuple(_cell(c) for c in d.get("cells", ()))
    d["groups"] = tuple(GroupRecord(**_known(GroupRecord, g)) for g in d.get("groups", ()))
    d["profiles"] = tuple(profile_from_dict(p) for p in d.get("profiles") or ())
    # a curve of a later section version is left out, the rest of the run still read
    d["latency"] = tuple(c for c in (curves_from_dict(x) for x in d.get("latency") or ()) if c is not None)
    d["command"] = tuple(d.get("command", ()))
    d["notes"] = tuple(d.get("notes", ()))
    d["environment"] = Environment.from_dict(d.get("environment"))
    d["generator_ceiling"] = Ceiling.from_dict(d.get("generator_ceiling"))
    return Run(**_known(Run, d))


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / "results.json"


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load a run from its folder or from a results.json path."""
    p = Path(path)
    if p.is_dir():
        p = results_path(p)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ResultsError(f"no results file at {p}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p} is not valid JSON: {exc}") from None
    return from_dict(data)


def save_run(run: Run, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a crash mid-write never leaves a truncated file."""
    p = Path(path)
    if p.is_dir() or p.suffix != ".json":
        p = results_path(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(to_dict(run), fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; results and baselines are meant to be shared
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
