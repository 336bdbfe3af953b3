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
from asyncbench.model.latency import LatencyConfig, parse_latency
from asyncbench.model.profiles import ProfileConfig, parse_profile
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
from bench_site.gcpolicy import DEFAULT_GC
from bench_site.gcpolicy import POLICIES as GC_POLICIES
from bench_site.registry import VARIANTS, WORKLOADS, unavailable
from bench_site.stacks import DEFAULT_STACK, MIDDLEWARE_STACKS

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
    # "chosen": after the pilot blocks a group measures only the arms its
    # ratios compare (the faster of two sync setups, say). "all": every arm,
    # every block: for scenarios whose arms differ in ways no ratio names
    # (middleware stacks, databases of one workload), each with its interval.
    arms: str = "chosen"  # "chosen" | "all"

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
    # The scenario's setups (by name) this workload runs on; () = every one.
    # A scenario mixing WebSocket and HTTP workloads can so measure the
    # WebSocket twins under daphne without running every HTTP arm there too.
    setups: tuple[str, ...] = ()

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


# The databases a scenario may name, each with the URL schemes it accepts
# (sqlite takes no URL: a file, `sqlite_path`).
DATABASE_ENGINES: dict[str, tuple[str, ...]] = {
    "sqlite": (),
    "postgres": ("postgresql", "postgres"),
    "mariadb": ("mysql", "mariadb"),
}


@dataclass(frozen=True)
class DatabaseConfig:
    engine: str = "sqlite"  # one of DATABASE_ENGINES
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
    # `[latency]`: latency at the same load after the groups (asyncbench.model.latency); None: off
    latency: LatencyConfig | None = None
    # `[profile]`: profiling slices after each group (asyncbench.model.profiles); None: no table
    profile: ProfileConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["workloads"] = {w["name"]: w for w in d["workloads"]}
        for w in d["workloads"].values():
            if not w["setups"]:  # absent when every setup, as before the key existed
                del w["setups"]
        # the catalog a report or gate reads back (Catalog.from_resolved); recorded
        # only when there is one, so a run of built-in workloads compares with
        # a baseline recorded before endpoints existed (the gate's scenario check)
        endpoints = d.pop("endpoints")
        if endpoints:
            d["endpoints"] = {e["name"]: e for e in endpoints}
        if d["app"] is None:
            del d["app"]
        for setup in d["setups"]:
            # absent when the default, as before the option existed (the gate compares resolved scenarios)
            if setup["middleware"] == DEFAULT_STACK:
                del setup["middleware"]
            if setup["telemetry"]:  # absent when on, as before the key existed
                del setup["telemetry"]
            if setup["gc"] == DEFAULT_GC:  # absent when the default, as before the key existed
                del setup["gc"]
        if d["latency"] is None:  # absent, as before the phase existed (the gate compares resolved scenarios)
            del d["latency"]
        if d["profile"] is None:  # absent, as before profiling slices existed
            del d["profile"]
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
ARM_CHOICES = ("chosen", "all")


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
    workloads = _workloads(data["workloads"], [e.name for e in endpoints], setups) if "workloads" in data else ()
    app = None
    if "app" in data:
        if workloads:
            raise ScenarioError(
                f"workloads.{workloads[0].name}: the built-in workloads are bench_site's views, and [app] makes "
                "the setups serve another project: declare [endpoints.<name>] for its views instead"
            )
        for i, s in enumerate(setups):
            if s.gc != DEFAULT_GC:
                raise ScenarioError(
                    f"setups[{i}].gc: {s.gc!r} is applied by bench_site's entry points, and [app] makes the setups "
                    "serve another project (call gc.freeze() at the end of its own wsgi.py/asgi.py instead)"
                )
            if s.middleware != DEFAULT_STACK:
                raise ScenarioError(
                    f"setups[{i}].middleware: {s.middleware!r} chooses a stack of bench_site, and [app] makes "
                    "the setups serve another project, whose own settings name its middleware"
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
    _check_variants_run_here(workloads, setups, database)
    _check_websocket(workloads, setups, load)
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
        latency=parse_latency(data["latency"], tuple(w.name for w in workloads)) if "latency" in data else None,
        profile=parse_profile(data["profile"]) if "profile" in data else None,
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
    if load.arms not in ARM_CHOICES:
        raise ScenarioError(f"load.arms: unknown {load.arms!r}; allowed: {', '.join(ARM_CHOICES)}")
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
        middleware = s.get("middleware", DEFAULT_STACK)
        if middleware not in MIDDLEWARE_STACKS:
            raise ScenarioError(
                f"{where}.middleware: unknown stack {middleware!r}; allowed: {', '.join(MIDDLEWARE_STACKS)}"
            )
        gc_policy = s.get("gc", DEFAULT_GC)
        if gc_policy not in GC_POLICIES:
            raise ScenarioError(f"{where}.gc: unknown policy {gc_policy!r}; allowed: {', '.join(GC_POLICIES)}")
        setups.append(
            SetupConfig(
                s["name"],
                kind,
                workers,
                threads,
                s.get("sync_middleware", False),
                middleware,
                s.get("telemetry", True),
                gc_policy,
            )
        )
    return tuple(setups)


def _workloads(
    section: dict[str, Any], endpoints: list[str], setups: tuple[SetupConfig, ...] = ()
) -> tuple[WorkloadConfig, ...]:
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
        # Opt-in variants (async-native) only when named: see registry.Variant.opt_in.
        variants: tuple[str, ...] = tuple(w.get("variants", spec.default_variants))
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
        w_setups: tuple[str, ...] = ()
        if "setups" in w:
            names = [s.name for s in setups]
            if not w["setups"] or not all(isinstance(x, str) for x in w["setups"]):
                raise ScenarioError(
                    f"{where}.setups: expected a non-empty list of setup names; allowed: {', '.join(names)}"
                )
            for x in w["setups"]:
                if x not in names:
                    raise ScenarioError(f"{where}.setups: unknown setup {x!r}; allowed: {', '.join(names)}")
            w_setups = tuple(w["setups"])
        workloads.append(WorkloadConfig(wname, variants, params, sweep, w_users, sweep_users, w_setups))
    return tuple(workloads)


# A scenario's database.engine -> Django's connection.vendor (what the registry names).
_VENDORS = {"sqlite": "sqlite", "postgres": "postgresql", "mariadb": "mysql"}


# Why a WebSocket workload needs what it needs (the validator's messages).
_WS_NEEDS_ASGI = (
    "a WebSocket connection is held open and answered by a Channels consumer, which only an ASGI server runs "
    "(WSGI has no WebSocket)"
)


def _check_websocket(workloads: tuple[WorkloadConfig, ...], setups: tuple[SetupConfig, ...], load: LoadConfig) -> None:
    """Refuse a websocket workload (ws-echo, ws-broadcast) where it cannot be
    measured: a setup that serves no WebSocket (every WSGI one; granian, run
    with --no-ws), the open model (a fixed arrival rate of new requests, while
    a WebSocket user holds one connection and sends in a closed loop), and
    for ws-broadcast a server of several processes (its in-memory channel
    layer is one room per process)."""
    ws = [w for w in workloads if w.name in WORKLOADS and WORKLOADS[w.name].protocol == "websocket"]
    if not ws:
        return
    name = ws[0].name
    # Setups that serve no WebSocket simply measure no WebSocket arm (the plan
    # names them, see `not_here`); a workload none of whose setups can is refused.
    for w in ws:
        mine = [s for s in setups if runs_on(w, s)]
        if not any(SETUPS[s.kind].websocket for s in mine):
            able = ", ".join(k for k, v in SETUPS.items() if v.websocket)
            kinds = ", ".join(f"{s.name!r} ({SETUPS[s.kind].interface.upper()})" for s in mine)
            raise ScenarioError(
                f"{'workloads.' + w.name + '.setups' if w.setups else 'setups'}: none of {kinds} can serve "
                f"workload {w.name!r}: {_WS_NEEDS_ASGI}; allowed for WebSocket workloads: {able}"
            )
    if load.open_model:
        key = "load.rate" if load.rate else "load.rate_fraction"
        raise ScenarioError(
            f"{key}: workload {name!r} is a WebSocket workload, measured closed loop only (each user holds one "
            "connection and sends its next message when the reply comes); remove the rate or the workload"
        )
    for w in ws:
        if w.name != "ws-broadcast":
            continue
        for i, s in enumerate(setups):
            if SETUPS[s.kind].websocket and SETUPS[s.kind].max_workers != 1 and s.workers != 1:
                raise ScenarioError(
                    f"setups[{i}].workers: workload 'ws-broadcast' needs one server process (workers = 1, got "
                    f"{s.workers}{' = one per CPU' if s.workers == 0 else ''}): its in-memory channel layer is one "
                    "room per process"
                )


def _check_variants_run_here(
    workloads: tuple[WorkloadConfig, ...], setups: tuple[SetupConfig, ...], database: DatabaseConfig
) -> None:
    """Refuse a variant that cannot run on the scenario's database or under
    one of its setups (async-native: PostgreSQL and ASGI only), before
    anything starts, rather than a body check failing on a 501."""
    vendor = _VENDORS.get(database.engine, database.engine)
    for w in workloads:
        if w.name not in WORKLOADS:  # a scenario's own endpoint: its variants are its own
            continue
        for v in w.variants:
            reason = unavailable(v, database=vendor)
            if reason is not None:
                raise ScenarioError(
                    f"workloads.{w.name}.variants: {reason}; database.engine is {database.engine!r} "
                    "(use --db postgres, or drop the variant)"
                )
            # a setup it cannot run under measures the workload's other
            # variants (the plan names what it leaves out); none at all is refused
            reasons = [unavailable(v, interface=SETUPS[s.kind].interface) for s in setups]
            if setups and all(r is not None for r in reasons):
                kinds = ", ".join(f"{s.name!r} ({SETUPS[s.kind].interface.upper()})" for s in setups)
                raise ScenarioError(
                    f"workloads.{w.name}.variants: {reasons[0]}; no setup can run it: {kinds} "
                    "(add an ASGI setup, or drop the variant)"
                )


def runs_on(workload: WorkloadConfig, setup: SetupConfig) -> bool:
    """Whether the scenario asks for `workload` on `setup` (its `setups` key)."""
    return not workload.setups or setup.name in workload.setups


def not_here(setup: SetupConfig, workload: str, variant: str) -> str | None:
    """Why the arm (setup, workload, variant) is not measured, or None when it is.

    A WebSocket workload under a server without WebSocket, a variant under an
    interface it cannot run under (async-native under WSGI): the scenario
    keeps the setup for its other arms, and the plan names what it leaves out.
    """
    spec = SETUPS.get(setup.kind)
    wl = WORKLOADS.get(workload)
    if wl is None or spec is None:  # a scenario's own endpoint; an existing deployment (--target)
        return None
    if wl.protocol == "websocket" and not spec.websocket:
        why = "WSGI has no WebSocket" if spec.interface == "wsgi" else f"{setup.kind} is started without WebSocket"
        return f"{workload} not under {setup.name} ({why})"
    if variant in VARIANTS:
        reason = unavailable(variant, interface=spec.interface)
        if reason is not None:
            return f"{workload}/{variant} not under {setup.name} ({spec.interface.upper()})"
    return None


def _database(section: dict[str, Any]) -> DatabaseConfig:
    check_keys("database", section, DB_KEYS)
    db = DatabaseConfig(**section)
    if db.engine not in DATABASE_ENGINES:
        raise ScenarioError(f"database.engine: unknown {db.engine!r}; allowed: {', '.join(DATABASE_ENGINES)}")
    schemes = DATABASE_ENGINES[db.engine]
    if db.url and schemes and db.url.split("://", 1)[0] not in schemes:
        raise ScenarioError(
            f"database.url: {db.engine} needs a {' or '.join(f'{x}://' for x in schemes)} URL, got {db.url!r}"
        )
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
# The runner creates this database when it is missing (see execute/database.py).
DEFAULT_MARIADB_URL = "mysql://root@127.0.0.1:3306/bench"


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
    variants: tuple[str, ...] | None = None  # each workload's variants, among those it has
    db: str | None = None  # sqlite | postgres | mariadb | a postgresql:// or mysql:// URL
    rows: int | None = None
    profile: bool = False  # `run --profile`: profiling slices on, the scenario's [profile] settings kept


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
    if o.variants:
        _override_variants(data, o.variants)
    if o.db:
        d = data.setdefault("database", {})
        if o.db == "sqlite":
            d["engine"] = "sqlite"
        elif o.db in ("postgres", "postgresql"):
            own = d.get("url") if d.get("engine") == "postgres" else None
            d["engine"], d["url"] = "postgres", own or DEFAULT_PG_URL
        elif o.db.startswith(("postgres://", "postgresql://")):
            d["engine"], d["url"] = "postgres", o.db
        elif o.db in ("mariadb", "mysql"):
            own = d.get("url") if d.get("engine") == "mariadb" else None
            d["engine"], d["url"] = "mariadb", own or DEFAULT_MARIADB_URL
        elif o.db.startswith(("mysql://", "mariadb://")):
            d["engine"], d["url"] = "mariadb", o.db
        else:
            raise ScenarioError(
                f"--db: unknown {o.db!r}; allowed: sqlite, postgres, mariadb, or a postgresql:// or mysql:// URL"
            )
    if o.rows:
        data.setdefault("database", {})["rows"] = o.rows
    if o.profile:
        profile = data.setdefault("profile", {})
        if isinstance(profile, dict):  # (anything else is refused, naming the key, by validation)
            profile["enabled"] = True
    return data


def _override_variants(data: dict[str, Any], variants: tuple[str, ...]) -> None:
    """`--variants`: each built-in workload measures those of `variants` it has
    (so `--workloads noio,orm --variants sync,async-native` gives noio its
    sync arm only); a workload with none of them, or a variant no workload
    has, is an error naming the allowed ones."""
    workloads = {n: w for n, w in data.get("workloads", {}).items() if n in WORKLOADS and isinstance(w, dict)}
    for name, w in workloads.items():
        chosen = [v for v in variants if v in WORKLOADS[name].variants]
        if not chosen:
            raise ScenarioError(
                f"--variants: workload {name!r} has none of {', '.join(variants)}; "
                f"allowed: {', '.join(WORKLOADS[name].variants)}"
            )
        w["variants"] = chosen
    for v in variants:
        if not any(v in WORKLOADS[n].variants for n in workloads):
            allowed = sorted({x for n in workloads for x in WORKLOADS[n].variants})
            raise ScenarioError(
                f"--variants: no workload of this run has {v!r} ({', '.join(workloads)}); allowed: {', '.join(allowed)}"
            )


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
