"""The latency phase end to end: a real server, a view with a fixed service
time (`wait`: a 10-ms sleep), capacity from the run's own closed-loop cells,
open-model slices at fractions of it, the curves in results.json and the report."""

import functools
import math

import pytest

from asyncbench.analysis.latency import curve_stats
from asyncbench.model.results import load_run
from tests import cli

pytestmark = pytest.mark.servers

SLEEP_MS = 10
FRACTIONS = (0.3, 0.9)
BLOCKS = 3
WINDOW_S = 1.0

run_cli = functools.partial(cli.run_cli, timeout=240)


def _scenario(tmp_path):
    p = tmp_path / "latency.toml"
    p.write_text(
        'name = "latency-e2e"\n'
        "[load]\nusers = [4]\nmin_blocks = 3\nmax_blocks = 3\nsettle_s = 0.2\nwindow_s = 1.0\nmax_window_s = 1.0\n"
        "min_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        # two threads: at most two requests in service, so offered load queues as it nears capacity
        '[[setups]]\nname = "gunicorn-gthread"\nworkers = 1\nthreads = 2\n'
        f'[workloads.wait]\nvariants = ["sync", "async"]\nparams = {{ ms = {SLEEP_MS} }}\n'
        f"[latency]\nfractions = {list(FRACTIONS)}\nblocks = {BLOCKS}\nwindow_s = {WINDOW_S}\n"
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n'
    )
    return p


def test_latency_curves_at_fractions_of_measured_capacity(tmp_path):
    reports = tmp_path / "reports"
    done = run_cli("run", str(_scenario(tmp_path)), "--reports-dir", str(reports))
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    (curves,) = run.latency
    assert (curves.workload, curves.params, curves.blocks, curves.stop_reason) == (
        "wait",
        {"ms": SLEEP_MS},
        3,
        "blocks",
    )

    # capacity: each arm's closed-loop throughput from this run's own cells
    cells = {c.variant: c for c in run.cells if c.workload == "wait"}
    assert {c.arm for c in curves.capacities} == {"gunicorn-gthread/sync", "gunicorn-gthread/async"}
    for cap in curves.capacities:
        assert cap.source == "closed loop" and cap.users == 4
        assert cap.capacity_rps == pytest.approx(cells[cap.variant].summary.rps, abs=0.01)

    slowest = min(curves.capacities, key=lambda c: c.capacity_rps)
    for p in curves.points:
        basis = curves.capacity(p.of_arm)
        assert basis is not None
        # the offered rate is the requested fraction of the measured capacity
        assert p.fraction in FRACTIONS
        assert p.rate_rps == pytest.approx(p.fraction * basis.capacity_rps, rel=0.005)
        assert p.of_arm == (slowest.arm if p.equal_load else p.arm)
        assert p.error is None and len(p.slices) == BLOCKS
        assert sorted(s.block for s in p.slices) == list(range(BLOCKS))
        due = sum(s.due for s in p.slices)
        expected = p.rate_rps * WINDOW_S * BLOCKS
        # Poisson arrivals: the count due is the rate's, within the generator's (seeded) randomness
        assert abs(due - expected) <= 4 * math.sqrt(expected) + BLOCKS
        for s in p.slices:
            assert s.target_rps == pytest.approx(p.rate_rps)
            assert s.requests + s.lost == s.due
            # latency runs from the intended send: never less than the view's own sleep
            assert s.p50_ms is not None and s.p50_ms >= SLEEP_MS
            assert s.p50_ms <= s.p99_ms <= s.max_ms
    # every arm ran at every equal-load rate; each arm at its own fractions
    equal = {p.rate_rps for p in curves.points if p.equal_load}
    assert len(equal) == len(FRACTIONS)
    for cap in curves.capacities:
        mine = {p.rate_rps for p in curves.points if p.arm == cap.arm}
        assert equal <= mine
        assert len(mine) == (len(FRACTIONS) if cap.arm == slowest.arm else 2 * len(FRACTIONS))

    # two threads with a fixed service time: at 90% of capacity requests queue, at 30% they rarely do;
    # the median says so (a p99 of ~50 requests at 30% is their maximum: one stall of a busy machine)
    stats = curve_stats(curves)
    for arm in ("gunicorn-gthread/sync", "gunicorn-gthread/async"):
        own = sorted((s for s in stats if s.point.arm == arm and s.point.of_arm == arm), key=lambda s: s.point.rate_rps)
        low, high = own[0], own[-1]
        assert low.p50 is not None and high.p50 is not None and low.p99 is not None and high.p99 is not None
        assert high.p50.value > low.p50.value
        assert high.p99.value >= 0.8 * low.p99.value

    page = (reports / "latest" / "index.html").read_text()
    assert "Latency at the same load" in page and 'id="latency-load-wait"' in page
