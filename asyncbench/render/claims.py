"""The article's claims, checked: the words of the report's first section and
of the terminal's short form, from `analysis.claims` (which decides; this only
writes).

Each row: the claim as the article states it, its outcome, the key numbers it
rests on (ratio, 95% interval, load level, the two arms, the database and the
run), and a link to the verdict on this page that holds the evidence. Numbers
from other runs (`report --evidence`) name their run; their sections are in
their own reports, so they carry no link.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from asyncbench.analysis.claims import (
    CLAIMS,
    PRACTICAL,
    Claim,
    ClaimResult,
    Dim,
    Evidence,
    Facet,
    Outcome,
    check_claims,
)
from asyncbench.analysis.comparison import WINS, Comparison
from asyncbench.model.results import Run
from asyncbench.model.summary import users_label
from asyncbench.render import text
from asyncbench.render.format import fmt, fmt_ratio
from bench_site.registry import WORKLOADS

if TYPE_CHECKING:
    from asyncbench.render.report import Page

_VENDOR_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MariaDB", "mariadb": "MariaDB"}

# How each dimension is named in "depends on ...", and how a facet of it reads.
_DIM_WORDS = {
    Dim.SETUP: "the server",
    Dim.USERS: "the load level",
    Dim.KIND: "the view kind",
    Dim.WORKLOAD: "the workload",
    Dim.DATABASE: "the database",
    Dim.RUN: "the run",
}


def rule_text(claim: Claim) -> str:
    """The ratio a claim reads and what it needs of the ratio's 95% interval."""
    if claim.control is not None:
        ratio = f"{' / '.join(claim.workloads)} ÷ {claim.control} (no index) throughput"
    else:
        ratio = "best async ÷ best sync arm, throughput"
    side = ">" if claim.rule.above else "<"
    return f"{claim.rule.name}: {ratio}; holds if the 95% CI is {side} {fmt_ratio(claim.rule.threshold)}"


def dim_words(claim: Claim, dim: Dim) -> str:
    return claim.variant_topic if dim is Dim.VARIANT else _DIM_WORDS[dim]


def _variant_name(workload: str, variant: str) -> str:
    """A variant as the claim's topic names it ("aiohttp", "sync_to_async"), from the registry's contrasts."""
    w = WORKLOADS.get(workload)
    for k in w.contrasts if w is not None else ():
        if k.kind != "alternative":
            continue
        if variant in k.num:
            return k.num_name
        if variant in k.den:
            return k.den_name
    return variant


def facet_words(dim: Dim, key: str, workload: str) -> str:
    if dim is Dim.VARIANT:
        return f"with {_variant_name(workload, key)}"
    if dim is Dim.SETUP:
        return f"under {key}"
    if dim is Dim.USERS:
        return f"at {users_label(int(key))}"
    return f"for {key} views"  # Dim.KIND


def _ci(c: Comparison) -> str:
    if c.ci is None:
        return "no interval"
    lo, hi = c.ci
    if c.at_least:
        return f"95% CI ≥ {fmt_ratio(lo)}" if c.outcome == WINS else f"95% CI ≤ {fmt_ratio(hi)}"
    return f"95% CI {fmt(lo)}–{fmt_ratio(hi)}"


def _short(c: Comparison) -> str:
    """ "1.92× (95% CI 1.80–2.05×)"."""
    return f"{fmt_ratio(c.ratio)} ({_ci(c)})"


def _arm(claim: Claim, c: Comparison, side: str) -> str:
    s = c.num if side == "num" else c.den
    if s is None:
        return "–"
    return f"{s.cell.workload}: {s.label}" if claim.control is not None else s.label


def headline_text(claim: Claim, e: Evidence) -> str:
    """The numbers one run's workload gives: ratio, interval, level, arms; why it decides nothing."""
    c = e.headline
    if c is None:
        return f"{text.workload_label(e.workload)}: no level with both sides measured"
    parts = [f"{text.workload_label(e.workload)}: {_short(c)} at {users_label(int(c.level))}"]
    if c.num is not None and c.den is not None:
        parts.append(f"{_arm(claim, c, 'num')} vs {_arm(claim, c, 'den')}")
    if not c.decided:
        parts.append(f"undecided: {text.reason(c) or 'no interval'}")
    elif e.outcome is Outcome.INCONCLUSIVE:
        parts.append(f"the interval includes {fmt_ratio(claim.rule.threshold)}")
    return "; ".join(parts)


def _facets_text(claim: Claim, dim: Dim, facets: Sequence[Facet], workload: str, *, compact: bool = False) -> str:
    """ "holds with aiohttp (1.92× (95% CI ...)); fails with httpx (...)"; `compact`: ratios only."""

    def one(f: Facet) -> str:
        c = f.comparison
        words = facet_words(dim, f.key, workload)
        return f"{words} {fmt_ratio(c.ratio)}" if compact else f"{words} ({_short(c)})"

    holds = ", ".join(one(f) for f in facets if f.outcome is Outcome.CONFIRMED)
    fails = ", ".join(one(f) for f in facets if f.outcome is Outcome.REFUTED)
    return f"holds {holds}; fails {fails}"


def _where(e: Evidence, primary_only: bool) -> str:
    """The database, and the run when numbers come from more than one."""
    db = e.database or "database not recorded"
    return db if primary_only else f"{db}, run {e.run_id}"


def not_measured_text(claim: Claim, run: Run) -> str:
    """Which scenario or database measures a claim this run (and its evidence) did not."""
    what = " and ".join(dict.fromkeys((*claim.workloads, *([claim.control] if claim.control else []))))
    if claim.scenarios:
        how = f"scenario {' or '.join(claim.scenarios)}"
    else:
        how = f"a run with the {what} workload{'s' if ' and ' in what else ''}"
    if claim.vendors:
        names = " or ".join(dict.fromkeys(_VENDOR_NAMES.get(v, v) for v in claim.vendors))
        this = run.environment.database.label or "database not recorded"
        return f"needs {how} on {names}, this run is on {this}; add such a run with report --evidence"
    return f"measured by {how}"


def outcome_text(r: ClaimResult) -> str:
    if r.outcome is Outcome.DEPENDS:
        return "depends on " + " and ".join(dim_words(r.claim, d) for d in r.depends_on)
    if r.outcome is Outcome.NOT_MEASURED:
        return "not measured in this run"
    return str(r.outcome)


def detail_lines(r: ClaimResult, run: Run) -> list[str]:
    """The key numbers of a row, one line per workload and run, then what it depends on."""
    if r.outcome is Outcome.NOT_MEASURED:
        return [not_measured_text(r.claim, run)]
    primary_only = all(e.primary for e in r.evidence)
    lines = [f"{headline_text(r.claim, e)} ({_where(e, primary_only)})" for e in r.evidence]
    for e in r.evidence:
        for dim, facets in e.splits:
            if dim in e.depends_on:
                facets_text = _facets_text(r.claim, dim, facets, e.workload)
                lines.append(f"depends on {dim_words(r.claim, dim)}: {facets_text} ({_where(e, primary_only)})")
    return lines


_OUTCOME_CLASS = {
    Outcome.CONFIRMED: "confirmed",
    Outcome.REFUTED: "refuted",
    Outcome.DEPENDS: "depends",
    Outcome.INCONCLUSIVE: "inconclusive",
    Outcome.NOT_MEASURED: "unmeasured",
}


def _links(r: ClaimResult, anchors: Collection[str]) -> list[dict[str, str]]:
    """Links to this page's verdicts for the workloads this run measured."""
    out: list[dict[str, str]] = []
    for e in r.evidence:
        anchor = f"verdict-{e.workload}"
        if e.primary and anchor in anchors and all(x["href"] != f"#{anchor}" for x in out):
            out.append({"href": f"#{anchor}", "text": text.workload_title(e.workload)})
    return out


def claim_rows(run: Run, evidence: Sequence[Run], anchors: Collection[str]) -> list[dict[str, Any]]:
    rows = []
    for r in check_claims(run, evidence):
        rows.append(
            {
                "id": f"claim-{r.claim.id}",
                "mark": r.claim.advice,
                "statement": r.claim.statement,
                "rule": rule_text(r.claim),
                "outcome": outcome_text(r),
                "cls": _OUTCOME_CLASS[r.outcome],
                "details": detail_lines(r, run),
                "links": _links(r, anchors),
            }
        )
    return rows


def section(page: Page) -> dict[str, Any]:
    """The report's first section: one row per claim."""
    anchors = {f"verdict-{v.workload}" for v in page.verdicts}
    others = [f"{o.run_id} ({o.environment.database.label or 'database not recorded'})" for o in page.evidence]
    return {
        "rows": claim_rows(page.run, page.evidence, anchors),
        "practical": f"{PRACTICAL:.0%}",
        "evidence": others,
    }


def _compact(r: ClaimResult) -> str:
    """The numbers of the terminal's short form: per workload and run its headline ratio,
    or for "depends on" the facets that disagree; ratios and intervals, no arms."""
    several = len({e.run_id for e in r.evidence}) > 1
    parts: list[str] = []
    for e in r.evidence:
        where = f" [{e.database}]" if several else ""
        deps = [(d, f) for d, f in e.splits if d in e.depends_on]
        if deps:
            parts.extend(f"{_facets_text(r.claim, d, f, e.workload, compact=True)}{where}" for d, f in deps)
        elif e.headline is not None:
            c = e.headline
            undecided = "" if c.decided else f", undecided: {text.reason(c) or 'no interval'}"
            parts.append(
                f"{text.workload_label(e.workload)} {_short(c)} at {users_label(int(c.level))}{undecided}{where}"
            )
    return "; ".join(parts)


def terminal_lines(run: Run, evidence: Sequence[Run] = ()) -> list[str]:
    """The short form: one entry per claim, its outcome and the numbers that decide it."""
    lines = []
    for r in check_claims(run, evidence):
        numbers = not_measured_text(r.claim, run) if r.outcome is Outcome.NOT_MEASURED else _compact(r)
        lines.append(f"{r.claim.advice} {r.claim.statement}: {outcome_text(r)}" + (f" ({numbers})" if numbers else ""))
    return lines


__all__ = ["CLAIMS", "claim_rows", "section", "terminal_lines"]
