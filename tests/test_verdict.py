"""Verdict logic and number formatting on synthetic runs (no measuring)."""

from __future__ import annotations

import pytest

from asyncbench.analysis.comparison import INSUFFICIENT, LOSES, WINS
from asyncbench.analysis.queueing import model_line
from asyncbench.analysis.verdict import (
    OUTCOME_COSTS,
    OUTCOME_INSUFFICIENT,
    OUTCOME_NO_DIFFERENCE,
    OUTCOME_PAYS_OFF,
    verdicts,
    workload_verdict,
)
from asyncbench.model.results import Cell
from asyncbench.render import text
from asyncbench.render.format import fmt, fmt_level, fmt_ms, fmt_pct, fmt_ratio, fmt_rps
from tests.synthetic import make_cell, make_run, make_setup, spread


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.5, "1,230"),
        (0.4567, "0.457"),
        (3.1, "3.10"),
        (1_234_567, "1,230,000"),
        (999.7, "1,000"),
        (0.0001234, "0.000123"),
        (0, "0"),
        (None, "–"),
        (-18.04, "−18.0"),
        (float("nan"), "–"),
    ],
)
def test_fmt_three_significant_figures(value: float | None, text: str) -> None:
    assert fmt(value) == text


def test_fmt_helpers() -> None:
    assert fmt_ratio(3.1) == "3.10×"
    assert fmt_pct(0.18) == "18.0%"
    assert fmt_pct(0.05, signed=True) == "+5.00%"
    assert fmt_ms(12.345) == "12.3 ms"
    assert fmt_rps(1234.5) == "1,230 req/s"
    assert fmt_level(64) == "64" and fmt_level(1000) == "1,000" and fmt_level(2.5) == "2.50"


def _fanout(ratio: float, users: tuple[int, ...] = (8, 32, 64), repeats: int = 3) -> list[Cell]:
    cells = []
    for u in users:
        cells.append(make_cell("uvicorn", "fanout", "async-aiohttp", u, spread(100.0 * ratio, repeats)))
        cells.append(make_cell("gunicorn-gthread", "fanout", "sync-threads", u, spread(100.0, repeats)))
    return cells


def test_three_times_fanout_speed_up_pays_off() -> None:
    v = workload_verdict(make_run(_fanout(3.0)), "fanout")
    assert v.outcome == OUTCOME_PAYS_OFF
    assert v.ratio == pytest.approx(3.0)
    assert v.ci is not None and v.ci[0] > 1.0
    assert v.crossover == 8
    assert text.sentence(v).startswith("fan-out: async pays off at every load level tested (8–64 users); 3.00× ")
    assert "95% CI" in text.sentence(v) and "p99" in text.sentence(v)


def test_crossover_is_lowest_level_from_which_async_wins_everywhere_above() -> None:
    cells = []
    # loses at 1, tie at 8, wins at 32 and 64
    for u, r in ((1, 0.5), (8, 1.0), (32, 2.0), (64, 3.0)):
        cells.append(make_cell("uvicorn", "fanout", "async", u, spread(100.0 * r)))
        cells.append(make_cell("gunicorn-sync", "fanout", "sync", u, [100.0, 99.0, 101.0]))
    v = workload_verdict(make_run(cells), "fanout")
    assert [c.outcome for c in v.levels] == [LOSES, "no difference", WINS, WINS]
    assert v.crossover == 32
    assert "pays off from 32 users up; 3.00× the throughput of the best sync setup at 64 users" in text.sentence(v)


def test_no_io_twenty_percent_loss_costs() -> None:
    cells = []
    for u in (8, 32):
        cells.append(make_cell("uvicorn", "noio", "async", u, spread(800.0)))
        cells.append(make_cell("gunicorn-sync", "noio", "sync", u, spread(1000.0)))
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_COSTS
    assert v.ratio == pytest.approx(0.8)
    assert "no-I/O: async costs" in text.sentence(v)
    assert "20.0% throughput at 32 users" in text.sentence(v)


def test_single_repeat_makes_no_claim() -> None:
    cells = [
        make_cell("uvicorn", "fanout", "async", 32, 300.0),
        make_cell("gunicorn-sync", "fanout", "sync", 32, 100.0),
    ]
    v = workload_verdict(make_run(cells), "fanout")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert v.levels[0].outcome == INSUFFICIENT and v.levels[0].ci is None
    assert "insufficient data" in text.sentence(v) and "only 1 block in common (need 3)" in text.sentence(v)
    assert "pays off" not in text.sentence(v) and "costs" not in text.sentence(v)


def test_interval_straddling_one_is_no_difference() -> None:
    cells = [
        make_cell("uvicorn", "orm", "async", 32, [90.0, 110.0, 100.0, 95.0, 105.0]),
        make_cell("gunicorn-sync", "orm", "sync", 32, [100.0, 92.0, 108.0, 97.0, 103.0]),
    ]
    v = workload_verdict(make_run(cells), "orm")
    assert v.outcome == OUTCOME_NO_DIFFERENCE
    assert v.ci is not None and v.ci[0] < 1.0 < v.ci[1]
    assert "no difference detected" in text.sentence(v)


def test_failures_cells_are_excluded_and_named() -> None:
    cells = _fanout(3.0)
    # A failing async cell 10x faster must not become the headline.
    cells.append(
        make_cell(
            "gunicorn-uvicorn",
            "fanout",
            "async",
            64,
            spread(1000.0),
            flags=[("failures", "12 of 5000 requests failed")],
        )
    )
    v = workload_verdict(make_run(cells), "fanout")
    assert v.ratio == pytest.approx(3.0)
    assert v.levels[-1].num is not None and v.levels[-1].num.cell.setup == "uvicorn"
    assert "Excluded from claims: gunicorn-uvicorn / async at 64 users (failures)" in text.sentence(v)
    assert v.excluded and "gunicorn-uvicorn" in text.excluded_names(v)[0]
    assert "Excluded from claims" not in text.claim(v)


@pytest.mark.parametrize("code", ["server-crash", "few-requests", "some-future-flag"])
def test_other_hard_flags_are_excluded(code: str) -> None:
    cells = _fanout(3.0)
    cells.append(make_cell("gunicorn-uvicorn", "fanout", "async", 64, spread(50.0), flags=[code]))
    v = workload_verdict(make_run(cells), "fanout")
    assert v.outcome == OUTCOME_PAYS_OFF
    assert any("gunicorn-uvicorn" in f and code in f for f in text.excluded_names(v))
    assert any(x.setup == "gunicorn-uvicorn" for x, _r in v.levels[-1].excluded)


def test_error_cells_are_flagged_too() -> None:
    cells = _fanout(3.0)
    cells.append(make_cell("daphne", "fanout", "async", 64, [], status="error", error="server did not start"))
    v = workload_verdict(make_run(cells), "fanout")
    assert v.outcome == OUTCOME_PAYS_OFF
    assert any("daphne" in f and "error" in f for f in text.excluded_names(v))


def test_unstable_cell_is_used_and_noted() -> None:
    # A wide spread is already in the interval: the cell counts.
    cells = [
        make_cell("uvicorn", "noio", "async", 32, [1000.0, 1200.0, 1400.0], flags=["unstable"]),
        make_cell("gunicorn-sync", "noio", "sync", 32, spread(400.0)),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_PAYS_OFF
    # the geometric mean of the per-block ratios 2.5, 3.06, 3.43
    assert v.ratio == pytest.approx(2.97, rel=0.01)
    assert v.levels[0].num is not None and v.levels[0].num.cell.setup == "uvicorn"
    assert "at least" not in text.sentence(v) and "p99" in text.sentence(v)
    assert not v.excluded and "Excluded" not in text.sentence(v)
    wide = next(n for n in text.notes(v) if n.startswith("Wide spread"))
    assert "uvicorn / async at 32 users (CV 17%)" in wide


def test_generator_bound_faster_side_supports_an_at_least_claim() -> None:
    # The real no-I/O case: sync measured at the generator's limit and still
    # 2.5x faster; the true gap can only be larger.
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(1460.0)),
        make_cell("gunicorn-gthread", "noio", "sync", 32, spread(3650.0), flags=["generator-bound"]),
        make_cell("uvicorn", "noio", "sync", 32, spread(620.0)),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_COSTS
    lvl = v.levels[0]
    assert lvl.outcome == LOSES and lvl.at_least
    assert lvl.den is not None and lvl.den.cell.setup == "gunicorn-gthread"
    assert lvl.p99_ratio is None and lvl.p99_omitted and v.p99_ratio is None
    assert "async costs at least 60.0% throughput at 32 users (95% CI ≥ " in text.sentence(v)
    assert (
        "gunicorn-gthread / sync generator-bound, so its throughput is a lower bound; p99 not compared"
        in text.sentence(v)
    )
    assert "p99 0." not in text.sentence(v) and not v.excluded
    assert any(n.startswith("Generator-bound: gunicorn-gthread / sync at 32 users") for n in text.notes(v))


def test_generator_bound_async_faster_side_wins_at_least() -> None:
    cells = [
        make_cell("uvicorn", "fanout", "async-aiohttp", 64, spread(900.0), flags=["generator-bound"]),
        make_cell("gunicorn-gthread", "fanout", "sync-threads", 64, spread(300.0)),
    ]
    v = workload_verdict(make_run(cells), "fanout")
    assert v.outcome == OUTCOME_PAYS_OFF
    assert (
        "async pays off at 64 users; at least 3.00× the throughput of the best sync setup (95% CI ≥ "
        in text.sentence(v)
    )


def test_generator_bound_slower_side_makes_no_claim() -> None:
    # The async cell hit the generator's limit below sync: it might really be
    # faster, so "async costs" cannot be shown.
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(800.0), flags=["generator-bound"]),
        make_cell("gunicorn-sync", "noio", "sync", 32, spread(1000.0)),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert v.levels[0].outcome == INSUFFICIENT and v.levels[0].ratio == pytest.approx(0.8)
    assert (
        "generator-bound async cell (uvicorn / async) is only a lower bound, so async cannot be shown to lose"
    ) in text.sentence(v)
    assert "costs" not in text.sentence(v)


def test_slower_generator_bound_cell_on_the_losing_side_blocks_a_win() -> None:
    # The clean sync cell is slower than async, but a generator-bound sync cell
    # (true throughput unknown above its reading) could be faster than async.
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(1500.0)),
        make_cell("gunicorn-gthread", "noio", "sync", 32, spread(1000.0)),
        make_cell("gunicorn-sync", "noio", "sync", 32, spread(900.0), flags=["generator-bound"]),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert "so async cannot be shown to win" in text.sentence(v)


def test_generator_bound_with_overlapping_interval_is_no_claim() -> None:
    cells = [
        make_cell("uvicorn", "orm", "async", 32, [90.0, 110.0, 100.0, 95.0, 105.0]),
        make_cell("gunicorn-sync", "orm", "sync", 32, [100.0, 92.0, 108.0, 97.0, 103.0], flags=["generator-bound"]),
    ]
    v = workload_verdict(make_run(cells), "orm")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert "is only a lower bound and the interval includes 1" in text.sentence(v)
    assert "no difference detected" not in text.sentence(v)


def test_excluded_rival_faster_than_best_usable_withholds_the_claim() -> None:
    # The fastest sync cell had failures: a win against the slower usable sync
    # cell could be an artefact of leaving it out.
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(1500.0)),
        make_cell("gunicorn-gthread", "noio", "sync", 32, spread(1000.0)),
        make_cell("gunicorn-sync", "noio", "sync", 32, spread(2500.0), flags=["failures"]),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert "excluded gunicorn-sync / sync (failures) outran the best usable sync cell" in text.sentence(v)


def test_unstable_rival_does_not_withhold_it_is_used() -> None:
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(1500.0)),
        make_cell("gunicorn-gthread", "noio", "sync", 32, spread(1000.0)),
        make_cell("gunicorn-sync", "noio", "sync", 32, [2300.0, 2500.0, 2900.0], flags=["unstable"]),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_COSTS
    assert v.levels[0].den is not None and v.levels[0].den.cell.setup == "gunicorn-sync"
    assert "outran" not in text.sentence(v) and "at least" not in text.sentence(v)


def test_all_excluded_side_is_insufficient() -> None:
    cells = [
        make_cell("uvicorn", "noio", "async", 32, spread(800.0), flags=["server-crash"]),
        make_cell("gunicorn-sync", "noio", "sync", 32, spread(1000.0)),
    ]
    v = workload_verdict(make_run(cells), "noio")
    assert v.outcome == OUTCOME_INSUFFICIENT
    assert "no usable async cell (all excluded)" in text.sentence(v)


def test_variant_notes_separate_client_from_async() -> None:
    cells = []
    for u in (8, 64):
        cells.append(make_cell("uvicorn", "fanout", "async", u, spread(40.0)))  # httpx: CPU-heavy
        cells.append(make_cell("uvicorn", "fanout", "async-aiohttp", u, spread(400.0)))
        cells.append(make_cell("gunicorn-gthread", "fanout", "sync-threads", u, spread(100.0)))
    v = workload_verdict(make_run(cells), "fanout")
    assert v.outcome == OUTCOME_PAYS_OFF
    client = next(n for n in text.notes(v) if n.startswith("HTTP client"))
    assert "aiohttp reaches 10.0× the throughput of httpx" in client
    assert "depends on the HTTP client" in client
    concurrent = next(n for n in text.notes(v) if n.startswith("Concurrent vs async"))
    assert "Async beats overlapping the calls in threads here." in concurrent


def test_orm_and_index_notes() -> None:
    cells = []
    for w, scale in (("json", 1.0), ("json-noindex", 0.1)):
        cells.append(make_cell("uvicorn", w, "async", 16, spread(300.0 * scale)))
        cells.append(make_cell("uvicorn", w, "async-s2a", 16, spread(350.0 * scale)))
        cells.append(make_cell("gunicorn-sync", w, "sync", 16, spread(600.0 * scale)))
    by = {v.workload: v for v in verdicts(make_run(cells))}
    notes = " ".join(text.notes(by["json"]))
    assert "the async ORM API reaches 0.857× the throughput of sync_to_async" in notes
    assert "What the index buys" in notes and "json reaches 10.0× the throughput of json-noindex" in notes


def test_delay_crossover() -> None:
    cells = []
    for d, r in ((1, 0.9), (10, 1.0), (50, 2.0), (200, 3.0)):
        p = {"calls": 3, "delay_ms": d}
        cells.append(make_cell("uvicorn", "fanout", "async-aiohttp", 32, spread(100.0 * r), params=p))
        cells.append(make_cell("gunicorn-sync", "fanout", "sync", 32, [100.0, 99.0, 101.0], params=p))
    # the users axis at the default delay
    for u in (1, 8):
        p = {"calls": 3, "delay_ms": 50}
        cells.append(make_cell("uvicorn", "fanout", "async-aiohttp", u, spread(200.0), params=p))
        cells.append(make_cell("gunicorn-sync", "fanout", "sync", u, spread(100.0), params=p))
    v = workload_verdict(make_run(cells), "fanout")
    assert v.params == (("calls", 3), ("delay_ms", 50))
    assert v.delay_users == 32
    assert v.delay_crossover_ms == 50
    assert "async wins from 50 ms up (tested 1–200 ms)" in text.sentence(v)


def test_model_line_littles_law() -> None:
    setups = {
        "gunicorn-gthread": make_setup("gunicorn-gthread", workers=2, threads=4),
        "uvicorn": make_setup("uvicorn"),
    }
    c = make_cell("gunicorn-gthread", "fanout", "sync", 32, spread(50.0), params={"calls": 3, "delay_ms": 50})
    run = make_run([c], setups=setups)
    m = model_line(run, "gunicorn-gthread", "sync", c)
    assert m is not None and not m.assumed
    assert m.slots == 8 and m.time_per_request_s == pytest.approx(0.15)
    assert m.ceiling_rps == pytest.approx(8 / 0.15)
    assert m.at(4) == pytest.approx(4 / 0.15)
    threads = model_line(run, "gunicorn-gthread", "sync-threads", c)
    assert threads is not None and threads.ceiling_rps == pytest.approx(160.0)
    assert model_line(run, "uvicorn", "async", c) is None


def test_model_line_reads_the_scenario_then_assumes() -> None:
    c = make_cell("gunicorn-sync", "fanout", "sync", 8, spread(5.0))
    run = make_run(
        [c], scenario_resolved={"upstream": {"delay_ms": 20}, "workloads": {"fanout": {"params": {"calls": 5}}}}
    )
    m = model_line(run, "gunicorn-sync", "sync", c)
    assert m is not None and (m.calls, m.delay_ms, m.assumed) == (5, 20.0, False)
    bare = make_run([c], scenario_resolved={"upstream": {}, "workloads": {}})
    m2 = model_line(bare, "gunicorn-sync", "sync", c)
    assert m2 is not None and m2.assumed and (m2.calls, m2.delay_ms) == (3, 50.0)


def test_ab_run_uses_head_cells() -> None:
    cells = [make_cell(c.setup, c.workload, c.variant, c.users, c.throughputs, revision="head") for c in _fanout(3.0)]
    base = [make_cell("uvicorn", "fanout", "async-aiohttp", 64, spread(1.0), revision="base")]
    v = workload_verdict(make_run(cells + base), "fanout")
    assert v.ratio == pytest.approx(3.0)


def test_the_native_orm_contrast_compares_under_the_same_asgi_servers_only() -> None:
    # async-native runs under uvicorn only; the a-methods also under a faster WSGI setup
    cells = [
        make_cell("uvicorn", "orm", "sync", 32, spread(480, 6)),
        make_cell("uvicorn", "orm", "async", 32, spread(490, 6)),
        make_cell("uvicorn", "orm", "async-native", 32, spread(570, 6)),
        make_cell("gunicorn-gthread", "orm", "sync", 32, spread(1300, 6)),
        make_cell("gunicorn-gthread", "orm", "async", 32, spread(700, 6)),
    ]
    v = workload_verdict(make_run(cells), "orm")
    (native,) = [k for k in v.contrasts if k.contrast.num == ("async-native",)]
    assert native.comparison.ratio is not None
    assert native.comparison.ratio == pytest.approx(570 / 490, rel=0.02)  # not 570 / 700
