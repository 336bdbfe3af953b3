"""The flags of a measured window and of a cell, on made-up measurements."""

from __future__ import annotations

import pytest

from asyncbench.execute.checks import WindowProbe, cell_flags, make_repeat, repeat_flags
from asyncbench.execute.load import Measurement
from asyncbench.execute.monitor import WindowUsage
from asyncbench.model import flags
from asyncbench.model import scenario as sc
from asyncbench.model.histogram import Histogram
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


# --- the audit's defects -----------------------------------------------------------


def busy_probe(busy: float | None, cpus: tuple[int, ...] = (1,), upstream: float | None = 5.0) -> WindowProbe:
    usage = WindowUsage(cpu_s=1.0, cpu_percent=50.0, rss_peak_mb=80.0, worker_changes=0, alive=True)
    return WindowProbe(
        server=usage, upstream_cpu_percent=upstream, generator_cores_busy_percent=busy, generator_cpus=cpus
    )


@pytest.mark.parametrize("busy", [90.0, 97.5, 100.0])
def test_busy_generator_cpus_flag_the_window_whoever_used_them(busy: float) -> None:
    """locust (40%) and the upstream (5%) alone are far from the limit; the
    runner, its monitor threads or anything else made the generator's CPU
    busy: the window is generator-bound all the same, and says why."""
    found = repeat_flags(measurement(cpu=40.0), busy_probe(busy), 8, SCENARIO, ceiling_rps=None)
    assert codes(found) == [flags.GENERATOR_BOUND]
    assert f"{busy:.0f}% busy" in found[0].message and "the runner" in found[0].message


def test_generator_cpus_below_the_limit_do_not_flag() -> None:
    assert repeat_flags(measurement(cpu=40.0), busy_probe(89.0), 8, SCENARIO, ceiling_rps=None) == []


def test_a_timed_out_drain_flags_the_next_window_on_that_server() -> None:
    from asyncbench.execute.servers import Drain

    late = repeat_flags(measurement(), probe(), 8, SCENARIO, None, previous_drain=Drain(15.0, timed_out=True))
    assert codes(late) == [flags.BACKLOG]
    assert "15.0 s" in late[0].message
    on_time = Drain(0.4, timed_out=False)
    assert repeat_flags(measurement(), probe(), 8, SCENARIO, None, previous_drain=on_time) == []


@pytest.mark.parametrize("cause", ["database unreachable", "upstream unreachable"])
def test_an_outage_is_named_instead_of_few_requests(cause: str) -> None:
    """A service the view needs was down: the requests failed fast with the
    site's 503, so few succeeded. The flag names the outage, not few-requests."""
    m = measurement(requests=3, failures={f"HTTP 503: {cause}": 900, "ConnectionRefusedError": 2})
    found = repeat_flags(m, probe(), 8, SCENARIO, ceiling_rps=None)
    assert codes(found) == [flags.OUTAGE, flags.FAILURES]
    assert found[0].message.startswith(f"{cause}: 900 of 905 requests")
    assert flags.policy(flags.OUTAGE).verdicts is flags.InVerdicts.EXCLUDE
    assert flags.blocks_gate(found[0])


def test_both_outages_are_named() -> None:
    m = measurement(failures={"HTTP 503: database unreachable": 2, "HTTP 503: upstream unreachable": 1})
    found = repeat_flags(m, probe(), 8, SCENARIO, ceiling_rps=None)
    assert [f.message.split(":")[0] for f in found if f.code == flags.OUTAGE] == [
        "database unreachable",
        "upstream unreachable",
    ]


def test_the_gate_and_the_verdicts_read_one_policy_for_every_new_code() -> None:
    from asyncbench.gate import decide
    from tests.synthetic import make_cell

    for code in (flags.OUTAGE, flags.BACKLOG):
        p = flags.policy(code)
        assert p is flags.POLICY[code] and p is not flags.UNKNOWN
        assert p.verdicts is flags.InVerdicts.EXCLUDE and p.gate is flags.InGate.BLOCK
        cell = make_cell("uvicorn", "orm", "async", 8, [100.0] * 6, repeat_flags={0: [(code, "x")]})
        # the verdicts exclude it and the gate blocks on it, both from model.flags
        assert flags.is_excluded(cell)
        problems, warnings = decide._cell_problems(cell, "current")
        assert problems and not warnings
