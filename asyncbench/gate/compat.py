"""May these two runs be compared? Environment and scenario checks.

pyperf refuses to compare runs whose metadata differs; so does the gate, for
what changes the figures (hardware, Python, Django, database, scenario,
server setup), and it warns about the rest. A check that could not be made
because a run did not record the key is said, never skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from asyncbench.model.results import Run

# Scenario keys (dotted paths into scenario_resolved) that may differ between
# baseline and current without making the comparison invalid.
SCENARIO_IGNORED = frozenset(
    {
        "source",  # the scenario file's path: differs between checkouts
        "description",
        "gate",  # the gate's own settings are read from the current run
        "load.repeats",  # more repeats on one side is fine: the rank test takes n and m
        "database.sqlite_path",
        "revisions",  # source-tree paths of an A/B run
    }
)
# ... and those that may differ but are worth a warning.
SCENARIO_WARN_ONLY = frozenset(
    {
        "server_env",  # fault injection travels here: warned about loudly
        "cpu",  # pinning may change with the machine's core count
        "cpu_plan",
        "telemetry",  # the servers' counters (a few memory writes per request) on one side only
        "database.url",  # host names differ between machines; never printed (credentials)
        "load.drain_timeout_s",
        "load.generator_cpu_limit",
        "load.ceiling_fraction",
        "load.unstable_cv",
    }
)
_REDACTED = frozenset({"database.url"})
INJECTION_ENV_PREFIX = "BENCH_INJECT_"
_SETUP_MUST_MATCH = ("server", "interface", "worker_class", "event_loop", "workers", "threads")


def _major_minor(version: object) -> str | None:
    m = re.match(r"\s*(\d+)\.(\d+)", str(version)) if version is not None else None
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _major(version: object) -> str | None:
    m = re.match(r"\s*(\d+)", str(version)) if version is not None else None
    return m.group(1) if m else None


def _db(env: Mapping[str, Any]) -> dict[str, Any] | None:
    db = env.get("database")
    if isinstance(db, str):
        return {"vendor": db}
    if isinstance(db, Mapping):
        d = dict(db)
        # the runner may call it "engine" (the scenario's word) rather than "vendor"
        if "vendor" not in d and "engine" in d:
            d["vendor"] = d["engine"]
        return d
    return None


def _not_recorded(what: str, sides: Iterable[tuple[str, object]]) -> str | None:
    gone = [side for side, value in sides if not value]
    return f"cannot check {what}: not recorded in the {' and '.join(gone)} run" if gone else None


def check_environment(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    hardware_normalized: bool = False,
) -> tuple[list[str], list[str]]:
    """(refusals, warnings) for comparing runs recorded in these environments.

    Refused: CPU model or core count (unless the comparison is normalised
    within each run, which is what normalisation is for), Python
    implementation or major.minor, Django version, database vendor or major
    version. Warned: everything else that differs, and every key a run did
    not record.
    """
    refusals: list[str] = []
    warnings: list[str] = []

    def recorded(key: str) -> bool:
        gone = _not_recorded(
            key, (("baseline", baseline.get(key) is not None), ("current", current.get(key) is not None))
        )
        if gone:
            warnings.append(gone)
        return gone is None

    for key, what in (("cpu_model", "CPU model"), ("cpu_count", "CPU count")):
        if recorded(key) and baseline[key] != current[key]:
            msg = f"{what} differs: baseline {baseline[key]!r}, current {current[key]!r}"
            if hardware_normalized:
                warnings.append(msg + " (compared as within-run ratios, which is meant to cancel this)")
            else:
                refusals.append(msg)

    if recorded("python"):
        b, c = baseline["python"], current["python"]
        if _major_minor(b) != _major_minor(c):
            refusals.append(f"Python version differs: baseline {b}, current {c}")
        elif b != c:
            warnings.append(f"Python patch version differs: baseline {b}, current {c}")
    bi, ci = baseline.get("python_implementation"), current.get("python_implementation")
    if bi is not None and ci is not None and bi != ci:
        refusals.append(f"Python implementation differs: baseline {bi}, current {ci}")

    _check_packages(baseline.get("packages") or {}, current.get("packages") or {}, refusals, warnings)
    _check_database(_db(baseline), _db(current), refusals, warnings)

    for key, what in (("hostname", "host"), ("os", "operating system")):
        b, c = baseline.get(key), current.get(key)
        if b is not None and c is not None and b != c:
            warnings.append(f"{what} differs: baseline {b}, current {c}")
    return refusals, warnings


def _check_packages(bp: Mapping[str, Any], cp: Mapping[str, Any], refusals: list[str], warnings: list[str]) -> None:
    gone = _not_recorded("the Django version", (("baseline", bp.get("django")), ("current", cp.get("django"))))
    if gone:
        warnings.append(gone)
    elif bp["django"] != cp["django"]:
        refusals.append(f"Django version differs: baseline {bp['django']}, current {cp['django']}")
    other = sorted(name for name in set(bp) | set(cp) if name != "django" and bp.get(name) != cp.get(name))
    if other:
        warnings.append(
            "package versions differ: "
            + ", ".join(f"{n} {bp.get(n) or 'absent'} → {cp.get(n) or 'absent'}" for n in other)
        )


def _check_database(
    bdb: Mapping[str, Any] | None, cdb: Mapping[str, Any] | None, refusals: list[str], warnings: list[str]
) -> None:
    if bdb is None or cdb is None:
        gone = _not_recorded("the database", (("baseline", bdb is not None), ("current", cdb is not None)))
        warnings.append(gone or "cannot check the database")
        return
    bv, cv = bdb.get("vendor"), cdb.get("vendor")
    if bv is None or cv is None:
        warnings.append("cannot check the database vendor: not recorded")
    elif bv != cv:
        refusals.append(f"database differs: baseline {bv}, current {cv}")
    bver, cver = bdb.get("version"), cdb.get("version")
    if bver is not None and cver is not None and bver != cver:
        if _major(bver) != _major(cver):
            refusals.append(f"database major version differs: baseline {bver}, current {cver}")
        else:
            warnings.append(f"database version differs: baseline {bver}, current {cver}")


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if isinstance(d, Mapping):
        out: dict[str, object] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if not d and prefix:
            out[prefix] = {}
        return out
    return {prefix: d}


# Scenario keys renamed since: a run that recorded the old name is read with the new.
_RENAMED = {"load.processes": "load.workers"}


def _renamed(flat: dict[str, object]) -> dict[str, object]:
    return {_RENAMED.get(k, k): v for k, v in flat.items()}


def _matches(path: str, keys: Iterable[str]) -> bool:
    return any(path == k or path.startswith(k + ".") for k in keys)


def _normalise_value(v: object) -> object:
    # TOML lists come back as lists, resolved tuples as tuples: equal for us.
    return tuple(v) if isinstance(v, (list, tuple)) else v


def check_scenario(baseline: Run, current: Run, setups: Iterable[str]) -> tuple[list[str], list[str]]:
    """(refusals, warnings): are these two runs the same experiment?"""
    refusals: list[str] = []
    warnings: list[str] = []
    if baseline.scenario != current.scenario:
        refusals.append(f"scenario differs: baseline {baseline.scenario!r}, current {current.scenario!r}")
    bflat = _renamed(_flatten(baseline.scenario_resolved))
    cflat = _renamed(_flatten(current.scenario_resolved))
    for path in sorted(set(bflat) | set(cflat)):
        if _matches(path, SCENARIO_IGNORED):
            continue
        b, c = bflat.get(path, "<absent>"), cflat.get(path, "<absent>")
        if _normalise_value(b) == _normalise_value(c):
            continue
        shown = "(values not shown)" if _matches(path, _REDACTED) else f"baseline {b!r}, current {c!r}"
        target = warnings if _matches(path, SCENARIO_WARN_ONLY) else refusals
        target.append(f"scenario setting {path} differs: {shown}")

    for name in sorted(set(setups)):
        b_setup, c_setup = baseline.setups.get(name), current.setups.get(name)
        if b_setup is None or c_setup is None:
            gone = [s for s, x in (("baseline", b_setup), ("current", c_setup)) if x is None]
            warnings.append(f"setup {name}: not described in the {' and '.join(gone)} run")
            continue
        for attr in _SETUP_MUST_MATCH:
            bv, cv = getattr(b_setup, attr), getattr(c_setup, attr)
            if bv != cv:
                refusals.append(f"setup {name}: {attr} differs: baseline {bv!r}, current {cv!r}")
        if tuple(b_setup.cpu_affinity) != tuple(c_setup.cpu_affinity):
            warnings.append(
                f"setup {name}: CPU affinity differs: baseline {list(b_setup.cpu_affinity)}, "
                f"current {list(c_setup.cpu_affinity)}"
            )
        for env_key in sorted(set(b_setup.env) | set(c_setup.env)):
            b_env, c_env = b_setup.env.get(env_key), c_setup.env.get(env_key)
            if b_env != c_env and not env_key.startswith(INJECTION_ENV_PREFIX):
                warnings.append(
                    f"setup {name}: server environment {env_key} differs: baseline {b_env!r}, current {c_env!r}"
                )
    warnings.extend(injection_warnings(baseline, "baseline"))
    warnings.extend(injection_warnings(current, "current"))
    return refusals, warnings


def injection_warnings(run: Run, side: str) -> list[str]:
    """Loud notes when a run was measured with the fault-injection knob on."""
    found: dict[str, str] = {}
    envs: list[Mapping[str, Any]] = [run.scenario_resolved.get("server_env") or {}]
    envs += [s.env for s in run.setups.values()]
    for env in envs:
        for k, v in env.items():
            if k.startswith(INJECTION_ENV_PREFIX) and v not in ("", "0"):
                found[k] = str(v)
    if not found:
        return []
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
    return [f"FAULT INJECTION was on in the {side} run ({knobs}): its figures are deliberately slowed"]
