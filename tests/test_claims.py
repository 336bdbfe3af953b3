"""The article's claims, checked: the decision rules on synthetic runs (every
outcome reachable), combining runs on different databases, and the report's
first section with links that land on the page's own verdicts."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from asyncbench.analysis.claims import (
    CLAIMS,
    NO_GAIN,
    OVERHEAD,
    PAYS_OFF,
    Dim,
    Outcome,
    Rule,
    check_claims,
    judge,
)
from asyncbench.analysis.comparison import LOSES, NO_DIFF, WINS, Comparison
from asyncbench.model.results import Cell, Run, save_run
from asyncbench.render.report import render_report
from asyncbench.render.terminal import terminal_summary
from tests.synthetic import make_run, v2_cell
from tests.test_report import parse

ROOT = Path(__file__).resolve().parent.parent
PG = {"database": {"vendor": "postgresql", "version": "15.8"}}


def outcome_of(run: Run, claim: str, evidence: tuple[Run, ...] = ()) -> tuple[Outcome, tuple[Dim, ...]]:
    r = next(r for r in check_claims(run, evidence) if r.claim.id == claim)
    return r.outcome, r.depends_on


def fanout(rps: dict[tuple[str, str], float], users: tuple[int, ...] = (16,), n_blocks: int = 12) -> list[Cell]:
    """Fan-out cells: (setup, variant) -> throughput, the same at every level given."""
    return [v2_cell(s, "fanout", v, u, r, n_blocks=n_blocks) for (s, v), r in rps.items() for u in users]


# ------------------------------------------------------------------ the rule on one interval


def comp(lo: float, hi: float, outcome: str = NO_DIFF, num_lower: tuple[Cell, ...] = ()) -> Comparison:
    return Comparison(
        "users", 16, None, None, ratio=(lo * hi) ** 0.5, ci=(lo, hi), outcome=outcome, num_lower=num_lower
    )


@pytest.mark.parametrize(
    ("rule", "lo", "hi", "expected"),
    [
        (PAYS_OFF, 1.10, 1.30, Outcome.CONFIRMED),
        (PAYS_OFF, 1.01, 1.04, Outcome.REFUTED),  # async ahead, but by less than the practical threshold
        (PAYS_OFF, 0.50, 0.60, Outcome.REFUTED),
        (PAYS_OFF, 1.00, 1.10, Outcome.INCONCLUSIVE),
        (NO_GAIN, 0.50, 0.60, Outcome.CONFIRMED),
        (NO_GAIN, 0.98, 1.03, Outcome.CONFIRMED),
        (NO_GAIN, 1.20, 1.40, Outcome.REFUTED),
        (OVERHEAD, 0.30, 0.40, Outcome.CONFIRMED),
        (OVERHEAD, 0.97, 1.02, Outcome.REFUTED),  # under 5%: not the overhead the article warns of
        (OVERHEAD, 0.90, 0.99, Outcome.INCONCLUSIVE),
    ],
)
def test_rule_reads_the_interval_against_the_threshold(rule: Rule, lo: float, hi: float, expected: Outcome) -> None:
    outcome = WINS if lo > 1 else LOSES if hi < 1 else NO_DIFF
    assert judge(rule, comp(lo, hi, outcome)) is expected


def test_rule_makes_no_judgement_against_a_lower_bound_or_without_a_decision() -> None:
    gen = v2_cell("uvicorn", "fanout", "async", 16, 100.0, flags=[("generator-bound", "locust at 97%")])
    # async won but its side is generator-bound: the true ratio is at least this, so "below 1.05" cannot be said
    at_least = comp(1.01, 1.04, WINS, num_lower=(gen,))
    assert at_least.at_least and judge(PAYS_OFF, at_least) is Outcome.INCONCLUSIVE
    assert judge(PAYS_OFF, comp(1.10, 1.30, WINS, num_lower=(gen,))) is Outcome.CONFIRMED
    undecided = comp(1.10, 1.30, outcome="insufficient data")
    assert judge(PAYS_OFF, undecided) is Outcome.INCONCLUSIVE


# ------------------------------------------------------------------ every outcome, from results


def test_confirmed_when_the_best_async_arm_beats_the_best_sync_arm() -> None:
    run = make_run(fanout({("uvicorn", "async-aiohttp"): 300, ("gunicorn-gthread", "sync"): 100}))
    assert outcome_of(run, "http") == (Outcome.CONFIRMED, ())


def test_refuted_when_async_loses() -> None:
    run = make_run(fanout({("uvicorn", "async"): 50, ("gunicorn-gthread", "sync"): 100}))
    assert outcome_of(run, "http") == (Outcome.REFUTED, ())


def test_depends_on_the_http_client() -> None:
    run = make_run(
        fanout({("uvicorn", "async-aiohttp"): 190, ("uvicorn", "async"): 40, ("gunicorn-gthread", "sync"): 100})
    )
    assert outcome_of(run, "http") == (Outcome.DEPENDS, (Dim.VARIANT,))
    out = terminal_summary(run)
    assert "depends on the HTTP client" in out
    assert re.search(r"holds with aiohttp 1\.\d\d×; fails with httpx 0\.\d+×", out.replace("\n     ", " "))


def test_depends_on_the_server() -> None:
    run = make_run(
        fanout({("uvicorn", "async-aiohttp"): 300, ("daphne", "async-aiohttp"): 50, ("gunicorn-gthread", "sync"): 100})
    )
    assert outcome_of(run, "http") == (Outcome.DEPENDS, (Dim.SETUP,))


def test_depends_on_the_load_level() -> None:
    cells = [
        *fanout({("uvicorn", "async"): 100, ("gunicorn-gthread", "sync"): 100}, users=(1,)),
        *fanout({("uvicorn", "async"): 300, ("gunicorn-gthread", "sync"): 100}, users=(64,)),
    ]
    assert outcome_of(make_run(cells), "http") == (Outcome.DEPENDS, (Dim.USERS,))


def test_inconclusive_when_the_interval_contains_the_threshold_or_there_is_none() -> None:
    # 1.05x with ±4% noise per slice: the interval straddles 1.05
    run = make_run(fanout({("uvicorn", "async"): 105, ("gunicorn-gthread", "sync"): 100}))
    (outcome, _), r = outcome_of(run, "http"), check_claims(run)[0]
    assert outcome is Outcome.INCONCLUSIVE
    assert r.evidence[0].headline is not None and r.evidence[0].headline.ci is not None
    lo, hi = r.evidence[0].headline.ci
    assert lo < PAYS_OFF.threshold < hi
    # two blocks: no interval at all
    short = make_run(fanout({("uvicorn", "async"): 300, ("gunicorn-gthread", "sync"): 100}, n_blocks=2))
    assert outcome_of(short, "http") == (Outcome.INCONCLUSIVE, ())
    assert "only 2 blocks in common" in render_report(short)


def test_not_measured_without_the_workload_or_a_side_or_at_a_fixed_rate() -> None:
    run = make_run(fanout({("uvicorn", "async"): 300, ("gunicorn-gthread", "sync"): 100}))
    assert outcome_of(run, "long-polling") == (Outcome.NOT_MEASURED, ())
    assert outcome_of(run, "websockets") == (Outcome.NOT_MEASURED, ())
    # async views only: nothing to compare them with
    async_only = make_run(fanout({("uvicorn", "async"): 300, ("gunicorn-gthread", "async-aiohttp"): 100}))
    assert outcome_of(async_only, "http") == (Outcome.NOT_MEASURED, ())
    # the open model: throughput follows the arrival rate, no ratio to read
    fixed = make_run([replace(c, repeats=tuple(replace(r, target_rps=50.0) for r in c.repeats)) for c in run.cells])
    assert outcome_of(fixed, "http") == (Outcome.NOT_MEASURED, ())
    page = render_report(run)
    assert "measured by scenario frontier or seed or full" in page  # which scenario measures long-polling


def test_database_claim_depends_on_the_workload_when_orm_and_json_disagree() -> None:
    cells = [
        v2_cell("uvicorn", "orm", "async", 16, 50.0),
        v2_cell("gunicorn-gthread", "orm", "sync", 16, 100.0),
        v2_cell("uvicorn", "json", "async", 16, 300.0),
        v2_cell("gunicorn-gthread", "json", "sync", 16, 100.0),
    ]
    assert outcome_of(make_run(cells), "database") == (Outcome.DEPENDS, (Dim.WORKLOAD,))
    agree = make_run([c for c in cells if c.workload == "orm"])
    assert outcome_of(agree, "database") == (Outcome.CONFIRMED, ())


def test_runs_on_two_databases_combine_and_name_their_run() -> None:
    sqlite = make_run(
        [v2_cell("uvicorn", "orm", "async", 16, 50.0), v2_cell("gunicorn-gthread", "orm", "sync", 16, 100.0)],
        run_id="run-sqlite",
    )
    pg = make_run(
        [v2_cell("uvicorn", "orm", "async", 16, 300.0), v2_cell("gunicorn-gthread", "orm", "sync", 16, 100.0)],
        run_id="run-pg",
        environment=PG,
    )
    assert outcome_of(sqlite, "database") == (Outcome.CONFIRMED, ())
    assert outcome_of(sqlite, "database", (pg,)) == (Outcome.DEPENDS, (Dim.DATABASE,))
    assert outcome_of(sqlite, "database", (sqlite,)) == (Outcome.CONFIRMED, ())  # the same run counts once
    out = terminal_summary(sqlite, evidence=(pg,))
    assert "depends on the database" in out and "[postgresql 15.8]" in out


def index_cells(treated: str, indexed: float, control: float) -> list[Cell]:
    return [
        v2_cell("gunicorn-gthread", treated, "sync", 8, indexed, seed=2),
        v2_cell("uvicorn", treated, "async", 8, indexed * 0.8, seed=3),
        v2_cell("gunicorn-gthread", "json-noindex", "sync", 8, control, seed=4),
        v2_cell("uvicorn", "json-noindex", "async", 8, control * 0.9, seed=5),
    ]


def test_gin_claim_needs_postgresql_and_takes_it_from_another_run() -> None:
    sqlite = make_run(index_cells("json", 400.0, 90.0), run_id="run-sqlite")
    assert outcome_of(sqlite, "gin") == (Outcome.NOT_MEASURED, ())
    pg = make_run(index_cells("json", 400.0, 90.0), run_id="run-pg", environment=PG)
    assert outcome_of(pg, "gin") == (Outcome.CONFIRMED, ())
    assert outcome_of(sqlite, "gin", (pg,)) == (Outcome.CONFIRMED, ())
    no_gain = make_run(index_cells("json", 92.0, 90.0), run_id="run-pg2", environment=PG)
    assert outcome_of(no_gain, "gin") == (Outcome.REFUTED, ())
    page = render_report(sqlite, evidence=(pg,))
    row = re.search(r'<tr id="claim-gin".*?</tr>', page, flags=re.S)
    assert row is not None
    assert "run-pg" in row.group(0) and "postgresql 15.8" in row.group(0)
    assert "href" not in row.group(0)  # the evidence is in the other run's report, not on this page


def test_generated_columns_claim_on_sqlite_and_depends_on_the_view_kind() -> None:
    run = make_run(index_cells("json-keyindex", 400.0, 90.0))
    assert outcome_of(run, "generated-columns") == (Outcome.CONFIRMED, ())
    # the index helps the sync view and not the async one (30 vs 81 req/s without it)
    mixed = [
        v2_cell("uvicorn", "json-keyindex", "async", 8, 30.0, seed=3)
        if c.workload == "json-keyindex" and c.kind == "async"
        else c
        for c in index_cells("json-keyindex", 400.0, 90.0)
    ]
    assert outcome_of(make_run(mixed), "generated-columns") == (Outcome.DEPENDS, (Dim.KIND,))
    assert outcome_of(make_run(mixed, environment=PG), "generated-columns") == (Outcome.NOT_MEASURED, ())


# ------------------------------------------------------------------ the claims' own data


def test_scenarios_a_claim_names_measure_its_workloads() -> None:
    for claim in CLAIMS:
        for name in claim.scenarios:
            workloads = tomllib.loads((ROOT / "scenarios" / f"{name}.toml").read_text()).get("workloads", {})
            needed = (*claim.workloads, *([claim.control] if claim.control else ()))
            assert set(needed) <= set(workloads), f"claim {claim.id}: scenario {name} lacks {needed}"


# ------------------------------------------------------------------ the report


def test_claims_section_comes_first_and_its_links_land_on_the_page(tmp_path: Path) -> None:
    run = make_run(
        [
            *fanout({("uvicorn", "async-aiohttp"): 300, ("gunicorn-gthread", "sync"): 100}),
            v2_cell("uvicorn", "noio", "async", 16, 700.0),
            v2_cell("gunicorn-gthread", "noio", "sync", 16, 2300.0),
        ]
    )
    page = render_report(run)
    p = parse(page)
    assert p.errors == [] and p.stack == []
    ids = set(p.ids)
    assert page.index('id="claims"') < page.index('id="verdicts"')
    section = page[page.index('<section id="claims"') : page.index('<section id="verdicts"')]
    for claim in CLAIMS:
        assert f'id="claim-{claim.id}"' in section
    links = re.findall(r'href="#([^"]+)"', section)
    assert {"verdict-fanout", "verdict-noio"} <= set(links)
    assert all(anchor in ids for anchor in links), set(links) - ids
    http = re.search(r'<tr id="claim-http".*?</tr>', section, flags=re.S)
    assert http is not None and "confirmed" in http.group(0) and "gunicorn-gthread / sync" in http.group(0)


def test_report_command_takes_evidence_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbench.commands.report import report

    sqlite = make_run(index_cells("json", 400.0, 90.0), run_id="run-sqlite")
    pg = make_run(index_cells("json", 400.0, 90.0), run_id="run-pg", environment=PG)
    save_run(sqlite, tmp_path / "a")
    save_run(pg, tmp_path / "b")
    assert report(run_dir=tmp_path / "a", evidence=[tmp_path / "b"], terminal=True) == 0
    page = (tmp_path / "a" / "index.html").read_text()
    gin = re.search(r'<tr id="claim-gin".*?</tr>', page, flags=re.S)
    assert gin is not None and "confirmed" in gin.group(0) and "run-pg" in gin.group(0)
    # the rest of the report is about the run alone
    assert "run run-sqlite" in page and "run run-pg ·" not in page
    assert "GIN index: significant speedup for JSON containment on PostgreSQL: confirmed" in capsys.readouterr().out
