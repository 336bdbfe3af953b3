"""The regression gate's decision rule, on synthetic runs (no measuring).

Every run here is built from fixed numbers or a seeded generator, so each
verdict is deterministic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from asyncbench.gate import decide
from asyncbench.gate.api import compare
from asyncbench.gate.config import GateConfigError, validate_gate_section
from asyncbench.model.results import Cell, Run
from tests.synthetic import make_cell, make_run, make_setup, spread

SETUPS = ("gunicorn-sync", "uvicorn")
WORKLOADS = {"noio": ("sync", "async"), "orm": ("sync", "async")}
BASE_RPS = {"sync": 1000.0, "async": 700.0}

Scale = Callable[[str, str, str], float]


def _one(*_: str) -> float:
    return 1.0


def build_run(
    *,
    seed: int = 1,
    repeats: int = 8,
    sd: float = 0.03,
    scale: Scale = _one,
    users: Sequence[int] = (16,),
    extra_cells: Sequence[Cell] = (),
    environment: dict[str, Any] | None = None,
    gate_section: dict[str, Any] | None = None,
    scenario: str = "ci",
    revision: str = "",
    run_id: str = "run",
) -> Run:
    """A run of setups × workloads × variants with per-repeat noise `sd`.

    p99 follows throughput (p99 = 10 000 / rps ms): a slower cell is slower on
    both metrics, as a real CPU regression would be.
    """
    rng = random.Random(seed)
    cells: list[Cell] = []
    for setup in SETUPS:
        for workload, variants in WORKLOADS.items():
            for variant in variants:
                for u in users:
                    k = scale(setup, workload, variant)
                    rps = [BASE_RPS[variant] * k * (1 + rng.gauss(0, sd)) for _ in range(repeats)]
                    cells.append(
                        make_cell(setup, workload, variant, u, rps, p99_ms=[10_000 / x for x in rps], revision=revision)
                    )
    cells.extend(extra_cells)
    return finish_run(cells, environment=environment, gate_section=gate_section, scenario=scenario, run_id=run_id)


def finish_run(
    cells: Sequence[Cell],
    *,
    environment: dict[str, Any] | None = None,
    gate_section: dict[str, Any] | None = None,
    scenario: str = "ci",
    run_id: str = "run",
) -> Run:
    env = {"cpu_count": 2, **(environment or {})}
    setups = {s: make_setup(s) for s in {c.setup for c in cells}}
    run = make_run(cells, setups=setups, environment=env, scenario=scenario, run_id=run_id)
    # A resolved scenario shaped like the runner's (Scenario.to_dict()).
    resolved = {
        "name": scenario,
        "load": {"users": [16], "repeats": 8, "warmup_s": 1.0, "min_s": 2.0, "max_s": 6.0},
        "database": {"engine": "sqlite", "rows": 100_000},
        "gate": gate_section or {},
        "server_env": {},
    }
    return replace(run, scenario_resolved=resolved)


def slower(
    factor: float, *, setup: str | None = None, workload: str | None = None, variant: str | None = None
) -> Scale:
    def scale(s: str, w: str, v: str) -> float:
        hit = (setup in (None, s)) and (workload in (None, w)) and (variant in (None, v))
        return factor if hit else 1.0

    return scale


def verdicts(result: decide.GateResult) -> dict[tuple[str, str], str]:
    return {(c.key, c.metric): c.verdict for c in result.comparisons}


# ------------------------------------------------------------------ the core rule


def test_identical_runs_pass() -> None:
    run = build_run()
    result = compare(run, run)
    assert result.exit_code == decide.EXIT_OK
    assert result.outcome == decide.OUTCOME_PASS
    assert set(verdicts(result).values()) == {decide.VERDICT_NO_CHANGE}
    assert result.tests == 16  # 8 cells x 2 metrics
    assert "No regression" in result.headline


def test_same_distribution_different_draws_pass() -> None:
    for seed in range(2, 7):
        result = compare(build_run(seed=1), build_run(seed=seed))
        assert result.exit_code == decide.EXIT_OK, result.reasons


def test_shift_beyond_threshold_fails_on_that_cell_only() -> None:
    baseline = build_run(seed=1)
    current = build_run(seed=2, scale=slower(0.75, setup="uvicorn", workload="orm", variant="sync"))
    result = compare(baseline, current)
    assert result.exit_code == decide.EXIT_REGRESSION
    assert result.outcome == decide.OUTCOME_REGRESSION
    regressed = {(c.key, c.metric) for c in result.regressions}
    assert regressed == {("uvicorn/orm/sync/u16", "throughput"), ("uvicorn/orm/sync/u16", "p99")}
    c = next(c for c in result.regressions if c.metric == "throughput")
    assert c.change is not None and -0.30 < c.change < -0.20
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low <= c.ratio <= c.ci_high  # type: ignore[operator]
    assert c.p_adjusted is not None and c.p_adjusted <= 0.05
    assert any("uvicorn/orm/sync/u16" in r for r in result.reasons)


def test_significant_but_tiny_change_passes() -> None:
    # 2% slower with a 0.2% spread: the rank test is sure, the change is small.
    baseline = build_run(seed=1, sd=0.002)
    current = build_run(seed=2, sd=0.002, scale=slower(0.98, workload="noio"))
    result = compare(baseline, current)
    assert result.exit_code == decide.EXIT_OK
    below = [c for c in result.comparisons if c.verdict == decide.VERDICT_BELOW_THRESHOLD]
    assert {c.workload for c in below} == {"noio"}
    assert all(c.p_adjusted is not None and c.p_adjusted <= 0.05 for c in below)
    assert any("below threshold" in r for r in result.reasons)


def test_large_but_noisy_change_is_not_significant() -> None:
    b = [100.0, 60.0, 140.0, 95.0, 70.0, 130.0]
    c = [85.0, 50.0, 125.0, 80.0, 60.0, 115.0]  # medians 12% lower, but within the noise
    base = finish_run([make_cell("uvicorn", "noio", "sync", 16, b)])
    cur = finish_run([make_cell("uvicorn", "noio", "sync", 16, c)])
    result = compare(base, cur, metrics=["throughput"])
    assert result.exit_code == decide.EXIT_OK
    assert verdicts(result)[("uvicorn/noio/sync/u16", "throughput")] == decide.VERDICT_NOT_SIGNIFICANT


def test_improvement_is_reported_and_passes() -> None:
    result = compare(build_run(seed=1), build_run(seed=2, scale=slower(1.3, workload="orm")))
    assert result.exit_code == decide.EXIT_OK
    improvements = [c for c in result.comparisons if c.verdict == decide.VERDICT_IMPROVEMENT]
    assert {c.workload for c in improvements} == {"orm"}


# ------------------------------------------------------------------ Holm


def _borderline_cells(n_cells: int) -> tuple[list[Cell], list[Cell]]:
    """Cells whose throughput dropped ~19% with one overlapping repeat: U = 34 of 36,
    exact one-sided p = 4/924 ≈ 0.0043 each."""
    base_vals = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    cur_vals = [80.0, 81.0, 82.0, 83.0, 84.0, 101.5]
    base = [make_cell("uvicorn", "noio", "sync", u, base_vals) for u in range(1, n_cells + 1)]
    cur = [make_cell("uvicorn", "noio", "sync", u, cur_vals) for u in range(1, n_cells + 1)]
    return base, cur


def test_holm_correction_matters() -> None:
    base, cur = _borderline_cells(1)
    one = compare(finish_run(base), finish_run(cur), metrics=["throughput"])
    assert one.exit_code == decide.EXIT_REGRESSION
    assert one.comparisons[0].p_value == pytest.approx(4 / 924)

    base, cur = _borderline_cells(20)
    many = compare(finish_run(base), finish_run(cur), metrics=["throughput"])
    # 20 tests: Holm's first step needs p <= 0.05 / 20 = 0.0025 > 0.0043 -> nothing rejected
    assert many.tests == 20
    assert many.exit_code == decide.EXIT_OK
    assert all(c.p_value == pytest.approx(4 / 924) for c in many.comparisons)
    assert all(c.p_adjusted is not None and c.p_adjusted > 0.05 for c in many.comparisons)
    assert {c.verdict for c in many.comparisons} == {decide.VERDICT_NOT_SIGNIFICANT}
    # without the correction each of the 20 would have been a "regression"
    assert all(c.p_value is not None and c.p_value < 0.05 for c in many.comparisons)


def test_too_many_tests_for_the_repeats_is_invalid() -> None:
    # 6 vs 6 repeats reach p = 1/924 at best; 50 tests need p <= 0.001: blind.
    base, cur = _borderline_cells(50)
    result = compare(finish_run(base), finish_run(cur), metrics=["throughput"])
    assert result.exit_code == decide.EXIT_INVALID
    assert any("smallest reachable p" in r for r in result.reasons)


def test_ties_use_the_exact_test() -> None:
    # p99 read from a histogram: repeated identical values on both sides.
    b = [10.0, 10.0, 10.05, 10.05, 10.1, 10.1]
    c = [12.0, 12.0, 12.0, 12.1, 12.1, 10.1]
    base = finish_run([make_cell("uvicorn", "noio", "sync", 16, [1000.0] * 6, p99_ms=b)])
    cur = finish_run([make_cell("uvicorn", "noio", "sync", 16, [1000.0] * 6, p99_ms=c)])
    result = compare(base, cur, metrics=["p99"])
    comp = result.comparisons[0]
    assert comp.verdict == decide.VERDICT_REGRESSION
    assert comp.p_value is not None and comp.p_value < 0.01


# ------------------------------------------------------------------ validity (exit 2)


def test_too_few_repeats_is_invalid() -> None:
    result = compare(build_run(repeats=4), build_run(repeats=4, seed=2))
    assert result.exit_code == decide.EXIT_INVALID
    assert result.outcome == decide.OUTCOME_INVALID
    assert any("fewer than the 6" in r for r in result.reasons)
    assert {c.verdict for c in result.comparisons} == {decide.VERDICT_INVALID}


def test_min_repeats_can_be_lowered_explicitly() -> None:
    result = compare(build_run(repeats=5), build_run(repeats=5, seed=2), min_repeats=5, metrics=["throughput"])
    assert result.exit_code == decide.EXIT_OK


@pytest.mark.parametrize(
    ("key", "base", "cur"),
    [
        ("cpu_model", "AMD EPYC 7763", "Intel Xeon 8370C"),
        ("cpu_count", 2, 4),
        ("python", "3.12.1", "3.13.0"),
        ("packages", {"django": "6.1.3"}, {"django": "6.1.2"}),
        ("database", {"vendor": "sqlite", "version": "3.40"}, {"vendor": "postgresql", "version": "15.4"}),
    ],
)
def test_environment_mismatch_is_refused_or_loudly_allowed(key: str, base: Any, cur: Any) -> None:
    baseline = build_run(environment={key: base})
    current = build_run(seed=2, environment={key: cur})
    refused = compare(baseline, current)
    assert refused.exit_code == decide.EXIT_INVALID
    assert any("differs" in r for r in refused.reasons)
    allowed = compare(baseline, current, allow_env_mismatch=True)
    assert allowed.exit_code == decide.EXIT_OK
    assert any(w.startswith("ENVIRONMENT MISMATCH") for w in allowed.warnings)


def test_small_environment_differences_only_warn() -> None:
    baseline = build_run(environment={"python": "3.12.1", "hostname": "a"})
    current = build_run(seed=2, environment={"python": "3.12.3", "hostname": "b"})
    result = compare(baseline, current)
    assert result.exit_code == decide.EXIT_OK
    assert any("patch version" in w for w in result.warnings)
    assert any("host differs" in w for w in result.warnings)


def test_unrecorded_environment_is_warned_not_silent() -> None:
    baseline = build_run()
    current = build_run(seed=2)
    current = replace(current, environment=replace(current.environment, cpu_model=None))
    result = compare(baseline, current)
    assert result.exit_code == decide.EXIT_OK
    assert any("cannot check cpu_model" in w for w in result.warnings)


@pytest.mark.parametrize("code", ["failures", "server-crash", "generator-bound", "error"])
def test_flagged_cells_make_the_comparison_invalid(code: str) -> None:
    flagged = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8, flags=[(code, "synthetic flag")])
    clean = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8)
    result = compare(build_run(extra_cells=[clean]), build_run(seed=2, extra_cells=[flagged]))
    assert result.exit_code == decide.EXIT_INVALID
    assert any(code in r and "uvicorn/cpu/sync/u16" in r for r in result.reasons)
    # the other cells were still compared and shown
    assert verdicts(result)[("uvicorn/noio/sync/u16", "throughput")] == decide.VERDICT_NO_CHANGE


def test_unstable_cells_only_warn() -> None:
    unstable = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8, flags=[("unstable", "cv 12%")])
    clean = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8)
    result = compare(build_run(extra_cells=[clean]), build_run(seed=2, extra_cells=[unstable]))
    assert result.exit_code == decide.EXIT_OK
    assert any("unstable" in w for w in result.warnings)


def test_missing_cells_on_either_side_are_invalid() -> None:
    extra = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8)
    new_cell = compare(build_run(), build_run(seed=2, extra_cells=[extra]))
    assert new_cell.exit_code == decide.EXIT_INVALID
    assert any("missing from the baseline" in r and "refresh the baseline" in r for r in new_cell.reasons)
    gone = compare(build_run(extra_cells=[extra]), build_run(seed=2))
    assert gone.exit_code == decide.EXIT_INVALID
    assert any("missing from the current" in r for r in gone.reasons)


def test_invalid_comparison_still_reports_regressions_it_saw() -> None:
    extra = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8)
    result = compare(build_run(), build_run(seed=2, scale=slower(0.7, workload="orm"), extra_cells=[extra]))
    assert result.exit_code == decide.EXIT_INVALID
    assert result.regressions
    assert "regression" in result.headline


def test_different_scenario_or_setup_is_invalid() -> None:
    other = compare(build_run(scenario="ci"), build_run(seed=2, scenario="quick"))
    assert other.exit_code == decide.EXIT_INVALID
    assert any("scenario differs" in r for r in other.reasons)

    current = build_run(seed=2)
    setups = dict(current.setups)
    setups["uvicorn"] = replace(setups["uvicorn"], workers=2)
    result = compare(build_run(), replace(current, setups=setups))
    assert result.exit_code == decide.EXIT_INVALID
    assert any("setup uvicorn: workers differs" in r for r in result.reasons)

    current = build_run(seed=2)
    resolved = {**current.scenario_resolved, "load": {**current.scenario_resolved["load"], "max_s": 15.0}}
    result = compare(build_run(), replace(current, scenario_resolved=resolved))
    assert result.exit_code == decide.EXIT_INVALID
    assert any("load.max_s" in r for r in result.reasons)


def test_fault_injection_is_announced() -> None:
    current = build_run(seed=2)
    resolved = {**current.scenario_resolved, "server_env": {"BENCH_INJECT_CPU_US": "300"}}
    result = compare(build_run(), replace(current, scenario_resolved=resolved))
    assert result.exit_code == decide.EXIT_OK
    assert any("FAULT INJECTION" in w and "BENCH_INJECT_CPU_US=300" in w for w in result.warnings)


def test_database_url_is_never_printed() -> None:
    base, cur = build_run(), build_run(seed=2)
    b_db = {"engine": "sqlite", "url": "postgresql://u:secret@a/db"}
    c_db = {"engine": "sqlite", "url": "postgresql://u:other@b/db"}
    b = replace(base, scenario_resolved={**base.scenario_resolved, "database": b_db})
    c = replace(cur, scenario_resolved={**cur.scenario_resolved, "database": c_db})
    result = compare(b, c)
    assert result.exit_code == decide.EXIT_OK
    assert "secret" not in json.dumps(result.to_dict())


# ------------------------------------------------------------------ thresholds and configuration


def test_thresholds_per_scenario_and_metric() -> None:
    scale = slower(0.8, workload="orm", variant="sync")  # -20% throughput, +25% p99
    strict = compare(build_run(), build_run(seed=2, scale=scale))
    assert {c.metric for c in strict.regressions} == {"throughput", "p99"}

    relaxed = build_run(seed=2, scale=scale, gate_section={"threshold": 0.1, "thresholds": {"p99": 0.3}})
    result = compare(build_run(), relaxed)
    assert result.exit_code == decide.EXIT_REGRESSION
    assert {c.metric for c in result.regressions} == {"throughput"}
    assert result.thresholds == {"throughput": 0.1, "p99": 0.3}

    # an explicit argument wins over the scenario
    result = compare(build_run(), relaxed, threshold=0.5)
    assert result.exit_code == decide.EXIT_OK
    assert result.thresholds == {"throughput": 0.5, "p99": 0.5}


def test_bad_configuration_raises_with_the_key() -> None:
    with pytest.raises(GateConfigError, match="unknown metric"):
        compare(build_run(), build_run(), metrics=["p42"])
    with pytest.raises(GateConfigError, match="unknown 'magic'"):
        compare(build_run(), build_run(gate_section={"normalize": "magic"}))
    assert validate_gate_section({"thresholds": {"p99": 2}}) == [
        "gate.thresholds.p99: expected a fraction in (0, 1), got 2"
    ]


def test_other_metrics_can_be_gated() -> None:
    result = compare(build_run(), build_run(seed=2), metrics=["throughput", "p50", "cpu_per_request"])
    assert result.exit_code == decide.EXIT_OK
    assert {c.metric for c in result.comparisons} == {"throughput", "p50", "cpu_per_request"}


# ------------------------------------------------------------------ normalisation


# The removed "calibration" normalisation, as an old results file records it.
OLD_CALIBRATION = {
    "normalize": "calibration",
    "calibration": {"setup": "gunicorn-sync", "workload": "cpu", "variant": "sync", "users": 1, "pair": "median"},
}
CALIBRATION_WHY = ("was removed", "Django view", "code under test", "same windows", "none, async-sync-ratio")


def test_asking_for_calibration_is_an_error_that_says_why() -> None:
    with pytest.raises(GateConfigError) as err:
        compare(build_run(), build_run(seed=2), normalize="calibration")
    assert str(err.value).startswith("normalize: 'calibration' was removed")
    assert all(f in str(err.value) for f in CALIBRATION_WHY)
    with pytest.raises(GateConfigError, match="'calibration' was removed"):
        compare(ab_run(), normalize="calibration")  # A/B in one job: the same refusal
    problems = validate_gate_section(OLD_CALIBRATION)
    assert [p.split(":")[0] for p in problems] == ["gate.normalize", "gate.calibration"]
    assert all(f in p for p in problems for f in CALIBRATION_WHY)


def test_a_results_file_with_the_old_calibration_table_still_compares() -> None:
    baseline = build_run(seed=1, gate_section=OLD_CALIBRATION)
    current = build_run(seed=2, gate_section={**OLD_CALIBRATION, "threshold": 0.2})
    result = compare(baseline, current)
    assert result.exit_code == decide.EXIT_OK, result.reasons
    assert result.normalize == "none"
    assert result.thresholds == {"throughput": 0.2, "p99": 0.2}  # the rest of the table still applies
    ignored = [w for w in result.warnings if w.startswith("ignored in the run's recorded scenario")]
    assert [w.split(": ")[1] for w in ignored] == ["gate.normalize", "gate.calibration"]
    assert all(f in w for w in ignored for f in CALIBRATION_WHY)
    assert "calibration" not in result.to_dict()

    # still catches a regression; an explicit normalisation applies as usual
    slow = build_run(seed=2, scale=slower(0.75, setup="uvicorn", workload="noio"), gate_section=OLD_CALIBRATION)
    assert compare(baseline, slow).exit_code == decide.EXIT_REGRESSION
    assert compare(baseline, current, normalize="async-sync-ratio").normalize == "async-sync-ratio"

    # the table alone (an A/B run's scenario, where gate.normalize was not applied)
    table_only = {"calibration": OLD_CALIBRATION["calibration"]}
    result = compare(build_run(seed=1, gate_section=table_only), build_run(seed=2, gate_section=table_only))
    assert result.exit_code == decide.EXIT_OK
    assert sum(w.startswith("ignored in the run's recorded scenario: gate.calibration") for w in result.warnings) == 1


def test_ratio_mode_tolerates_another_cpu_model_but_not_another_django() -> None:
    baseline = build_run(seed=1, sd=0.01, environment={"cpu_model": "AMD EPYC 7763"})
    current = build_run(seed=2, sd=0.01, scale=lambda s, w, v: 0.8, environment={"cpu_model": "Intel Xeon 8370C"})
    result = compare(baseline, current, normalize="async-sync-ratio")
    assert result.exit_code == decide.EXIT_OK
    assert any("CPU model differs" in w and "cancel" in w for w in result.warnings)

    current = build_run(seed=2, sd=0.01, environment={"packages": {"django": "6.0"}})
    assert compare(baseline, current, normalize="async-sync-ratio").exit_code == decide.EXIT_INVALID


def test_async_sync_ratio_mode() -> None:
    baseline = build_run(seed=1, sd=0.01)
    # the whole machine 30% slower: ratios unchanged
    uniform = build_run(seed=2, sd=0.01, scale=lambda s, w, v: 0.7)
    result = compare(baseline, uniform, normalize="async-sync-ratio")
    assert result.exit_code == decide.EXIT_OK
    assert {c.key for c in result.comparisons} == {f"{s}/{w}/async÷sync/u16" for s in SETUPS for w in WORKLOADS}
    assert result.tests == 8  # 4 ratios x 2 metrics

    # the async ORM path 25% slower on uvicorn only: its ratio regresses
    async_slower = build_run(seed=2, sd=0.01, scale=slower(0.75, setup="uvicorn", workload="orm", variant="async"))
    result = compare(baseline, async_slower, normalize="async-sync-ratio")
    assert result.exit_code == decide.EXIT_REGRESSION
    assert {c.key for c in result.regressions} == {"uvicorn/orm/async÷sync/u16"}


# ------------------------------------------------------------------ A/B in one job


def ab_run(*, head_scale: Scale = _one, repeats: int = 8) -> Run:
    base = build_run(seed=1, revision="base", repeats=repeats)
    head = build_run(seed=2, revision="head", scale=head_scale, repeats=repeats)
    return replace(base, cells=base.cells + head.cells, run_id="ab")


def test_ab_run_passes_identical_trees() -> None:
    result = compare(ab_run())
    assert result.mode == "revisions"
    assert result.exit_code == decide.EXIT_OK
    assert (result.baseline_label, result.current_label) == ("base", "head")
    assert result.tests == 16


def test_ab_run_catches_a_slower_head() -> None:
    result = compare(ab_run(head_scale=slower(0.7, workload="noio", variant="sync")))
    assert result.exit_code == decide.EXIT_REGRESSION
    assert {c.key for c in result.regressions} == {"gunicorn-sync/noio/sync/u16", "uvicorn/noio/sync/u16"}


def test_ab_run_needs_both_revisions_and_repeats() -> None:
    plain = build_run()
    result = compare(plain)
    assert result.exit_code == decide.EXIT_INVALID
    assert any("not an A/B run" in r for r in result.reasons)
    assert compare(ab_run(repeats=3)).exit_code == decide.EXIT_INVALID


def test_compare_warns_when_given_an_ab_run() -> None:
    result = compare(ab_run(), ab_run())
    assert any("is an A/B run" in w and "compare(run)" in w for w in result.warnings)


# ------------------------------------------------------------------ plumbing


def test_wall_time_comes_from_the_clock() -> None:
    ticks = iter([100.0, 100.25])
    result = compare(build_run(), build_run(seed=2), clock=lambda: next(ticks))
    assert result.elapsed_s == pytest.approx(0.25)


def test_result_serialises_to_json_and_is_reproducible() -> None:
    a = compare(build_run(), build_run(seed=2, scale=slower(0.8, workload="orm")))
    b = compare(build_run(), build_run(seed=2, scale=slower(0.8, workload="orm")))
    da, db = a.to_dict(), b.to_dict()
    da.pop("elapsed_s"), db.pop("elapsed_s")
    assert da == db  # seeded bootstrap: the same intervals every time
    text = json.dumps(da)
    assert '"exit_code": 1' in text
    assert all("change" in c for c in da["comparisons"])


def test_ab_run_can_gate_ratios() -> None:
    run = ab_run(head_scale=slower(0.7, setup="uvicorn", workload="noio", variant="async"))
    result = compare(run, normalize="async-sync-ratio")
    assert result.normalize == "async-sync-ratio"
    assert {c.key for c in result.regressions} == {"uvicorn/noio/async÷sync/u16"}


def test_a_flag_this_version_does_not_know_blocks() -> None:
    # a results file from a newer harness: the conservative reading (flags.UNKNOWN)
    unknown = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8, flags=[("weird-new", "from the future")])
    clean = make_cell("uvicorn", "cpu", "sync", 16, [500.0] * 8)
    result = compare(build_run(extra_cells=[clean]), build_run(seed=2, extra_cells=[unknown]))
    assert result.exit_code == decide.EXIT_INVALID
    assert any("weird-new" in r for r in result.reasons)


def test_the_smallest_reachable_p_counts_ties() -> None:
    """The floor comes from the same tie-aware exact test the gate runs: ties
    at the boundary raise it far above 1/C(n+m, n)."""
    assert decide.smallest_reachable_p([7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6]) == pytest.approx(1 / 924)
    # the worst arrangement of these values still ties five 10s against the rest
    tied = decide.smallest_reachable_p([10.0] * 5 + [12.0], [10.0] * 6)
    assert tied == pytest.approx(462 / 924)
    # two groups of ties on the boundary: 10.1 once among three on the worse side
    assert decide.smallest_reachable_p(
        [12.0, 12.0, 12.0, 12.1, 12.1, 10.1], [10.0, 10.0, 10.05, 10.05, 10.1, 10.1]
    ) == pytest.approx(3 / 924)
    # all equal: nothing to rank, only the repeats limit the test
    assert decide.smallest_reachable_p([5.0] * 6, [5.0] * 6) == pytest.approx(1 / 924)


def test_tied_percentiles_that_cannot_reach_the_level_make_the_comparison_invalid() -> None:
    # p99 read from a coarse histogram: 11 of 12 values in one bucket. No
    # arrangement of these values gives p below 0.5, so the gate is blind here.
    base = finish_run([make_cell("uvicorn", "noio", "sync", 16, spread(1000.0, 6), p99_ms=[10.0] * 6)])
    cur = finish_run([make_cell("uvicorn", "noio", "sync", 16, spread(1000.0, 6), p99_ms=[10.0] * 5 + [12.0])])
    result = compare(base, cur, metrics=["p99"])
    assert result.exit_code == decide.EXIT_INVALID
    assert any("and their ties the smallest reachable p is 0.5" in r for r in result.reasons), result.reasons


# ------------------------------------------------------------ A/B: base and head paired by block


def _paired_run(head_factor: Sequence[float], base_noise: Sequence[float]) -> Run:
    """An A/B run of one arm: per block, base's CPU per request moves with the
    machine (base_noise); head's is base's times head_factor of that block."""
    base_reps, head_reps = [], []
    for i, (noise, f) in enumerate(zip(base_noise, head_factor, strict=True)):
        b = make_cell("uvicorn", "noio", "sync", 8, [100.0], cpu_ms_per_request=1.0 * noise).repeats[0]
        h = make_cell("uvicorn", "noio", "sync", 8, [100.0], cpu_ms_per_request=1.0 * noise * f).repeats[0]
        base_reps.append(replace(b, index=i, block=i))
        head_reps.append(replace(h, index=i, block=i))
    base = replace(make_cell("uvicorn", "noio", "sync", 8, [100.0], revision="base"), repeats=tuple(base_reps))
    head = replace(make_cell("uvicorn", "noio", "sync", 8, [100.0], revision="head"), repeats=tuple(head_reps))
    resolved = {"gate": {"metrics": ["cpu_per_request"], "thresholds": {"cpu_per_request": 0.03}, "min_repeats": 8}}
    return make_run([base, head], scenario_resolved=resolved)


def test_ab_pairs_slices_by_block_so_machine_speed_cancels() -> None:
    """The machine's speed moves ±20% between blocks, head is 5% dearer in
    every block: unpaired, that is noise; paired, a clear regression."""
    rng = random.Random(7)
    noise = [1 + rng.uniform(-0.2, 0.2) for _ in range(10)]
    factor = [1.05 * (1 + rng.uniform(-0.01, 0.01)) for _ in range(10)]
    result = compare(_paired_run(factor, noise))
    (c,) = result.comparisons
    assert result.exit_code == decide.EXIT_REGRESSION, result.reasons
    assert c.verdict == "regression"
    assert c.ratio == pytest.approx(1.05, abs=0.01)
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low > 1.03 and c.ci_high < 1.07


def test_ab_paired_aa_passes_and_a_change_below_threshold_is_not_a_regression() -> None:
    rng = random.Random(8)
    noise = [1 + rng.uniform(-0.2, 0.2) for _ in range(10)]
    same = [1 + rng.uniform(-0.02, 0.02) for _ in range(10)]
    assert compare(_paired_run(same, noise)).exit_code == decide.EXIT_OK
    small = [1.015 * (1 + rng.uniform(-0.002, 0.002)) for _ in range(10)]
    result = compare(_paired_run(small, noise))
    assert result.exit_code == decide.EXIT_OK
    assert result.comparisons[0].verdict == "below threshold"  # significant, under 3%


def test_ab_paired_needs_min_repeats_blocks() -> None:
    result = compare(_paired_run([1.0] * 5, [1.0] * 5))
    assert result.exit_code == decide.EXIT_INVALID
    assert any("5 block(s) with both base and head" in r for r in result.reasons)


def test_paired_test_p_values_and_interval() -> None:
    logs = [0.05, 0.06, 0.04, 0.05, 0.055, 0.045]
    p_worse, p_better, (lo, hi) = decide.paired_test(logs, higher_is_better=False)
    assert p_worse < 1e-4 and p_better > 0.999
    assert lo < 1.05 < hi
    # throughput: a higher head is better, so the same logs are an improvement
    p_worse_t, p_better_t, _ = decide.paired_test(logs, higher_is_better=True)
    assert p_worse_t == pytest.approx(p_better) and p_better_t == pytest.approx(p_worse)


def test_cpu_metric_on_a_deployment_without_the_agent_is_named_as_such() -> None:
    """Gating CPU per request on a --target run made without the agent: exit 2,
    and the reason says the CPU was never measured (not "too few values")."""
    import dataclasses

    from asyncbench.model.results import NOT_MEASURED

    gate = {"metrics": ["throughput", "cpu_per_request"]}
    baseline = build_run(seed=1, gate_section=gate)
    current = build_run(seed=2, gate_section=gate)
    setup = sorted(current.setups)[0]
    unmeasured = dataclasses.replace(current.setups[setup], resources=NOT_MEASURED)
    current = dataclasses.replace(current, setups={**current.setups, setup: unmeasured})
    result = compare(baseline, current)
    assert result.exit_code == 2
    assert any("server CPU was not measured" in r and setup in r for r in result.reasons), result.reasons
    # throughput alone is still gateable on that run
    assert compare(baseline, current, metrics=["throughput"]).exit_code == 0
