"""The gate's one entry point: compare a run with a baseline, or head with base in one A/B run.

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
  * Normalisation ("async-sync-ratio") compares the async/sync ratios measured
    inside each run, so a uniformly slower machine cancels out.

Pure functions of `Run` objects: a gate verdict can be re-evaluated from the
results files without measuring again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from asyncbench.gate.compat import check_environment, check_scenario, injection_warnings
from asyncbench.gate.config import (
    DEFAULT_BOOTSTRAP,
    METRICS,
    NORMALIZE_NONE,
    GateConfig,
    resolve_config,
)
from asyncbench.gate.decide import MODE_BASELINE, MODE_REVISIONS, GateResult, decide, evaluate
from asyncbench.gate.normalize import series
from asyncbench.model.results import NOT_MEASURED, Cell, Run

REVISION_BASE = "base"
REVISION_HEAD = "head"

_ENV_KEYS = ("cpu_model", "cpu_count", "python", "os", "hostname", "git_commit")


@dataclass
class _Sides:
    """The two sets of cells to compare, and what was found about them on the way."""

    mode: str
    names: tuple[str, str]  # how the sides are named in reasons
    labels: tuple[str, str]  # how the sides are shown: run id or revision, with the commit
    cells: tuple[Sequence[Cell], Sequence[Cell]]
    environment: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _incomplete(run: Run, which: str) -> list[str]:
    if run.complete:
        return []
    return [f"{which} is marked incomplete{' (interrupted)' if run.interrupted else ''}"]


def _run_label(run: Run, fallback: str) -> str:
    commit = run.environment.git_commit
    tail = f" @ {str(commit)[:10]}" if commit else ""
    return f"{run.run_id or fallback}{tail}"


def _shown_environment(env: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: env.get(k) for k in (*_ENV_KEYS, "database")}
    shown["django"] = (env.get("packages") or {}).get("django")
    db = shown.get("database")
    if isinstance(db, Mapping):
        # never copy a database URL (credentials) into a comparison page
        shown["database"] = {k: v for k, v in db.items() if k not in ("url", "dsn")}
    return shown


def _two_runs(baseline: Run, current: Run, *, normalized: bool, allow_env_mismatch: bool) -> _Sides:
    sides = _Sides(
        MODE_BASELINE,
        ("baseline", "current"),
        (_run_label(baseline, "baseline"), _run_label(current, "current")),
        (baseline.cells, current.cells),
        {
            "baseline": _shown_environment(baseline.environment.as_dict()),
            "current": _shown_environment(current.environment.as_dict()),
        },
    )
    refusals, env_warnings = check_environment(
        baseline.environment.as_dict(), current.environment.as_dict(), hardware_normalized=normalized
    )
    if allow_env_mismatch:
        sides.warnings.extend(f"ENVIRONMENT MISMATCH (allowed by request): {r}" for r in refusals)
    else:
        sides.problems.extend(
            f"{r} (runs from different environments are not comparable; measure both on one "
            "machine, use the A/B-in-one-job mode, or pass allow_env_mismatch to compare anyway)"
            for r in refusals
        )
    sides.warnings.extend(env_warnings)
    used_setups = {c.setup for c in baseline.cells} | {c.setup for c in current.cells}
    sc_refusals, sc_warnings = check_scenario(baseline, current, used_setups)
    sides.problems.extend(sc_refusals)
    sides.warnings.extend(sc_warnings)
    for name, run in zip(sides.names, (baseline, current), strict=True):
        sides.warnings.extend(_incomplete(run, f"the {name} run"))
        if any(c.revision for c in run.cells):
            sides.warnings.append(f"the {name} run is an A/B run (cells carry a revision); gate it alone: compare(run)")
    return sides


def _revisions(run: Run) -> _Sides:
    """A/B in one job: the same comparison, with the cells selected by revision.

    Both source trees were measured interleaved on the same machine in the
    same session (like `asv continuous`): there is no environment to check.
    """
    base = [c for c in run.cells if c.revision == REVISION_BASE]
    head = [c for c in run.cells if c.revision == REVISION_HEAD]
    labels = (REVISION_BASE, REVISION_HEAD)
    commits = run.environment.revisions  # {"base": sha, "head": sha} when recorded
    if commits:
        labels = (
            f"base @ {str(commits.get('base', ''))[:10]}".rstrip(" @"),
            f"head @ {str(commits.get('head', ''))[:10]}".rstrip(" @"),
        )
    sides = _Sides(
        MODE_REVISIONS,
        (REVISION_BASE, REVISION_HEAD),
        labels,
        (base, head),
        {"run": {k: getattr(run.environment, k) for k in _ENV_KEYS}, "run_id": run.run_id},
    )
    other = sorted({c.revision or "(none)" for c in run.cells} - {REVISION_BASE, REVISION_HEAD})
    if other:
        sides.warnings.append(f"cells with revision {', '.join(other)} are ignored (only base and head are compared)")
    if not base or not head:
        sides.problems.append("not an A/B run: the gate needs cells measured with revision 'base' and 'head'")
    sides.warnings.extend(_incomplete(run, "the run"))
    sides.warnings.extend(injection_warnings(run, "A/B"))
    for name, cells in zip(sides.names, sides.cells, strict=True):
        keys = [c.key for c in cells]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            sides.problems.append(f"{name}: cell(s) measured more than once: {', '.join(dupes)}")
    return sides


def compare(
    baseline: Run,
    current: Run | None = None,
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
    """Compare `current` with `baseline`; given one A/B run, compare its head cells with its base cells.

    Every setting left as None comes from the (current) run's scenario `gate`
    table, else the defaults (10% threshold, alpha 0.05, throughput and p99,
    6 repeats, no normalisation). An A/B run does not apply the scenario's
    `gate.normalize` (drift and machine speed hit both trees alike); an
    explicit `normalize` applies (e.g. to gate the async/sync ratios).
    `allow_env_mismatch` turns environment refusals into loud warnings.
    `bootstrap` is the number of resamples for the confidence intervals (0
    skips them; verdicts do not depend on them).
    """
    started = clock()
    ab = current is None
    if ab and normalize is None:
        normalize = NORMALIZE_NONE
    cfg = resolve_config(
        (current or baseline).scenario_resolved,
        threshold=threshold,
        alpha=alpha,
        metrics=metrics,
        min_repeats=min_repeats,
        normalize=normalize,
        bootstrap=bootstrap,
    )
    if current is None:
        cfg = replace(cfg, paired=True)
        sides = _revisions(baseline)
    else:
        sides = _two_runs(
            baseline, current, normalized=cfg.normalize != NORMALIZE_NONE, allow_env_mismatch=allow_env_mismatch
        )
    (b_name, c_name), (b_cells, c_cells) = sides.names, sides.cells
    b_series, b_problems = series(b_cells, cfg)
    c_series, c_problems = series(c_cells, cfg)
    problems = sides.problems + [f"{b_name}: {p}" for p in b_problems] + [f"{c_name}: {p}" for p in c_problems]
    problems += _unmeasured_cpu(cfg, [(b_name, baseline), (c_name, current or baseline)])
    comparisons, eval_problems, eval_warnings = evaluate(b_series, c_series, cfg, sides.names)
    problems = list(dict.fromkeys(problems + eval_problems))
    warnings = list(dict.fromkeys([*cfg.warnings, *sides.warnings, *eval_warnings]))
    outcome = decide(comparisons, problems, cfg)
    return GateResult(
        exit_code=outcome.exit_code,
        outcome=outcome.outcome,
        headline=outcome.headline,
        reasons=outcome.reasons,
        warnings=tuple(warnings),
        comparisons=tuple(comparisons),
        mode=sides.mode,
        normalize=cfg.normalize,
        alpha=cfg.alpha,
        thresholds=dict(cfg.thresholds),
        metrics=cfg.metrics,
        min_repeats=cfg.min_repeats,
        tests=outcome.tests,
        baseline_label=sides.labels[0],
        current_label=sides.labels[1],
        environment=sides.environment,
        elapsed_s=clock() - started,
    )


def _unmeasured_cpu(cfg: GateConfig, runs: Sequence[tuple[str, Run]]) -> list[str]:
    """A CPU metric gated on an existing deployment measured without the agent:
    named as such, not left to read as "too few values"."""
    cpu = [m for m in cfg.metrics if METRICS[m].needs_server_cpu]
    if not cpu:
        return []
    out = []
    for name, run in runs:
        for setup in sorted(run.setups):
            if run.resources(setup) == NOT_MEASURED:
                out.append(
                    f"{name}: {', '.join(cpu)} cannot be gated for setup {setup!r}: its server CPU was not measured "
                    "(an existing deployment measured without the agent; run `python runner.py agent --pid PID` "
                    f"on its host and pass --agent {setup}=http://HOST:PORT, "
                    f"or leave {', '.join(cpu)} out of gate.metrics)"
                )
    return list(dict.fromkeys(out))
