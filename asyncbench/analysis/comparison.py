"""Best numerator cell against best denominator cell, level by level: numbers only.

A `Comparison` records the two sides, the ratio of their throughputs with its
interval (block-paired log-ratio t-interval, corrected for the choice of the
best pair; Welch's for arms of different groups), the outcome, and when there
is no outcome the data that says why (`Why`); render/text.py puts that into
words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from asyncbench.analysis import intervals
from asyncbench.analysis.intervals import MIN_BLOCKS
from asyncbench.model import flags
from asyncbench.model.results import Cell

__all__ = ["MIN_BLOCKS"]  # re-exported: the text says how many blocks a claim needs
CONFIDENCE = 0.95

# Per-level outcomes of one comparison.
WINS = "wins"
LOSES = "loses"
NO_DIFF = "no difference"
INSUFFICIENT = "insufficient data"


class Why(StrEnum):
    """Why a level has no outcome."""

    NO_CELL = "no usable cell"  # a side has no usable cell (`missing`)
    ZERO_DEN = "zero denominator"  # the denominator's throughput is 0
    FEW_BLOCKS = "few blocks"  # fewer than MIN_BLOCKS blocks in common (Welch: slices on a side)
    LOWER_BOUND_DEN = "den lower bound"  # a win against a generator-bound side
    LOWER_BOUND_NUM = "num lower bound"  # a loss with a generator-bound side
    LOWER_BOUND_TIE = "lower bound, interval includes 1"
    EXCLUDED_RIVAL = "excluded rival"  # an excluded cell outran the side a claim is against


@dataclass(frozen=True)
class Side:
    """The best usable cell on one side of a comparison."""

    cell: Cell
    rps: float  # mean slice throughput: what the best side is chosen by

    @property
    def label(self) -> str:
        return self.cell.summary.arm


@dataclass(frozen=True)
class Comparison:
    """Best numerator cell vs best denominator cell at one level of one axis."""

    axis: str  # "users" or "delay_ms"
    level: float
    num: Side | None
    den: Side | None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    # Half-width of the interval on the log scale, as a fraction (0.041 = ±4.1%).
    precision: float | None = None
    blocks: int = 0  # blocks paired (Welch: slices on the smaller side)
    m: int = 1  # candidate pairs the interval is corrected for (Bonferroni); 1 when chosen on the pilot
    chosen_on_pilot: bool = False  # the best pair was chosen on the pilot blocks, estimated on the rest
    paired: bool = True  # False: the sides ran in different groups (Welch)
    p99_ratio: float | None = None  # from the merged histograms, no interval
    outcome: str = INSUFFICIENT
    why: Why | None = None
    num_name: str = "async"
    den_name: str = "sync"
    # Flagged cells at this level that were left out, with their flags' reasons.
    excluded: tuple[tuple[Cell, tuple[str, ...]], ...] = ()
    # Usable generator-bound cells on each side: that side's best throughput
    # is then known only from below.
    num_lower: tuple[Cell, ...] = ()
    den_lower: tuple[Cell, ...] = ()
    # The p99 ratio was not computed because a compared cell is generator-bound,
    # or because a side's p99 rests on too few samples (thin).
    p99_omitted: bool = False
    p99_thin: bool = False
    # Why.NO_CELL: the sides without a usable cell, and whether their cells were all excluded.
    missing: tuple[str, ...] = ()
    all_excluded: bool = False
    # Why.EXCLUDED_RIVAL: the excluded cell that outran the chosen side.
    rival: Side | None = None
    # Why.LOWER_BOUND_* and EXCLUDED_RIVAL: the outcome the interval alone gave.
    withheld: str = ""

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


def best(cells: Iterable[Cell], *, pilot: bool = False) -> Side | None:
    """The cell with the highest mean slice throughput (over the pilot blocks
    only, with `pilot`: the choice then leaves the later blocks unused)."""
    found: Side | None = None
    for c in cells:
        m = intervals.pilot_mean(c) if pilot else c.summary.rps
        if m is None:
            continue
        # Ties broken by name so the choice never depends on file order.
        if found is None or (m, c.setup, c.variant) > (found.rps, found.cell.setup, found.cell.variant):
            found = Side(c, m)
    return found


def compare(
    num_cells: Sequence[Cell],
    den_cells: Sequence[Cell],
    *,
    axis: str,
    level: float,
    num_name: str = "async",
    den_name: str = "sync",
    paired: bool = True,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Compare the best usable numerator cell with the best usable denominator cell.

    All cells passed are at the same level; excluded ones (flags.is_excluded)
    are set aside and kept in `excluded`. Generator-bound cells take part as
    lower bounds: see render.text.METHOD. The best of k_num x k_den candidate
    pairs is chosen by point estimate, so its interval is computed at
    1 - alpha/m (m = k_num * k_den): the simultaneous coverage covers the
    chosen pair too. `paired=False` for sides from different groups, whose
    block numbers pair nothing: Welch's interval on log slice throughputs.
    """
    excluded = tuple((c, tuple(flags.reasons(c))) for c in (*num_cells, *den_cells) if flags.is_excluded(c))
    num_use = [c for c in num_cells if not flags.is_excluded(c)]
    den_use = [c for c in den_cells if not flags.is_excluded(c)]
    num, den = best(num_use), best(den_use)
    # Choose on the pilot blocks and estimate on the later ones when there
    # are enough of them; else (version-1 results, a short group) choose on
    # everything and correct the interval for the choice.
    on_pilot = False
    if paired:
        pn, pd = best(num_use, pilot=True), best(den_use, pilot=True)
        if pn is not None and pd is not None and _later_blocks(pn.cell, pd.cell) >= intervals.MIN_BLOCKS:
            num, den = Side(pn.cell, pn.cell.summary.rps or pn.rps), Side(pd.cell, pd.cell.summary.rps or pd.rps)
            on_pilot = True
    num_lower = tuple(c for c in num_use if flags.is_lower_bound(c))
    den_lower = tuple(c for c in den_use if flags.is_lower_bound(c))
    base = Comparison(
        axis=axis,
        level=level,
        num=num,
        den=den,
        num_name=num_name,
        den_name=den_name,
        excluded=excluded,
        num_lower=num_lower,
        den_lower=den_lower,
    )
    if num is None or den is None:
        missing = tuple(name for name, side in ((num_name, num), (den_name, den)) if side is None)
        had = any(num_cells) if num is None else any(den_cells)
        return replace(base, why=Why.NO_CELL, missing=missing, all_excluded=had and bool(excluded))
    m = sum(1 for c in num_use if c.summary.rps is not None) * sum(1 for c in den_use if c.summary.rps is not None)
    if on_pilot:
        m = 1
    base = replace(base, m=m, paired=paired, chosen_on_pilot=on_pilot)
    # A generator-bound cell's latency includes the generator's own queueing:
    # its p99 says little about the server; a thin p99 says little at all.
    p99_omitted = flags.is_lower_bound(num.cell) or flags.is_lower_bound(den.cell)
    p99_thin = num.cell.summary.p99_thin or den.cell.summary.p99_thin
    p99n, p99d = num.cell.summary.p99_ms, den.cell.summary.p99_ms
    if not (p99_omitted or p99_thin) and p99n is not None and p99d:
        base = replace(base, p99_ratio=p99n / p99d)
    base = replace(base, p99_omitted=p99_omitted, p99_thin=p99_thin)
    if den.rps == 0:
        return replace(base, why=Why.ZERO_DEN)
    r = _interval(num.cell, den.cell, paired=paired, m=m, confidence=confidence, on_pilot=on_pilot)
    if r is None:
        return replace(base, ratio=num.rps / den.rps, blocks=_blocks(num.cell, den.cell, paired), why=Why.FEW_BLOCKS)
    measured = replace(base, ratio=r.point, ci=(r.lo, r.hi), precision=r.precision, blocks=r.n)
    if r.lo > 1.0:
        outcome = WINS
    elif r.hi < 1.0:
        outcome = LOSES
    else:
        outcome = NO_DIFF
    # Lower bounds: a side with a generator-bound cell may really be faster
    # than measured. That can only widen a gap in its favour, so a claim in
    # its favour stands ("at least"); any other claim does not.
    if outcome == WINS and den_lower:
        return replace(measured, why=Why.LOWER_BOUND_DEN, withheld=outcome)
    if outcome == LOSES and num_lower:
        return replace(measured, why=Why.LOWER_BOUND_NUM, withheld=outcome)
    if outcome == NO_DIFF and (num_lower or den_lower):
        return replace(measured, why=Why.LOWER_BOUND_TIE, withheld=outcome)
    # An excluded cell that outran the chosen best on the side the claim is
    # against could overturn the claim if it were measured cleanly: withhold it.
    against = den_cells if outcome == WINS else num_cells if outcome == LOSES else ()
    chosen = den if outcome == WINS else num
    rival = best(c for c in against if flags.is_excluded(c))
    if rival is not None and rival.rps > chosen.rps:
        return replace(measured, why=Why.EXCLUDED_RIVAL, rival=rival, withheld=outcome)
    return replace(measured, outcome=outcome)


def _later_blocks(num: Cell, den: Cell) -> int:
    """Blocks after the pilot in which both arms ran."""
    a = intervals.after_pilot(intervals.block_throughputs(num))
    return len(set(a) & set(intervals.block_throughputs(den)))


def _interval(
    num: Cell, den: Cell, *, paired: bool, m: int, confidence: float, on_pilot: bool = False
) -> intervals.Interval | None:
    if paired:
        a, b = intervals.block_throughputs(num), intervals.block_throughputs(den)
        if on_pilot:
            a, b = intervals.after_pilot(a), intervals.after_pilot(b)
        return intervals.paired_log_ratio(a, b, confidence=confidence, m=m)
    return intervals.welch_log_ratio(num.throughputs, den.throughputs, confidence=confidence, m=m)


def _blocks(num: Cell, den: Cell, paired: bool) -> int:
    """What the interval would rest on: blocks in common (Welch: the smaller side's slices)."""
    a, b = intervals.block_throughputs(num), intervals.block_throughputs(den)
    return len(set(a) & set(b)) if paired else min(len(a), len(b))


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
    the chain; the verdict names them separately so the reader sees the gap.
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


def top_comparison(
    cells: Sequence[Cell], num: Callable[[Cell], bool], den: Callable[[Cell], bool], *, paired: bool = True
) -> Comparison | None:
    """The comparison at the highest decided users level, else at the highest level."""
    by_level: dict[int, list[Cell]] = {}
    for c in cells:
        by_level.setdefault(c.users, []).append(c)
    first: Comparison | None = None
    # From the top down, stopping at the first decided level: each comparison
    # costs an interval, and notes only ever quote one level.
    for lvl in sorted(by_level, reverse=True):
        cs = by_level[lvl]
        comp = compare([c for c in cs if num(c)], [c for c in cs if den(c)], axis="users", level=lvl, paired=paired)
        if comp.num is None or comp.den is None:
            continue
        if comp.decided:
            return comp
        first = first or comp
    return first
