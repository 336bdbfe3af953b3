"""What a scenario file may say: the keys of each table with their types, and
the checks of single values. Every failure is a `ScenarioError` whose message
names the key and the allowed values; `scenario.parse` assembles the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench_site.registry import Param


class ScenarioError(ValueError):
    pass


TOP_KEYS: Mapping[str, type] = {
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
    # a scenario's own view pairs and the project serving them: asyncbench.model.endpoints
    "endpoints": dict,
    "app": dict,
    # latency at the same load: asyncbench.model.latency
    "latency": dict,
    # profiling slices after each group: asyncbench.model.profiles
    "profile": dict,
}
LOAD_KEYS: Mapping[str, type] = {
    "users": list,
    "settle_s": float,
    "window_s": float,
    "max_window_s": float,
    "min_requests_per_user": int,
    "precision": float,
    "min_blocks": int,
    "max_blocks": int,
    "budget_s": float,
    "workers": int,
    "processes": int,  # deprecated: the old name of `workers`
    "drain_timeout_s": float,
    "arms": str,
    "generator_cpu_limit": float,
    "ceiling_fraction": float,
    "unstable_cv": float,
    "rate": float,
    "rate_fraction": float,
    "arrival": str,
    "connections": int,
    "restart": str,
    "interleave": str,
}
SETUP_KEYS: Mapping[str, type] = {
    "name": str,
    "kind": str,
    "workers": int,
    "threads": int,
    "sync_middleware": bool,
    # the middleware stack: bench_site.stacks.MIDDLEWARE_STACKS
    "middleware": str,
    "telemetry": bool,
    # the cyclic GC's policy in the server processes: bench_site.gcpolicy.POLICIES
    "gc": str,
}
WORKLOAD_KEYS: Mapping[str, type] = {
    "variants": list,
    "params": dict,
    "sweep": dict,
    "sweep_users": list,
    "users": list,
    "setups": list,
}
DB_KEYS: Mapping[str, type] = {"engine": str, "url": str, "rows": int, "sqlite_path": str}
UPSTREAM_KEYS: Mapping[str, type] = {"delay_ms": int, "jitter_ms": int, "error_rate": float}
CPU_KEYS: Mapping[str, type] = {"server": list, "generator": list}
GATE_KEYS: Mapping[str, type] = {
    "threshold": float,
    "thresholds": dict,
    "alpha": float,
    "min_repeats": int,
    "metrics": list,
    "normalize": str,
    "instructions_threshold": float,
}


def _is_int(value: object) -> bool:
    # TOML's true/false are bools, and bool is a subclass of int in Python.
    return isinstance(value, int) and not isinstance(value, bool)


def check_keys(where: str, data: Mapping[str, Any], allowed: Mapping[str, type]) -> None:
    for key, value in data.items():
        if key not in allowed:
            raise ScenarioError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}")
        want = allowed[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and _is_int(value):
            ok = True
        if not ok:
            raise ScenarioError(f"{where}.{key}: expected {want.__name__}, got {type(value).__name__} ({value!r})")


def int_list(where: str, values: list[Any], lo: int, hi: int) -> tuple[int, ...]:
    if not values:
        raise ScenarioError(f"{where}: must not be empty")
    out: list[int] = []
    for v in values:
        if not _is_int(v) or not lo <= v <= hi:
            raise ScenarioError(f"{where}: {v!r} is not an integer in {lo}..{hi}")
        out.append(v)
    if len(set(out)) != len(out):
        raise ScenarioError(f"{where}: duplicate values in {out}")
    return tuple(out)


def positive(where: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ScenarioError(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def param_value(where: str, key: str, value: object, params: tuple[Param, ...]) -> int:
    """A workload parameter checked against the registry's bounds, the same
    ones the site answers 400 outside of."""
    spec = next((p for p in params if p.name == key), None)
    if spec is None:
        raise ScenarioError(
            f"{where}: unknown parameter {key!r}; allowed: {', '.join(p.name for p in params) or '(none)'}"
        )
    if not isinstance(value, int) or isinstance(value, bool) or not spec.minimum <= value <= spec.maximum:
        raise ScenarioError(f"{where}: {value!r} is not an integer in {spec.minimum}..{spec.maximum}")
    return value
