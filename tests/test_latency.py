"""Latency at the same load, without servers: the rates, the scenario table,
the stored curves, the comparison and its sentence, the report section."""

import dataclasses
import json

import pytest

from asyncbench.analysis.latency import curve_stats, latency_verdict, plan_points, rate_at
from asyncbench.model import results
from asyncbench.model.latency import LATENCY_VERSION, ArmCapacity
from asyncbench.model.scenario import ScenarioError, parse
from asyncbench.render.report import render_report
from asyncbench.render.sections_latency import latency_claim
from tests.synthetic import make_cell, make_latency_curves, make_run, spread

CAPS = {
    "gunicorn-gthread/sync": ("sync", 400.0),
    "uvicorn/async": ("async", 1000.0),
}


def _cap(arm, kind, rps):
    setup, variant = arm.split("/")
    return ArmCapacity(setup, variant, kind, rps, "closed loop", 32, 5)


# ------------------------------------------------------------------ rates


def test_rate_at_is_the_fraction_to_three_significant_figures():
    assert rate_at(0.25, 1000.0) == 250.0
    assert rate_at(0.9, 1234.5) == 1110.0
    assert rate_at(0.75, 53.3) == 40.0
    assert rate_at(0.5, 47.77) == 23.9
    # never below one request a second
    assert rate_at(0.25, 2.0) == 1.0
    for f, cap in ((0.25, 871.3), (0.9, 61.7), (0.5, 12_345.0)):
        assert rate_at(f, cap) == pytest.approx(f * cap, rel=0.005)


def test_points_are_own_fractions_and_the_slowest_arms_rates_for_everyone():
    caps = [_cap("gunicorn-gthread/sync", "sync", 400.0), _cap("uvicorn/async", "async", 1000.0)]
    pts = plan_points(caps, (0.25, 0.5, 0.75, 0.9), equal_load=True)
    by = {(p.arm, p.rate_rps): p for p in pts}
    # the fast arm: its own fractions, and the slow arm's rates
    fast = sorted(r for a, r in by if a == "uvicorn/async")
    assert fast == [100.0, 200.0, 250.0, 300.0, 360.0, 500.0, 750.0, 900.0]
    assert by[("uvicorn/async", 250.0)].of_arm == "uvicorn/async" and not by[("uvicorn/async", 250.0)].equal_load
    assert by[("uvicorn/async", 300.0)].of_arm == "gunicorn-gthread/sync" and by[("uvicorn/async", 300.0)].equal_load
    # the slowest arm's own points are its equal-load points: measured once each
    slow = [p for p in pts if p.arm == "gunicorn-gthread/sync"]
    assert [p.rate_rps for p in slow] == [100.0, 200.0, 300.0, 360.0]
    assert all(p.equal_load and p.of_arm == "gunicorn-gthread/sync" for p in slow)
    # every equal-load rate is offered to every arm
    equal = {(p.arm, p.rate_rps) for p in pts if p.equal_load}
    assert equal == {(a, r) for a in ("gunicorn-gthread/sync", "uvicorn/async") for r in (100.0, 200.0, 300.0, 360.0)}


def test_the_equal_rates_come_from_the_slower_twin_not_a_pathological_arm():
    caps = [
        _cap("gunicorn-gthread/sync", "sync", 400.0),
        _cap("uvicorn/sync", "sync", 40.0),  # serialised on one thread under ASGI
        _cap("uvicorn/async", "async", 1000.0),
    ]
    pts = plan_points(caps, (0.25, 0.5, 0.75, 0.9), equal_load=True)
    equal = [p for p in pts if p.equal_load]
    # the best sync arm (400) is slower than the best async one (1000): its rates for everyone
    assert {p.of_arm for p in equal} == {"gunicorn-gthread/sync"}
    assert sorted({p.rate_rps for p in equal}) == [100.0, 200.0, 300.0, 360.0]
    # the slow arm is offered them too, but one far past its capacity is listed, not measured
    slow = {p.rate_rps: p for p in equal if p.arm == "uvicorn/sync"}
    assert set(slow) == {100.0, 200.0, 300.0, 360.0}
    assert all(p.skip.startswith("not measured: ") for p in slow.values())
    assert "250% of this arm's capacity (40.0 req/s)" in slow[100.0].skip
    assert not any(p.skip for p in pts if p.arm != "uvicorn/sync" or not p.equal_load)


def test_with_one_kind_the_slowest_arm_sets_the_equal_rates():
    caps = [_cap("a/sync", "sync", 400.0), _cap("b/sync-threads", "sync", 300.0)]
    pts = plan_points(caps, (0.5,), equal_load=True)
    assert {(p.arm, p.rate_rps, p.of_arm) for p in pts if p.equal_load} == {
        ("a/sync", 150.0, "b/sync-threads"),
        ("b/sync-threads", 150.0, "b/sync-threads"),
    }


def test_without_equal_load_each_arm_gets_only_its_own_fractions():
    caps = [_cap("a/sync", "sync", 400.0), _cap("b/async", "async", 1000.0)]
    pts = plan_points(caps, (0.5, 0.9), equal_load=False)
    assert sorted((p.arm, p.rate_rps) for p in pts) == [
        ("a/sync", 200.0),
        ("a/sync", 360.0),
        ("b/async", 500.0),
        ("b/async", 900.0),
    ]
    assert not any(p.equal_load for p in pts)


# ------------------------------------------------------------------ the scenario table


def _scenario(latency=None):
    data = {
        "name": "t",
        "load": {"users": [4]},
        "setups": [{"name": "uvicorn"}],
        "workloads": {"noio": {"variants": ["sync", "async"]}},
    }
    if latency is not None:
        data["latency"] = latency
    return parse(data)


def test_latency_is_off_unless_the_scenario_has_the_table():
    s = _scenario()
    assert s.latency is None
    assert "latency" not in s.to_dict()
    on = _scenario({})
    assert on.latency is not None and on.latency.fractions == (0.25, 0.5, 0.75, 0.9)
    assert on.latency.equal_load and on.latency.arrival == "poisson"
    assert on.to_dict()["latency"]["fractions"] == (0.25, 0.5, 0.75, 0.9)
    assert _scenario({"fractions": [0.9, 0.3], "blocks": 4}).latency.fractions == (0.3, 0.9)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"fractions": [0]}, ["latency.fractions", "(0, 2]"]),
        ({"fractions": [2.5]}, ["latency.fractions", "2.5"]),
        ({"fractions": []}, ["latency.fractions", "empty"]),
        ({"fractions": [0.5, 0.5]}, ["latency.fractions", "duplicate"]),
        ({"fractions": ["half"]}, ["latency.fractions", "'half'"]),
        ({"blocks": 2}, ["latency.blocks", ">= 3"]),
        ({"arrival": "bursty"}, ["latency.arrival", "uniform, poisson"]),
        ({"workloads": ["fanout"]}, ["latency.workloads", "'fanout'", "allowed: noio"]),
        ({"rate": 5}, ["latency", "unknown key 'rate'", "fractions"]),
        ({"equal_load": "yes"}, ["latency.equal_load", "expected bool"]),
        ({"connections": -1}, ["latency.connections", ">= 0"]),
    ],
)
def test_bad_latency_tables_name_the_key_and_the_allowed_values(table, words):
    with pytest.raises(ScenarioError) as err:
        _scenario(table)
    for w in words:
        assert w in str(err.value)


# ------------------------------------------------------------------ stored curves


def _queue(cap_by_arm):
    """An M/M/1-ish shape: latency grows as the rate nears the arm's capacity."""

    def f(arm, rate):
        rho = min(rate / cap_by_arm[arm], 0.99)
        base = 1000.0 / cap_by_arm[arm]
        return base / (1 - rho), 4 * base / (1 - rho), 0

    return f


def _curves(**kw):
    return make_latency_curves("noio", CAPS, _queue({a: c for a, (_, c) in CAPS.items()}), **kw)


def test_curves_round_trip_through_results_json_and_old_files_load_without_them(tmp_path):
    cells = [make_cell("uvicorn", "noio", "async", 4, spread(1000.0, 5))]
    run = dataclasses.replace(make_run(cells), latency=(_curves(),))
    results.save_run(run, tmp_path)
    back = results.load_run(tmp_path)
    assert back.latency == run.latency
    assert back.latency[0].version == LATENCY_VERSION
    # a file written before the phase existed: no "latency" key at all
    d = json.loads(results.results_path(tmp_path).read_text())
    del d["latency"]
    assert results.from_dict(d).latency == ()
    # a curve of a later section version is left out; the run is still read
    d["latency"] = [{**json.loads(json.dumps(results.to_dict(run)["latency"][0])), "version": LATENCY_VERSION + 1}]
    later = results.from_dict(d)
    assert later.latency == () and later.cells == back.cells


# ------------------------------------------------------------------ the comparison and its sentence


def test_verdict_is_at_the_highest_equal_rate_both_sides_kept_up():
    v = latency_verdict(_curves())
    # equal-load rates: 0.25..0.9 of the slower arm (the sync one, 400 req/s)
    assert v.rate == 360.0
    assert v.async_side.point.arm == "uvicorn/async" and v.sync_side.point.arm == "gunicorn-gthread/sync"
    assert v.sync_fraction == pytest.approx(0.9)
    # sync at 90% of its capacity queues; async at 36% of its own does not
    assert v.async_side.p99.value < v.sync_side.p99.value
    assert v.separated == "faster"
    s = latency_claim(v)
    assert s.startswith("At 360 req/s (90% of sync's capacity), async answers in ")
    a99, y99 = v.async_side.p99.value, v.sync_side.p99.value
    assert f"async answers in {a99:.3g} ms p99 vs {y99:.3g} ms (sync)" in s
    assert "uvicorn/async" in s and "gunicorn-gthread/sync" in s and "faster" in s


def test_a_point_that_lost_requests_is_labelled_and_never_chosen():
    def lossy(arm, rate):
        p50, p99, _ = _queue({a: c for a, (_, c) in CAPS.items()})(arm, rate)
        return p50, p99, (5 if arm == "gunicorn-gthread/sync" and rate >= 300 else 0)

    curves = make_latency_curves("noio", CAPS, lossy)
    stats = {(s.point.arm, s.point.rate_rps): s for s in curve_stats(curves)}
    past = stats[("gunicorn-gthread/sync", 360.0)]
    assert not past.held and "past capacity: 25 dropped of 1,800 due" in past.label
    v = latency_verdict(curves)
    assert v.rate == 200.0  # the highest rate the sync arm held
    assert v.sync_fraction == pytest.approx(0.5)


def test_an_arm_offered_more_than_its_capacity_says_so():
    curves = make_latency_curves("noio", CAPS, _queue({a: c for a, (_, c) in CAPS.items()}), fractions=(0.5, 1.2))
    over = next(s for s in curve_stats(curves) if s.point.arm == "uvicorn/async" and s.point.rate_rps == 1200.0)
    assert "above its measured capacity (120%)" in over.label


def test_no_comparison_without_both_kinds_or_when_nothing_held():
    only_sync = make_latency_curves("noio", {"a/sync": ("sync", 100.0)}, lambda a, r: (1.0, 2.0, 0))
    v = latency_verdict(only_sync)
    assert v.rate is None and "sync and an async arm" in latency_claim(v)
    none_held = make_latency_curves("noio", CAPS, lambda a, r: (1.0, 2.0, 1))
    v = latency_verdict(none_held)
    assert v.rate is None and latency_claim(v).startswith("No comparison at the same load: at no equal-load rate")


def test_overlapping_intervals_claim_no_difference():
    same = make_latency_curves("noio", CAPS, lambda a, r: (1.0, 2.0, 0))
    v = latency_verdict(same)
    assert v.separated == "" and "no difference claimed" in latency_claim(v)


def test_the_p99_interval_comes_from_the_slices():
    (s,) = [x for x in curve_stats(_curves(slices=5)) if x.point.arm == "uvicorn/async" and x.point.rate_rps == 100.0]
    assert s.slices == 5 and s.p99.n == 5
    assert s.p99.lo < s.p99.value < s.p99.hi
    (two,) = [x for x in curve_stats(_curves(slices=2)) if x.point.arm == "uvicorn/async" and x.point.rate_rps == 100.0]
    assert two.p99.lo is None and two.p99.hi is None  # no interval from two slices


# ------------------------------------------------------------------ the report


def test_report_has_the_section_with_its_sentence_chart_and_points():
    cells = [
        make_cell("uvicorn", "noio", "async", 4, spread(1000.0, 5)),
        make_cell("gunicorn-gthread", "noio", "sync", 4, spread(400.0, 5)),
    ]
    run = dataclasses.replace(make_run(cells), latency=(_curves(),))
    html = render_report(run)
    assert 'id="latency-load"' in html and "Latency at the same load" in html
    assert "At 360 req/s (90% of sync&#39;s capacity), async answers in" in html
    assert 'id="latency-load-noio"' in html and "latency vs offered rate" in html
    assert html.count("<svg") >= 1
    # an arm far slower than the twins: its equal-load points listed as not measured
    caps = {**CAPS, "uvicorn/sync": ("sync", 40.0)}
    slow = make_latency_curves("noio", caps, lambda a, r: (1.0, 2.0, 0))
    html = render_report(dataclasses.replace(make_run(cells), latency=(slow,)))
    assert html.count("not measured: ") == 4
    bare = render_report(make_run(cells))
    assert "This run measured no latency curves" in bare


def test_an_unfinished_request_is_lost_once():
    """The open-model driver files an unanswered request both as `unfinished`
    and as a failure "unfinished": it is one request lost, not two."""
    from asyncbench.model.latency import LatencySlice

    s = LatencySlice(
        block=0, started_at=0.0, duration_s=1.0, target_rps=100.0, due=100, requests=94,
        failures={"unfinished": 2, "HTTP 500": 1}, dropped=3, unfinished=2, throughput_rps=94.0,
        p50_ms=1.0, p90_ms=2.0, p99_ms=3.0, max_ms=4.0,
    )  # fmt: skip
    assert s.lost == 6 and s.requests + s.lost == s.due
