"""Per-workload verdicts: where async pays off, where it costs, and by how much.

Method (also in the README):
  1. Cells are grouped per workload and load level (users). Cells flagged
     failures, server-crash, few-requests or error (or any unknown flag) are
     excluded from every claim and named instead. An "unstable" cell (wide
     spread across repeats) is used: its spread is already in the bootstrap
     interval; the verdict's notes name it.
  2. On each side (async views vs sync views) the best setup x variant is the
     usable cell with the highest median throughput across its repeats.
  3. The ratio async/sync is the ratio of those medians, with a 95% percentile
     bootstrap interval over the repeats (stats.bootstrap_ratio_ci, seeded).
  4. A level is an async win (loss) only when the whole interval lies above
     (below) 1 and both sides have at least MIN_REPEATS repeats; otherwise
     it is "no difference detected" or "insufficient data", never a guess.
  5. A "generator-bound" cell measured the load generator's limit, so its
     throughput is a lower bound of the server's: a side holding one is known
     only from below. It supports a claim only where it is the faster side
     (then the claim says "at least" and only the interval's end towards 1
     holds); a win or loss against it, or "no difference", is not claimed.
     Its p99 is not compared. An excluded cell that outran the best usable
     cell on the side a claim is against withholds the claim.
  6. The crossover is the lowest level from which async wins at every higher
     decided level; the same rule is applied along the upstream delay when the
     cells vary it (fan-out).

Everything here is a pure function of a `Run`, so the report and the terminal
summary can be regenerated from results.json without measuring again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from statistics import median
from typing import Any

from asyncbench.analysis import stats
from asyncbench.render.format import fmt, fmt_level, fmt_pct, fmt_ratio
from asyncbench.model import flags
from asyncbench.model.results import Cell, Run

try:  # registry is pure data, but keep the report usable on a results file alone
    from bench_site import registry as _registry
except ImportError:  # pragma: no cover - only when bench_site is not importable
    _registry = None  # type: ignore[assignment]

# Below three repeats a bootstrap interval of a median is little more than the
# range of two numbers: too narrow to call a confidence interval. No claim then.
MIN_REPEATS = 3
CONFIDENCE = 0.95

OUTCOME_PAYS_OFF = "pays off"
OUTCOME_COSTS = "costs"
OUTCOME_NO_DIFFERENCE = "no difference"
OUTCOME_INSUFFICIENT = "insufficient data"

# Per-level outcomes of one comparison.
WINS = "wins"
LOSES = "loses"
NO_DIFF = "no difference"
INSUFFICIENT = "insufficient data"

# Short names for sentences; the registry's titles are longer (for headings).
_SHORT_LABELS = {
    "noio": "no-I/O",
    "fanout": "fan-out",
    "orm": "ORM",
    "json": "JSON query",
    "json-noindex": "JSON query (no index)",
    "cpu": "CPU-bound",
    "wait": "wait",
    "stream": "streaming",
}


# ------------------------------------------------------------------ cell helpers


def variant_kind(variant: str, fallback: str = "") -> str:
    """"sync" or "async" for a variant, from the registry, else the cell's kind."""
    if _registry is not None and variant in _registry.VARIANTS:
        return _registry.VARIANTS[variant].kind
    if fallback:
        return fallback
    return "async" if variant.startswith("async") else "sync"


def cell_kind(cell: Cell) -> str:
    return cell.kind or variant_kind(cell.variant)


def workload_label(workload: str) -> str:
    if workload in _SHORT_LABELS:
        return _SHORT_LABELS[workload]
    if _registry is not None and workload in _registry.WORKLOADS:
        return _registry.WORKLOADS[workload].title
    return workload


def workload_title(workload: str) -> str:
    if _registry is not None and workload in _registry.WORKLOADS:
        return _registry.WORKLOADS[workload].title
    return workload_label(workload)


def workload_order(names: Iterable[str]) -> list[str]:
    """Registry order first (the order the project documents), then the rest."""
    names = set(names)
    known = list(_registry.WORKLOADS) if _registry is not None else []
    return [w for w in known if w in names] + sorted(names - set(known))


is_flagged = flags.is_flagged
is_excluded = flags.is_excluded
is_lower_bound = flags.is_lower_bound
is_wide = flags.is_wide
flag_reasons = flags.reasons
flag_codes = flags.codes


def median_rps(cell: Cell) -> float | None:
    return median(cell.throughputs) if cell.repeats else None


def median_p(cell: Cell, attr: str) -> float | None:
    """Median over repeats of one latency percentile, e.g. attr="p99_ms"."""
    if not cell.repeats:
        return None
    return median(getattr(r.latency, attr) for r in cell.repeats)


def cell_name(cell: Cell) -> str:
    """Setup, variant and load of a cell, as a reader would say it."""
    extra = "".join(f", {k}={v}" for k, v in sorted(cell.params.items()))
    return f"{cell.setup} / {cell.variant} at {_users(cell.users)}{extra}"


def _users(n: int) -> str:
    return f"{n:,} user" if n == 1 else f"{n:,} users"


def usable_cells(run: Run) -> list[Cell]:
    """The cells a report describes.

    In an A/B-in-one-job run (cells carry a revision) the report describes the
    current revision; the base is the gate's business.
    """
    if any(c.revision for c in run.cells):
        return [c for c in run.cells if c.revision in ("", "head")]
    return list(run.cells)


def params_key(params: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(params.items()))


def main_params(cells: Sequence[Cell], default_delay_ms: float | None = None) -> tuple[tuple[str, int], ...]:
    """The parameter set the users-axis comparison uses for one workload.

    When cells vary a parameter (an upstream-delay sweep), the set measured at
    the most load levels is the main axis; ties go to the scenario's default
    delay, then to the smallest set, so the choice is deterministic.
    """
    if not cells:
        return ()
    levels: dict[tuple[tuple[str, int], ...], set[int]] = {}
    for c in cells:
        levels.setdefault(params_key(c.params), set()).add(c.users)

    def rank(pk: tuple[tuple[str, int], ...]) -> tuple[int, int, tuple[tuple[str, int], ...]]:
        d = dict(pk).get("delay_ms")
        is_default = int(default_delay_ms is not None and d is not None and float(d) == float(default_delay_ms))
        return (-len(levels[pk]), -is_default, pk)

    return min(levels, key=rank)


# ------------------------------------------------------------------ comparisons


@dataclass(frozen=True)
class Side:
    """The best clean cell on one side of a comparison."""

    cell: Cell
    median_rps: float

    @property
    def label(self) -> str:
        return f"{self.cell.setup} / {self.cell.variant}"


@dataclass(frozen=True)
class Comparison:
    """Best numerator cell vs best denominator cell at one level of one axis."""

    axis: str  # "users" or "delay_ms"
    level: float
    num: Side | None
    den: Side | None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    p99_ratio: float | None = None
    p99_ci: tuple[float, float] | None = None
    outcome: str = INSUFFICIENT
    reason: str = ""
    # Flagged cells at this level that were left out, with their reasons.
    excluded: tuple[tuple[Cell, tuple[str, ...]], ...] = ()
    # Usable generator-bound cells on each side: that side's best throughput
    # is then known only from below.
    num_lower: tuple[Cell, ...] = ()
    den_lower: tuple[Cell, ...] = ()
    # The p99 ratio was not computed because a compared cell is generator-bound.
    p99_omitted: bool = False

    @property
    def decided(self) -> bool:
        return self.outcome in (WINS, LOSES, NO_DIFF)

    @property
    def at_least(self) -> bool:
        """The claim rests on a lower bound: the true gap is at least this."""
        return (self.outcome == WINS and bool(self.num_lower)) or (self.outcome == LOSES and bool(self.den_lower))

    @property
    def lower_cells(self) -> tuple[Cell, ...]:
        """The generator-bound cells behind an "at least" claim."""
        if not self.at_least:
            return ()
        return self.num_lower if self.outcome == WINS else self.den_lower


def _best(cells: Iterable[Cell]) -> Side | None:
    best: Side | None = None
    for c in cells:
        m = median_rps(c)
        if m is None:
            continue
        # Ties broken by name so the choice never depends on file order.
        if best is None or (m, c.setup, c.variant) > (best.median_rps, best.cell.setup, best.cell.variant):
            best = Side(c, m)
    return best


def _names(cells: Iterable[Cell]) -> str:
    return ", ".join(sorted({f"{c.setup} / {c.variant}" for c in cells}))


def compare(
    num_cells: Sequence[Cell],
    den_cells: Sequence[Cell],
    *,
    axis: str,
    level: float,
    num_name: str = "async",
    den_name: str = "sync",
) -> Comparison:
    """Compare the best usable numerator cell with the best usable denominator cell.

    All cells passed are at the same level; excluded ones (see `is_excluded`)
    are set aside and reported in `excluded`. Generator-bound cells take part
    as lower bounds: see the module docstring, point 5.
    """
    excluded = tuple((c, tuple(flag_reasons(c))) for c in (*num_cells, *den_cells) if is_excluded(c))
    num_use = [c for c in num_cells if not is_excluded(c)]
    den_use = [c for c in den_cells if not is_excluded(c)]
    num = _best(num_use)
    den = _best(den_use)
    num_lower = tuple(c for c in num_use if is_lower_bound(c))
    den_lower = tuple(c for c in den_use if is_lower_bound(c))
    base = Comparison(
        axis=axis, level=level, num=num, den=den, excluded=excluded, num_lower=num_lower, den_lower=den_lower
    )
    missing = [name for name, side, cells in ((num_name, num, num_cells), (den_name, den, den_cells)) if side is None]
    if missing:
        what = " and ".join(missing)
        had = any(num_cells) if num is None else any(den_cells)
        reason = f"no usable {what} cell" + (" (all excluded)" if had and excluded else "")
        return _replace(base, reason=reason)
    assert num is not None and den is not None
    r = stats.bootstrap_ratio_ci(num.cell.throughputs, den.cell.throughputs, confidence=CONFIDENCE)
    # A generator-bound cell's latency includes the generator's own queueing:
    # its p99 says little about the server, so no p99 ratio is computed.
    p99_omitted = is_lower_bound(num.cell) or is_lower_bound(den.cell)
    p = None if p99_omitted else stats.bootstrap_ratio_ci(num.cell.p99s, den.cell.p99s, confidence=CONFIDENCE)
    ratio = r[0] if r else None
    ci = (r[1], r[2]) if r else None
    p99_ratio = p[0] if p else None
    p99_ci = (p[1], p[2]) if p else None
    base = _replace(base, p99_ratio=p99_ratio, p99_ci=p99_ci, p99_omitted=p99_omitted)
    n = min(len(num.cell.repeats), len(den.cell.repeats))
    if r is None:
        return _replace(base, reason="zero sync throughput")
    if n < MIN_REPEATS:
        reason = "single repeat" if n == 1 else f"only {n} repeats (need {MIN_REPEATS})"
        return _replace(base, ratio=ratio, reason=reason)
    assert ci is not None
    measured = _replace(base, ratio=ratio, ci=ci)
    if ci[0] > 1.0:
        outcome = WINS
    elif ci[1] < 1.0:
        outcome = LOSES
    else:
        outcome = NO_DIFF
    # Lower bounds: a side with a generator-bound cell may really be faster
    # than measured. That can only widen a gap in its favour, so a claim in
    # its favour stands ("at least"); any other claim does not.
    if outcome == WINS and den_lower:
        return _replace(measured, reason=f"generator-bound {den_name} cell ({_names(den_lower)}) is only a lower "
                                         f"bound, so {num_name} cannot be shown to win")
    if outcome == LOSES and num_lower:
        return _replace(measured, reason=f"generator-bound {num_name} cell ({_names(num_lower)}) is only a lower "
                                         f"bound, so {num_name} cannot be shown to lose")
    if outcome == NO_DIFF and (num_lower or den_lower):
        return _replace(measured, reason=f"generator-bound cell ({_names((*num_lower, *den_lower))}) is only a "
                                         "lower bound and the interval includes 1")
    # An excluded cell that outran the chosen best on the side the claim is
    # against could overturn the claim if it were measured cleanly: withhold it.
    against = den_cells if outcome == WINS else num_cells if outcome == LOSES else ()
    chosen = den if outcome == WINS else num
    rival = _best(c for c in against if is_excluded(c))
    if rival is not None and chosen is not None and rival.median_rps > chosen.median_rps:
        side = den_name if outcome == WINS else num_name
        return _replace(
            measured,
            reason=f"excluded {rival.label} ({', '.join(flag_codes(rival.cell))}) outran the best usable {side} cell",
        )
    return _replace(measured, outcome=outcome)


def _replace(c: Comparison, **kw: Any) -> Comparison:
    return replace(c, **kw)


def sweep(
    cells: Sequence[Cell],
    *,
    axis: str,
    level_of: Callable[[Cell], float],
    is_num: Callable[[Cell], bool],
    is_den: Callable[[Cell], bool],
) -> list[Comparison]:
    """One comparison per level along an axis, in increasing order."""
    by_level: dict[float, list[Cell]] = {}
    for c in cells:
        by_level.setdefault(level_of(c), []).append(c)
    return [
        compare([c for c in cs if is_num(c)], [c for c in cs if is_den(c)], axis=axis, level=lvl)
        for lvl, cs in sorted(by_level.items())
    ]


def crossover(levels: Sequence[Comparison], outcome: str = WINS) -> float | None:
    """Lowest level from which every decided level at or above it has `outcome`.

    Levels without a decision (flagged, single repeat) neither start nor break
    the chain; they are named separately so the reader sees the gap.
    """
    decided = [c for c in levels if c.decided]
    if not decided or decided[-1].outcome != outcome:
        return None
    start = decided[-1].level
    for c in reversed(decided):
        if c.outcome != outcome:
            break
        start = c.level
    return start


# ------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class Verdict:
    workload: str
    label: str
    outcome: str  # OUTCOME_*
    sentence: str  # the claim, then the flagged cells it left out
    ratio: float | None  # headline throughput ratio async/sync
    ci: tuple[float, float] | None
    p99_ratio: float | None
    level: float | None  # users at which the headline ratio holds
    crossover: float | None  # users from which async wins (None if it never does)
    levels: tuple[Comparison, ...]
    params: tuple[tuple[str, int], ...] = ()  # the parameter set of the users axis
    delay_levels: tuple[Comparison, ...] = ()
    delay_users: int | None = None
    delay_crossover_ms: float | None = None
    notes: tuple[str, ...] = ()
    flagged: tuple[str, ...] = field(default=())  # named flagged cells left out
    claim: str = ""  # the sentence without the list of flagged cells


def _span(levels: Sequence[Comparison]) -> str:
    lo, hi = int(levels[0].level), int(levels[-1].level)
    return _users(lo) if lo == hi else f"{lo:,}–{_users(hi)}"


def _plural_levels(levels: Iterable[float]) -> str:
    xs = sorted({int(x) for x in levels})
    if not xs:
        return ""
    if len(xs) == 1:
        return _users(xs[0])
    return ", ".join(f"{x:,}" for x in xs[:-1]) + f" and {xs[-1]:,} users"


def _ci_ratio(ci: tuple[float, float] | None) -> str:
    return f"95% CI {fmt(ci[0])}–{fmt_ratio(ci[1])}" if ci else "no interval"


def _ci_cost(ci: tuple[float, float]) -> str:
    # A loss of (1 - ratio): the interval's ends swap.
    return f"95% CI {fmt_pct(1 - ci[1])[:-1]}–{fmt_pct(1 - ci[0])}"


def _p99_part(c: Comparison) -> str:
    if c.p99_omitted and not c.at_least:  # an "at least" claim already says so
        return ", p99 not compared (generator-bound cell)"
    return f", p99 {fmt_ratio(c.p99_ratio)}" if c.p99_ratio is not None else ""


def _lower_part(c: Comparison) -> str:
    """Inside the claim's parentheses: why it says "at least"."""
    if not c.at_least:
        return ""
    cells = c.lower_cells
    who = _names(cells)
    its = "its throughput is" if len({(x.setup, x.variant) for x in cells}) == 1 else "their throughput is"
    text = f"; {who} generator-bound, so {its} a lower bound"
    return text + ("; p99 not compared" if c.p99_omitted else "")


def _ci_win(c: Comparison) -> str:
    assert c.ci is not None
    # Only the interval's lower end means something when the async side is a lower bound.
    return f"95% CI ≥ {fmt_ratio(c.ci[0])}" if c.at_least else _ci_ratio(c.ci)


def _ci_loss(c: Comparison) -> str:
    assert c.ci is not None
    return f"95% CI ≥ {fmt_pct(1 - c.ci[1])}" if c.at_least else _ci_cost(c.ci)


def _at_least(c: Comparison) -> str:
    return "at least " if c.at_least else ""


def default_delay_ms(run: Run) -> float | None:
    up = (run.scenario_resolved or {}).get("upstream")
    if isinstance(up, dict) and isinstance(up.get("delay_ms"), (int, float)):
        return float(up["delay_ms"])
    return None


def _is_async(c: Cell) -> bool:
    return cell_kind(c) == "async"


def _is_sync(c: Cell) -> bool:
    return cell_kind(c) == "sync"


def workload_cells(run: Run, workload: str) -> list[Cell]:
    return [c for c in usable_cells(run) if c.workload == workload]


def axis_cells(run: Run, workload: str) -> tuple[list[Cell], tuple[tuple[str, int], ...]]:
    """The cells of the users axis (main parameter set) of one workload."""
    cells = workload_cells(run, workload)
    pk = main_params(cells, default_delay_ms(run))
    return [c for c in cells if params_key(c.params) == pk], pk


def delay_sweep_cells(run: Run, workload: str) -> tuple[list[Cell], int | None]:
    """Cells of an upstream-delay sweep at one users level, if the run has one.

    The sweep is taken at the highest users level measured at two or more
    delays, holding the other parameters at the main set's values.
    """
    cells = workload_cells(run, workload)
    pk = dict(main_params(cells, default_delay_ms(run)))
    others = {k: v for k, v in pk.items() if k != "delay_ms"}
    cand = [
        c
        for c in cells
        if "delay_ms" in c.params and {k: v for k, v in c.params.items() if k != "delay_ms"} == others
    ]
    delays_at: dict[int, set[int]] = {}
    for c in cand:
        delays_at.setdefault(c.users, set()).add(c.params["delay_ms"])
    users = [u for u, ds in delays_at.items() if len(ds) >= 2]
    if not users:
        return [], None
    u = max(users)
    return [c for c in cand if c.users == u], u


def workload_verdict(run: Run, workload: str) -> Verdict:
    cells, pk = axis_cells(run, workload)
    label = workload_label(workload)
    levels = sweep(cells, axis="users", level_of=lambda c: c.users, is_num=_is_async, is_den=_is_sync)

    delay_cells, delay_users = delay_sweep_cells(run, workload)
    delay_levels: list[Comparison] = []
    delay_x: float | None = None
    if delay_cells:
        delay_levels = sweep(
            delay_cells,
            axis="delay_ms",
            level_of=lambda c: float(c.params["delay_ms"]),
            is_num=_is_async,
            is_den=_is_sync,
        )
        delay_x = crossover(delay_levels)

    ordered = sorted(cells, key=_cell_sort)
    flagged_names = tuple(f"{cell_name(c)} ({'; '.join(flag_codes(c))})" for c in ordered if is_excluded(c))
    win_from = crossover(levels, WINS)
    loss_from = crossover(levels, LOSES)
    decided = [c for c in levels if c.decided]
    undecided = [c for c in levels if not c.decided]

    ratio: float | None = None
    ci: tuple[float, float] | None = None
    p99: float | None = None
    level: float | None = None
    if win_from is not None:
        head = decided[-1]
        outcome = OUTCOME_PAYS_OFF
        ratio, ci, p99, level = head.ratio, head.ci, head.p99_ratio, head.level
        at_head = f"at {_users(int(head.level))}"
        if win_from == head.level:
            # Only the highest decided level: "from N up" would overstate it.
            where, tail = at_head, ""
        elif win_from == decided[0].level:
            where, tail = f"at every load level tested ({_span(decided)})", f" {at_head}"
        else:
            where, tail = f"from {_users(int(win_from))} up", f" {at_head}"
        sentence = (
            f"{label}: async pays off {where}; {_at_least(head)}{fmt_ratio(ratio)} the throughput of the best "
            f"sync setup{tail} ({_ci_win(head)}{_lower_part(head)}){_p99_part(head)}"
        )
    elif loss_from is not None:
        head = decided[-1]
        outcome = OUTCOME_COSTS
        ratio, ci, p99, level = head.ratio, head.ci, head.p99_ratio, head.level
        assert ratio is not None and ci is not None
        lead = f"{label}: async costs "
        if loss_from == decided[0].level and loss_from != head.level:
            lead += f"at every load level tested ({_span(decided)}); "
        elif loss_from != head.level:
            lead += f"from {_users(int(loss_from))} up; "
        sentence = (
            f"{lead}{_at_least(head)}{fmt_pct(1 - ratio)} throughput at {_users(int(head.level))} "
            f"({_ci_loss(head)}{_lower_part(head)}){_p99_part(head)}"
        )
    elif decided:
        head = decided[-1]
        outcome = OUTCOME_NO_DIFFERENCE
        ratio, ci, p99, level = head.ratio, head.ci, head.p99_ratio, head.level
        span = _span(decided)
        sentence = (
            f"{label}: no difference detected between async and sync at the top load level; "
            f"{fmt_ratio(ratio)} at {_users(int(head.level))} ({_ci_ratio(ci)}), tested {span}"
        )
        ahead = [c.level for c in decided if c.outcome == WINS]
        behind = [c.level for c in decided if c.outcome == LOSES]
        mixed = []
        if ahead:
            mixed.append(f"async ahead at {_plural_levels(ahead)}")
        if behind:
            mixed.append(f"behind at {_plural_levels(behind)}")
        if mixed:
            sentence += " (" + ", ".join(mixed) + ")"
    else:
        outcome = OUTCOME_INSUFFICIENT
        if not levels:
            why = "no cells measured"
        else:
            reasons = Counter(c.reason for c in levels)
            why = "; ".join(
                f"{r} at {_plural_levels(c.level for c in levels if c.reason == r)}" for r in reasons
            )
        sentence = f"{label}: insufficient data for a claim ({why})"

    if outcome != OUTCOME_INSUFFICIENT and undecided:
        parts = Counter(c.reason for c in undecided)
        sentence += "; no claim at " + "; ".join(
            f"{_plural_levels(c.level for c in undecided if c.reason == r)} ({r})" for r in parts
        )
    if delay_levels and delay_users is not None:
        sentence += "; " + _delay_phrase(delay_levels, delay_x, delay_users)
    claim = sentence
    if flagged_names:
        sentence += ". Excluded from claims: " + ", ".join(flagged_names)

    notes = tuple(flag_notes(ordered) + variant_notes(run, workload, cells, levels))
    return Verdict(
        workload=workload,
        label=label,
        outcome=outcome,
        sentence=sentence,
        ratio=ratio,
        ci=ci,
        p99_ratio=p99,
        level=level,
        crossover=win_from,
        levels=tuple(levels),
        params=pk,
        delay_levels=tuple(delay_levels),
        delay_users=delay_users,
        delay_crossover_ms=delay_x,
        notes=notes,
        flagged=flagged_names,
        claim=claim,
    )


def flag_notes(cells: Sequence[Cell]) -> list[str]:
    """Name the flagged cells that were used, and what their flag means for the claim."""
    notes: list[str] = []
    wide = [c for c in cells if is_wide(c)]
    if wide:
        parts = []
        for c in wide:
            cv = stats.cv(c.throughputs)
            parts.append(cell_name(c) + (f" (CV {cv:.0%})" if cv is not None else ""))
        notes.append(
            "Wide spread (unstable): " + ", ".join(parts) + ". Used in the claims: a cell's spread across "
            "repeats is already in its bootstrap interval."
        )
    bound = [c for c in cells if is_lower_bound(c)]
    if bound:
        notes.append(
            "Generator-bound: " + ", ".join(cell_name(c) for c in bound) + ". The load generator was the "
            "limit, so the measured throughput is a lower bound of the server's: it supports a claim only as "
            "the faster side (\"at least\"), and its p99 is not compared."
        )
    return notes


def _delay_phrase(levels: Sequence[Comparison], x: float | None, users: int) -> str:
    span = f"{fmt_level(levels[0].level)}–{fmt_level(levels[-1].level)} ms"
    if x is not None:
        return f"along the upstream delay at {_users(users)}, async wins from {fmt_level(x)} ms up (tested {span})"
    if not any(c.decided for c in levels):
        return f"upstream-delay sweep at {_users(users)}: insufficient data"
    return f"along the upstream delay at {_users(users)}, no crossover in {span}"


def _cell_sort(c: Cell) -> tuple[str, str, str, int, tuple[tuple[str, int], ...]]:
    return (c.workload, c.setup, c.variant, c.users, params_key(c.params))


def _top_comparison(
    cells: Sequence[Cell], num: Callable[[Cell], bool], den: Callable[[Cell], bool]
) -> Comparison | None:
    """The comparison at the highest decided level, else at the highest level."""
    by_level: dict[int, list[Cell]] = {}
    for c in cells:
        by_level.setdefault(c.users, []).append(c)
    first: Comparison | None = None
    # From the top down, stopping at the first decided level: each comparison
    # is a bootstrap, and notes only ever quote one level.
    for lvl in sorted(by_level, reverse=True):
        cs = by_level[lvl]
        comp = compare([c for c in cs if num(c)], [c for c in cs if den(c)], axis="users", level=lvl)
        if comp.num is None or comp.den is None:
            continue
        if comp.decided:
            return comp
        first = first or comp
    return first


def _describe(c: Comparison, num_name: str, den_name: str) -> str:
    """"X reaches 1.80× the throughput of Y at 64 users (95% CI ...)"."""
    at = f"at {_users(int(c.level))}"
    if c.ci is not None:
        # On a lower bound: num's share is at least (wins) / at most (loses) this.
        bound = "" if not c.at_least else "at least " if c.outcome == WINS else "at most "
        why = f"; {c.reason}" if c.reason else ""
        return (
            f"{num_name} reaches {bound}{fmt_ratio(c.ratio)} the throughput of {den_name} {at} "
            f"({_ci_ratio(c.ci)}; {_OUTCOME_WORDS[c.outcome]}{why})"
        )
    return (
        f"{num_name} reaches {fmt_ratio(c.ratio)} the throughput of {den_name} {at} "
        f"(no interval: {c.reason})"
    )


_OUTCOME_WORDS = {WINS: "ahead", LOSES: "behind", NO_DIFF: "no difference detected", INSUFFICIENT: "insufficient data"}


def _variant_is(*names: str) -> Callable[[Cell], bool]:
    return lambda c: c.variant in names


def variant_notes(run: Run, workload: str, cells: Sequence[Cell], levels: Sequence[Comparison]) -> list[str]:
    """Where a variant changes the answer, say which and by how much."""
    notes: list[str] = []
    variants = {c.variant for c in cells}

    def against_sync(vname: str) -> Comparison | None:
        return _top_comparison(cells, _variant_is(vname), _is_sync)

    def client_note(a: str, b: str, a_name: str, b_name: str, topic: str) -> None:
        if a not in variants or b not in variants:
            return
        c = _top_comparison(cells, _variant_is(a), _variant_is(b))
        if c is None:
            return
        text = f"{topic}: " + _describe(c, a_name, b_name) + "."
        ca, cb = against_sync(a), against_sync(b)
        if ca is not None and cb is not None and ca.decided and cb.decided:
            text += (
                f" Against the best sync setup: {b_name} {fmt_ratio(cb.ratio)} ({_OUTCOME_WORDS[cb.outcome]}), "
                f"{a_name} {fmt_ratio(ca.ratio)} ({_OUTCOME_WORDS[ca.outcome]})"
            )
            if ca.outcome != cb.outcome:
                text += f" — the verdict depends on the {topic}, not on async alone."
            else:
                text += " — the same answer either way."
        notes.append(text)

    if workload == "fanout":
        client_note("async-aiohttp", "async", "aiohttp", "httpx", "HTTP client")
        if "sync-threads" in variants and variants & {"async", "async-aiohttp"}:
            c = _top_comparison(cells, _variant_is("async", "async-aiohttp"), _variant_is("sync-threads"))
            if c is not None:
                best = f"async ({c.num.cell.variant})" if c.num else "async"
                # The conclusion follows the numbers, never a house opinion.
                moral = {
                    WINS: " Async beats overlapping the calls in threads here.",
                    LOSES: " Overlapping the calls in threads beats async here.",
                    NO_DIFF: " Overlapping the calls in threads does as well: concurrency, not async itself, "
                    "is what this fan-out needed.",
                }.get(c.outcome, "")
                notes.append(
                    "Concurrent vs async: "
                    + _describe(c, f"the best {best}", "sync-threads (the calls in a thread pool)")
                    + "."
                    + moral
                )
    if workload in ("orm", "json", "json-noindex"):
        client_note("async", "async-s2a", "the async ORM API", "sync_to_async", "ORM API")

    # What a control workload buys: json vs json-noindex (the GIN index).
    if _registry is not None:
        controls = [w.name for w in _registry.WORKLOADS.values() if w.control_for == workload]
        target = _registry.WORKLOADS[workload].control_for if workload in _registry.WORKLOADS else None
        pairs = [(workload, ctl) for ctl in controls]
        if target:
            pairs.append((target, workload))
        for treated, control in pairs:
            t_cells, _ = axis_cells(run, treated)
            c_cells, _ = axis_cells(run, control)
            if not t_cells or not c_cells:
                continue
            parts: list[str] = []
            for kind in ("sync", "async"):
                c = _top_comparison(
                    [*t_cells, *c_cells],
                    lambda x, k=kind: x.workload == treated and cell_kind(x) == k,
                    lambda x, k=kind: x.workload == control and cell_kind(x) == k,
                )
                if c is not None:
                    parts.append(f"{kind}: " + _describe(c, treated, control))
            if parts:
                db = _database_name(run)
                on = f" on {db}" if db else ""
                notes.append(f"What the index buys{on} ({treated} vs {control}) — " + "; ".join(parts) + ".")
    return notes


def _database_name(run: Run) -> str:
    env = run.environment or {}
    db = env.get("database")
    if isinstance(db, dict):
        name = db.get("vendor") or db.get("engine") or db.get("name") or ""
        version = db.get("version") or ""
        return f"{name} {version}".strip()
    if isinstance(db, str):
        return db
    sr = (run.scenario_resolved or {}).get("database")
    if isinstance(sr, dict):
        return str(sr.get("engine") or "")
    return sr if isinstance(sr, str) else ""


def verdicts(run: Run) -> list[Verdict]:
    """One verdict per measured workload, in the registry's order."""
    return [workload_verdict(run, w) for w in workload_order({c.workload for c in usable_cells(run)})]
