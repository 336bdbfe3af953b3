"""The regression gate: compare a run with a baseline (or head with base in one
run) and decide, with reasons, whether performance regressed.

Method (also in the README):
  * Each compared cell contributes its per-repeat summaries (throughput, p99
    latency, ...). A cell x metric is one one-sided Mann-Whitney U test on
    those repeats: "current throughput is lower" / "current p99 is higher".
    The p-value is exact, ties included (stats.mann_whitney_greater_exact).
  * The significance level alpha is for the whole comparison: Holm's
    step-down correction runs over every cell x metric test of the gate.
  * A comparison is a regression only when it is BOTH significant after that
    correction AND its change (ratio of medians, current/baseline) is larger
    than the practical threshold for its metric (default 10%). Significant
    but smaller changes pass as "below threshold".
  * The change carries a 95% percentile bootstrap interval over the repeats.
  * A comparison that cannot be trusted is never silently passed: different
    environments, different scenarios or setups, flagged cells, too few
    repeats, missing cells, or a family of tests so large that the repeats
    cannot reach the corrected level all make the outcome "invalid" (exit 2).
  * Normalisation ("calibration", "async-sync-ratio") compares ratios measured
    inside each run, so a uniformly slower machine cancels out.

Pure functions of `Run` objects: a gate verdict can be re-evaluated from the
results files without measuring again.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any

from asyncbench.analysis import stats
from asyncbench.render.format import fmt, fmt_pct
from asyncbench.model import flags
from asyncbench.model.results import Cell, Repeat, Run

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_INVALID = 2

OUTCOME_PASS = "pass"
OUTCOME_REGRESSION = "regression"
OUTCOME_INVALID = "invalid"

VERDICT_REGRESSION = "regression"
VERDICT_IMPROVEMENT = "improvement"
VERDICT_BELOW_THRESHOLD = "below threshold"  # significant, but smaller than the threshold
VERDICT_NOT_SIGNIFICANT = "not significant"  # beyond the threshold, but within the noise
VERDICT_NO_CHANGE = "no change"
VERDICT_INVALID = "invalid"  # not compared: see the comparison's problems

NORMALIZE_NONE = "none"
NORMALIZE_CALIBRATION = "calibration"
NORMALIZE_ASYNC_SYNC = "async-sync-ratio"
NORMALIZE_MODES = (NORMALIZE_NONE, NORMALIZE_CALIBRATION, NORMALIZE_ASYNC_SYNC)

# How the calibration divisor is chosen (see _calibrated_series).
CALIBRATION_PAIRING = ("median", "repeat")

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
DEFAULT_METRICS = ("throughput", "p99")
# With 6 repeats a side the most extreme arrangement has p = 1/924 ≈ 0.0011,
# so a rank test can pass a Holm-corrected 5% level for up to ~46 tests.
DEFAULT_MIN_REPEATS = 6
DEFAULT_BOOTSTRAP = 2000

# Flags that make a cell's numbers measure something other than the server:
# failed requests, a crashed worker, a saturated load generator, no data.
BLOCKING_FLAGS = frozenset({flags.FAILURES, flags.SERVER_CRASH, flags.GENERATOR_BOUND, flags.ERROR})
# "unstable" and "few-requests" are warned about but do not block: the rank
# test already accounts for spread, which is the point of repeating.

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
        "server_env",  # fault injection travels here: warned about loudly below
        "cpu",  # pinning may change with the machine's core count
        "cpu_plan",
        "database.url",  # host names differ between machines; never printed (credentials)
        "load.drain_timeout_s",
        "load.generator_cpu_limit",
        "load.ceiling_fraction",
        "load.unstable_cv",
    }
)
_REDACTED = frozenset({"database.url"})
INJECTION_ENV_PREFIX = "BENCH_INJECT_"


# ------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    extract: Callable[[Repeat], float | None]


def _cpu_ms_per_request(r: Repeat) -> float | None:
    return r.server_cpu_s / r.requests * 1000.0 if r.requests > 0 else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("throughput", "throughput", "req/s", True, lambda r: r.throughput_rps),
        Metric("p50", "p50 latency", "ms", False, lambda r: r.latency.p50_ms),
        Metric("p90", "p90 latency", "ms", False, lambda r: r.latency.p90_ms),
        Metric("p95", "p95 latency", "ms", False, lambda r: r.latency.p95_ms),
        Metric("p99", "p99 latency", "ms", False, lambda r: r.latency.p99_ms),
        # Less noisy than throughput for CPU regressions on a shared machine.
        Metric("cpu_per_request", "server CPU per request", "ms", False, _cpu_ms_per_request),
    )
}


# ------------------------------------------------------------------ result model


@dataclass(frozen=True)
class Comparison:
    """One cell x metric: baseline against current."""

    key: str
    metric: str
    unit: str
    higher_is_better: bool
    setup: str
    workload: str
    variant: str
    users: int
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    baseline_median: float | None
    current_median: float | None
    ratio: float | None  # current / baseline, of medians
    ci_low: float | None  # 95% bootstrap interval of the ratio
    ci_high: float | None
    p_value: float | None  # one-sided, "current is worse", before correction
    p_adjusted: float | None  # Holm-adjusted over the gate's family of tests
    p_improvement: float | None  # one-sided, "current is better", before correction
    threshold: float
    verdict: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def change(self) -> float | None:
        """Relative change of the medians, current vs baseline (+0.12 = 12% higher)."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def change_ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low - 1.0, self.ci_high - 1.0)

    @property
    def worsening(self) -> float | None:
        """How much worse, as a positive fraction (throughput down or latency up)."""
        if self.ratio is None:
            return None
        return 1.0 - self.ratio if self.higher_is_better else self.ratio - 1.0


@dataclass(frozen=True)
class GateResult:
    exit_code: int
    outcome: str  # "pass" | "regression" | "invalid"
    headline: str
    reasons: tuple[str, ...]  # why the outcome is what it is
    warnings: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    mode: str  # "baseline" (two runs) or "revisions" (A/B in one run)
    normalize: str
    alpha: float
    thresholds: dict[str, float]
    metrics: tuple[str, ...]
    min_repeats: int
    tests: int  # size of the Holm family
    baseline_label: str
    current_label: str
    calibration: dict[str, Any] | None = None  # machine-speed factor in calibration mode
    environment: dict[str, Any] = field(default_factory=dict)  # the two environments, compared
    elapsed_s: float = 0.0

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == VERDICT_REGRESSION]

    @property
    def improvements(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == VERDICT_IMPROVEMENT]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, cd in zip(self.comparisons, d["comparisons"], strict=True):
            cd["change"] = c.change
        return d


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class GateConfig:
    thresholds: dict[str, float]
    alpha: float
    metrics: tuple[str, ...]
    min_repeats: int
    normalize: str
    calibration: dict[str, Any] | None
    bootstrap: int


class GateConfigError(ValueError):
    """A gate setting (argument or scenario `gate` section) that cannot be used."""


def validate_gate_section(gate: Mapping[str, Any]) -> list[str]:
    """Problems with a scenario's `gate` table, as messages naming the key.

    The scenario loader can call this so a bad gate section is rejected before
    anything is measured.
    """
    errors: list[str] = []
    allowed = ", ".join(METRICS)
    if "threshold" in gate and not _fraction(gate["threshold"]):
        errors.append(f"gate.threshold: expected a fraction in (0, 1), got {gate['threshold']!r}")
    thresholds = gate.get("thresholds") or {}
    if not isinstance(thresholds, Mapping):
        errors.append(f"gate.thresholds: expected a table metric = fraction, got {thresholds!r}")
        thresholds = {}
    for k, v in thresholds.items():
        if k not in METRICS:
            errors.append(f"gate.thresholds: unknown metric {k!r}; allowed: {allowed}")
        elif not _fraction(v):
            errors.append(f"gate.thresholds.{k}: expected a fraction in (0, 1), got {v!r}")
    if "alpha" in gate and not _fraction(gate["alpha"]):
        errors.append(f"gate.alpha: expected a probability in (0, 1), got {gate['alpha']!r}")
    for m in gate.get("metrics", ()):
        if m not in METRICS:
            errors.append(f"gate.metrics: unknown metric {m!r}; allowed: {allowed}")
    if "min_repeats" in gate and (not isinstance(gate["min_repeats"], int) or gate["min_repeats"] < 2):
        errors.append(f"gate.min_repeats: expected an integer >= 2, got {gate['min_repeats']!r}")
    if "normalize" in gate and gate["normalize"] not in NORMALIZE_MODES:
        errors.append(
            f"gate.normalize: unknown {gate['normalize']!r}; allowed: {', '.join(NORMALIZE_MODES)}"
        )
    calib = gate.get("calibration")
    if calib is not None:
        if not isinstance(calib, Mapping):
            errors.append("gate.calibration: expected a table {workload, variant, users[, setup, params]}")
        else:
            for k in ("workload", "variant", "users"):
                if k not in calib:
                    errors.append(f"gate.calibration: missing {k!r}")
            unknown = set(calib) - {"setup", "workload", "variant", "users", "params", "pair"}
            if unknown:
                errors.append(
                    f"gate.calibration: unknown key(s) {', '.join(sorted(unknown))}; "
                    "allowed: setup, workload, variant, users, params, pair"
                )
            if calib.get("pair", "median") not in CALIBRATION_PAIRING:
                errors.append(
                    f"gate.calibration.pair: unknown {calib.get('pair')!r}; "
                    f"allowed: {', '.join(CALIBRATION_PAIRING)}"
                )
    if gate.get("normalize") == NORMALIZE_CALIBRATION and calib is None:
        errors.append("gate.normalize = 'calibration' needs a gate.calibration table")
    return errors


def _fraction(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1


def resolve_config(
    scenario_resolved: Mapping[str, Any],
    *,
    threshold: float | Mapping[str, float] | None = None,
    alpha: float | None = None,
    metrics: Sequence[str] | None = None,
    min_repeats: int | None = None,
    normalize: str | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> GateConfig:
    """Merge explicit arguments, the scenario's `gate` table and the defaults.

    Precedence for every setting: explicit argument (not None) > scenario >
    default. Thresholds: an explicit float applies to every metric, an explicit
    mapping to the metrics it names; then `gate.thresholds[metric]`, then
    `gate.threshold`, then 10%.
    """
    gate = dict(scenario_resolved.get("gate") or {})
    errors = validate_gate_section(gate)
    if errors:
        raise GateConfigError("; ".join(errors))
    chosen_metrics = tuple(metrics if metrics is not None else gate.get("metrics", DEFAULT_METRICS))
    for m in chosen_metrics:
        if m not in METRICS:
            raise GateConfigError(f"unknown metric {m!r}; allowed: {', '.join(METRICS)}")
    if not chosen_metrics:
        raise GateConfigError("no metrics to compare")
    base_threshold = float(gate.get("threshold", DEFAULT_THRESHOLD))
    per_metric = {m: float(gate.get("thresholds", {}).get(m, base_threshold)) for m in chosen_metrics}
    if isinstance(threshold, Mapping):
        for m, t in threshold.items():
            if m not in METRICS:
                raise GateConfigError(f"threshold for unknown metric {m!r}")
            per_metric[m] = float(t)
    elif threshold is not None:
        per_metric = {m: float(threshold) for m in chosen_metrics}
    for m, t in per_metric.items():
        if not 0 < t < 1:
            raise GateConfigError(f"threshold for {m} must be a fraction in (0, 1), got {t!r}")
    a = float(alpha if alpha is not None else gate.get("alpha", DEFAULT_ALPHA))
    if not 0 < a < 1:
        raise GateConfigError(f"alpha must be in (0, 1), got {a!r}")
    n = int(min_repeats if min_repeats is not None else gate.get("min_repeats", DEFAULT_MIN_REPEATS))
    if n < 2:
        raise GateConfigError(f"min_repeats must be >= 2, got {n}")
    mode = normalize if normalize is not None else gate.get("normalize", NORMALIZE_NONE)
    if mode not in NORMALIZE_MODES:
        raise GateConfigError(f"normalize must be one of {', '.join(NORMALIZE_MODES)}, got {mode!r}")
    calib = gate.get("calibration")
    if mode == NORMALIZE_CALIBRATION and not calib:
        raise GateConfigError(
            "normalize='calibration' needs the scenario's gate.calibration table naming the "
            "calibration cell: {workload, variant, users[, setup, params]}"
        )
    return GateConfig(
        thresholds={m: per_metric[m] for m in chosen_metrics},
        alpha=a,
        metrics=chosen_metrics,
        min_repeats=n,
        normalize=mode,
        calibration=dict(calib) if calib else None,
        bootstrap=bootstrap,
    )


# ------------------------------------------------------------------ environment and scenario checks


def _major_minor(version: Any) -> str | None:
    m = re.match(r"\s*(\d+)\.(\d+)", str(version)) if version is not None else None
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _major(version: Any) -> str | None:
    m = re.match(r"\s*(\d+)", str(version)) if version is not None else None
    return m.group(1) if m else None


def _db(env: Mapping[str, Any]) -> dict[str, Any] | None:
    db = env.get("database")
    if db is None:
        return None
    if isinstance(db, str):
        return {"vendor": db}
    if isinstance(db, Mapping):
        d = dict(db)
        # the runner may call it "engine" (the scenario's word) rather than "vendor"
        if "vendor" not in d and "engine" in d:
            d["vendor"] = d["engine"]
        return d
    return None


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
    not record (a check that could not be made is said, not skipped).
    """
    refusals: list[str] = []
    warnings: list[str] = []

    def missing(key: str) -> bool:
        gone = [side for side, env in (("baseline", baseline), ("current", current)) if env.get(key) is None]
        if gone:
            warnings.append(f"cannot check {key}: not recorded in the {' and '.join(gone)} run")
        return bool(gone)

    for key, what in (("cpu_model", "CPU model"), ("cpu_count", "CPU count")):
        if not missing(key) and baseline[key] != current[key]:
            msg = f"{what} differs: baseline {baseline[key]!r}, current {current[key]!r}"
            if hardware_normalized:
                warnings.append(msg + " (compared as within-run ratios, which is meant to cancel this)")
            else:
                refusals.append(msg)

    if not missing("python"):
        b, c = baseline["python"], current["python"]
        if _major_minor(b) != _major_minor(c):
            refusals.append(f"Python version differs: baseline {b}, current {c}")
        elif b != c:
            warnings.append(f"Python patch version differs: baseline {b}, current {c}")
    bi, ci = baseline.get("python_implementation"), current.get("python_implementation")
    if bi is not None and ci is not None and bi != ci:
        refusals.append(f"Python implementation differs: baseline {bi}, current {ci}")

    bp = baseline.get("packages") or {}
    cp = current.get("packages") or {}
    if not bp.get("django") or not cp.get("django"):
        gone = [s for s, p in (("baseline", bp), ("current", cp)) if not p.get("django")]
        warnings.append(f"cannot check the Django version: not recorded in the {' and '.join(gone)} run")
    elif bp["django"] != cp["django"]:
        refusals.append(f"Django version differs: baseline {bp['django']}, current {cp['django']}")
    other = sorted(
        name for name in set(bp) | set(cp) if name != "django" and bp.get(name) != cp.get(name)
    )
    if other:
        warnings.append(
            "package versions differ: "
            + ", ".join(f"{n} {bp.get(n) or 'absent'} → {cp.get(n) or 'absent'}" for n in other)
        )

    bdb, cdb = _db(baseline), _db(current)
    if bdb is None or cdb is None:
        gone = [s for s, d in (("baseline", bdb), ("current", cdb)) if d is None]
        warnings.append(f"cannot check the database: not recorded in the {' and '.join(gone)} run")
    else:
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

    for key, what in (("hostname", "host"), ("os", "operating system")):
        b, c = baseline.get(key), current.get(key)
        if b is not None and c is not None and b != c:
            warnings.append(f"{what} differs: baseline {b}, current {c}")
    return refusals, warnings


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if not d and prefix:
            out[prefix] = {}
        return out
    return {prefix: d}


def _matches(path: str, keys: Iterable[str]) -> bool:
    return any(path == k or path.startswith(k + ".") for k in keys)


def check_scenario(baseline: Run, current: Run, setups: Iterable[str]) -> tuple[list[str], list[str]]:
    """(refusals, warnings): are these two runs the same experiment?"""
    refusals: list[str] = []
    warnings: list[str] = []
    if baseline.scenario != current.scenario:
        refusals.append(f"scenario differs: baseline {baseline.scenario!r}, current {current.scenario!r}")
    bflat = _flatten(baseline.scenario_resolved)
    cflat = _flatten(current.scenario_resolved)
    for path in sorted(set(bflat) | set(cflat)):
        if _matches(path, SCENARIO_IGNORED):
            continue
        b, c = bflat.get(path, "<absent>"), cflat.get(path, "<absent>")
        if _normalise_value(b) == _normalise_value(c):
            continue
        shown = "(values not shown)" if _matches(path, _REDACTED) else f"baseline {b!r}, current {c!r}"
        if _matches(path, SCENARIO_WARN_ONLY):
            warnings.append(f"scenario setting {path} differs: {shown}")
        else:
            refusals.append(f"scenario setting {path} differs: {shown}")

    for name in sorted(set(setups)):
        b_setup, c_setup = baseline.setups.get(name), current.setups.get(name)
        if b_setup is None or c_setup is None:
            gone = [s for s, x in (("baseline", b_setup), ("current", c_setup)) if x is None]
            warnings.append(f"setup {name}: not described in the {' and '.join(gone)} run")
            continue
        for attr in ("server", "interface", "worker_class", "event_loop", "workers", "threads"):
            bv, cv = getattr(b_setup, attr), getattr(c_setup, attr)
            if bv != cv:
                refusals.append(f"setup {name}: {attr} differs: baseline {bv!r}, current {cv!r}")
        if tuple(b_setup.cpu_affinity) != tuple(c_setup.cpu_affinity):
            warnings.append(
                f"setup {name}: CPU affinity differs: baseline {list(b_setup.cpu_affinity)}, "
                f"current {list(c_setup.cpu_affinity)}"
            )
        for env_key in sorted(set(b_setup.env) | set(c_setup.env)):
            if b_setup.env.get(env_key) != c_setup.env.get(env_key) and not env_key.startswith(
                INJECTION_ENV_PREFIX
            ):
                warnings.append(
                    f"setup {name}: server environment {env_key} differs: "
                    f"baseline {b_setup.env.get(env_key)!r}, current {c_setup.env.get(env_key)!r}"
                )
    warnings.extend(injection_warnings(baseline, "baseline"))
    warnings.extend(injection_warnings(current, "current"))
    return refusals, warnings


def _normalise_value(v: Any) -> Any:
    # TOML lists come back as lists, resolved tuples as tuples: equal for us.
    return tuple(v) if isinstance(v, (list, tuple)) else v


def injection_warnings(run: Run, side: str) -> list[str]:
    """Loud notes when a run was measured with the fault-injection knob on."""
    found: dict[str, str] = {}
    for env in [run.scenario_resolved.get("server_env") or {}] + [s.env for s in run.setups.values()]:
        for k, v in dict(env).items():
            if k.startswith(INJECTION_ENV_PREFIX) and v not in ("", "0"):
                found[k] = str(v)
    if not found:
        return []
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
    return [f"FAULT INJECTION was on in the {side} run ({knobs}): its figures are deliberately slowed"]


# ------------------------------------------------------------------ series: what gets compared


@dataclass(frozen=True)
class _Series:
    """Per-repeat values of one compared entity (a cell, or a within-run ratio)."""

    key: str
    setup: str
    workload: str
    variant: str
    users: int
    values: dict[str, tuple[float, ...]]
    sources: tuple[Cell, ...]
    unit_override: str | None = None
    notes: tuple[str, ...] = ()


def _values(cell: Cell, metric: Metric) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in cell.repeats:
        v = metric.extract(r)
        if v is not None and math.isfinite(v):
            out[r.index] = float(v)
    return out


def _plain_series(cells: Iterable[Cell], metrics: Sequence[str]) -> dict[str, _Series]:
    out: dict[str, _Series] = {}
    for c in cells:
        vals = {m: tuple(v for _, v in sorted(_values(c, METRICS[m]).items())) for m in metrics}
        out[c.key] = _Series(c.key, c.setup, c.workload, c.variant, c.users, vals, (c,))
    return out


def _is_calibration(cell: Cell, spec: Mapping[str, Any]) -> bool:
    if cell.workload != spec["workload"] or cell.variant != spec["variant"]:
        return False
    if int(cell.users) != int(spec["users"]):
        return False
    if "setup" in spec and cell.setup != spec["setup"]:
        return False
    params = dict(spec.get("params") or {})
    return all(cell.params.get(k) == v for k, v in params.items())


def calibration_cells(cells: Iterable[Cell], spec: Mapping[str, Any]) -> dict[str, Cell]:
    """Calibration cell per setup ("*" when the spec names one setup for all)."""
    found = [c for c in cells if _is_calibration(c, spec)]
    if "setup" in spec:
        return {"*": found[0]} if found else {}
    return {c.setup: c for c in found}


def _calibrated_series(
    cells: Sequence[Cell], metrics: Sequence[str], spec: Mapping[str, Any]
) -> tuple[dict[str, _Series], list[str]]:
    """Each cell expressed relative to the run's calibration cell.

    Throughput becomes a multiple of the calibration throughput; latencies and
    CPU per request are multiplied by it, i.e. expressed in calibration service
    periods. A machine uniformly k times slower scales both by k, which cancels.

    `spec["pair"]` chooses the divisor:
      * "median" (default): the calibration cell's median throughput in this
        run. Cancels machine speed. Right when the calibration repeats are not
        measured next to each cell's repeats (the runner groups a cell's
        repeats together), where dividing by one noisy repeat would only add
        its noise.
      * "repeat": the calibration repeat with the same index. Cancels drift
        too, but only if the runner measures repeat i of the calibration in the
        same round as repeat i of every cell.
    """
    problems: list[str] = []
    calib = calibration_cells(cells, spec)
    if not calib:
        problems.append(f"no calibration cell matching {dict(spec)} in the run")
        return {}, problems
    pairing = str(spec.get("pair", "median"))
    if pairing not in CALIBRATION_PAIRING:
        problems.append(f"gate.calibration.pair: unknown {pairing!r}; allowed: {', '.join(CALIBRATION_PAIRING)}")
        return {}, problems
    out: dict[str, _Series] = {}
    for c in cells:
        if _is_calibration(c, spec):
            continue
        cal = calib.get("*") or calib.get(c.setup)
        if cal is None:
            problems.append(f"{c.key}: no calibration cell for setup {c.setup}")
            continue
        cal_rps = _values(cal, METRICS["throughput"])
        if not cal_rps or median(cal_rps.values()) <= 0:
            problems.append(f"{c.key}: the calibration cell {cal.key} has no throughput to divide by")
            continue
        cal_median = median(cal_rps.values())
        vals: dict[str, tuple[float, ...]] = {}
        dropped = 0
        for m in metrics:
            metric = METRICS[m]
            paired = []
            for idx, v in sorted(_values(c, metric).items()):
                k = cal_rps.get(idx) if pairing == "repeat" else cal_median
                if k is None or k <= 0:
                    dropped += 1
                    continue
                paired.append(v / k if metric.higher_is_better else v * k / 1000.0)
            vals[m] = tuple(paired)
        notes = (
            (f"{dropped} value(s) without a calibration repeat of the same index were dropped",)
            if dropped
            else ()
        )
        out[c.key] = _Series(
            c.key, c.setup, c.workload, c.variant, c.users, vals, (c, cal), "× calibration", notes
        )
    return out, problems


def _ratio_series(cells: Sequence[Cell], metrics: Sequence[str]) -> tuple[dict[str, _Series], list[str]]:
    """async/sync ratios per (setup, workload, users, params), paired by repeat index.

    Both twins run on the same server, in the same rounds: the ratio is what the
    project is about and is largely independent of the machine's speed.
    """
    groups: dict[tuple[str, str, int, tuple[tuple[str, int], ...]], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.setup, c.workload, c.users, tuple(sorted(c.params.items()))), []).append(c)
    out: dict[str, _Series] = {}
    problems: list[str] = []
    for (setup, workload, users, params), members in sorted(groups.items()):
        syncs = sorted((c for c in members if c.kind == "sync"), key=lambda c: (c.variant != "sync", c.variant))
        asyncs = sorted((c for c in members if c.kind == "async"), key=lambda c: c.variant)
        if not asyncs:
            continue
        if not syncs:
            problems.append(f"{setup}/{workload}/u{users}: async cells without a sync twin to divide by")
            continue
        ref = syncs[0]  # the plain sync view when present
        extra = "".join(f",{k}={v}" for k, v in params)
        for a in asyncs:
            key = f"{setup}/{workload}/{a.variant}÷{ref.variant}/u{users}{extra}"
            vals: dict[str, tuple[float, ...]] = {}
            for m in metrics:
                av, sv = _values(a, METRICS[m]), _values(ref, METRICS[m])
                vals[m] = tuple(av[i] / sv[i] for i in sorted(set(av) & set(sv)) if sv[i] > 0)
            out[key] = _Series(key, setup, workload, f"{a.variant}÷{ref.variant}", users, vals, (a, ref), "async/sync")
    return out, problems


def _series(cells: Sequence[Cell], cfg: GateConfig) -> tuple[dict[str, _Series], list[str]]:
    if cfg.normalize == NORMALIZE_CALIBRATION:
        assert cfg.calibration is not None
        return _calibrated_series(cells, cfg.metrics, cfg.calibration)
    if cfg.normalize == NORMALIZE_ASYNC_SYNC:
        return _ratio_series(cells, cfg.metrics)
    return _plain_series(cells, cfg.metrics), []


def _cell_problems(cell: Cell, side: str) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    if cell.status != "ok":
        problems.append(f"{cell.key} ({side}): status {cell.status}: {cell.error or 'no detail'}")
    for f in cell.all_flags:
        if f.code in BLOCKING_FLAGS:
            problems.append(f"{cell.key} ({side}) is flagged {f.code}: {f.message}")
        else:
            warnings.append(f"{cell.key} ({side}) is flagged {f.code}: {f.message}")
    return problems, warnings


# ------------------------------------------------------------------ the comparison itself


def _seed(key: str, metric: str) -> int:
    # Stable across processes (str hash is salted), so a verdict's CI is reproducible.
    return zlib.crc32(f"{key}|{metric}".encode())


def _evaluate(
    base: Mapping[str, _Series],
    cur: Mapping[str, _Series],
    cfg: GateConfig,
    labels: tuple[str, str],
) -> tuple[list[Comparison], list[str], list[str]]:
    """Comparisons for the keys on both sides; (comparisons, problems, warnings)."""
    problems: list[str] = []
    warnings: list[str] = []
    b_label, c_label = labels
    for key in sorted(set(base) - set(cur)):
        problems.append(f"{key} is in the {b_label} run but missing from the {c_label} run")
    for key in sorted(set(cur) - set(base)):
        problems.append(
            f"{key} is in the {c_label} run but missing from the {b_label} run "
            "(a new cell: refresh the baseline)"
        )
    keys = sorted(set(base) & set(cur))
    if not keys:
        problems.append("no cell is present on both sides: nothing to compare")

    pending: list[dict[str, Any]] = []
    for key in keys:
        b, c = base[key], cur[key]
        cell_problems: list[str] = []
        seen_cells: set[int] = set()
        for side, series in ((b_label, b), (c_label, c)):
            for cell in series.sources:
                if id(cell) in seen_cells:
                    continue
                seen_cells.add(id(cell))
                p, w = _cell_problems(cell, side)
                cell_problems.extend(p)
                warnings.extend(w)
        for metric_name in cfg.metrics:
            metric = METRICS[metric_name]
            bv, cv = b.values.get(metric_name, ()), c.values.get(metric_name, ())
            pair_problems = list(cell_problems)
            for side, vals in ((b_label, bv), (c_label, cv)):
                if len(vals) < cfg.min_repeats:
                    pair_problems.append(
                        f"{key} {metric_name}: {len(vals)} repeat(s) in the {side} run, "
                        f"fewer than the {cfg.min_repeats} the rank test needs"
                    )
            pending.append(
                {
                    "key": key,
                    "metric": metric,
                    "b": b,
                    "c": c,
                    "bv": bv,
                    "cv": cv,
                    "problems": pair_problems,
                }
            )

    valid = [p for p in pending if not p["problems"]]
    family = len(valid)
    # A rank test with n and m repeats cannot produce p below 1/C(n+m, n). If
    # that is above Holm's first step alpha/K, the cell can never be called a
    # regression: passing it would be a blind gate, so it is invalid instead.
    if family:
        level = cfg.alpha / family
        for p in valid:
            floor = stats.min_p_value(len(p["bv"]), len(p["cv"]))
            if floor > level:
                p["problems"].append(
                    f"{p['key']} {p['metric'].name}: with {len(p['bv'])} and {len(p['cv'])} repeats the "
                    f"smallest reachable p is {floor:.2g}, above the corrected level "
                    f"{cfg.alpha:g}/{family} = {level:.2g}; add repeats or compare fewer cells"
                )
    valid = [p for p in pending if not p["problems"]]

    for p in pending:
        bv, cv = p["bv"], p["cv"]
        metric: Metric = p["metric"]
        p["bm"] = median(bv) if bv else None
        p["cm"] = median(cv) if cv else None
        p["ratio"] = p["cm"] / p["bm"] if p["bm"] and p["cm"] is not None else None
        p["ci"] = None
        p["p_worse"] = p["p_better"] = None
        if p["problems"] or not bv or not cv:
            continue
        if cfg.bootstrap > 0:
            ci = stats.bootstrap_ratio_ci(cv, bv, resamples=cfg.bootstrap, seed=_seed(p["key"], metric.name))
            p["ci"] = (ci[1], ci[2]) if ci else None
        worse_first, better_first = (bv, cv) if metric.higher_is_better else (cv, bv)
        p["p_worse"] = stats.mann_whitney_greater_exact(worse_first, better_first)[1]
        p["p_better"] = stats.mann_whitney_greater_exact(better_first, worse_first)[1]

    adj_worse = stats.holm_adjusted([p["p_worse"] for p in valid])
    adj_better = stats.holm_adjusted([p["p_better"] for p in valid])
    for p, aw, ab in zip(valid, adj_worse, adj_better, strict=True):
        p["adj_worse"], p["adj_better"] = aw, ab

    comparisons: list[Comparison] = []
    for p in pending:
        metric = p["metric"]
        threshold = cfg.thresholds[metric.name]
        series: _Series = p["c"]
        if p["problems"]:
            verdict = VERDICT_INVALID
            problems.extend(p["problems"])
        else:
            ratio = p["ratio"]
            worse = None if ratio is None else (1.0 - ratio if metric.higher_is_better else ratio - 1.0)
            worse_sig = p["adj_worse"] <= cfg.alpha
            better_sig = p["adj_better"] <= cfg.alpha
            if worse is None:
                verdict = VERDICT_INVALID
                problems.append(f"{p['key']} {metric.name}: baseline median is zero, no ratio")
            elif worse_sig and worse > threshold:
                verdict = VERDICT_REGRESSION
            elif better_sig and -worse > threshold:
                verdict = VERDICT_IMPROVEMENT
            elif worse_sig or better_sig:
                verdict = VERDICT_BELOW_THRESHOLD
            elif abs(worse) > threshold:
                verdict = VERDICT_NOT_SIGNIFICANT
            else:
                verdict = VERDICT_NO_CHANGE
        comparisons.append(
            Comparison(
                key=p["key"],
                metric=metric.name,
                unit=series.unit_override or metric.unit,
                higher_is_better=metric.higher_is_better,
                setup=series.setup,
                workload=series.workload,
                variant=series.variant,
                users=series.users,
                baseline=tuple(p["bv"]),
                current=tuple(p["cv"]),
                baseline_median=p["bm"],
                current_median=p["cm"],
                ratio=p["ratio"],
                ci_low=p["ci"][0] if p["ci"] else None,
                ci_high=p["ci"][1] if p["ci"] else None,
                p_value=p["p_worse"],
                p_adjusted=p.get("adj_worse"),
                p_improvement=p["p_better"],
                threshold=threshold,
                verdict=verdict,
                problems=tuple(p["problems"]),
                notes=tuple(dict.fromkeys(p["b"].notes + series.notes)),
            )
        )
    return comparisons, problems, warnings


def _describe(c: Comparison) -> str:
    ci = c.change_ci
    ci_text = f", 95% CI {fmt_pct(ci[0], signed=True)} to {fmt_pct(ci[1], signed=True)}" if ci else ""
    p = (
        f", p={fmt(c.p_value, 2)} (Holm-adjusted {fmt(c.p_adjusted, 2)})"
        if c.p_value is not None and c.p_adjusted is not None
        else ""
    )
    return f"{c.key} {c.metric}: {fmt_pct(c.change, signed=True)}{ci_text}{p}; threshold {fmt_pct(c.threshold, 2)}"


def _finish(
    comparisons: list[Comparison],
    problems: list[str],
    warnings: list[str],
    cfg: GateConfig,
    *,
    mode: str,
    labels: tuple[str, str],
    calibration: dict[str, Any] | None,
    environment: dict[str, Any],
    started: float,
    clock: Callable[[], float],
) -> GateResult:
    regressions = [c for c in comparisons if c.verdict == VERDICT_REGRESSION]
    tests = sum(1 for c in comparisons if c.p_adjusted is not None)
    cells = len({c.key for c in comparisons})
    problems = list(dict.fromkeys(problems))
    warnings = list(dict.fromkeys(warnings))
    if problems:
        exit_code, outcome = EXIT_INVALID, OUTCOME_INVALID
        headline = f"Comparison not valid: {len(problems)} problem(s); first: {problems[0]}"
        if regressions:
            headline += f" (and {len(regressions)} regression(s) among the cells that could be compared)"
        reasons = problems + [f"regression: {_describe(c)}" for c in regressions]
    elif regressions:
        exit_code, outcome = EXIT_REGRESSION, OUTCOME_REGRESSION
        worst = max(regressions, key=lambda c: c.worsening or 0.0)
        headline = (
            f"Regression: {len(regressions)} of {tests} comparisons significantly worse by more than "
            f"their threshold; worst {worst.key} {worst.metric} {fmt_pct(worst.change, signed=True)}"
            if worst.change is not None
            else f"Regression: {len(regressions)} of {tests} comparisons"
        )
        reasons = [f"regression: {_describe(c)}" for c in regressions]
    else:
        exit_code, outcome = EXIT_OK, OUTCOME_PASS
        below = [c for c in comparisons if c.verdict == VERDICT_BELOW_THRESHOLD and (c.worsening or 0) > 0]
        noisy = [c for c in comparisons if c.verdict == VERDICT_NOT_SIGNIFICANT and (c.worsening or 0) > 0]
        headline = (
            f"No regression: {tests} comparisons ({cells} cells × {len(cfg.metrics)} metrics), none both "
            f"significant at α={cfg.alpha:g} (Holm) and beyond its threshold"
        )
        reasons = [headline]
        reasons += [f"significant but below threshold: {_describe(c)}" for c in below]
        reasons += [f"beyond threshold but not significant (noise): {_describe(c)}" for c in noisy]
    return GateResult(
        exit_code=exit_code,
        outcome=outcome,
        headline=headline,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        comparisons=tuple(comparisons),
        mode=mode,
        normalize=cfg.normalize,
        alpha=cfg.alpha,
        thresholds=dict(cfg.thresholds),
        metrics=cfg.metrics,
        min_repeats=cfg.min_repeats,
        tests=tests,
        baseline_label=labels[0],
        current_label=labels[1],
        calibration=calibration,
        environment=environment,
        elapsed_s=clock() - started,
    )


def _run_label(run: Run, fallback: str) -> str:
    commit = run.environment.get("git_commit")
    tail = f" @ {str(commit)[:10]}" if commit else ""
    return f"{run.run_id or fallback}{tail}"


def _calibration_summary(
    base_cells: Sequence[Cell], cur_cells: Sequence[Cell], spec: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {"cell": dict(spec), "setups": {}}
    b, c = calibration_cells(base_cells, spec), calibration_cells(cur_cells, spec)
    for setup in sorted(set(b) & set(c)):
        bm = median(b[setup].throughputs) if b[setup].repeats else None
        cm = median(c[setup].throughputs) if c[setup].repeats else None
        out["setups"][setup] = {
            "key": c[setup].key,
            "baseline_rps": bm,
            "current_rps": cm,
            # >1: the current machine/session ran the calibration faster
            "speed_ratio": cm / bm if bm and cm is not None else None,
        }
    return out


def compare(
    baseline: Run,
    current: Run,
    *,
    threshold: float | Mapping[str, float] | None = None,
    alpha: float | None = None,
    metrics: Sequence[str] | None = None,
    min_repeats: int | None = None,
    normalize: str | None = None,
    allow_env_mismatch: bool = False,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    clock: Callable[[], float] = time.perf_counter,
) -> GateResult:
    """Compare `current` with `baseline`; see the module docstring for the rule.

    Every setting left as None comes from the current run's scenario `gate`
    table, else the defaults (10% threshold, alpha 0.05, throughput and p99,
    6 repeats, no normalisation). `allow_env_mismatch` turns environment
    refusals into loud warnings. `bootstrap` is the number of resamples for the
    confidence intervals (0 skips them; verdicts do not depend on them).
    """
    started = clock()
    cfg = resolve_config(
        current.scenario_resolved,
        threshold=threshold,
        alpha=alpha,
        metrics=metrics,
        min_repeats=min_repeats,
        normalize=normalize,
        bootstrap=bootstrap,
    )
    problems: list[str] = []
    warnings: list[str] = []
    hardware_normalized = cfg.normalize != NORMALIZE_NONE
    env_refusals, env_warnings = check_environment(
        baseline.environment, current.environment, hardware_normalized=hardware_normalized
    )
    if allow_env_mismatch:
        warnings.extend(f"ENVIRONMENT MISMATCH (allowed by request): {r}" for r in env_refusals)
    else:
        problems.extend(
            f"{r} (runs from different environments are not comparable; measure both on one "
            "machine, use the A/B-in-one-job mode, or pass allow_env_mismatch to compare anyway)"
            for r in env_refusals
        )
    warnings.extend(env_warnings)

    used_setups = {c.setup for c in baseline.cells} | {c.setup for c in current.cells}
    sc_refusals, sc_warnings = check_scenario(baseline, current, used_setups)
    problems.extend(sc_refusals)
    warnings.extend(sc_warnings)
    for side, run in (("baseline", baseline), ("current", current)):
        if not run.complete:
            warnings.append(f"the {side} run is marked incomplete{' (interrupted)' if run.interrupted else ''}")
        if any(c.revision for c in run.cells):
            warnings.append(f"the {side} run is an A/B run (cells carry a revision); use compare_revisions")

    base_series, bp = _series(baseline.cells, cfg)
    cur_series, cp = _series(current.cells, cfg)
    problems.extend(f"baseline: {p}" for p in bp)
    problems.extend(f"current: {p}" for p in cp)
    comparisons, ep, ew = _evaluate(base_series, cur_series, cfg, ("baseline", "current"))
    problems.extend(ep)
    warnings.extend(ew)
    calibration = (
        _calibration_summary(baseline.cells, current.cells, cfg.calibration)
        if cfg.normalize == NORMALIZE_CALIBRATION and cfg.calibration
        else None
    )
    env_keys = ("cpu_model", "cpu_count", "python", "os", "hostname", "git_commit", "database")
    environment = {
        "baseline": {k: baseline.environment.get(k) for k in env_keys}
        | {"django": (baseline.environment.get("packages") or {}).get("django")},
        "current": {k: current.environment.get(k) for k in env_keys}
        | {"django": (current.environment.get("packages") or {}).get("django")},
    }
    for side in environment.values():
        if isinstance(side.get("database"), Mapping):
            # never copy a database URL (credentials) into a comparison page
            side["database"] = {k: v for k, v in side["database"].items() if k not in ("url", "dsn")}
    return _finish(
        comparisons,
        problems,
        warnings,
        cfg,
        mode="baseline",
        labels=(_run_label(baseline, "baseline"), _run_label(current, "current")),
        calibration=calibration,
        environment=environment,
        started=started,
        clock=clock,
    )


REVISION_BASE = "base"
REVISION_HEAD = "head"


def compare_revisions(
    run: Run,
    *,
    threshold: float | Mapping[str, float] | None = None,
    alpha: float | None = None,
    metrics: Sequence[str] | None = None,
    min_repeats: int | None = None,
    normalize: str | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    clock: Callable[[], float] = time.perf_counter,
) -> GateResult:
    """A/B in one job: head against base, cell by cell, in one run.

    The runner measured both source trees interleaved on the same machine in
    the same session (like `asv continuous`), so there is no environment to
    check and nothing to normalise: drift and machine speed hit both alike.
    The scenario's `gate.normalize` is therefore not applied here; an explicit
    `normalize` argument is (e.g. to gate the async/sync ratios of head
    against base). The decision rule is the same as `compare`.
    """
    started = clock()
    cfg = resolve_config(
        run.scenario_resolved,
        threshold=threshold,
        alpha=alpha,
        metrics=metrics,
        min_repeats=min_repeats,
        normalize=normalize if normalize is not None else NORMALIZE_NONE,
        bootstrap=bootstrap,
    )
    problems: list[str] = []
    warnings: list[str] = []
    base_cells = [c for c in run.cells if c.revision == REVISION_BASE]
    head_cells = [c for c in run.cells if c.revision == REVISION_HEAD]
    other = sorted({c.revision or "(none)" for c in run.cells} - {REVISION_BASE, REVISION_HEAD})
    if other:
        warnings.append(f"cells with revision {', '.join(other)} are ignored (only base and head are compared)")
    if not base_cells or not head_cells:
        problems.append(
            "not an A/B run: compare_revisions needs cells measured with revision 'base' and 'head'"
        )
    if not run.complete:
        warnings.append(f"the run is marked incomplete{' (interrupted)' if run.interrupted else ''}")
    warnings.extend(injection_warnings(run, "A/B"))
    for label, cells in (("base", base_cells), ("head", head_cells)):
        keys = [c.key for c in cells]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            problems.append(f"{label}: cell(s) measured more than once: {', '.join(dupes)}")
    base_series, bp = _series(base_cells, cfg)
    head_series, hp = _series(head_cells, cfg)
    problems.extend(f"base: {p}" for p in bp)
    problems.extend(f"head: {p}" for p in hp)
    comparisons, ep, ew = _evaluate(base_series, head_series, cfg, ("base", "head"))
    problems.extend(ep)
    warnings.extend(ew)
    env = {k: run.environment.get(k) for k in ("cpu_model", "cpu_count", "python", "os", "hostname", "git_commit")}
    revisions = run.environment.get("revisions")  # optional: {"base": sha, "head": sha}
    base_label, head_label = "base", "head"
    if isinstance(revisions, Mapping):
        base_label = f"base @ {str(revisions.get('base', ''))[:10]}".rstrip(" @")
        head_label = f"head @ {str(revisions.get('head', ''))[:10]}".rstrip(" @")
    return _finish(
        comparisons,
        problems,
        warnings,
        cfg,
        mode="revisions",
        labels=(base_label, head_label),
        calibration=None,
        environment={"run": env, "run_id": run.run_id},
        started=started,
        clock=clock,
    )


def exit_message(result: GateResult) -> str:
    """One line for the end of a CI log: what the exit code means here."""
    return {
        EXIT_OK: "gate: pass (exit 0): no significant regression beyond the threshold",
        EXIT_REGRESSION: f"gate: REGRESSION (exit 1): {len(result.regressions)} comparison(s) regressed",
        EXIT_INVALID: "gate: comparison NOT VALID (exit 2): see the reasons above; nothing was decided",
    }[result.exit_code]
