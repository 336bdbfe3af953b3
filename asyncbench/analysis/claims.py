"""The source article's claims, checked against results: one outcome per claim,
decided by explicit rules from the comparisons the analysis already makes.

The article behind the project gives advice ("use async for external HTTP
calls", "don't use async for database-heavy views", "a GIN index speeds up JSON
containment", ...). `CLAIMS` states each piece of advice as data: the workloads
that test it, the ratio it is about, which side of a threshold that ratio must
lie on, the databases that can test it, and what its answer may depend on.
`check_claims(run, evidence)` turns one or more runs into a `ClaimResult` per
claim; render/claims.py writes the words. Numbers only, no I/O, no prose.

The rules, on top of comparison.py (best arm against best arm at one level,
block-paired 95% intervals, the flag policy, withheld outcomes):

- The ratio of an async/sync claim is the verdict's: the best async arm
  (setup x variant) against the best sync arm, so the row reads the same
  comparison as the verdict it links to. Not only async views under ASGI: the
  runner stops measuring the arms no ratio uses after the pilot blocks, so an
  ASGI-only numerator would often rest on two slices when an async view under
  WSGI was faster (no-I/O in `quick`); the server split below says when the
  answer turns on the setup. Index claims compare a workload with its control
  (json against json-noindex), every arm against every arm, unpaired (Welch:
  different groups).
- A claim that async **pays off** holds when the ratio's 95% interval lies
  entirely above 1 + PRACTICAL and is refuted when it lies entirely below it;
  **no gain** is the mirror image (holds entirely below 1 + PRACTICAL);
  **overhead** holds entirely below 1 - PRACTICAL (async at least PRACTICAL
  slower) and is refuted entirely above it; an index **speed-up** holds
  entirely above 1 + PRACTICAL. An interval that contains the threshold is
  inconclusive. On a generator-bound side (`Comparison.at_least`) only the
  judgement in that side's favour is made.
- The headline is read at the highest load level with a decision
  (`Comparison.decided`: an interval from enough blocks, not withheld by a
  flag); with none, the claim is inconclusive and the top level says why.
- **Depends on X**: the same rule applied to each facet of a dimension (each
  async variant against the best sync arm at the headline level; each setup's
  best async arm against the best sync arm; each decided load level)
  confirms the claim for one facet and refutes it for another. Across
  workloads of one claim (orm and json), and across runs (one per database),
  headline outcomes that confirm in one and refute in another make the claim
  depend on the query, the database, or the run.
- **Not measured**: no run given has the claim's workloads measured in a
  closed loop (a fixed arrival rate makes throughput follow the rate) on a
  database that can test it.

PRACTICAL is 5%, the scenarios' default precision target: the analysis itself
has no practical threshold (a verdict calls any interval off 1 a win or a
loss), and a difference smaller than the precision a run aims for is not one
the article's advice would turn on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from asyncbench.analysis.comparison import LOSES, WINS, Comparison, compare
from asyncbench.analysis.selection import axis_cells, cell_kind, is_async, is_sync
from asyncbench.model.results import Cell, Run

PRACTICAL = 0.05


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    DEPENDS = "depends"
    INCONCLUSIVE = "inconclusive"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Rule:
    """Which side of `threshold` the ratio's interval must lie on for the claim to hold."""

    name: str  # "pays off", "no gain", "overhead", "speed-up"
    threshold: float
    above: bool  # True: the claim holds when the interval lies entirely above the threshold


PAYS_OFF = Rule("pays off", 1 + PRACTICAL, above=True)
NO_GAIN = Rule("no gain", 1 + PRACTICAL, above=False)
OVERHEAD = Rule("overhead", 1 - PRACTICAL, above=False)
SPEEDUP = Rule("speed-up", 1 + PRACTICAL, above=True)


class Dim(StrEnum):
    """A dimension a claim's answer may depend on."""

    VARIANT = "variant"  # each async variant (the HTTP client, the ORM API)
    SETUP = "setup"  # each setup with an async arm (the server)
    USERS = "users"  # each decided load level
    KIND = "kind"  # index claims: sync views and async views separately
    WORKLOAD = "workload"  # across a claim's workloads (orm, json)
    DATABASE = "database"  # across runs on different databases
    RUN = "run"  # across runs on the same database


@dataclass(frozen=True)
class Claim:
    id: str  # the row's anchor: claim-<id>
    statement: str  # the claim as the article states it
    advice: str  # the article's mark: "✓" (do it: use async, add the index) or "✗" (don't use async)
    rule: Rule
    workloads: tuple[str, ...]  # each one tests the claim (the numerator for index claims)
    control: str | None = None  # index claims: the workload without the index (the denominator)
    vendors: tuple[str, ...] = ()  # databases (Django vendor names) that can test it; () = any
    splits: tuple[Dim, ...] = (Dim.VARIANT, Dim.SETUP, Dim.USERS)
    scenarios: tuple[str, ...] = ()  # scenarios/*.toml that measure it (tests check they do)
    variant_topic: str = "the variant"  # how the VARIANT dimension is named for this claim


_ASYNC_SPLITS = (Dim.VARIANT, Dim.SETUP, Dim.USERS)
_INDEX_SPLITS = (Dim.KIND, Dim.USERS)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "http",
        "Use async for external HTTP calls",
        "✓",
        PAYS_OFF,
        ("fanout",),
        scenarios=("quick", "seed", "full"),
        variant_topic="the HTTP client",
    ),
    Claim("websockets", "Use async for WebSockets", "✓", PAYS_OFF, ("ws-echo",)),
    Claim(
        "long-polling", "Use async for long-polling", "✓", PAYS_OFF, ("wait",), scenarios=("frontier", "seed", "full")
    ),
    Claim(
        "streaming",
        "Use async for streaming responses",
        "✓",
        PAYS_OFF,
        ("stream",),
        scenarios=("frontier", "seed", "full"),
    ),
    Claim(
        "database",
        "Database-heavy views: don't use async",
        "✗",
        NO_GAIN,
        ("orm", "json"),
        scenarios=("quick", "seed", "full"),
        variant_topic="the ORM API",
    ),
    Claim("cpu", "CPU-intensive work: don't use async", "✗", NO_GAIN, ("cpu",), scenarios=("frontier", "seed", "full")),
    Claim(
        "overhead",
        "Async has overhead for simple views",
        "✗",
        OVERHEAD,
        ("noio",),
        scenarios=("quick", "seed", "full"),
    ),
    Claim(
        "gin",
        "GIN index: significant speedup for JSON containment on PostgreSQL",
        "✓",
        SPEEDUP,
        ("json",),
        control="json-noindex",
        vendors=("postgresql",),
        splits=_INDEX_SPLITS,
        scenarios=("frontier-postgres", "full"),
    ),
    Claim(
        "generated-columns",
        "For other databases, consider generated columns for frequently queried JSON keys",
        "✓",
        SPEEDUP,
        ("json-keyindex",),
        control="json-noindex",
        vendors=("sqlite", "mysql", "mariadb"),
        splits=_INDEX_SPLITS,
    ),
)


def judge(rule: Rule, c: Comparison) -> Outcome:
    """A decided comparison's interval against the rule's threshold.

    On an "at least" comparison the true ratio lies beyond the interval in the
    faster side's favour (above it when async wins, below when it loses): a
    judgement that would need the other end is not made.
    """
    if not c.decided or c.ci is None:
        return Outcome.INCONCLUSIVE
    lo, hi = c.ci
    t = rule.threshold
    if lo > t:
        holds_side = True
    elif hi < t:
        holds_side = False
    else:
        return Outcome.INCONCLUSIVE
    if c.at_least and ((c.outcome == WINS and not holds_side) or (c.outcome == LOSES and holds_side)):
        return Outcome.INCONCLUSIVE
    return Outcome.CONFIRMED if holds_side == rule.above else Outcome.REFUTED


@dataclass(frozen=True)
class Facet:
    """One facet of a dimension: its key (a variant, a setup, a level) and comparison."""

    key: str
    comparison: Comparison
    outcome: Outcome


@dataclass(frozen=True)
class Evidence:
    """What one workload of one run says about a claim."""

    run_id: str
    database: str  # "sqlite 3.40.1": how the run names its database ("" when unknown)
    vendor: str
    workload: str
    headline: Comparison | None  # the highest decided level (else the highest level)
    outcome: Outcome  # the headline judged by the rule (confirmed, refuted, inconclusive)
    splits: tuple[tuple[Dim, tuple[Facet, ...]], ...]
    primary: bool  # from the report's own run: its verdict sections are on the same page

    @property
    def depends_on(self) -> tuple[Dim, ...]:
        """Dimensions whose facets both confirm and refute the claim."""
        return tuple(d for d, facets in self.splits if _split_outcomes([f.outcome for f in facets]))


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    outcome: Outcome
    depends_on: tuple[Dim, ...]  # in the claim's order, then WORKLOAD, DATABASE, RUN
    evidence: tuple[Evidence, ...]


def _split_outcomes(outcomes: Sequence[Outcome]) -> bool:
    return Outcome.CONFIRMED in outcomes and Outcome.REFUTED in outcomes


def run_vendor(run: Run) -> str:
    """The run's database as Django names its vendor ("sqlite", "postgresql", "mysql")."""
    if run.environment.database.vendor:
        return run.environment.database.vendor
    sr = (run.scenario_resolved or {}).get("database")
    if isinstance(sr, dict):
        return str(sr.get("engine") or sr.get("vendor") or "")
    return sr if isinstance(sr, str) else ""


def _closed_loop(c: Cell) -> bool:
    """At a fixed arrival rate (open model) throughput follows the rate: no ratio to read."""
    return all(r.target_rps is None for r in c.repeats)


def _levels(
    cells: Sequence[Cell],
    num: Callable[[Cell], bool],
    den: Callable[[Cell], bool],
    *,
    paired: bool,
    names: tuple[str, str] = ("async", "sync"),
) -> list[Comparison]:
    """One comparison per users level, increasing."""
    by: dict[int, list[Cell]] = {}
    for c in cells:
        by.setdefault(c.users, []).append(c)
    out = []
    for lvl, cs in sorted(by.items()):
        n, d = [c for c in cs if num(c)], [c for c in cs if den(c)]
        if n or d:
            out.append(compare(n, d, axis="users", level=lvl, paired=paired, num_name=names[0], den_name=names[1]))
    return out


def _having(attribute: str, value: str) -> Callable[[Cell], bool]:
    """Cells whose variant, setup or kind ("sync"/"async") is `value`."""
    if attribute == "kind":
        return lambda c: cell_kind(c) == value
    return lambda c: bool(getattr(c, attribute) == value)


def _headline(levels: Sequence[Comparison]) -> Comparison | None:
    decided = [c for c in levels if c.decided]
    if decided:
        return decided[-1]
    both = [c for c in levels if c.num is not None and c.den is not None] or list(levels)
    return both[-1] if both else None


def _evidence(claim: Claim, run: Run, workload: str, *, primary: bool) -> Evidence | None:
    """What one workload of one run says, or None when the run does not measure it."""
    cells, _ = axis_cells(run, workload)
    cells = [c for c in cells if _closed_loop(c)]
    paired = claim.control is None
    num: Callable[[Cell], bool]
    den: Callable[[Cell], bool]
    if claim.control is not None:
        control = [c for c in axis_cells(run, claim.control)[0] if _closed_loop(c)]
        if not cells or not control:
            return None
        cells = [*cells, *control]
        treated, untreated = workload, claim.control
        num, den = (lambda c: c.workload == treated), (lambda c: c.workload == untreated)
    else:
        num, den = is_async, is_sync
        if not any(num(c) for c in cells) or not any(den(c) for c in cells):
            return None
    # an index claim's sides are two workloads (json and json-noindex), named so in its reasons
    names = (workload, claim.control) if claim.control is not None else ("async", "sync")
    levels = _levels(cells, num, den, paired=paired, names=names)
    head = _headline(levels)
    outcome = judge(claim.rule, head) if head is not None else Outcome.INCONCLUSIVE
    level = head.level if head is not None else 0.0
    at = [c for c in cells if c.users == level]

    def facet(pick: Callable[[Cell], bool], *, both: bool = False) -> Comparison | None:
        """The headline level's comparison with the numerator (with `both`: and the denominator) narrowed."""
        n = [c for c in at if num(c) and pick(c)]
        d = [c for c in at if den(c) and (pick(c) or not both)]
        return (
            compare(n, d, axis="users", level=level, paired=paired, num_name=names[0], den_name=names[1])
            if n and d
            else None
        )

    splits: list[tuple[Dim, tuple[Facet, ...]]] = []
    for dim in claim.splits:
        found: list[tuple[str, Comparison | None]] = []
        if dim is Dim.USERS:
            found = [(str(int(c.level)), c) for c in levels if c.decided]
        elif dim is Dim.VARIANT:
            found = [(v, facet(_having("variant", v))) for v in sorted({c.variant for c in at if num(c)})]
        elif dim is Dim.SETUP:
            found = [(s, facet(_having("setup", s))) for s in sorted({c.setup for c in at if num(c)})]
        elif dim is Dim.KIND:
            found = [(k, facet(_having("kind", k), both=True)) for k in ("sync", "async")]
        facets = tuple(Facet(k, c, judge(claim.rule, c)) for k, c in found if c is not None)
        splits.append((dim, facets))
    vendor = run_vendor(run)
    return Evidence(
        run_id=run.run_id,
        database=run.environment.database.label or vendor,
        vendor=vendor,
        workload=workload,
        headline=head,
        outcome=outcome,
        splits=tuple(splits),
        primary=primary,
    )


def check_claim(claim: Claim, runs: Sequence[tuple[Run, bool]]) -> ClaimResult:
    """One claim against runs given as (run, primary)."""
    evidence: list[Evidence] = []
    for run, primary in runs:
        if claim.vendors and run_vendor(run) not in claim.vendors:
            continue
        for w in claim.workloads:
            e = _evidence(claim, run, w, primary=primary)
            if e is not None:
                evidence.append(e)
    if not evidence:
        return ClaimResult(claim, Outcome.NOT_MEASURED, (), ())
    depends = [d for d in claim.splits if any(d in e.depends_on for e in evidence)]
    heads = [e.outcome for e in evidence]
    if _split_outcomes(heads):
        depends.append(_across(evidence))
    if depends:
        outcome = Outcome.DEPENDS
    elif all(o is Outcome.CONFIRMED for o in heads):
        outcome = Outcome.CONFIRMED
    elif all(o is Outcome.REFUTED for o in heads):
        outcome = Outcome.REFUTED
    else:
        outcome = Outcome.INCONCLUSIVE
    return ClaimResult(claim, outcome, tuple(depends), tuple(evidence))


def _across(evidence: Sequence[Evidence]) -> Dim:
    """What confirming and refuting headlines differ in: the workload, the database, or the run."""

    def uniform(key: Callable[[Evidence], str]) -> bool:
        seen: dict[str, set[Outcome]] = {}
        for e in evidence:
            if e.outcome in (Outcome.CONFIRMED, Outcome.REFUTED):
                seen.setdefault(key(e), set()).add(e.outcome)
        return len(seen) > 1 and all(len(v) == 1 for v in seen.values())

    if uniform(lambda e: e.workload):
        return Dim.WORKLOAD
    if uniform(lambda e: e.vendor):
        return Dim.DATABASE
    return Dim.RUN


def check_claims(run: Run, evidence: Sequence[Run] = ()) -> list[ClaimResult]:
    """Every claim, from `run` (the report's own) and other runs (other databases).

    A run given twice (the same run id) counts once.
    """
    runs: list[tuple[Run, bool]] = [(run, True)]
    seen = {run.run_id}
    for other in evidence:
        if other.run_id not in seen:
            seen.add(other.run_id)
            runs.append((other, False))
    return [check_claim(c, runs) for c in CLAIMS]
