"""The flags of a measured window and of a cell, on made-up measurements."""

from __future__ import annotations

import pytest

from asyncbench.execute.checks import WindowProbe, cell_flags, make_repeat, repeat_flags
from asyncbench.execute.histogram import Histogram
from asyncbench.execute.load import Measurement
from asyncbench.execute.monitor import WindowUsage
from asyncbench.model import flags
from asyncbench.model import scenario as sc
from asyncbench.model.results import Flag

SCENARIO = sc.load("ci")


def measurement(
    *, rps: float = 1000.0, requests: int = 5000, cpu: float = 40.0, failures: dict[str, int] | None = None
) -> Measurement:
    h = Histogram()
    for us in (900.0, 1000.0, 1100.0):
        h.record(us)
    return Measurement(
        started_at=0.0, duration_s=5.0, warmup_s=1.0, requests=requests, throughput_rps=rps,
        failures=failures or {}, histogram=h, series=[], locust={}, generator_cpu_percent=cpu,
        generator_cpu_peak_percent=cpu, stop_reason="stable",
    )  # fmt: skip


def probe(*, alive: bool = True, worker_changes: int = 0, upstream: float | None = None) -> WindowProbe:
    usage = WindowUsage(cpu_s=1.0, cpu_percent=50.0, rss_peak_mb=80.0, worker_changes=worker_changes, alive=alive)
    return WindowProbe(server=usage, upstream_cpu_percent=upstream, generator_cores_busy_percent=None)


def codes(found: list[Flag]) -> list[str]:
    return [f.code for f in found]


def test_a_clean_window_has_no_flags() -> None:
    assert repeat_flags(measurement(), probe(), 8, SCENARIO, ceiling_rps=None) == []


@pytest.mark.parametrize(
    ("m", "p", "ceiling", "code"),
    [
        (measurement(cpu=99.0), probe(), None, flags.GENERATOR_BOUND),
        (measurement(cpu=60.0), probe(upstream=60.0), None, flags.GENERATOR_BOUND),
        (measurement(rps=990.0), probe(), 1000.0, flags.GENERATOR_BOUND),
        (measurement(failures={"ConnectionError": 3}), probe(), None, flags.FAILURES),
        (measurement(), probe(alive=False), None, flags.SERVER_CRASH),
        (measurement(), probe(worker_changes=1), None, flags.SERVER_CRASH),
        (measurement(requests=3), probe(), None, flags.FEW_REQUESTS),
    ],
)
def test_each_rule_flags_its_window(m: Measurement, p: WindowProbe, ceiling: float | None, code: str) -> None:
    assert codes(repeat_flags(m, p, 8, SCENARIO, ceiling_rps=ceiling)) == [code]


def test_a_wide_spread_across_repeats_flags_the_cell() -> None:
    steady = tuple(make_repeat(i, measurement(rps=1000.0 + i), probe(), []) for i in range(4))
    wide = tuple(make_repeat(i, measurement(rps=r), probe(), []) for i, r in enumerate((500.0, 1500.0, 900.0)))
    assert cell_flags(steady, SCENARIO) == []
    assert codes(cell_flags(wide, SCENARIO)) == [flags.UNSTABLE]
