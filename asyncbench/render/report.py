"""The run report: one self-contained HTML page and a CSV, from a `Run` alone.

`write_report(run, out_dir)` regenerates both without measuring anything; the
runner calls it at the end of a run and `runner.py report RUN_DIR` calls it
on an old results file. The page is `SECTIONS` in order, numbered as they
come: the article's claims checked, the verdicts, then the evidence (throughput, latency, heat map, cost,
model lines), then what could make a number wrong (flags, missing cells),
then the run itself and every number. Each section is a function returning
the context of its template, `templates/sections/<id>.html.j2`.

Other runs given as `evidence` (other databases) feed only the claims
section; every other section describes `run` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from markupsafe import Markup

from asyncbench.analysis.selection import usable_cells, workload_order
from asyncbench.analysis.verdict import Verdict, verdicts
from asyncbench.model.results import Run
from asyncbench.render import claims, sections, sections_facts, sections_profile, text
from asyncbench.render.cells import PlannedCell, missing_cells, planned_cells
from asyncbench.render.csv import CSV_NAME, cells_csv
from asyncbench.render.html import render
from asyncbench.render.sections_latency import latency_load

HTML_NAME = "index.html"
TITLE = "Where async pays off in Django"


@dataclass
class Page:
    """What the sections of one page share, each computed once."""

    run: Run
    csv_text: str
    evidence: tuple[Run, ...] = ()  # other runs the claims section may use

    @cached_property
    def verdicts(self) -> list[Verdict]:
        return verdicts(self.run)

    @cached_property
    def missing(self) -> list[PlannedCell]:
        return missing_cells(self.run)

    @cached_property
    def planned_known(self) -> bool:
        return planned_cells(self.run) is not None

    @cached_property
    def workloads(self) -> list[str]:
        return workload_order({c.workload for c in usable_cells(self.run)})


@dataclass(frozen=True)
class Section:
    id: str  # the anchor, and the name of its template
    title: str
    toc: str  # its name in the table of contents
    context: Callable[[Page], dict[str, Any]]


SECTIONS: tuple[Section, ...] = (
    Section("claims", "The article's claims, checked", "Claims", claims.section),
    Section("verdicts", "Verdicts", "Verdicts", sections.verdicts),
    Section("throughput", "Throughput vs concurrency", "Throughput", sections.throughput),
    Section("latency", "Latency vs concurrency", "Latency", sections.latency),
    Section("latency-load", "Latency at the same load", "Same load", latency_load),
    Section("heatmap", "Speed-up heat map", "Heat map", sections.heatmap),
    Section("cost", "Cost", "Cost", sections.cost),
    Section("profile", "Where the time goes", "Where the time goes", sections_profile.where_time_goes),
    Section("model", "Model lines", "Model lines", sections.model),
    Section("flags", "Flags and missing cells", "Flags", sections_facts.flags_section),
    Section("run", "The run", "The run", sections_facts.the_run),
    Section("numbers", "All numbers", "All numbers", sections_facts.numbers),
)


@dataclass(frozen=True)
class _Rendered:
    id: str
    number: int
    title: str
    toc: str
    body: Markup


def render_report(run: Run, *, csv_text: str | None = None, evidence: Sequence[Run] = ()) -> str:
    """The whole page as a string; `evidence`: other runs for the claims section."""
    page = Page(run, cells_csv(run) if csv_text is None else csv_text, tuple(evidence))
    rendered = [
        _Rendered(s.id, n, s.title, s.toc, render(f"sections/{s.id}.html.j2", **s.context(page)))
        for n, s in enumerate(SECTIONS, start=1)
    ]
    subtitle = f"run {run.run_id} · scenario {run.scenario} · {sections_facts.when(run.started_at)}"
    if not run.complete:
        subtitle += " · INCOMPLETE"
    return str(
        render(
            "report.html.j2",
            title=TITLE,
            subtitle=subtitle,
            run=run,
            why="interrupted" if run.interrupted else "did not finish",
            missing=len(page.missing),
            version_note=text.version_label(run.schema_version, max((len(c.repeats) for c in run.cells), default=0)),
            deployment=" ".join(text.deployment_lines(run)),
            sections=rendered,
        )
    )


def write_report(run: Run, out_dir: Path, *, evidence: Sequence[Run] = ()) -> Path:
    """Write index.html and cells.csv into out_dir; return the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_text = cells_csv(run)
    (out_dir / CSV_NAME).write_text(csv_text, encoding="utf-8")
    path = out_dir / HTML_NAME
    path.write_text(render_report(run, csv_text=csv_text, evidence=evidence), encoding="utf-8")
    return path


__all__ = ["SECTIONS", "Page", "Section", "render_report", "write_report"]
