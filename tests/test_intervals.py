"""The slice-and-block statistics: intervals, the best-pair correction, the
stopping rule's input, per-arm summaries of version-2 cells, and the words."""

from __future__ import annotations

import math
import random
from statistics import fmean, stdev

import pytest
from scipy.stats import t as student_t

from asyncbench.analysis import intervals
from asyncbench.analysis.comparison import WINS
from asyncbench.analysis.precision import group_ratios, widest_precision
from asyncbench.analysis.verdict import OUTCOME_PAYS_OFF, workload_verdict
from asyncbench.render import text
from asyncbench.render.report import render_report
from tests.synthetic import make_cell, make_group, make_run, v2_cell


def test_paired_log_ratio_is_the_t_interval_of_log_differences() -> None:
    num = {0: 110.0, 1: 121.0, 2: 105.0, 3: 118.0}
    den = {0: 100.0, 1: 104.0, 2: 99.0, 3: 103.0, 9: 50.0}  # block 9 has no partner: left out
    r = intervals.paired_log_ratio(num, den)
    assert r is not None and r.n == 4 and r.m == 1
    d = [math.log(num[b] / den[b]) for b in range(4)]
    half = float(student_t.ppf(0.975, 3)) * stdev(d) / 2.0
    assert r.point == pytest.approx(math.exp(fmean(d)))
    assert (r.lo, r.hi) == pytest.approx((math.exp(fmean(d) - half), math.exp(fmean(d) + half)))
    assert r.precision == pytest.approx(math.exp(half) - 1)


def test_fewer_than_three_common_blocks_give_no_interval() -> None:
    assert intervals.paired_log_ratio({0: 1.0, 1: 2.0, 5: 3.0}, {0: 1.0, 1: 2.0, 6: 3.0}) is None


def test_99_and_95_percent_differ_and_bonferroni_widens() -> None:
    num, den = {b: 100.0 + (b * 7) % 5 for b in range(10)}, {b: 90.0 + (b * 3) % 4 for b in range(10)}
    r95 = intervals.paired_log_ratio(num, den)
    r99 = intervals.paired_log_ratio(num, den, confidence=0.99)
    r95m4 = intervals.paired_log_ratio(num, den, m=4)
    assert r95 and r99 and r95m4
    assert r99.precision > r95.precision
    assert r95m4.precision > r95.precision and r95m4.m == 4
    # m = 5 candidate pairs at 95% is each pair at 99%
    assert intervals.paired_log_ratio(num, den, m=5).precision == pytest.approx(r99.precision)  # type: ignore[union-attr]


def test_paired_interval_covers_the_truth_at_about_the_nominal_rate() -> None:
    # A/A: two names for the same arm, 15% noise shared within a block plus 5% of its own.
    rng = random.Random(7)
    covered = 0
    trials = 400
    for _ in range(trials):
        speed = [math.exp(rng.gauss(0, 0.15)) for _ in range(8)]
        a = {b: 1000 * s * math.exp(rng.gauss(0, 0.05)) for b, s in enumerate(speed)}
        b_ = {b: 1000 * s * math.exp(rng.gauss(0, 0.05)) for b, s in enumerate(speed)}
        r = intervals.paired_log_ratio(a, b_)
        assert r is not None
        covered += r.lo <= 1.0 <= r.hi
    assert 0.92 <= covered / trials <= 0.98


def test_welch_for_unpaired_sides() -> None:
    r = intervals.welch_log_ratio([100.0, 104.0, 98.0, 101.0], [50.0, 49.0, 52.0])
    assert r is not None and r.n == 3 and 1.85 < r.lo < r.point < r.hi < 2.15
    assert intervals.welch_log_ratio([1.0, 2.0], [1.0, 2.0, 3.0]) is None


def _group(users: int = 32, **kw: float) -> list:  # type: ignore[type-arg]
    return [
        v2_cell("uvicorn", "fanout", "async-aiohttp", users, 300.0, params={"calls": 3}),
        v2_cell("uvicorn", "fanout", "async", users, 120.0, params={"calls": 3}),
        v2_cell("gunicorn-gthread", "fanout", "sync", users, 100.0, params={"calls": 3}),
        v2_cell("gunicorn-gthread", "fanout", "sync-threads", users, 200.0, params={"calls": 3}),
    ]


def test_best_pair_is_chosen_on_the_pilot_and_estimated_on_the_later_blocks() -> None:
    v = workload_verdict(make_run(_group()), "fanout")
    head = v.head
    assert head is not None and head.outcome == WINS
    # chosen on blocks 0-1, estimated on blocks 2-11: no correction needed
    assert head.chosen_on_pilot and head.m == 1 and head.blocks == 12 - intervals.PILOT_BLOCKS and head.paired
    assert head.precision is not None and "±" in text.sentence(v)


def test_without_enough_later_blocks_the_choice_is_corrected_instead() -> None:
    short = [
        v2_cell(c.setup, c.workload, c.variant, c.users, c.summary.rps or 0.0, n_blocks=4, params=c.params)
        for c in _group()
    ]
    head = workload_verdict(make_run(short), "fanout").head
    assert head is not None and not head.chosen_on_pilot
    # 2 async arms x 2 sync arms chosen on every block: the interval is at 1 - 0.05/4
    assert head.m == 4 and head.blocks == 4


def test_the_pilot_choice_stands_even_when_later_blocks_favour_another_arm() -> None:
    # async-aiohttp leads in the pilot, httpx's arm afterwards: the estimate is of the pilot's choice
    lead = make_cell("uvicorn", "fanout", "async-aiohttp", 32, [300, 300, 100, 100, 100, 100], blocks=list(range(6)))
    late = make_cell("uvicorn", "fanout", "async", 32, [200, 200, 250, 250, 250, 250], blocks=list(range(6)))
    sync = make_cell("gunicorn-gthread", "fanout", "sync", 32, [100, 100, 101, 99, 100, 100], blocks=list(range(6)))
    head = workload_verdict(make_run([lead, late, sync]), "fanout").head
    assert head is not None and head.num is not None and head.num.cell.variant == "async-aiohttp"
    assert head.chosen_on_pilot and head.ratio is not None and 0.95 < head.ratio < 1.05


def test_group_ratios_are_the_verdicts_own_numbers() -> None:
    cells = _group()
    est = {e.name: e for e in group_ratios(cells)}
    assert set(est) == {
        "async/sync",
        "HTTP client: aiohttp/httpx",
        "HTTP client: aiohttp/sync",
        "HTTP client: httpx/sync",
        "concurrency: async/sync-threads (the calls in a thread pool)",
    }
    v = workload_verdict(make_run(cells), "fanout")
    head = v.head
    assert head is not None and head.ci is not None
    e = est["async/sync"]
    assert (e.ratio, e.lo, e.hi, e.precision, e.n_blocks) == (head.ratio, *head.ci, head.precision, head.blocks)
    note = v.contrasts[0].comparison
    assert est["HTTP client: aiohttp/httpx"].precision == note.precision
    assert widest_precision(est.values()) == max(x.precision for x in est.values() if x.precision is not None)


def test_group_ratios_edge_cases() -> None:
    assert group_ratios([]) == []
    only_sync = [v2_cell("gunicorn-gthread", "noio", "sync", 8, 100.0)]
    assert group_ratios(only_sync) == []
    assert widest_precision([]) is None
    few = [v2_cell("uvicorn", "noio", "async", 8, 90.0, n_blocks=2), v2_cell("g", "noio", "sync", 8, 100.0, n_blocks=2)]
    (e,) = group_ratios(few)
    assert e.precision is None and widest_precision([e]) == math.inf


def test_group_ratios_compare_within_each_revision() -> None:
    cells = [
        v2_cell("uvicorn", "noio", "async", 8, 90.0, revision="base"),
        v2_cell("gunicorn-sync", "noio", "sync", 8, 100.0, revision="base"),
        v2_cell("uvicorn", "noio", "async", 8, 95.0, revision="head", seed=2),
        v2_cell("gunicorn-sync", "noio", "sync", 8, 100.0, revision="head", seed=2),
    ]
    names = [e.name for e in group_ratios(cells)]
    assert names == ["base: async/sync", "head: async/sync"]


def test_v2_summary_reads_the_merged_histogram_and_marks_thin_p99() -> None:
    c = v2_cell("uvicorn", "noio", "async", 32, 1000.0, samples=5000, p50_ms=20.0, p99_ms=80.0)
    s = c.summary
    assert s.p50_ms == pytest.approx(20.0, rel=0.01) and s.p99_ms == pytest.approx(80.0, rel=0.01)
    assert s.latency_samples == 5000 and not s.p99_thin and s.blocks == 12
    assert s.rps == pytest.approx(fmean(c.throughputs))
    assert s.rps is not None and s.rps_lo is not None and s.rps_hi is not None and s.rps_lo < s.rps < s.rps_hi
    assert s.cpu_ms_per_request == pytest.approx(1.0) and s.cpu_lo is not None
    assert v2_cell("uvicorn", "noio", "async", 32, 1000.0, samples=900).summary.p99_thin


def test_thin_p99_is_shown_but_never_compared() -> None:
    cells = [
        v2_cell("uvicorn", "noio", "async", 8, 300.0, samples=600),
        v2_cell("gunicorn-sync", "noio", "sync", 8, 100.0),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.head is not None and v.head.p99_thin and v.p99_ratio is None
    assert "p99 not compared (thin: fewer than 1,000 samples)" in text.sentence(v)


def test_precision_not_reached_is_said_with_the_reason() -> None:
    cells = [v2_cell("uvicorn", "noio", "async", 8, 300.0), v2_cell("gunicorn-sync", "noio", "sync", 8, 100.0)]
    late = make_group("noio", 8, stop_reason="budget", precision_achieved=0.072)
    v = workload_verdict(make_run(cells, groups=[late]), "noio")
    assert v.group == late and v.precision_missed
    assert text.sentence(v).endswith("precision not reached (±7.2%): budget")
    done = make_group("noio", 8, precision_achieved=0.03)
    assert "precision not reached" not in text.sentence(workload_verdict(make_run(cells, groups=[done]), "noio"))


def _levels(ratios: dict[int, float | None]) -> list:  # type: ignore[type-arg]
    out = []
    for u, r in ratios.items():
        if r is None:  # too few blocks at this level
            out += [make_cell("uvicorn", "noio", "async", u, [90.0]), make_cell("g", "noio", "sync", u, [100.0])]
        else:
            out += [v2_cell("uvicorn", "noio", "async", u, 100.0 * r), v2_cell("g", "noio", "sync", u, 100.0)]
    return out


def test_sentence_names_levels_where_the_other_direction_held() -> None:
    v = workload_verdict(make_run(_levels({1: 0.6, 8: 1.0, 32: 2.0, 64: 2.5})), "noio")
    assert v.outcome == OUTCOME_PAYS_OFF
    s = text.sentence(v)
    assert "from 32 users up" in s and "async behind at 1 user" in s and "every load level" not in s
    costs = text.sentence(workload_verdict(make_run(_levels({1: 1.8, 8: 0.5, 32: 0.4})), "noio"))
    assert "async costs from 8 users up" in costs and "async ahead at 1 user" in costs


def test_every_load_level_only_when_every_level_agrees() -> None:
    agree = text.sentence(workload_verdict(make_run(_levels({1: 2.0, 8: 2.0, 32: 2.0})), "noio"))
    assert "at every load level tested (1–32 users)" in agree
    # a level without a decision in between: not "every load level"
    gap = text.sentence(workload_verdict(make_run(_levels({1: 2.0, 8: None, 32: 2.0})), "noio"))
    assert "every load level" not in gap and "no claim at 8 users" in gap


def test_version_1_runs_are_labelled() -> None:
    cells = [make_cell("uvicorn", "noio", "async", 8, [90.0, 91, 92]), make_cell("g", "noio", "sync", 8, [100.0] * 3)]
    page = render_report(make_run(cells, schema_version=1))
    assert "version-1 results: 3 repeats read as 3 blocks; intervals are wide" in page
    assert "Old results:" in page and "Old results:" not in render_report(make_run(cells))


def test_after_the_pilot_only_the_arms_some_ratio_compares_keep_running() -> None:
    from asyncbench.analysis.precision import chosen_arms

    slow_sync = v2_cell("uvicorn", "fanout", "sync", 32, 50.0, params={"calls": 3})
    cells = [*_group(), slow_sync]
    chosen = chosen_arms(cells)
    # best async (aiohttp) and best sync (sync-threads) for the verdict; httpx for the HTTP-client note
    assert {c.variant for c in cells if c.key in chosen} == {"async-aiohttp", "async", "sync-threads"}
    assert slow_sync.key not in chosen and chosen_arms([]) == set()
