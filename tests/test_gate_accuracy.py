"""The gate-accuracy driver on a simulated system (seeded noise, fake clock).

The real measurement needs servers and minutes per run; here `measure` is a
model of a CPU-bound server that honours BENCH_INJECT_CPU_US, so the driver's
bookkeeping, the injection arithmetic and the resampling estimate are tested
without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from asyncbench.gate import accuracy as ga
from asyncbench.gate import injection, measured, resample
from asyncbench.model.results import Run, save_run
from tests.synthetic import make_cell, make_run, make_setup

CELLS = {  # (setup, workload, variant): CPU seconds per request, CPU-bound at 16 users
    ("uvicorn", "noio", "sync"): 0.0010,
    ("uvicorn", "noio", "async"): 0.0014,
    ("uvicorn", "orm", "sync"): 0.0025,
    ("uvicorn", "orm", "async"): 0.0028,
}


class SimulatedServer:
    """One core, saturated: throughput = 1 / (CPU per request), with noise."""

    def __init__(self, seed: int = 5, sd: float = 0.02, repeats: int = 8) -> None:
        self.rng = random.Random(seed)
        self.sd = sd
        self.repeats = repeats
        self.calls: list[tuple[dict[str, str], str]] = []

    def __call__(self, env: dict[str, str], label: str) -> Run:
        self.calls.append((dict(env), label))
        extra = int(env.get(injection.ENV_CPU_US, "0")) / 1e6
        injected = set(env.get(injection.ENV_WORKLOADS, "").split(","))
        cells = []
        for (setup, workload, variant), cpu in CELLS.items():
            s = cpu + (extra if workload in injected else 0.0)
            rps = [1.0 / s * (1 + self.rng.gauss(0, self.sd)) for _ in range(self.repeats)]
            cells.append(make_cell(setup, workload, variant, 16, rps, cpu_ms_per_request=s * 1000))
        run = make_run(cells, setups={"uvicorn": make_setup("uvicorn")}, environment={"cpu_count": 2}, run_id=label)
        resolved = {"name": "ci", "gate": {}, "server_env": dict(env)}
        return replace(run, scenario_resolved=resolved)


# ------------------------------------------------------------------ injection arithmetic


def test_injection_for_a_saturated_cpu_bound_cell() -> None:
    # S = 0.4 ms of CPU per request, X = 2500 req/s on one core: saturated
    model = injection.ServiceModel("k", 2500.0, 16, 16 / 2500.0, 0.0004, 1, math.inf, 1.0)
    for d in (0.1, 0.2, 0.5):
        delta = injection.injection_for(model, d)
        assert delta == pytest.approx(0.0004 * d / (1 - d))
        assert model.predicted_slowdown(delta) == pytest.approx(d)


def test_injection_for_an_unsaturated_cell_uses_response_time() -> None:
    # one user, 2 ms per round trip, the CPU 20% busy: latency-bound
    model = injection.ServiceModel("k", 500.0, 1, 0.002, 0.0004, 1, math.inf, 0.2)
    delta = injection.injection_for(model, 0.1)
    assert delta == pytest.approx(0.002 * 0.1 / 0.9)
    assert model.predicted_slowdown(delta) == pytest.approx(0.1)


def test_injection_for_a_sync_worker_bound_cell() -> None:
    # one sync worker busy 20 ms per request (mostly waiting), 16 users queue for it
    model = injection.ServiceModel("k", 50.0, 16, 16 / 50.0, 0.001, 1, 1.0, 0.05)
    delta = injection.injection_for(model, 0.2)
    assert delta == pytest.approx(0.020 * 0.2 / 0.8)
    assert model.predicted_slowdown(delta) == pytest.approx(0.2)


def test_injection_rejects_impossible_slowdowns() -> None:
    model = injection.ServiceModel("k", 2500.0, 16, 0.0064, 0.0004, 1, math.inf, 1.0)
    with pytest.raises(ValueError):
        injection.injection_for(model, 1.0)


def test_plan_injection_targets_the_most_sensitive_cell() -> None:
    run = SimulatedServer(sd=0.0)({}, "A")
    plan = injection.plan_injection(run, ["noio"], (0.1, 0.5))
    assert plan["target"] == "uvicorn/noio/sync/u16"
    assert plan["levels"][0]["inject_cpu_us"] == pytest.approx(1000 / 9, abs=0.1)
    assert plan["levels"][1]["inject_cpu_us"] == pytest.approx(1000, abs=0.1)
    # the async twin, with more CPU per request, is predicted to slow down less
    assert plan["levels"][0]["predicted"]["uvicorn/noio/async/u16"] < 0.1
    with pytest.raises(ValueError, match="not among the injected cells"):
        injection.plan_injection(run, ["noio"], (0.1,), target="uvicorn/orm/sync/u16")


# ------------------------------------------------------------------ the real-measurement driver


def test_measure_accuracy_bookkeeping() -> None:
    server = SimulatedServer()
    ticks = iter(float(i) for i in range(10_000))
    result = measured.measure_accuracy(server, rounds=3, levels=(0.1, 0.2, 0.5), clock=lambda: next(ticks) * 0.5)
    assert result["method"] == measured.METHOD_MEASURED
    assert len(server.calls) == 3 * (2 + 3)
    assert server.calls[0] == ({}, "r0-A")  # the clean run that sizes the injection comes first
    injected = [env for env, _ in server.calls if env]
    assert len(injected) == 9
    assert all(env[injection.ENV_WORKLOADS] == "noio" for env in injected)
    assert result["false_alarm"]["trials"] == 3
    assert result["false_alarm"]["rate"] == 0.0
    by_level = {d["slowdown"]: d for d in result["detection"]}
    assert by_level[0.5]["rate"] == 1.0 and by_level[0.2]["rate"] == 1.0
    assert by_level[0.5]["hits_on_target"] == 3
    # the simulated server is exactly the model, so the achieved slowdown is the target
    for d, level in by_level.items():
        assert level["achieved_slowdown_target"]["median"] == pytest.approx(d, abs=0.03)
    # the fake clock ticks 0.5 s per reading: every comparison "took" 0.5 s
    assert result["gate_wall_time"] == {"n": 12, "median_s": 0.5, "max_s": 0.5}
    json.dumps(result)  # serialisable as is
    text = ga.format_accuracy(result)
    assert "False alarms (A/A): 0/3" in text and "Detection of a 50% slowdown: 3/3" in text


def test_measure_accuracy_counts_invalid_comparisons_apart() -> None:
    server = SimulatedServer(repeats=3)  # too few repeats: every comparison is invalid
    result = measured.measure_accuracy(server, rounds=2, levels=(0.5,))
    assert result["false_alarm"]["hits"] == 0 and result["false_alarm"]["invalid"] == 2
    assert result["detection"][0]["hits"] == 0 and result["detection"][0]["invalid"] == 2


# ------------------------------------------------------------------ the resampling estimate


def test_resampling_estimate() -> None:
    run = SimulatedServer(repeats=12)({}, "many")
    result = resample.resampling_estimate(run, splits=40, levels=(0.05, 0.5), workloads=["noio"])
    assert result["method"] == resample.METHOD_RESAMPLED
    assert result["half_repeats"] == 6 and result["notes"] == []
    assert result["slowed_cells"] == ["uvicorn/noio/async/u16", "uvicorn/noio/sync/u16"]
    assert result["false_alarm"]["trials"] == 40
    assert result["false_alarm"]["rate"] <= 0.05
    by_level = {d["slowdown"]: d for d in result["detection"]}
    assert by_level[0.5]["rate"] == 1.0
    assert by_level[0.05]["rate"] == 0.0  # below the 10% threshold: never a regression
    assert "resampling estimate" in ga.format_accuracy(result)


def test_resampling_with_few_repeats_says_it_lowered_the_minimum() -> None:
    run = SimulatedServer(repeats=8)({}, "few")
    result = resample.resampling_estimate(run, splits=5, levels=(0.5,))
    assert result["half_repeats"] == 4
    assert any("min_repeats=4" in n for n in result["notes"])


def test_resampling_is_deterministic() -> None:
    run = SimulatedServer(repeats=12)({}, "many")
    a = resample.resampling_estimate(run, splits=10, levels=(0.1,), clock=lambda: 0.0)
    b = resample.resampling_estimate(run, splits=10, levels=(0.1,), clock=lambda: 0.0)
    assert a == b


# ------------------------------------------------------------------ entry points


def test_main_resample_from_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = SimulatedServer(repeats=12)({}, "many")
    save_run(run, tmp_path / "run")
    out = tmp_path / "acc.json"
    assert ga.main(["resample", str(tmp_path / "run"), "--splits", "5", "--levels", "20,50", "--json", str(out)]) == 0
    assert "resampling estimate" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [d["slowdown"] for d in data["detection"]] == [0.2, 0.5]


def test_main_from_the_runner_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    server = SimulatedServer()
    args = argparse.Namespace(pairs=1, levels=[50], out=None)
    assert ga.main(args, measure=server) == 0
    assert len(server.calls) == 3
    assert "Detection of a 50% slowdown: 1/1" in capsys.readouterr().out


def test_main_measure_needs_the_runner() -> None:
    with pytest.raises(SystemExit):
        ga.main(["measure", "--rounds", "1"])


def test_resampling_a_run_with_too_few_repeats_is_a_named_error(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = Path(__file__).parent / "fixtures" / "v1-quick"
    assert ga.main(["resample", str(fixture)]) == 2
    assert "resampling needs at least 4" in capsys.readouterr().err
