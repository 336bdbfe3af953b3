"""The gate's settings: what is compared, how strictly, and how they are chosen.

Precedence for every setting: explicit argument > the scenario's `gate`
table > the defaults below. The scenario loader calls `validate_gate_section`
so a bad `gate` table is rejected before anything is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asyncbench.model.results import Repeat

NORMALIZE_NONE = "none"
NORMALIZE_ASYNC_SYNC = "async-sync-ratio"
NORMALIZE_MODES = (NORMALIZE_NONE, NORMALIZE_ASYNC_SYNC)

# The "calibration" normalisation (every cell divided by a calibration cell of
# the same run) was removed; asking for it is an error that says why. Results
# files written before still carry it in scenario_resolved["gate"]: the gate
# ignores it there, with a warning.
REMOVED_NORMALIZE = "calibration"
REMOVED_GATE_KEYS = ("calibration",)
_CALIBRATION_WHY = (
    "was removed: its calibration cell was a Django view, which runs through the code under test "
    "(a middleware regression slowed it too); the default A/B gate measures base and head in the "
    "same windows instead"
)

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
DEFAULT_METRICS = ("throughput", "p99")
# With 6 repeats a side the most extreme arrangement has p = 1/924 ≈ 0.0011,
# so a rank test can pass a Holm-corrected 5% level for up to ~46 tests.
DEFAULT_MIN_REPEATS = 6
DEFAULT_BOOTSTRAP = 2000
# The instruction-count gate (gate.instructions): a change of instructions per
# request above this fraction (or above 3x the spread of identical runs,
# whichever is larger) is a regression. `gate.instructions_threshold`.
# 0.5%: identical runs spread 0-0.36% here and the same code moved 0.2-0.3%
# under another path (memory layout), while a 1% change must clear the bar
# every time (a 1% threshold made a 1.0% injection a coin flip).
INSTRUCTIONS_THRESHOLD_KEY = "instructions_threshold"
DEFAULT_INSTRUCTIONS_THRESHOLD = 0.005


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    extract: Callable[[Repeat], float | None]
    # read from the servers' CPU: absent for a deployment measured without the agent
    needs_server_cpu: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("throughput", "throughput", "req/s", True, lambda r: r.throughput_rps),
        Metric("p50", "p50 latency", "ms", False, lambda r: r.latency.p50_ms),
        Metric("p90", "p90 latency", "ms", False, lambda r: r.latency.p90_ms),
        Metric("p95", "p95 latency", "ms", False, lambda r: r.latency.p95_ms),
        Metric("p99", "p99 latency", "ms", False, lambda r: r.latency.p99_ms),
        # Less noisy than throughput for CPU regressions on a shared machine.
        # CPU seconds per 1,000 requests is milliseconds per request.
        Metric("cpu_per_request", "server CPU per request", "ms", False, lambda r: r.cpu_s_per_1k_requests, True),
    )
}


@dataclass(frozen=True)
class GateConfig:
    thresholds: dict[str, float]
    alpha: float
    metrics: tuple[str, ...]
    min_repeats: int
    normalize: str
    bootstrap: int
    # A/B in one job: base and head slices of one block are compared as a
    # pair (a t-test on the per-block log ratios) instead of as two samples
    paired: bool = False
    # settings of the run's recorded gate table that were ignored, and why
    warnings: tuple[str, ...] = ()


class GateConfigError(ValueError):
    """A gate setting (argument or scenario `gate` section) that cannot be used."""


def _fraction(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1


def _removed_errors(gate: Mapping[str, Any]) -> list[str]:
    """The removed calibration settings, each with why it went and what is allowed."""
    allowed = ", ".join(NORMALIZE_MODES)
    errors: list[str] = []
    if gate.get("normalize") == REMOVED_NORMALIZE:
        errors.append(f"gate.normalize: {REMOVED_NORMALIZE!r} {_CALIBRATION_WHY}; allowed: {allowed}")
    if "calibration" in gate:
        errors.append(
            f"gate.calibration: this table of the {REMOVED_NORMALIZE!r} normalisation {_CALIBRATION_WHY}; "
            f"gate.normalize allowed: {allowed}"
        )
    return errors


def validate_gate_section(gate: Mapping[str, Any]) -> list[str]:
    """Problems with a scenario's `gate` table, as messages naming the key."""
    errors = _removed_errors(gate)
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
    if "normalize" in gate and gate["normalize"] not in (*NORMALIZE_MODES, REMOVED_NORMALIZE):
        errors.append(f"gate.normalize: unknown {gate['normalize']!r}; allowed: {', '.join(NORMALIZE_MODES)}")
    instr = gate.get(INSTRUCTIONS_THRESHOLD_KEY)
    if instr is not None and not _fraction(instr):
        errors.append(f"gate.{INSTRUCTIONS_THRESHOLD_KEY}: expected a fraction in (0, 1), got {instr!r}")
    return errors


def _without_removed(gate: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A recorded gate table (a results file's scenario_resolved) without the
    removed calibration settings, and a warning for each one dropped."""
    kept = {k: v for k, v in gate.items() if k not in REMOVED_GATE_KEYS}
    if kept.get("normalize") == REMOVED_NORMALIZE:
        del kept["normalize"]
    return kept, [f"ignored in the run's recorded scenario: {e}" for e in _removed_errors(gate)]


def _thresholds(
    gate: Mapping[str, Any], metrics: Sequence[str], threshold: float | Mapping[str, float] | None
) -> dict[str, float]:
    """An explicit float applies to every metric, an explicit mapping to the
    metrics it names; then `gate.thresholds[metric]`, `gate.threshold`, 10%."""
    base = float(gate.get("threshold", DEFAULT_THRESHOLD))
    per_metric = {m: float(gate.get("thresholds", {}).get(m, base)) for m in metrics}
    if isinstance(threshold, Mapping):
        for m, t in threshold.items():
            if m not in METRICS:
                raise GateConfigError(f"threshold for unknown metric {m!r}")
            per_metric[m] = float(t)
    elif threshold is not None:
        per_metric = {m: float(threshold) for m in metrics}
    for m, t in per_metric.items():
        if not 0 < t < 1:
            raise GateConfigError(f"threshold for {m} must be a fraction in (0, 1), got {t!r}")
    return {m: per_metric[m] for m in metrics}


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
    """Merge explicit arguments (not None), the scenario's `gate` table and the defaults.

    The table is the one recorded in a results file: the removed calibration
    settings in it are ignored with a warning (`GateConfig.warnings`); asked
    for as an argument (`normalize="calibration"`) they are an error.
    """
    gate, warnings = _without_removed(scenario_resolved.get("gate") or {})
    errors = validate_gate_section(gate)
    if errors:
        raise GateConfigError("; ".join(errors))
    chosen = tuple(metrics if metrics is not None else gate.get("metrics", DEFAULT_METRICS))
    for m in chosen:
        if m not in METRICS:
            raise GateConfigError(f"unknown metric {m!r}; allowed: {', '.join(METRICS)}")
    if not chosen:
        raise GateConfigError("no metrics to compare")
    thresholds = _thresholds(gate, chosen, threshold)
    a = float(alpha if alpha is not None else gate.get("alpha", DEFAULT_ALPHA))
    if not 0 < a < 1:
        raise GateConfigError(f"alpha must be in (0, 1), got {a!r}")
    n = int(min_repeats if min_repeats is not None else gate.get("min_repeats", DEFAULT_MIN_REPEATS))
    if n < 2:
        raise GateConfigError(f"min_repeats must be >= 2, got {n}")
    mode = normalize if normalize is not None else str(gate.get("normalize", NORMALIZE_NONE))
    if mode == REMOVED_NORMALIZE:
        raise GateConfigError(f"normalize: {mode!r} {_CALIBRATION_WHY}; allowed: {', '.join(NORMALIZE_MODES)}")
    if mode not in NORMALIZE_MODES:
        raise GateConfigError(f"normalize must be one of {', '.join(NORMALIZE_MODES)}, got {mode!r}")
    return GateConfig(
        thresholds=thresholds,
        alpha=a,
        metrics=chosen,
        min_repeats=n,
        normalize=mode,
        bootstrap=bootstrap,
        warnings=tuple(warnings),
    )
