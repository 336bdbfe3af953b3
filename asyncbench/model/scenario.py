"""Scenarios: TOML files naming workloads, variants, setups and load levels.

A scenario is validated completely before anything starts: an unknown key, an
unknown workload, variant or setup, a wrong type or an impossible value is a
`ScenarioError` whose message names the key and the allowed values.
"""

from __future__ import annotations

import copy

import itertools
import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench_site.registry import WORKLOADS
from asyncbench.execute.setups import SETUPS, SetupConfig

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "scenarios"


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class LoadConfig:
    users: tuple[int, ...]
    repeats: int = 3
    warmup_s: float = 1.0
    min_s: float = 2.0
    max_s: float = 6.0
    slow_max_s: float = 0.0  # 0 = same as max_s
    target_rse: float = 0.02
    min_requests_per_user: int = 5
    processes: int = 1
    drain_timeout_s: float = 15.0
    # Flag thresholds
    generator_cpu_limit: float = 90.0  # percent of one core
    ceiling_fraction: float = 0.8  # of the measured generator ceiling
    unstable_cv: float = 0.10


@dataclass(frozen=True)
class WorkloadConfig:
    name: str
    variants: tuple[str, ...]
    params: dict[str, int] = field(default_factory=dict)
    sweep: dict[str, tuple[int, ...]] = field(default_factory=dict)
    users: tuple[int, ...] | None = None

    def param_sets(self) -> list[dict[str, int]]:
        """Fixed params combined with every point of the sweep."""
        if not self.sweep:
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["workloads"] = {w["name"]: w for w in d["workloads"]}
        return d

    def users_for(self, workload: WorkloadConfig) -> tuple[int, ...]:
        return workload.users or self.load.users


# ------------------------------------------------------------------ validation

_TOP_KEYS = {
    "name": str,
    "description": str,
    "load": dict,
    "setups": list,
    "workloads": dict,
    "database": dict,
    "upstream": dict,
    "cpu": dict,
    "gate": dict,
    "server_env": dict,
}
_LOAD_KEYS = {
    "users": list,
    "repeats": int,
    "warmup_s": float,
    "min_s": float,
    "max_s": float,
    "slow_max_s": float,
    "target_rse": float,
    "min_requests_per_user": int,
    "processes": int,
    "drain_timeout_s": float,
    "generator_cpu_limit": float,
    "ceiling_fraction": float,
    "unstable_cv": float,
}
_SETUP_KEYS = {"name": str, "kind": str, "workers": int, "threads": int, "sync_middleware": bool}
_WORKLOAD_KEYS = {"variants": list, "params": dict, "sweep": dict, "users": list}
_DB_KEYS = {"engine": str, "url": str, "rows": int, "sqlite_path": str}
_UPSTREAM_KEYS = {"delay_ms": int, "jitter_ms": int, "error_rate": float}
_CPU_KEYS = {"server": list, "generator": list}
_GATE_KEYS = {
    "threshold": float,
    "thresholds": dict,
    "alpha": float,
    "min_repeats": int,
    "metrics": list,
    "normalize": str,
    "calibration": dict,
}
_PARAM_BOUNDS = {
    "calls": (1, 50),
    "delay_ms": (0, 10_000),
    "rows": (1, 500),
    "page": (1, 100_000),
    "rounds": (1, 1_000_000),
    "ms": (0, 10_000),
    "chunks": (1, 10_000),
}


def _check_keys(where: str, data: dict[str, Any], allowed: dict[str, type]) -> None:
    for key, value in data.items():
        if key not in allowed:
            raise ScenarioError(
                f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"
            )
        want = allowed[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ScenarioError(
                f"{where}.{key}: expected {want.__name__}, got {type(value).__name__} ({value!r})"
            )


def _int_list(where: str, values: list[Any], lo: int, hi: int) -> tuple[int, ...]:
    if not values:
        raise ScenarioError(f"{where}: must not be empty")
    out = []
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ScenarioError(f"{where}: {v!r} is not an integer in {lo}..{hi}")
        out.append(v)
    if len(set(out)) != len(out):
        raise ScenarioError(f"{where}: duplicate values in {out}")
    return tuple(out)


def _positive(where: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ScenarioError(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def parse(data: dict[str, Any], *, source: str = "<scenario>") -> Scenario:
    _check_keys("scenario", data, _TOP_KEYS)
    for required in ("name", "load", "setups", "workloads"):
        if required not in data:
            raise ScenarioError(f"scenario: missing required key {required!r}")

    load_d = dict(data["load"])
    _check_keys("load", load_d, _LOAD_KEYS)
    if "users" not in load_d:
        raise ScenarioError("load: missing required key 'users' (a list of user counts)")
    users = _int_list("load.users", load_d.pop("users"), 1, 10_000)
    load = LoadConfig(users=users, **{k: v for k, v in load_d.items()})
    if load.repeats < 1:
        raise ScenarioError(f"load.repeats: must be >= 1, got {load.repeats}")
    if load.processes < 1:
        raise ScenarioError(f"load.processes: must be >= 1, got {load.processes}")
    for k in ("min_s", "max_s", "target_rse", "drain_timeout_s", "ceiling_fraction", "unstable_cv"):
        _positive(f"load.{k}", getattr(load, k))
    _positive("load.warmup_s", load.warmup_s, allow_zero=True)
    if load.max_s < load.min_s:
        raise ScenarioError(f"load.max_s ({load.max_s}) must be >= load.min_s ({load.min_s})")
    if load.slow_max_s and load.slow_max_s < load.max_s:
        raise ScenarioError(f"load.slow_max_s ({load.slow_max_s}) must be 0 (off) or >= load.max_s ({load.max_s})")
    if not load.slow_max_s:
        load = replace(load, slow_max_s=load.max_s)

    setups = []
    if not data["setups"]:
        raise ScenarioError(f"setups: must not be empty; allowed kinds: {', '.join(SETUPS)}")
    names: set[str] = set()
    for i, s in enumerate(data["setups"]):
        where = f"setups[{i}]"
        if not isinstance(s, dict):
            raise ScenarioError(f"{where}: expected a table, got {s!r}")
        _check_keys(where, s, _SETUP_KEYS)
        if "name" not in s:
            raise ScenarioError(f"{where}: missing 'name'; allowed: {', '.join(SETUPS)}")
        kind = s.get("kind", s["name"])
        if kind not in SETUPS:
            raise ScenarioError(
                f"{where}.{'kind' if 'kind' in s else 'name'}: unknown setup {kind!r}; "
                f"allowed: {', '.join(SETUPS)}"
            )
        spec = SETUPS[kind]
        workers = s.get("workers", 0)
        threads = s.get("threads", 8 if spec.uses_threads else 1)
        if workers < 0 or threads < 1:
            raise ScenarioError(f"{where}: workers must be >= 0 (0 = one per server CPU), threads >= 1")
        if spec.max_workers is not None and workers > spec.max_workers:
            raise ScenarioError(f"{where}.workers: {kind} supports at most {spec.max_workers}")
        if s["name"] in names:
            raise ScenarioError(f"{where}.name: duplicate setup name {s['name']!r}")
        names.add(s["name"])
        setups.append(SetupConfig(s["name"], kind, workers, threads, s.get("sync_middleware", False)))

    workloads = []
    if not data["workloads"]:
        raise ScenarioError(f"workloads: must not be empty; allowed: {', '.join(WORKLOADS)}")
    for wname, w in data["workloads"].items():
        where = f"workloads.{wname}"
        if wname not in WORKLOADS:
            raise ScenarioError(f"{where}: unknown workload {wname!r}; allowed: {', '.join(WORKLOADS)}")
        if not isinstance(w, dict):
            raise ScenarioError(f"{where}: expected a table, got {w!r}")
        _check_keys(where, w, _WORKLOAD_KEYS)
        spec = WORKLOADS[wname]
        variants = tuple(w.get("variants", spec.variants))
        if not variants:
            raise ScenarioError(f"{where}.variants: must not be empty; allowed: {', '.join(spec.variants)}")
        for v in variants:
            if v not in spec.variants:
                raise ScenarioError(
                    f"{where}.variants: unknown variant {v!r}; allowed: {', '.join(spec.variants)}"
                )
        params: dict[str, int] = {}
        for key, val in w.get("params", {}).items():
            params[key] = _param(f"{where}.params.{key}", key, val, spec.params)
        sweep: dict[str, tuple[int, ...]] = {}
        for key, vals in w.get("sweep", {}).items():
            if not isinstance(vals, list):
                raise ScenarioError(f"{where}.sweep.{key}: expected a list of integers")
            sweep[key] = tuple(_param(f"{where}.sweep.{key}", key, v, spec.params) for v in vals)
            if not sweep[key]:
                raise ScenarioError(f"{where}.sweep.{key}: must not be empty")
        w_users = _int_list(f"{where}.users", w["users"], 1, 10_000) if "users" in w else None
        workloads.append(WorkloadConfig(wname, variants, params, sweep, w_users))

    db_d = data.get("database", {})
    _check_keys("database", db_d, _DB_KEYS)
    db = DatabaseConfig(**db_d)
    if db.engine not in ("sqlite", "postgres"):
        raise ScenarioError(f"database.engine: unknown {db.engine!r}; allowed: sqlite, postgres")
    if db.rows < 100:
        raise ScenarioError(f"database.rows: must be >= 100, got {db.rows}")

    up_d = data.get("upstream", {})
    _check_keys("upstream", up_d, _UPSTREAM_KEYS)
    up = UpstreamConfig(**up_d)
    if up.delay_ms < 0 or up.jitter_ms < 0 or not 0 <= up.error_rate <= 1:
        raise ScenarioError("upstream: delay_ms and jitter_ms must be >= 0, error_rate in 0..1")

    cpu_d = data.get("cpu", {})
    _check_keys("cpu", cpu_d, _CPU_KEYS)
    ncpu = os.cpu_count() or 1
    cpu = CpuConfig(
        server=_int_list("cpu.server", cpu_d["server"], 0, ncpu - 1) if cpu_d.get("server") else (),
        generator=_int_list("cpu.generator", cpu_d["generator"], 0, ncpu - 1) if cpu_d.get("generator") else (),
    )

    gate = dict(data.get("gate", {}))
    _check_keys("gate", gate, _GATE_KEYS)
    from asyncbench.gate.core import validate_gate_section

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
        setups=tuple(setups),
        workloads=tuple(workloads),
        database=db,
        upstream=up,
        cpu=cpu,
        gate=gate,
        server_env=dict(server_env),
        source=source,
    )


def _param(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> int:
    if key not in allowed:
        raise ScenarioError(
            f"{where}: unknown parameter {key!r}; allowed: {', '.join(allowed) or '(none)'}"
        )
    lo, hi = _PARAM_BOUNDS[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ScenarioError(f"{where}: {value!r} is not an integer in {lo}..{hi}")
    return value


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
    repeats: int | None = None
    duration: float | None = None  # a fixed window: min_s = max_s
    warmup: float | None = None
    processes: int | None = None
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
        for w in data.get("workloads", {}).values():
            if isinstance(w, dict):
                w.pop("users", None)
    if o.repeats:
        load["repeats"] = o.repeats
    if o.duration:
        load["min_s"] = load["max_s"] = o.duration
        load.pop("slow_max_s", None)
    if o.warmup is not None:
        load["warmup_s"] = o.warmup
    if o.processes:
        load["processes"] = o.processes
    if o.setups:
        by_name = {s.get("name"): s for s in data.get("setups", []) if isinstance(s, dict)}
        data["setups"] = [by_name.get(n, {"name": n}) for n in o.setups]
    if o.workloads:
        wl = data.get("workloads", {})
        data["workloads"] = {n: wl.get(n, {}) for n in o.workloads}
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
