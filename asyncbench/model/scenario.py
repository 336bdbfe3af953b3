"""Scenarios: TOML files naming workloads, variants, setups and load levels.

A scenario is validated completely before anything starts: an unknown key, an
unknown workload, variant or setup, a wrong type or an impossible value is a
`ScenarioError` whose message names the key and the allowed values.
"""

from __future__ import annotations

import copy
import itertools
import os
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asyncbench.execute.setups import SETUPS, SetupConfig
from asyncbench.gate.config import REMOVED_GATE_KEYS, validate_gate_section
from asyncbench.model.endpoints import AppConfig, Catalog, Endpoint, endpoint_users, parse_app, parse_endpoints
from asyncbench.model.scenario_keys import (
    CPU_KEYS,
    DB_KEYS,
    GATE_KEYS,
    LOAD_KEYS,
    SETUP_KEYS,
    TOP_KEYS,
    UPSTREAM_KEYS,
    WORKLOAD_KEYS,
    check_keys,
    int_list,
    param_value,
    positive,
)
from asyncbench.model.scenario_keys import ScenarioError as ScenarioError  # noqa: PLC0414 (a re-export)
from bench_site.registry import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "scenarios"


@dataclass(frozen=True)
class LoadConfig:
    """How a group of arms is measured: slices in randomized blocks.

    A slice: `settle_s` (connections re-filled, the previous arm's queue gone;
    excluded), then a window of `window_s`, run on while users completed fewer
    than `min_requests_per_user` requests on average, at most `max_window_s`.
    A block runs every arm of a group once in a fresh random order. A group
    runs at least `min_blocks` blocks, then stops once every ratio its verdict
    and notes use has a 95% interval half-width <= `precision`, or when its
    share of `budget_s` is spent, or at `max_blocks`.
    """

    users: tuple[int, ...]
    settle_s: float = 0.25
    window_s: float = 1.0
    max_window_s: float = 4.0
    min_requests_per_user: int = 3
    precision: float = 0.05
    min_blocks: int = 5
    max_blocks: int = 60
    budget_s: float = 0.0  # the run's measuring time, shared by its groups; 0 = no limit
    # Load workers on this machine: 1 = one locust process (the default);
    # more = a locust master and that many workers sharing one window per
    # slice (asyncbench.execute.distributed). `processes` is its old name.
    workers: int = 1
    drain_timeout_s: float = 15.0
    # Flag thresholds
    generator_cpu_limit: float = 90.0  # percent of one core
    ceiling_fraction: float = 0.8  # of the measured generator ceiling
    unstable_cv: float = 0.25  # across slices: a short window's spread is larger than a long one's
    # Open model (a fixed arrival rate; see execute/openloop.py). `rate`: req/s
    # per arm. `rate_fraction`: a fraction of the group's capacity, measured by
    # one closed-loop probe slice per arm at the group's start (the slowest
    # arm's throughput at `users`), divided among the arms that share a window.
    # Neither: closed loop, `users` users with no think time.
    rate: float = 0.0
    rate_fraction: float = 0.0
    arrival: str = "uniform"  # "uniform" | "poisson"
    connections: int = 0  # open model: each arm's connection pool (0 = max(users, 64))
    # "block": every server is stopped and started afresh (in a random order)
    # before each block, so the few-percent speed a process gets from its
    # memory layout varies between blocks instead of biasing a whole run.
    restart: str = "never"  # "never" | "block"
    # "group": a group's blocks run one after the other, then the next group's
    # (and a group stops at its precision). "run": each block runs every
    # group's arms, for a fixed number of blocks (min_blocks = max_blocks): one
    # restart per block serves the whole scenario, as the gate wants.
    interleave: str = "group"  # "group" | "run"

    @property
    def open_model(self) -> bool:
        return self.rate > 0 or self.rate_fraction > 0


@dataclass(frozen=True)
class WorkloadConfig:
    name: str
    variants: tuple[str, ...]
    params: dict[str, int] = field(default_factory=dict)
    sweep: dict[str, tuple[int, ...]] = field(default_factory=dict)
    users: tuple[int, ...] | None = None
    # The load levels the sweep runs at; None = at every level. The fixed
    # params alone run at every level, so a concurrency axis and a sweep at
    # one level can share a scenario without the sweep's cost at every level.
    sweep_users: tuple[int, ...] | None = None

    def param_sets(self, users: int | None = None) -> list[dict[str, int]]:
        """Fixed params combined with every point of the sweep (at `users`, when
        the sweep is limited to some levels, else the fixed params alone)."""
        if not self.sweep or (users is not None and self.sweep_users is not None and users not in self.sweep_users):
            return [dict(self.params)]
        keys = sorted(self.sweep)
        out = []
        for values in itertools.product(*(self.sweep[k] for k in keys)):
            out.append({**self.params, **dict(zip(keys, values, strict=True))})
        return out


@dataclass(frozen=True)
class DatabaseConfig:
    engine: str = "sqlite"  # "sqlite" | "postgres"
    url: str = ""
    rows: int = 100_000
    sqlite_path: str = ""


@dataclass(frozen=True)
class UpstreamConfig:
    delay_ms: int = 50
    jitter_ms: int = 0
    error_rate: float = 0.0


@dataclass(frozen=True)
class CpuConfig:
    """CPUs for the server, and for the load generator and upstream.

    Empty tuples mean "auto": with two or more CPUs the server gets the first
    half and the generator and upstream the rest; with one, nothing is pinned.
    """

    server: tuple[int, ...] = ()
    generator: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    load: LoadConfig
    setups: tuple[SetupConfig, ...]
    workloads: tuple[WorkloadConfig, ...]
    database: DatabaseConfig
    upstream: UpstreamConfig
    cpu: CpuConfig
    gate: dict[str, Any]
    server_env: dict[str, str]
    source: str = ""
    # `[endpoints.<name>]`: workloads of any Django project (also in `workloads`, as their arms)
    endpoints: tuple[Endpoint, ...] = ()
    # `[app]`: the project the setups serve instead of bench_site; None: bench_site
    app: AppConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["workloads"] = {w["name"]: w for w in d["workloads"]}
        # the catalog a report or gate reads back (Catalog.from_resolved); recorded
        # only when there is one, so a run of built-in workloads compares with
        # a baseline recorded before endpoints existed (the gate's scenario check)
        endpoints = d.pop("endpoints")
        if endpoints:
            d["endpoints"] = {e["name"]: e for e in endpoints}
        if d["app"] is None:
            del d["app"]
        return d

    @property
    def catalog(self) -> Catalog:
        """Every workload's arms: the registry's and this scenario's endpoints."""
        return Catalog({e.name: e for e in self.endpoints})

    def users_for(self, workload: WorkloadConfig) -> tuple[int, ...]:
        """Every load level of a workload: its own (or the scenario's), plus its sweep's."""
        levels = workload.users or self.load.users
        extra = tuple(u for u in workload.sweep_users or () if u not in levels)
        return tuple(sorted((*levels, *extra)))


# ------------------------------------------------------------------ validation


ARRIVALS = ("uniform", "poisson")
RESTARTS = ("never", "block")
INTERLEAVES = ("group", "run")


def parse(data: dict[str, Any], *, source: str = "<scenario>") -> Scenario:
    check_keys("scenario", data, TOP_KEYS)
    for required in ("name", "load", "setups"):
        if required not in data:
            raise ScenarioError(f"scenario: missing required key {required!r}")
    if "workloads" not in data and not data.get("endpoints"):
        raise ScenarioError(
            "scenario: missing required key 'workloads' (built-in workloads) or 'endpoints' (your own view pairs)"
        )
    # A fixed order, so a scenario with several problems always reports the same one.
    load = _load_config(data["load"])
    setups = _setups(data["setups"])
    endpoints = parse_endpoints(data.get("endpoints", {}))
    workloads = _workloads(data["workloads"], [e.name for e in endpoints]) if "workloads" in data else ()
    app = None
    if "app" in data:
        if workloads:
            raise ScenarioError(
                f"workloads.{workloads[0].name}: the built-in workloads are bench_site's views, and [app] makes "
                "the setups serve another project: declare [endpoints.<name>] for its views instead"
            )
        app = parse_app(data["app"], {SETUPS[s.kind].interface for s in setups})
    workloads = (
        *workloads,
        *(
            WorkloadConfig(e.name, e.names, users=endpoint_users(f"endpoints.{e.name}", data["endpoints"][e.name]))
            for e in endpoints
        ),
    )
    database = _database(data.get("database", {}))
    upstream = _upstream(data.get("upstream", {}))
    cpu = _cpu(data.get("cpu", {}))
    gate = dict(data.get("gate", {}))
    # a removed key (gate.calibration) is refused by validate_gate_section, which says why
    check_keys("gate", {k: v for k, v in gate.items() if k not in REMOVED_GATE_KEYS}, GATE_KEYS)
    problems = validate_gate_section(gate)
    if problems:
        raise ScenarioError("; ".join(problems))
    server_env = data.get("server_env", {})
    for k, v in server_env.items():
        if not isinstance(v, str):
            raise ScenarioError(f"server_env.{k}: expected a string, got {v!r}")
    return Scenario(
        name=data["name"],
        description=data.get("description", ""),
        load=load,
        setups=setups,
        workloads=workloads,
        database=database,
        upstream=upstream,
        cpu=cpu,
        gate=gate,
        server_env=dict(server_env),
        source=source,
        endpoints=endpoints,
        app=app,
    )


def _load_config(section: dict[str, Any]) -> LoadConfig:
    load_d = dict(section)
    check_keys("load", load_d, LOAD_KEYS)
    if "users" not in load_d:
        raise ScenarioError("load: missing required key 'users' (a list of user counts)")
    users = int_list("load.users", load_d.pop("users"), 1, 10_000)
    if "processes" in load_d:
        processes = load_d.pop("processes")
        if "workers" in load_d and load_d["workers"] != processes:
            raise ScenarioError(
                f"load.processes ({processes}) and load.workers ({load_d['workers']}): give load.workers only "
                "(load.processes is its deprecated name)"
            )
        print("warning: load.processes is deprecated: use load.workers", file=sys.stderr)
        load_d["workers"] = processes
    load = LoadConfig(users=users, **load_d)
    if load.workers < 0:
        # 0: every load worker on other machines (run --expect-workers N)
        raise ScenarioError(f"load.workers: must be >= 0, got {load.workers}")
    if load.min_blocks < 3:
        raise ScenarioError(f"load.min_blocks: must be >= 3 (an interval needs 3 blocks), got {load.min_blocks}")
    if load.max_blocks < load.min_blocks:
        raise ScenarioError(f"load.max_blocks ({load.max_blocks}) must be >= load.min_blocks ({load.min_blocks})")
    if load.min_requests_per_user < 1:
        raise ScenarioError(f"load.min_requests_per_user: must be >= 1, got {load.min_requests_per_user}")
    for k in ("window_s", "precision", "drain_timeout_s", "ceiling_fraction", "unstable_cv"):
        positive(f"load.{k}", getattr(load, k))
    positive("load.settle_s", load.settle_s, allow_zero=True)
    positive("load.budget_s", load.budget_s, allow_zero=True)
    if load.max_window_s < load.window_s:
        raise ScenarioError(f"load.max_window_s ({load.max_window_s}) must be >= load.window_s ({load.window_s})")
    if load.precision >= 1:
        raise ScenarioError(f"load.precision: a half-width as a fraction (0.05 = ±5%), got {load.precision}")
    positive("load.rate", load.rate, allow_zero=True)
    if load.rate and load.rate_fraction:
        raise ScenarioError("load.rate and load.rate_fraction: give one (a fixed req/s, or a fraction of capacity)")
    if not 0 <= load.rate_fraction < 1:
        raise ScenarioError(f"load.rate_fraction: a fraction of capacity in (0, 1), got {load.rate_fraction}")
    if load.arrival not in ARRIVALS:
        raise ScenarioError(f"load.arrival: unknown {load.arrival!r}; allowed: {', '.join(ARRIVALS)}")
    if load.restart not in RESTARTS:
        raise ScenarioError(f"load.restart: unknown {load.restart!r}; allowed: {', '.join(RESTARTS)}")
    if load.interleave not in INTERLEAVES:
        raise ScenarioError(f"load.interleave: unknown {load.interleave!r}; allowed: {', '.join(INTERLEAVES)}")
    if load.interleave == "run" and load.min_blocks != load.max_blocks:
        raise ScenarioError(
            f"load.interleave = 'run' runs a fixed number of blocks: set load.min_blocks = load.max_blocks "
            f"(got {load.min_blocks} and {load.max_blocks})"
        )
    if load.connections < 0:
        raise ScenarioError(f"load.connections: must be >= 0, got {load.connections}")
    return load


def _setups(section: list[Any]) -> tuple[SetupConfig, ...]:
    if not section:
        raise ScenarioError(f"setups: must not be empty; allowed kinds: {', '.join(SETUPS)}")
    setups: list[SetupConfig] = []
    names: set[str] = set()
    for i, s in enumerate(section):
        where = f"setups[{i}]"
        if not isinstance(s, dict):
            raise ScenarioError(f"{where}: expected a table, got {s!r}")
        check_keys(where, s, SETUP_KEYS)
        if "name" not in s:
            raise ScenarioError(f"{where}: missing 'name'; allowed: {', '.join(SETUPS)}")
        kind = s.get("kind", s["name"])
        if kind not in SETUPS:
            raise ScenarioError(
                f"{where}.{'kind' if 'kind' in s else 'name'}: unknown setup {kind!r}; allowed: {', '.join(SETUPS)}"
            )
        setup_kind = SETUPS[kind]
        workers = s.get("workers", 0)
        threads = s.get("threads", 8 if setup_kind.uses_threads else 1)
        if workers < 0 or threads < 1:
            raise ScenarioError(f"{where}: workers must be >= 0 (0 = one per server CPU), threads >= 1")
        if setup_kind.max_workers is not None and workers > setup_kind.max_workers:
            raise ScenarioError(f"{where}.workers: {kind} supports at most {setup_kind.max_workers}")
        if s["name"] in names:
            raise ScenarioError(f"{where}.name: duplicate setup name {s['name']!r}")
        names.add(s["name"])
        setups.append(SetupConfig(s["name"], kind, workers, threads, s.get("sync_middleware", False)))
    return tuple(setups)


def _workloads(section: dict[str, Any], endpoints: list[str]) -> tuple[WorkloadConfig, ...]:
    if not section:
        if endpoints:  # `--workloads` chose endpoints only
            return ()
        raise ScenarioError(f"workloads: must not be empty; allowed: {', '.join(WORKLOADS)}")
    workloads: list[WorkloadConfig] = []
    for wname, w in section.items():
        where = f"workloads.{wname}"
        if wname not in WORKLOADS:
            own = f"; or one of this scenario's endpoints: {', '.join(endpoints)}" if endpoints else ""
            raise ScenarioError(
                f"{where}: unknown workload {wname!r}; allowed: {', '.join(WORKLOADS)}{own} "
                "(your own views: [endpoints.<name>])"
            )
        if not isinstance(w, dict):
            raise ScenarioError(f"{where}: expected a table, got {w!r}")
        check_keys(where, w, WORKLOAD_KEYS)
        spec = WORKLOADS[wname]
        variants: tuple[str, ...] = tuple(w.get("variants", spec.variants))
        if not variants:
            raise ScenarioError(f"{where}.variants: must not be empty; allowed: {', '.join(spec.variants)}")
        for v in variants:
            if v not in spec.variants:
                raise ScenarioError(f"{where}.variants: unknown variant {v!r}; allowed: {', '.join(spec.variants)}")
        params = {
            key: param_value(f"{where}.params.{key}", key, val, spec.params) for key, val in w.get("params", {}).items()
        }
        sweep: dict[str, tuple[int, ...]] = {}
        for key, vals in w.get("sweep", {}).items():
            if not isinstance(vals, list):
                raise ScenarioError(f"{where}.sweep.{key}: expected a list of integers")
            sweep[key] = tuple(param_value(f"{where}.sweep.{key}", key, v, spec.params) for v in vals)
            if not sweep[key]:
                raise ScenarioError(f"{where}.sweep.{key}: must not be empty")
        w_users = int_list(f"{where}.users", w["users"], 1, 10_000) if "users" in w else None
        sweep_users = int_list(f"{where}.sweep_users", w["sweep_users"], 1, 10_000) if "sweep_users" in w else None
        if sweep_users is not None and not sweep:
            raise ScenarioError(f"{where}.sweep_users: needs a sweep")
        workloads.append(WorkloadConfig(wname, variants, params, sweep, w_users, sweep_users))
    return tuple(workloads)


def _database(section: dict[str, Any]) -> DatabaseConfig:
    check_keys("database", section, DB_KEYS)
    db = DatabaseConfig(**section)
    if db.engine not in ("sqlite", "postgres"):
        raise ScenarioError(f"database.engine: unknown {db.engine!r}; allowed: sqlite, postgres")
    if db.rows < 100:
        raise ScenarioError(f"database.rows: must be >= 100, got {db.rows}")
    return db


def _upstream(section: dict[str, Any]) -> UpstreamConfig:
    check_keys("upstream", section, UPSTREAM_KEYS)
    up = UpstreamConfig(**section)
    if up.delay_ms < 0 or up.jitter_ms < 0 or not 0 <= up.error_rate <= 1:
        raise ScenarioError("upstream: delay_ms and jitter_ms must be >= 0, error_rate in 0..1")
    return up


def _cpu(section: dict[str, Any]) -> CpuConfig:
    check_keys("cpu", section, CPU_KEYS)
    last = (os.cpu_count() or 1) - 1
    return CpuConfig(
        server=int_list("cpu.server", section["server"], 0, last) if section.get("server") else (),
        generator=int_list("cpu.generator", section["generator"], 0, last) if section.get("generator") else (),
    )


def resolve_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = sorted(x.stem for x in SCENARIO_DIR.glob("*.toml"))
    raise ScenarioError(f"no scenario {name_or_path!r}; known scenarios: {', '.join(known)}")


DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Overrides:
    """Command-line changes to a scenario, applied before validation."""

    users: tuple[int, ...] | None = None
    blocks: int | None = None  # a fixed number of blocks: min_blocks = max_blocks
    duration: float | None = None  # a fixed slice window: window_s = max_window_s
    warmup: float | None = None  # the settle time of a slice
    precision: float | None = None
    budget: float | None = None
    workers: int | None = None  # load workers on this machine (`--workers`; `--processes` is deprecated)
    setups: tuple[str, ...] | None = None
    workloads: tuple[str, ...] | None = None
    db: str | None = None  # sqlite | postgres | a postgresql:// URL
    rows: int | None = None


def apply_overrides(data: dict[str, Any], o: Overrides) -> dict[str, Any]:
    """The scenario's TOML data with the command line's changes (a new dict)."""
    data = copy.deepcopy(data)
    load = data.setdefault("load", {})
    if o.users:
        load["users"] = list(o.users)
        for w in (*data.get("workloads", {}).values(), *data.get("endpoints", {}).values()):
            if isinstance(w, dict):
                w.pop("users", None)
    if o.blocks:
        load["min_blocks"] = load["max_blocks"] = o.blocks
    if o.duration:
        load["window_s"] = load["max_window_s"] = o.duration
    if o.warmup is not None:
        load["settle_s"] = o.warmup
    if o.precision:
        load["precision"] = o.precision
    if o.budget is not None:
        load["budget_s"] = o.budget
    if o.workers is not None:
        load.pop("processes", None)
        load["workers"] = o.workers
    if o.setups:
        by_name = {s.get("name"): s for s in data.get("setups", []) if isinstance(s, dict)}
        data["setups"] = [by_name.get(n, {"name": n}) for n in o.setups]
    if o.workloads:
        wl, eps = data.get("workloads", {}), data.get("endpoints", {})
        unknown = [n for n in o.workloads if n not in WORKLOADS and n not in eps]
        if unknown and eps:  # (without endpoints, validation names the built-in workloads)
            raise ScenarioError(
                f"--workloads: unknown {unknown[0]!r}; allowed: {', '.join(WORKLOADS)}, "
                f"or one of this scenario's endpoints: {', '.join(eps)}"
            )
        data["workloads"] = {n: wl.get(n, {}) for n in o.workloads if n not in eps}
        data["endpoints"] = {n: eps[n] for n in o.workloads if n in eps}
        if not data["workloads"] and data["endpoints"]:
            del data["workloads"]
    if o.db:
        d = data.setdefault("database", {})
        if o.db == "sqlite":
            d["engine"] = "sqlite"
        elif o.db in ("postgres", "postgresql"):
            d["engine"], d["url"] = "postgres", d.get("url") or DEFAULT_PG_URL
        elif o.db.startswith(("postgres://", "postgresql://")):
            d["engine"], d["url"] = "postgres", o.db
        else:
            raise ScenarioError(f"--db: unknown {o.db!r}; allowed: sqlite, postgres, or a postgresql:// URL")
    if o.rows:
        data.setdefault("database", {})["rows"] = o.rows
    return data


def load(name_or_path: str, overrides: Overrides | None = None) -> Scenario:
    """Read a scenario file, apply command-line overrides, validate the result."""
    path = resolve_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"scenario file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        if overrides is not None:
            data = apply_overrides(data, overrides)
        return parse(data, source=str(path))
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
