"""The report's "what each index buys" table: the control and the workloads it
controls, on the run's database, from synthetic results."""

from __future__ import annotations

import re

import pytest

from asyncbench.analysis.verdict import verdicts
from asyncbench.model.results import Cell, Run
from asyncbench.render import indexes
from asyncbench.render.report import render_report
from bench_site.registry import WORKLOADS
from tests.synthetic import make_cell, make_run, spread

# req/s of the best arm (gunicorn-gthread / sync) at the top level; the other arms are slower
RPS = {"json-noindex": 40.0, "json": 200.0, "json-keyindex": 800.0}
CPU_MS = {"json-noindex": 25.0, "json": 5.0, "json-keyindex": 1.2}


def _cells(workloads: tuple[str, ...]) -> list[Cell]:
    cells = []
    for w in workloads:
        for users in (2, 8):
            top = RPS[w] * (1.0 if users == 8 else 0.5)
            cells.append(make_cell("gunicorn-gthread", w, "sync", users, spread(top), cpu_ms_per_request=CPU_MS[w]))
            cells.append(make_cell("uvicorn", w, "async", users, spread(top * 0.8), cpu_ms_per_request=CPU_MS[w] * 2))
    return cells


def _run(vendor: str, workloads: tuple[str, ...] = ("json-noindex", "json", "json-keyindex")) -> Run:
    return make_run(_cells(workloads), environment={"database": {"vendor": vendor, "version": "10.11.19"}})


def _rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1]
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_json_noindex_controls_both_indexed_workloads() -> None:
    assert WORKLOADS["json-noindex"].control_for == ("json", "json-keyindex")
    run = _run("mariadb")
    assert indexes.families(run) == [("json-noindex", ("json", "json-keyindex"))]
    by = {v.workload: v for v in verdicts(run)}
    treated = {r.treated for r in by["json-noindex"].controls}
    assert treated == {"json", "json-keyindex"}
    assert {r.control for r in by["json-keyindex"].controls} == {"json-noindex"}


@pytest.mark.parametrize(
    ("vendor", "json_index"),
    [
        ("postgresql", "GIN (jsonb_path_ops) on metadata"),
        ("mariadb", "none: JSON_CONTAINS over a full scan"),
        ("sqlite", "none: two key lookups over a full scan"),
    ],
)
def test_table_names_each_index_on_the_database_with_its_numbers(vendor: str, json_index: str) -> None:
    rows = _rows(indexes.table(_run(vendor), "json-noindex", ("json", "json-keyindex")))
    assert [r[1] for r in rows] == ["json-noindex", "json", "json-keyindex"]
    assert all(r[0] == f"{vendor} 10.11.19" and r[3] == "8" for r in rows)  # the top shared level
    assert rows[1][2] == json_index
    assert rows[2][2].startswith("B-tree on STORED generated columns")
    assert [r[4] for r in rows] == ["gunicorn-gthread / sync"] * 3  # the best arm, not the first
    assert rows[0][8] == "control"
    assert rows[1][8] == "5.00×" and rows[2][8] == "20.0×"  # best req/s over the control's best
    assert rows[2][6] == "1.20 ms" and rows[0][6] == "25.0 ms"  # server CPU per request


def test_the_table_sits_under_the_control_verdict_once() -> None:
    page = render_report(_run("postgresql"))
    control = page.split('id="verdict-json-noindex"', 1)[1].split('<div class="verdict', 1)[0]
    assert "What each index buys on this database" in control
    assert page.count("What each index buys on this database") == 1


def test_no_table_without_the_control() -> None:
    run = _run("sqlite", ("json", "json-keyindex"))
    assert indexes.families(run) == []
    assert "What each index buys on this database" not in render_report(run)
