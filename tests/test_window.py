"""One measured window shared by several load workers, without processes: the
stop rule on summed tick counts, the merge over the common window, and the
`workers` settings (scenario key, command line, the deprecated `processes`)."""

from __future__ import annotations

import pytest

from asyncbench.execute.distributed import DistributedLoad, PoolOptions, make_load_generator, parse_bind
from asyncbench.execute.load import LoadGenerator, measurement
from asyncbench.execute.window import TICK_S, closed_loop_stop, merge_results, split_users, stop_rule
from asyncbench.model import scenario as sc
from asyncbench.model.histogram import Histogram
from runner import build_parser, scenario_options


def _worker_result(latencies_us: list[float], *, index: int, cpu: float, window: tuple[float, float]) -> dict:
    h = Histogram()
    for us in latencies_us:
        h.record(us)
    seconds = [Histogram(), Histogram()]
    for i, us in enumerate(latencies_us):
        seconds[i % 2].record(us)
    return {
        "ok": True,
        "started_at": window[0],
        "duration_s": window[1] - window[0],
        "warmup_s": 0.2,
        "stop_reason": "",
        "requests": h.count,
        "failures": {"HTTP 500": index},
        "histogram": h.to_dict(),
        "second_histograms": [s.to_dict() for s in seconds],
        "series": [
            {"t": float(i), "requests": s.count, "failures": 0, "p50_ms": None, "p99_ms": None}
            for i, s in enumerate(seconds)
        ],
        "locust": {
            "requests": float(h.count),
            "failures": 0.0,
            "rps": 0.0,
            "median_ms": 1.0,
            "p99_ms": 2.0,
            "avg_ms": 1.0,
        },
        "generator_cpu_percent": cpu,
        "generator_cpu_peak_percent": cpu + 5,
        "tick_requests": [h.count // 4] * 4,
        "window": list(window),
        "workers": [{"index": index, "local": True, "cpu_percent": cpu, "window": list(window), "requests": h.count}],
    }


def test_merge_over_one_window_adds_up_and_keeps_each_workers_cpu() -> None:
    window = (1000.0, 1002.0)
    a = _worker_result([100.0 * (i + 1) for i in range(40)], index=0, cpu=30.0, window=window)
    b = _worker_result([250.0] * 60, index=1, cpu=45.0, window=window)
    merged = merge_results([a, b], window=window, stop_reason="max_s")
    m = measurement(merged)
    assert m.requests == 100 and m.histogram.count == 100  # the sum of the workers'
    assert m.throughput_rps == pytest.approx(100 / 2.0)  # over the one window
    assert m.duration_s == 2.0 and (m.window_start, m.window_stop) == window
    assert m.driver_cpu_percents == (30.0, 45.0)
    assert m.generator_cpu_percent == 45.0 and m.generator_cpu_peak_percent == 50.0
    assert m.failures == {"HTTP 500": 1}
    assert m.stop_reason == "max_s"
    # the per-second series merge second by second, from the histograms
    assert [s["requests"] for s in m.series] == [20 + 30, 20 + 30]
    assert all(s["p50_ms"] is not None for s in m.series)
    assert merged["tick_requests"] == [10 + 15] * 4
    assert m.worker_windows == (window, window)
    assert m.local_driver_cpu_percent == 75.0


def test_remote_workers_cpu_is_not_the_generator_machines() -> None:
    window = (0.0, 1.0)
    a = _worker_result([100.0], index=0, cpu=30.0, window=window)
    b = _worker_result([100.0], index=1, cpu=45.0, window=window)
    b["workers"][0]["local"] = False
    m = measurement(merge_results([a, b], window=window))
    assert m.local_driver_cpu_percent == 30.0


def test_the_stop_rule_reads_the_summed_ticks() -> None:
    rule = stop_rule(
        {"users": 8, "min_s": 1.0, "max_s": 3.0, "slow_max_s": 4.0, "target_rse": 0.05, "min_requests_per_user": 2}
    )
    assert closed_loop_stop([10, 10], **rule) is None  # 1 s: 4 ticks needed for a standard error
    assert closed_loop_stop([10, 10, 10, 10], **rule) == "stable"
    assert closed_loop_stop([1, 30] * 3, **rule) == "max_s"  # 3 s: max_s, enough requests
    assert closed_loop_stop([1] * 6, **rule) is None  # slow: 6 < 16 requests at max_s, runs on
    assert closed_loop_stop([1] * int(4.0 / TICK_S), **rule) == "max_s"  # ... up to slow_max_s


def test_users_split_evenly_across_workers() -> None:
    assert split_users(8, 2) == [4, 4]
    assert split_users(5, 3) == [2, 2, 1]
    assert split_users(1, 3) == [1, 0, 0]


def test_one_local_worker_is_the_single_driver(tmp_path) -> None:
    one = make_load_generator(workers=1, cpus=(), log_dir=tmp_path, env={})
    assert type(one) is LoadGenerator
    two = make_load_generator(workers=2, cpus=(), log_dir=tmp_path, env={})
    assert isinstance(two, DistributedLoad) and two.processes == 2
    remote = make_load_generator(workers=0, cpus=(), log_dir=tmp_path, env={}, pool=PoolOptions(expect_workers=3))
    assert isinstance(remote, DistributedLoad) and remote.processes == 3
    with pytest.raises(sc.ScenarioError, match="expect-workers"):
        make_load_generator(workers=0, cpus=(), log_dir=tmp_path, env={})
    with pytest.raises(ValueError, match="one driver process"):
        LoadGenerator(processes=2, cpus=(), log_dir=tmp_path, env={})


def test_master_bind() -> None:
    assert parse_bind("") == ("127.0.0.1", 0)
    assert parse_bind("0.0.0.0:5557") == ("0.0.0.0", 5557)
    assert parse_bind("10.0.0.5") == ("10.0.0.5", 0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind("host:port")


def _scenario(load: dict) -> sc.Scenario:
    return sc.parse(
        {
            "name": "t",
            "load": {"users": [1], **load},
            "setups": [{"name": "uvicorn"}],
            "workloads": {"noio": {"variants": ["sync", "async"]}},
        }
    )


def test_load_processes_is_the_deprecated_name_of_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert _scenario({}).load.workers == 1
    assert _scenario({"workers": 3}).load.workers == 3
    assert _scenario({"processes": 2}).load.workers == 2
    assert "load.processes is deprecated: use load.workers" in capsys.readouterr().err
    with pytest.raises(sc.ScenarioError, match=r"load\.workers only"):
        _scenario({"processes": 2, "workers": 3})
    with pytest.raises(sc.ScenarioError, match=r"load\.workers"):
        _scenario({"workers": -1})
    assert "processes" not in _scenario({"processes": 2}).to_dict()["load"]


def test_command_line_workers_and_the_deprecated_processes(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    opts = scenario_options(parser.parse_args(["run", "quick", "--workers", "3"]))
    assert opts.overrides.workers == 3 and opts.pool is None
    opts = scenario_options(parser.parse_args(["run", "quick", "--processes", "2"]))
    assert opts.overrides.workers == 2
    assert "--processes is deprecated: use --workers" in capsys.readouterr().err
    opts = scenario_options(
        parser.parse_args(["run", "quick", "--workers", "0", "--expect-workers", "2", "--master-bind", "0.0.0.0:5557"])
    )
    assert opts.pool == PoolOptions(expect_workers=2, master_bind="0.0.0.0:5557")
    scenario = sc.load("quick", opts.overrides)
    assert scenario.load.workers == 0


def test_a_baseline_that_recorded_processes_compares_with_workers() -> None:
    from dataclasses import replace

    from asyncbench.gate.compat import check_scenario
    from tests.synthetic import make_run

    base = make_run([])
    old = dict(base.scenario_resolved)
    old["load"] = {k: v for k, v in old.get("load", {}).items() if k != "workers"} | {"processes": 1}
    new = dict(base.scenario_resolved)
    new["load"] = {k: v for k, v in new.get("load", {}).items() if k != "processes"} | {"workers": 1}
    refusals, _ = check_scenario(replace(base, scenario_resolved=old), replace(base, scenario_resolved=new), [])
    assert not [r for r in refusals if "workers" in r or "processes" in r], refusals
