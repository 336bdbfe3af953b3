"""Rendering a gate result: terminal text, Markdown job summary, HTML page."""

from __future__ import annotations

import re
from pathlib import Path

from asyncbench.gate import GateResult, compare
from asyncbench.render import gate_page as gate_render
from tests.test_gate import ab_run, build_run, slower


def _regression() -> tuple[GateResult, object, object]:
    baseline = build_run(seed=1)
    current = build_run(seed=2, scale=slower(0.75, setup="uvicorn", workload="orm", variant="sync"))
    return compare(baseline, current), baseline, current


def test_markdown_summary_has_headline_reasons_and_every_cell() -> None:
    result, _, _ = _regression()
    md = gate_render.markdown_summary(result)
    assert md.startswith("## ❌ Performance gate: REGRESSION")
    assert result.headline in md
    assert "### Why" in md
    for c in result.comparisons:
        assert c.key in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(result.comparisons)  # header + one row per cell x metric
    # the regressed rows come first and are bold
    assert "uvicorn/orm/sync/u16" in rows[1] and "**regression**" in rows[1]
    # change with its interval
    assert re.search(r"−2\d\.\d% \[−\d", rows[1]) or re.search(r"\+\d+\.?\d*% \[\+", rows[1])


def test_markdown_summary_for_pass_and_invalid() -> None:
    ok = gate_render.markdown_summary(compare(build_run(), build_run(seed=2)))
    assert ok.startswith("## ✅ Performance gate: pass")
    assert "### Why" not in ok
    invalid = compare(build_run(repeats=3), build_run(repeats=3))
    md = gate_render.markdown_summary(invalid)
    assert md.startswith("## ⚠️ Performance gate: comparison not valid")
    assert "fewer than the 6" in md


def test_html_comparison_is_self_contained_and_lists_every_cell() -> None:
    result, baseline, current = _regression()
    page = gate_render.html_comparison(result, baseline, current)  # type: ignore[arg-type]
    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page and "src=" not in page
    # the only URL is the SVG namespace identifier, which nothing fetches
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    for c in result.comparisons:
        assert c.key in page
    assert "<svg" in page  # the repeats, plotted
    assert 'class="flagged"' in page
    assert "Environments" in page


def test_html_escapes_what_it_shows() -> None:
    result, baseline, current = _regression()
    tampered = GateResult(**{**result.__dict__, "warnings": ("<script>alert(1)</script>",)})
    page = gate_render.html_comparison(tampered, baseline, current)  # type: ignore[arg-type]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_terminal_text() -> None:
    result, _, _ = _regression()
    text = gate_render.terminal_text(result)
    assert text.startswith("REGRESSION:")
    for c in result.comparisons:
        assert c.key in text
    assert "why:" in text


def test_ab_rendering_shows_one_environment() -> None:
    run = ab_run(head_scale=slower(0.7, workload="noio"))
    result = compare(run)
    page = gate_render.html_comparison(result, run, run)
    assert "A/B in one job" in page
    assert "<h2>Environment</h2>" in page
    assert "base → head" in gate_render.terminal_text(result)
    # the method says how this gate decided: the paired test, not Mann–Whitney
    assert "paired t-test" in page and "Mann–Whitney" not in page
    assert "paired t-test" in gate_render.markdown_summary(result)


def test_two_run_rendering_names_mann_whitney() -> None:
    result, baseline, current = _regression()
    page = gate_render.html_comparison(result, baseline, current)
    assert "Mann–Whitney" in page and "paired t-test" not in page


def test_write_outputs(tmp_path: Path) -> None:
    result, baseline, current = _regression()
    paths = gate_render.write_outputs(result, baseline, current, tmp_path)  # type: ignore[arg-type]
    assert {p.name for p in paths.values()} == {"gate.md", "gate.html", "gate.json"}
    assert '"exit_code": 1' in paths["json"].read_text()
