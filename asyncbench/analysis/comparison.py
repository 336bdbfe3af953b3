"""Best numerator cell against best denominator cell, level by level: numbers only.

A `Comparison` records the two sides, the ratio of their median throughputs
with its bootstrap interval, the outcome, and when there is no outcome the
data that says why (`Why`); render/text.py puts that into words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from asyncbench.analysis import stats
from asyncbench.model import flags
from asyncbench.model.results import Cell

# Below three repeats a bootstrap interval of a median is little more than the
# range of two numbers: too narrow to call a confidence interval. No claim then.
MIN_REPEATS = 3
CONFIDENCE = 0.95

# Per-level outcomes of one comparison.
WINS = "wins"
LOSES = "loses"
NO_DIFF = "no difference"
INSUFFICIENT = "insufficient data"


class Why(StrEnum):
    """Why a level has no outcome."""

    NO_CELL = "no usable cell"  # a side has no usable cell (`missing`)
    ZERO_DEN = "zero denominator"  # the denominator's median throughput is 0
    FEW_REPEATS = "few repeats"  # fewer than MIN_REPEATS repeats on a side
    LOWER_BOUND_DEN = "den lower bound"  # a win against a generator-bound side
    LOWER_BOUND_NUM = "num lower bound"  # a loss with a generator-bound side
    LOWER_BOUND_TIE = "lower bound, interval includes 1"
    EXCLUDED_RIVAL = "excluded rival"  # an excluded cell outran the side a claim is against


@dataclass(frozen=True)
class Side:
    """The best usable cell on one side of a comparison."""

    cell: Cell
    median_rps: float

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
    p99_ratio: float | None = None
    p99_ci: tuple[float, float] | None = None
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
    # The p99 ratio was not computed because a compared cell is generator-bound.
    p99_omitted: bool = False
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
    def repeats(self) -> int:
        """Repeats of the side with fewer."""
        if self.num is None or self.den is None:
            return 0
        return min(len(self.num.cell.repeats), len(self.den.cell.repeats))

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


def best(cells: Iterable[Cell]) -> Side | None:
    """The cell with the highest median throughput."""
    found: Side | None = None
    for c in cells:
        m = c.summary.rps
        if m is None:
            continue
        # Ties broken by name so the choice never depends on file order.
        if found is None or (m, c.setup, c.variant) > (found.median_rps, found.cell.setup, found.cell.variant):
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
) -> Comparison:
    """Compare the best usable numerator cell with the best usable denominator cell.

    All cells passed are at the same level; excluded ones (flags.is_excluded)
    are set aside and kept in `excluded`. Generator-bound cells take part as
    lower bounds: see render.text.METHOD, point 5.
    """
    excluded = tuple((c, tuple(flags.reasons(c))) for c in (*num_cells, *den_cells) if flags.is_excluded(c))
    num_use = [c for c in num_cells if not flags.is_excluded(c)]
    den_use = [c for c in den_cells if not flags.is_excluded(c)]
    num, den = best(num_use), best(den_use)
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
    r = stats.bootstrap_ratio_ci(num.cell.throughputs, den.cell.throughputs, confidence=CONFIDENCE)
    # A generator-bound cell's latency includes the generator's own queueing:
    # its p99 says little about the server, so no p99 ratio is computed.
    p99_omitted = flags.is_lower_bound(num.cell) or flags.is_lower_bound(den.cell)
    p = None if p99_omitted else stats.bootstrap_ratio_ci(num.cell.p99s, den.cell.p99s, confidence=CONFIDENCE)
    base = replace(base, p99_ratio=p[0] if p else None, p99_ci=(p[1], p[2]) if p else None, p99_omitted=p99_omitted)
    if r is None:
        return replace(base, why=Why.ZERO_DEN)
    if base.repeats < MIN_REPEATS:
        return replace(base, ratio=r[0], why=Why.FEW_REPEATS)
    measured = replace(base, ratio=r[0], ci=(r[1], r[2]))
    if r[1] > 1.0:
        outcome = WINS
    elif r[2] < 1.0:
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
    if rival is not None and rival.median_rps > chosen.median_rps:
        return replace(measured, why=Why.EXCLUDED_RIVAL, rival=rival, withheld=outcome)
    return replace(measured, outcome=outcome)


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
    cells: Sequence[Cell], num: Callable[[Cell], bool], den: Callable[[Cell], bool]
) -> Comparison | None:
    """The comparison at the highest decided users level, else at the highest level."""
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
