"""Every sentence a reader sees about a verdict, written once.

The analysis package returns objects and numbers; the report, the terminal
summary and the charts' captions take their words from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from asyncbench.analysis.comparison import INSUFFICIENT, LOSES, MIN_BLOCKS, NO_DIFF, WINS, Comparison, Why
from asyncbench.analysis.intervals import PILOT_BLOCKS
from asyncbench.analysis.verdict import OUTCOME_COSTS, OUTCOME_PAYS_OFF, ContrastResult, ControlResult, Verdict
from asyncbench.model import flags
from asyncbench.model.results import NOT_MEASURED, Cell, Run
from asyncbench.model.summary import THIN_P99_SAMPLES, users_label
from asyncbench.render.format import fmt, fmt_level, fmt_pct, fmt_precision, fmt_ratio
from bench_site.registry import WORKLOADS

# How a verdict is reached; the README and the report repeat it.
METHOD: tuple[str, ...] = (
    "Slices in blocks: a comparison group (one workload at one load level and parameter set) holds its arms "
    "(setup x variant). Each block runs every arm once, in a fresh random order, for a short slice: a brief "
    "settle, then a window of about a second (longer for slow arms, so a slice holds enough requests). The "
    "machine's speed moves by 10-20% within seconds, so many short independent slices tell more than a few "
    "long windows. Version-1 results (one long window per repeat) are read with each repeat as one block.",
    "Per arm: throughput is the mean of its slices' throughputs with a 95% t-interval; CPU per request is "
    "the total server CPU over the total requests, with a t-interval from the slices; latency percentiles "
    "come from the histogram merged over all slices, each with its sample count. A p99 from fewer than "
    f"{THIN_P99_SAMPLES:,} samples is thin: shown, marked, never compared.",
    "Cells flagged failures, server-crash, few-requests or error (or any unknown flag) are excluded from every "
    'claim and named instead. An "unstable" cell (wide spread across slices) is used: its spread is already '
    "in the interval; the verdict's notes name it.",
    "A ratio A/B at one level pairs the blocks where both arms have a slice: d = ln(A) - ln(B) per block, the "
    "ratio is exp(mean d) and its 95% interval exp(mean d ± t·sd/√n), Student's t with n - 1 degrees of "
    f"freedom; at least {MIN_BLOCKS} common blocks. Arms of different groups (the index note) never shared "
    "a block: Welch's t-interval on their log slice throughputs instead.",
    "The best arm: on each side (async views vs sync views; the two sides of a variant note) the best arm is "
    f"the usable cell with the highest mean throughput over the group's first {PILOT_BLOCKS} blocks (the "
    "pilot); the ratio of the chosen pair is estimated on the blocks after the pilot only, so the choice "
    "cannot flatter the winner and the interval needs no correction. After the pilot the runner measures only "
    "the arms some ratio uses. Where too few blocks follow the pilot (version-1 results), the best arm is "
    "chosen on every block and each of the k x k' candidate pairs' intervals is computed at 1 - 0.05/m "
    "(Bonferroni, m = k x k'), so the 95% coverage holds for the pair chosen.",
    "A level is an async win (loss) only when the whole interval lies above (below) 1; otherwise it is "
    '"no difference detected", or "insufficient data" below the minimum of blocks: never a guess. The '
    "precision of a ratio is its interval's half-width on the log scale (±4.1% means hi/lo = 1.041²).",
    "Stopping: after a minimum number of blocks a group keeps running blocks until every ratio its verdict "
    "and notes use has a precision within the scenario's target (5% by default), or its share of the time "
    'budget or its maximum of blocks is spent; then the verdict says "precision not reached" and why. A '
    "group never stops because a result looks significant.",
    'A "generator-bound" cell measured the load generator\'s limit, so its throughput is a lower bound of the '
    "server's: a side holding one is known only from below. It supports a claim only where it is the faster "
    'side (then the claim says "at least" and only the interval\'s end towards 1 holds); a win or loss '
    'against it, or "no difference", is not claimed. Its p99 is not compared. An excluded cell that outran '
    "the best usable cell on the side a claim is against withholds the claim.",
    "The crossover is the lowest level from which async wins at every higher decided level; the same rule is "
    'applied along the upstream delay when the cells vary it (fan-out). "At every load level" is said only '
    "when every level measured has a decision and all agree; levels where the other direction held are named.",
)


def version_label(schema_version: int, repeats: int = 3) -> str:
    """What a reader of an old run must know before its numbers; "" for current results."""
    if schema_version >= 2:
        return ""
    return f"version-1 results: {repeats} repeats read as {repeats} blocks; intervals are wide"


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
    if c.why is Why.FEW_BLOCKS:
        unit = ("block" if c.blocks == 1 else "blocks") + " in common" if c.paired else "slices on a side"
        return f"only {c.blocks} {unit} (need {MIN_BLOCKS})"
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


def _pm(c: Comparison) -> str:
    """ ", ±4.1%": the achieved precision, after the interval."""
    return f", {fmt_precision(c.precision)}" if c.precision is not None else ""


def _ci_ratio(c: Comparison) -> str:
    return f"95% CI {fmt(c.ci[0])}–{fmt_ratio(c.ci[1])}{_pm(c)}" if c.ci else "no interval"


def _ci_cost(c: Comparison) -> str:
    assert c.ci is not None
    # A loss of (1 - ratio): the interval's ends swap.
    return f"95% CI {fmt_pct(1 - c.ci[1])[:-1]}–{fmt_pct(1 - c.ci[0])}{_pm(c)}"


def _ci_win(c: Comparison) -> str:
    assert c.ci is not None
    # Only the interval's lower end means something when the async side is a lower bound.
    return f"95% CI ≥ {fmt_ratio(c.ci[0])}" if c.at_least else _ci_ratio(c)


def _ci_loss(c: Comparison) -> str:
    assert c.ci is not None
    return f"95% CI ≥ {fmt_pct(1 - c.ci[1])}" if c.at_least else _ci_cost(c)


def _at_least(c: Comparison) -> str:
    return "at least " if c.at_least else ""


def _p99_part(c: Comparison) -> str:
    if c.p99_omitted and not c.at_least:  # an "at least" claim already says so
        return ", p99 not compared (generator-bound cell)"
    if c.p99_thin and not c.p99_omitted:
        return f", p99 not compared (thin: fewer than {THIN_P99_SAMPLES:,} samples)"
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
            f"({_ci_ratio(c)}; {_OUTCOME_WORDS[c.outcome]}{f'; {why}' if why else ''})"
        )
    return f"{num_name} reaches {fmt_ratio(c.ratio)} the throughput of {den_name} {at} (no interval: {why})"


# ------------------------------------------------------------------ the verdict


def _where(v: Verdict, start: float | None, head: Comparison) -> tuple[str, str]:
    """Where a win or loss holds, and the "at N users" the ratio is read at.

    "At every load level tested" only when every level measured has a decision
    and all agree: an undecided or opposite level in between would make it false.
    """
    at_head = f"at {users_label(int(head.level))}"
    if start == head.level:
        # Only the highest decided level: "from N up" would overstate it.
        return at_head, ""
    if v.all_agree:
        return f"at every load level tested ({_span(v.levels)})", f" {at_head}"
    return f"from {users_label(int(start or 0))} up", f" {at_head}"


def _elsewhere(v: Verdict) -> str:
    """The decided levels whose outcome differs from the headline's: never left unsaid."""
    decided = v.decided
    ahead = [c.level for c in decided if c.outcome == WINS]
    behind = [c.level for c in decided if c.outcome == LOSES]
    parts = []
    if v.outcome != OUTCOME_PAYS_OFF and ahead:
        parts.append(f"async ahead at {_plural_levels(ahead)}")
    if v.outcome != OUTCOME_COSTS and behind:
        parts.append(f"async behind at {_plural_levels(behind)}")
    return " (" + ", ".join(parts) + ")" if parts else ""


def precision_note(v: Verdict) -> str:
    """ "precision not reached (±7.2%): budget" when the group stopped short; else ""."""
    g = v.group
    if g is None or not v.precision_missed:
        return ""
    achieved = g.precision_achieved if g.precision_achieved is not None else v.precision
    return f"precision not reached ({fmt_precision(achieved)}): {g.stop_reason}"


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
        where, tail = _where(v, v.crossover, head)
        return (
            f"{label}: async pays off {where}; {_at_least(head)}{fmt_ratio(head.ratio)} the throughput of the best "
            f"sync setup{tail} ({_ci_win(head)}{_lower_part(head)}){_p99_part(head)}{_elsewhere(v)}"
        )
    if v.outcome == OUTCOME_COSTS:
        assert head.ratio is not None
        where, _ = _where(v, v.loss_from, head)
        lead = f"{label}: async costs " + ("" if where == at_head else f"{where}; ")
        return (
            f"{lead}{_at_least(head)}{fmt_pct(1 - head.ratio)} throughput {at_head} "
            f"({_ci_loss(head)}{_lower_part(head)}){_p99_part(head)}{_elsewhere(v)}"
        )
    return (
        f"{label}: no difference detected between async and sync at the top load level; "
        f"{fmt_ratio(head.ratio)} {at_head} ({_ci_ratio(head)}), tested {_span(decided)}{_elsewhere(v)}"
    )


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
    missed = precision_note(v)
    return text + (f"; {missed}" if missed else "")


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
            "slices is already in its interval."
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


def deployment_lines(run: Run) -> list[str]:
    """What a run against existing deployments (run --target) must say first:
    where it measured, and that it did not start those servers; whose server
    CPU and RSS were not measured (absent, never zero)."""
    targets = run.environment.targets
    if not targets:
        return []
    where = "; ".join(f"{name} at {url}" for name, url in sorted(targets.items()))
    plural = "an existing deployment" if len(targets) == 1 else "existing deployments"
    lines = [f"Measured against {plural}: {where} (not started by the runner)."]
    unmeasured = sorted(s for s in targets if run.resources(s) == NOT_MEASURED)
    if unmeasured:
        lines.append(
            f"Server CPU and RSS not measured for {', '.join(unmeasured)} (no resource agent): "
            "CPU per request is absent, not zero."
        )
    agents = sorted(s for s in targets if run.resources(s) == "agent")
    if agents:
        lines.append(f"Server CPU and RSS of {', '.join(agents)} from the resource agent on the server host.")
    return lines
