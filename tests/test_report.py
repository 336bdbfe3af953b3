"""The HTML report, CSV and terminal summary rendered from synthetic runs."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from statistics import fmean, median

import pytest

from asyncbench.analysis.verdict import verdicts
from asyncbench.model.results import Run
from asyncbench.render import text
from asyncbench.render.cells import missing_cells
from asyncbench.render.csv import cells_csv
from asyncbench.render.html import esc, render_page, table_html
from asyncbench.render.report import render_report, write_report
from asyncbench.render.terminal import terminal_summary
from tests.synthetic import demo_run, make_cell, make_run, spread

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictParser(HTMLParser):
    """Checks that every element is closed in order (HTML's void elements
    excepted), collects ids, URLs in attributes and <script>/<link> tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if ident := a.get("id"):
            self.ids.append(ident)
        for k, v in attrs:
            if k in ("href", "src", "xlink:href", "action", "srcset", "poster") and v is not None:
                self.urls.append((tag, k, v))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # self-closing (SVG): record, but it needs no end tag
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack:
            self.errors.append(f"</{tag}> with nothing open")
        elif self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1]}> at {self.getpos()}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()


def parse(page: str) -> StrictParser:
    p = StrictParser()
    p.feed(page)
    p.close()
    return p


@pytest.fixture(scope="module")
def demo() -> Run:
    return demo_run(complete=False)


@pytest.fixture(scope="module")
def page(demo: Run) -> str:
    return render_report(demo)


def test_page_is_well_formed_html(page: str) -> None:
    p = parse(page)
    assert p.doctype
    assert p.errors == []
    assert p.stack == []
    dupes = {i for i in p.ids if p.ids.count(i) > 1}
    assert not dupes, f"duplicate ids break inline SVG clip paths: {sorted(dupes)[:5]}"


def test_page_is_self_contained(page: str) -> None:
    p = parse(page)
    assert not [t for t, a in p.tags if t == "link"]
    assert not [a for t, a in p.tags if t == "script" and a.get("src")]
    for tag, attr, url in p.urls:
        assert url.startswith(("#", "data:")), f"<{tag} {attr}={url[:60]}> leaves the page"
    # CSS/SVG url(...) references must stay inside the document too.
    for ref in re.findall(r"url\(([^)]*)\)", page):
        assert ref.strip("'\" ").startswith(("#", "data:")), ref
    # The only http(s) strings allowed are XML namespace names, which are never fetched.
    for m in re.finditer(r"https?://[^\s\"'<>]+", page):
        assert m.group(0).startswith(("http://www.w3.org/", "http://purl.org/dc/", "http://creativecommons.org/ns#")), (
            m.group(0)
        )


def test_sections_in_order(page: str) -> None:
    order = [
        "1. The article&#39;s claims, checked",
        "2. Verdicts",
        "3. Throughput",
        "4. Latency vs concurrency",
        "5. Latency at the same load",
        "6. Speed-up heat map",
        "7. Cost",
        "8. Where the time goes",
        "9. Model lines",
        "10. Flags",
        "11. The run",
        "12. All numbers",
    ]
    positions = [page.index(h) for h in order]
    assert positions == sorted(positions)


def test_every_chart_is_present_with_title_and_axis_labels(page: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    texts = [html_text(s) for s in svgs]
    workloads = ("no-I/O", "fan-out", "ORM", "JSON query", "JSON query (no index)", "CPU-bound")

    def chart(title: str) -> str:
        found = [t for t in texts if title in t]
        assert found, f"no chart titled {title!r}"
        return found[0]

    for w in workloads:
        t = chart(f"{w}: throughput vs concurrency")
        assert "concurrent users" in t and "throughput (requests/s" in t
        t = chart(f"{w}: latency vs concurrency")
        assert "latency (ms, log scale)" in t and "p50 latency" in t and "p99 latency" in t
        t = chart(f"{w}: best async vs best sync by users (95% CI)")
        assert "async / sync throughput" in t
    t = chart("Speed-up: best async variant / best sync variant, per setup")
    assert "concurrent users" in t and "workload · setup" in t and "async / sync throughput (same setup)" in t
    t = chart("Cost: server CPU per 1,000 requests")
    assert "server CPU seconds per 1,000 requests" in t
    t = chart("Cost: peak server memory per setup")
    assert "peak RSS of the server's process tree (MB" in t
    t = chart("fan-out: measured vs Little's-law ceiling")
    assert "throughput (requests/s)" in t and "ceiling" in t
    t = chart("fan-out: throughput vs upstream delay at 32 users")
    assert "upstream delay per call (ms)" in t
    chart("fan-out: best async vs best sync by upstream delay (95% CI)")


def test_flagged_cells_are_marked_in_charts_and_tables(page: str, demo: Run) -> None:
    svgs = [html_text(s) for s in re.findall(r"<svg.*?</svg>", page, flags=re.S)]
    noio = next(t for t in svgs if "no-I/O: throughput vs concurrency" in t)
    assert "flagged" in noio
    flags_section = page[page.index('id="flags"') : page.index('id="run"')]
    for reason in (
        "generator-bound: locust at 96% of a core",
        "error: server did not start: exit 3",
        "failures: 12 of 3,400 requests failed (ConnectionReset)",
        "unstable: CV 14% across repeats",
    ):
        assert esc(reason) in flags_section
    numbers = page[page.index('id="numbers"') :]
    assert numbers.count('<tr class="flagged">') == 4


def test_verdict_sentences_are_on_the_page(page: str, demo: Run) -> None:
    vs = verdicts(demo)
    for v in vs:
        assert esc(text.claim(v)) in page
    fan = next(v for v in vs if v.workload == "fanout")
    assert fan.outcome == "pays off"
    assert page.index(esc(text.claim(fan))) < page.index("3. Throughput")


def test_incomplete_run_banner() -> None:
    cells = [
        make_cell("uvicorn", "noio", "async", 8, spread(800.0)),
        make_cell("gunicorn-sync", "noio", "sync", 8, spread(1000.0)),
    ]
    incomplete = render_report(make_run(cells, complete=False, missing=[("uvicorn", "noio", "async", 64)]))
    assert "Incomplete run:" in incomplete and 'role="alert"' in incomplete
    assert "1 planned cell(s) have no result" in incomplete
    complete = render_report(make_run(cells))
    assert "Incomplete run:" not in complete


def test_missing_cells_are_listed(page: str, demo: Run) -> None:
    missing = missing_cells(demo)
    assert [(m.setup, m.workload, m.variant, m.users) for m in missing] == [("gunicorn-uvicorn", "noio", "async", 64)]
    flags_section = page[page.index('id="flags"') : page.index('id="run"')]
    assert "Missing cells (1)" in flags_section
    assert '<tr class="missing">' in flags_section
    assert '<tr class="missing">' in page[page.index('id="numbers"') :]
    terminal = terminal_summary(demo)
    assert "MISSING" in terminal and "INCOMPLETE RUN" in terminal


def test_csv_matches_the_cells(tmp_path: Path, demo: Run) -> None:
    page_path = write_report(demo, tmp_path)
    assert page_path == tmp_path / "index.html" and page_path.exists()
    text = (tmp_path / "cells.csv").read_text()
    assert text == cells_csv(demo)
    rows = list(csv.DictReader(io.StringIO(text)))
    measured = [r for r in rows if r["status"] != "missing"]
    assert len(measured) == len(demo.cells)
    by_key = {r["key"]: r for r in measured}
    for c in demo.cells:
        r = by_key[c.key]
        assert int(r["repeats"]) == len(c.repeats)
        if c.repeats:
            assert float(r["rps_mean"]) == pytest.approx(fmean(c.throughputs))
            assert [float(x) for x in r["rps_repeats"].split(";")] == c.throughputs
            # no merged histogram in these cells: the medians of the repeats' percentiles
            assert float(r["p99_ms"]) == pytest.approx(median(c.p99s))
        assert set(filter(None, r["flags"].split(";"))) == (c.flag_codes | ({"error"} if c.status != "ok" else set()))
    assert next(r for r in rows if r["status"] == "missing")["setup"] == "gunicorn-uvicorn"
    # the same CSV is embedded as a download, so the page stays self-contained
    import base64

    m = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', page_path.read_text())
    assert m is not None and base64.b64decode(m.group(1)).decode() == text


def test_run_section_has_the_command_and_setups(page: str, demo: Run) -> None:
    run = page[page.index('id="run"') : page.index('id="numbers"')]
    assert "python runner.py run --scenario full" in run
    assert "closes every connection" in run  # gunicorn sync: no keep-alive
    assert "load-generator ceiling" in run and "4,000" in run


def test_rendering_is_deterministic() -> None:
    cells = [make_cell("uvicorn", "fanout", "async", u, spread(30.0 * u)) for u in (1, 8)]
    cells += [make_cell("gunicorn-gthread", "fanout", "sync", u, spread(10.0 * u)) for u in (1, 8)]
    run = make_run(cells)
    assert render_report(run) == render_report(run)


def test_empty_run_renders() -> None:
    page = render_report(make_run([]))
    p = parse(page)
    assert p.errors == [] and "No cells were measured" in page
    assert "Verdicts" in terminal_summary(make_run([]))


def test_terminal_summary(demo: Run) -> None:
    out = terminal_summary(demo)
    for v in verdicts(demo):
        assert text.sentence(v).split(";")[0][:40] in out.replace("\n    ", " ")
    header = next(line for line in out.splitlines() if line.startswith("setup"))
    assert all(h in header for h in ("workload", "variant", "users", "req/s", "± 95% CI", "p50 ms", "p99 ms", "flags"))
    assert "generator-bound" in out and "1 slice" in out


def test_table_html_sorts_numbers_by_key_and_escapes() -> None:
    t = table_html(["name", "rps"], [["<b>", ("1,230", 1230.0)], ["x", ("–", None)]], row_classes=["flagged", None])
    assert "&lt;b&gt;" in t and 'data-sort="1230.0"' in t and 'data-sort=""' in t
    assert '<tr class="flagged">' in t and 'class="sortable"' in t
    page = render_page("T <x>", t, subtitle="s")
    assert parse(page).errors == [] and "<title>T &lt;x&gt;</title>" in page


def html_text(fragment: str) -> str:
    """The text content of an SVG/HTML fragment, entities decoded."""
    out: list[str] = []

    class P(HTMLParser):
        def handle_data(self, data: str) -> None:
            out.append(data)

    P(convert_charrefs=True).feed(fragment)
    return " ".join(out)


def test_model_line_says_when_it_assumes_calls_and_delay() -> None:
    from asyncbench.render import charts_cells as charts

    cells = [make_cell("gunicorn-sync", "fanout", "sync", u, spread(5.0 * u)) for u in (1, 8)]
    bare = make_run(cells, scenario_resolved={"upstream": {}, "workloads": {}})
    assert "assumed 3 calls × 50 ms" in html_text(charts.throughput_chart(bare, "fanout") or "")
    recorded = make_run(
        cells, scenario_resolved={"upstream": {"delay_ms": 50}, "workloads": {"fanout": {"params": {"calls": 3}}}}
    )
    assert "assumed" not in html_text(charts.throughput_chart(recorded, "fanout") or "")


def test_report_from_a_results_file_equals_report_from_memory(tmp_path: Path) -> None:
    """The report reads only results.json: a save/load round trip (tuples
    become lists, ints stay ints) must not change a byte of the page."""
    from asyncbench.model.results import load_run, save_run

    cells = [
        make_cell("uvicorn", "fanout", "async-aiohttp", u, spread(30.0 * u), params={"calls": 3, "delay_ms": 50})
        for u in (1, 8)
    ]
    cells += [
        make_cell(
            "gunicorn-gthread",
            "fanout",
            "sync",
            u,
            spread(10.0 * u),
            params={"calls": 3, "delay_ms": 50},
            flags=[("unstable", "CV 12%")] if u == 8 else (),
        )
        for u in (1, 8)
    ]
    run = make_run(cells, missing=[("uvicorn", "fanout", "async", 8)])
    loaded = load_run(save_run(run, tmp_path / "run"))
    assert render_report(loaded) == render_report(run)


def test_results_without_a_planned_list_say_missing_cells_are_unknown() -> None:
    # The runner records every planned cell under scenario_resolved["cells"];
    # without that list the report cannot tell what is missing, and says so.
    from dataclasses import replace

    from asyncbench.render.cells import planned_cells

    run = make_run([make_cell("uvicorn", "noio", "async", 8, spread(800.0))])
    run = replace(run, scenario_resolved={k: v for k, v in run.scenario_resolved.items() if k != "cells"})
    assert planned_cells(run) is None and missing_cells(run) == []
    page = render_report(run)
    assert "missing cells cannot be listed" in page
