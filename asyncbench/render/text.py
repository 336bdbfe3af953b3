"""Every sentence a reader sees about a verdict, written once.

The analysis package returns objects and numbers; the report, the terminal
summary and the charts' captions take their words from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from asyncbench.analysis.comparison import INSUFFICIENT, LOSES, MIN_REPEATS, NO_DIFF, WINS, Comparison, Why
from asyncbench.analysis.verdict import OUTCOME_COSTS, OUTCOME_PAYS_OFF, ContrastResult, ControlResult, Verdict
from asyncbench.model import flags
from asyncbench.model.results import Cell
from asyncbench.model.summary import users_label
from asyncbench.render.format import fmt, fmt_level, fmt_pct, fmt_ratio
from bench_site.registry import WORKLOADS

# How a verdict is reached; the README and the report repeat it.
METHOD: tuple[str, ...] = (
    "Cells are grouped per workload and load level (users). Cells flagged failures, server-crash, few-requests "
    'or error (or any unknown flag) are excluded from every claim and named instead. An "unstable" cell (wide '
    "spread across repeats) is used: its spread is already in the bootstrap interval; the verdict's notes name it.",
    "On each side (async views vs sync views) the best setup x variant is the usable cell with the highest "
    "median throughput across its repeats.",
    "The ratio async/sync is the ratio of those medians, with a 95% percentile bootstrap interval over the "
    "repeats (stats.bootstrap_ratio_ci, seeded).",
    "A level is an async win (loss) only when the whole interval lies above (below) 1 and both sides have at "
    f'least {MIN_REPEATS} repeats; otherwise it is "no difference detected" or "insufficient data", never '
    "a guess.",
    'A "generator-bound" cell measured the load generator\'s limit, so its throughput is a lower bound of the '
    "server's: a side holding one is known only from below. It supports a claim only where it is the faster "
    'side (then the claim says "at least" and only the interval\'s end towards 1 holds); a win or loss '
    'against it, or "no difference", is not claimed. Its p99 is not compared. An excluded cell that outran '
    "the best usable cell on the side a claim is against withholds the claim.",
    "The crossover is the lowest level from which async wins at every higher decided level; the same rule is "
    "applied along the upstream delay when the cells vary it (fan-out).",
)

_OUTCOME_WORDS = {WINS: "ahead", LOSES: "behind", NO_DIFF: "no difference detected", INSUFFICIENT: "insufficient data"}


# ------------------------------------------------------------------ labels


def workload_label(workload: str) -> str:
    """Short name for sentences ("fan-out")."""
    w = WORKLOADS.get(workload)
    return (w.label or w.title) if w is not None else workload


def workload_title(workload: str) -> str:
    """Name for headings ("fan-out HTTP")."""
    w = WORKLOADS.get(workload)
    return w.title if w is not None else workload_label(workload)


def _names(cells: Iterable[Cell]) -> str:
    return ", ".join(sorted({c.summary.arm for c in cells}))


def _span(levels: Sequence[Comparison]) -> str:
    lo, hi = int(levels[0].level), int(levels[-1].level)
    return users_label(lo) if lo == hi else f"{lo:,}–{users_label(hi)}"


def _plural_levels(levels: Iterable[float]) -> str:
    xs = sorted({int(x) for x in levels})
    if not xs:
        return ""
    if len(xs) == 1:
        return users_label(xs[0])
    return ", ".join(f"{x:,}" for x in xs[:-1]) + f" and {xs[-1]:,} users"


# ------------------------------------------------------------------ one comparison


def reason(c: Comparison) -> str:
    """Why a level has no outcome; "" when it has one."""
    if c.why is Why.NO_CELL:
        return f"no usable {' and '.join(c.missing)} cell" + (" (all excluded)" if c.all_excluded else "")
    if c.why is Why.ZERO_DEN:
        return "zero sync throughput"
    if c.why is Why.FEW_REPEATS:
        return "single repeat" if c.repeats == 1 else f"only {c.repeats} repeats (need {MIN_REPEATS})"
    if c.why is Why.LOWER_BOUND_DEN:
        return (
            f"generator-bound {c.den_name} cell ({_names(c.den_lower)}) is only a lower bound, "
            f"so {c.num_name} cannot be shown to win"
        )
    if c.why is Why.LOWER_BOUND_NUM:
        return (
            f"generator-bound {c.num_name} cell ({_names(c.num_lower)}) is only a lower bound, "
            f"so {c.num_name} cannot be shown to lose"
        )
    if c.why is Why.LOWER_BOUND_TIE:
        cells = _names((*c.num_lower, *c.den_lower))
        return f"generator-bound cell ({cells}) is only a lower bound and the interval includes 1"
    if c.why is Why.EXCLUDED_RIVAL and c.rival is not None:
        side = c.den_name if c.withheld == WINS else c.num_name
        codes = ", ".join(flags.codes(c.rival.cell))
        return f"excluded {c.rival.label} ({codes}) outran the best usable {side} cell"
    return ""


def _ci_ratio(ci: tuple[float, float] | None) -> str:
    return f"95% CI {fmt(ci[0])}–{fmt_ratio(ci[1])}" if ci else "no interval"


def _ci_cost(ci: tuple[float, float]) -> str:
    # A loss of (1 - ratio): the interval's ends swap.
    return f"95% CI {fmt_pct(1 - ci[1])[:-1]}–{fmt_pct(1 - ci[0])}"


def _ci_win(c: Comparison) -> str:
    assert c.ci is not None
    # Only the interval's lower end means something when the async side is a lower bound.
    return f"95% CI ≥ {fmt_ratio(c.ci[0])}" if c.at_least else _ci_ratio(c.ci)


def _ci_loss(c: Comparison) -> str:
    assert c.ci is not None
    return f"95% CI ≥ {fmt_pct(1 - c.ci[1])}" if c.at_least else _ci_cost(c.ci)


def _at_least(c: Comparison) -> str:
    return "at least " if c.at_least else ""


def _p99_part(c: Comparison) -> str:
    if c.p99_omitted and not c.at_least:  # an "at least" claim already says so
        return ", p99 not compared (generator-bound cell)"
    return f", p99 {fmt_ratio(c.p99_ratio)}" if c.p99_ratio is not None else ""


def _lower_part(c: Comparison) -> str:
    """Inside the claim's parentheses: why it says "at least"."""
    if not c.at_least:
        return ""
    cells = c.lower_cells
    its = "its throughput is" if len({x.summary.arm for x in cells}) == 1 else "their throughput is"
    text = f"; {_names(cells)} generator-bound, so {its} a lower bound"
    return text + ("; p99 not compared" if c.p99_omitted else "")


def describe(c: Comparison, num_name: str, den_name: str) -> str:
    """ "X reaches 1.80× the throughput of Y at 64 users (95% CI ...)"."""
    at = f"at {users_label(int(c.level))}"
    why = reason(c)
    if c.ci is not None:
        # On a lower bound: num's share is at least (wins) / at most (loses) this.
        bound = "" if not c.at_least else "at least " if c.outcome == WINS else "at most "
        return (
            f"{num_name} reaches {bound}{fmt_ratio(c.ratio)} the throughput of {den_name} {at} "
            f"({_ci_ratio(c.ci)}; {_OUTCOME_WORDS[c.outcome]}{f'; {why}' if why else ''})"
        )
    return f"{num_name} reaches {fmt_ratio(c.ratio)} the throughput of {den_name} {at} (no interval: {why})"


# ------------------------------------------------------------------ the verdict


def _headline(v: Verdict, label: str) -> str:
    head = v.head
    decided = v.decided
    if head is None:
        if not v.levels:
            why = "no cells measured"
        else:
            reasons = Counter(reason(c) for c in v.levels)
            why = "; ".join(f"{r} at {_plural_levels(c.level for c in v.levels if reason(c) == r)}" for r in reasons)
        return f"{label}: insufficient data for a claim ({why})"
    at_head = f"at {users_label(int(head.level))}"
    if v.outcome == OUTCOME_PAYS_OFF:
        if v.crossover == head.level:
            # Only the highest decided level: "from N up" would overstate it.
            where, tail = at_head, ""
        elif v.crossover == decided[0].level:
            where, tail = f"at every load level tested ({_span(decided)})", f" {at_head}"
        else:
            where, tail = f"from {users_label(int(v.crossover or 0))} up", f" {at_head}"
        return (
            f"{label}: async pays off {where}; {_at_least(head)}{fmt_ratio(head.ratio)} the throughput of the best "
            f"sync setup{tail} ({_ci_win(head)}{_lower_part(head)}){_p99_part(head)}"
        )
    if v.outcome == OUTCOME_COSTS:
        assert head.ratio is not None
        lead = f"{label}: async costs "
        if v.loss_from == decided[0].level and v.loss_from != head.level:
            lead += f"at every load level tested ({_span(decided)}); "
        elif v.loss_from != head.level:
            lead += f"from {users_label(int(v.loss_from or 0))} up; "
        return (
            f"{lead}{_at_least(head)}{fmt_pct(1 - head.ratio)} throughput {at_head} "
            f"({_ci_loss(head)}{_lower_part(head)}){_p99_part(head)}"
        )
    text = (
        f"{label}: no difference detected between async and sync at the top load level; "
        f"{fmt_ratio(head.ratio)} {at_head} ({_ci_ratio(head.ci)}), tested {_span(decided)}"
    )
    ahead = [c.level for c in decided if c.outcome == WINS]
    behind = [c.level for c in decided if c.outcome == LOSES]
    mixed = []
    if ahead:
        mixed.append(f"async ahead at {_plural_levels(ahead)}")
    if behind:
        mixed.append(f"behind at {_plural_levels(behind)}")
    return text + (" (" + ", ".join(mixed) + ")" if mixed else "")


def _delay_phrase(v: Verdict) -> str:
    levels, x, users = v.delay_levels, v.delay_crossover_ms, users_label(v.delay_users or 0)
    span = f"{fmt_level(levels[0].level)}–{fmt_level(levels[-1].level)} ms"
    if x is not None:
        return f"along the upstream delay at {users}, async wins from {fmt_level(x)} ms up (tested {span})"
    if not any(c.decided for c in levels):
        return f"upstream-delay sweep at {users}: insufficient data"
    return f"along the upstream delay at {users}, no crossover in {span}"


def claim(v: Verdict) -> str:
    """The claim alone."""
    text = _headline(v, workload_label(v.workload))
    undecided = v.undecided
    if v.head is not None and undecided:
        parts = Counter(reason(c) for c in undecided)
        text += "; no claim at " + "; ".join(
            f"{_plural_levels(c.level for c in undecided if reason(c) == r)} ({r})" for r in parts
        )
    if v.delay_levels and v.delay_users is not None:
        text += "; " + _delay_phrase(v)
    return text


def excluded_names(v: Verdict) -> list[str]:
    """The cells left out of every claim, with their flags."""
    return [f"{c.summary.name} ({'; '.join(flags.codes(c))})" for c in v.excluded]


def sentence(v: Verdict) -> str:
    """The claim, then the flagged cells it left out."""
    names = excluded_names(v)
    return claim(v) + (". Excluded from claims: " + ", ".join(names) if names else "")


# ------------------------------------------------------------------ notes


def _flag_notes(v: Verdict) -> list[str]:
    out: list[str] = []
    if v.wide:
        parts = []
        for c in v.wide:
            spread = c.summary.rps_cv
            parts.append(c.summary.name + (f" (CV {spread:.0%})" if spread is not None else ""))
        out.append(
            "Wide spread (unstable): " + ", ".join(parts) + ". Used in the claims: a cell's spread across "
            "repeats is already in its bootstrap interval."
        )
    if v.lower_bound:
        out.append(
            "Generator-bound: " + ", ".join(c.summary.name for c in v.lower_bound) + ". The load generator was "
            "the limit, so the measured throughput is a lower bound of the server's: it supports a claim only as "
            'the faster side ("at least"), and its p99 is not compared.'
        )
    return out


def _contrast_note(r: ContrastResult) -> str:
    k, c = r.contrast, r.comparison
    if k.kind == "concurrency":
        best = f"{k.num_name} ({c.num.cell.variant})" if c.num else k.num_name
        # The conclusion follows the numbers, never a house opinion.
        moral = {
            WINS: " Async beats overlapping the calls in threads here.",
            LOSES: " Overlapping the calls in threads beats async here.",
            NO_DIFF: " Overlapping the calls in threads does as well: concurrency, not async itself, "
            "is what this fan-out needed.",
        }.get(c.outcome, "")
        return "Concurrent vs async: " + describe(c, f"the best {best}", k.den_name) + "." + moral
    text = f"{k.topic}: " + describe(c, k.num_name, k.den_name) + "."
    a, b = r.num_vs_sync, r.den_vs_sync
    if a is not None and b is not None and a.decided and b.decided:
        text += (
            f" Against the best sync setup: {k.den_name} {fmt_ratio(b.ratio)} ({_OUTCOME_WORDS[b.outcome]}), "
            f"{k.num_name} {fmt_ratio(a.ratio)} ({_OUTCOME_WORDS[a.outcome]})"
        )
        if a.outcome != b.outcome:
            text += f" — the verdict depends on the {k.topic}, not on async alone."
        else:
            text += " — the same answer either way."
    return text


def _control_note(r: ControlResult) -> str:
    parts = [f"{kind}: " + describe(c, r.treated, r.control) for kind, c in r.by_kind]
    on = f" on {r.database}" if r.database else ""
    return f"What the index buys{on} ({r.treated} vs {r.control}) — " + "; ".join(parts) + "."


def notes(v: Verdict) -> list[str]:
    """What the flags mean for the claim, where a variant changes the answer, what a control buys."""
    return _flag_notes(v) + [_contrast_note(r) for r in v.contrasts] + [_control_note(r) for r in v.controls]
