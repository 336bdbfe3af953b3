"""The decision: every cell × metric tested, Holm over the family, threshold, outcome.

A comparison is a regression only when it is BOTH significant after Holm's
correction over every test of the gate AND its change (ratio of medians,
current/baseline) is larger than the practical threshold for its metric.
A comparison that cannot be trusted is never silently passed: it makes the
outcome "invalid" (exit 2).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean, median, stdev
from typing import Any

from asyncbench.analysis import stats
from asyncbench.gate.config import METRICS, GateConfig, Metric
from asyncbench.gate.normalize import Series
from asyncbench.model import flags
from asyncbench.model.results import Cell
from asyncbench.render.format import fmt, fmt_pct

MODE_BASELINE = "baseline"  # two runs: a stored baseline and the current run
MODE_REVISIONS = "revisions"  # one A/B run: head against base, measured interleaved

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_INVALID = 2

OUTCOME_PASS = "pass"
OUTCOME_REGRESSION = "regression"
OUTCOME_INVALID = "invalid"

VERDICT_REGRESSION = "regression"
VERDICT_IMPROVEMENT = "improvement"
VERDICT_BELOW_THRESHOLD = "below threshold"  # significant, but smaller than the threshold
VERDICT_NOT_SIGNIFICANT = "not significant"  # beyond the threshold, but within the noise
VERDICT_NO_CHANGE = "no change"
VERDICT_INVALID = "invalid"  # not compared: see the comparison's problems


@dataclass(frozen=True)
class Comparison:
    """One cell x metric: baseline against current."""

    key: str
    metric: str
    unit: str
    higher_is_better: bool
    setup: str
    workload: str
    variant: str
    users: int
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    baseline_median: float | None
    current_median: float | None
    ratio: float | None  # current / baseline, of medians
    ci_low: float | None  # 95% bootstrap interval of the ratio
    ci_high: float | None
    p_value: float | None  # one-sided, "current is worse", before correction
    p_adjusted: float | None  # Holm-adjusted over the gate's family of tests
    p_improvement: float | None  # one-sided, "current is better", before correction
    threshold: float
    verdict: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def change(self) -> float | None:
        """Relative change, current vs baseline (+0.12 = 12% higher): of the medians
        (two runs), or the geometric mean of the per-block ratios (A/B, paired)."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def change_ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low - 1.0, self.ci_high - 1.0)

    @property
    def worsening(self) -> float | None:
        """How much worse, as a positive fraction (throughput down or latency up)."""
        if self.ratio is None:
            return None
        return 1.0 - self.ratio if self.higher_is_better else self.ratio - 1.0


@dataclass(frozen=True)
class GateResult:
    exit_code: int
    outcome: str  # "pass" | "regression" | "invalid"
    headline: str
    reasons: tuple[str, ...]  # why the outcome is what it is
    warnings: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    mode: str  # MODE_BASELINE or MODE_REVISIONS
    normalize: str
    alpha: float
    thresholds: dict[str, float]
    metrics: tuple[str, ...]
    min_repeats: int
    tests: int  # size of the Holm family
    baseline_label: str
    current_label: str
    environment: dict[str, Any] = field(default_factory=dict)  # the two environments, compared
    elapsed_s: float = 0.0

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == VERDICT_REGRESSION]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, cd in zip(self.comparisons, d["comparisons"], strict=True):
            cd["change"] = c.change
        return d


@dataclass
class _Test:
    """One cell × metric on its way to a Comparison (filled in step by step)."""

    key: str
    metric: Metric
    base: Series
    cur: Series
    bv: tuple[float, ...]
    cv: tuple[float, ...]
    problems: list[str]
    ci: tuple[float, float] | None = None
    p_worse: float | None = None
    p_better: float | None = None
    adj_worse: float | None = None
    adj_better: float | None = None
    pairs: tuple[float, ...] | None = None  # paired mode: log(current / base) per block

    @property
    def base_median(self) -> float | None:
        return median(self.bv) if self.bv else None

    @property
    def cur_median(self) -> float | None:
        return median(self.cv) if self.cv else None

    @property
    def ratio(self) -> float | None:
        if self.pairs:
            # paired: the geometric mean of the per-block ratios
            return math.exp(fmean(self.pairs))
        bm, cm = self.base_median, self.cur_median
        return cm / bm if bm and cm is not None else None


def _cell_problems(cell: Cell, side: str) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one cell: flags.POLICY decides which flags block."""
    problems: list[str] = []
    warnings: list[str] = []
    if cell.status != "ok":
        problems.append(f"{cell.key} ({side}): status {cell.status}: {cell.error or 'no detail'}")
    for f in cell.all_flags:
        target = problems if flags.blocks_gate(f) else warnings
        target.append(f"{cell.key} ({side}) is flagged {f.code}: {f.message}")
    return problems, warnings


def _seed(key: str, metric: str) -> int:
    # Stable across processes (str hash is salted), so a verdict's CI is reproducible.
    return zlib.crc32(f"{key}|{metric}".encode())


def _tests(
    base: Mapping[str, Series], cur: Mapping[str, Series], cfg: GateConfig, labels: tuple[str, str]
) -> tuple[list[_Test], list[str], list[str]]:
    """One pending test per key on both sides and metric; (tests, problems, warnings)."""
    problems: list[str] = []
    warnings: list[str] = []
    b_label, c_label = labels
    for key in sorted(set(base) - set(cur)):
        problems.append(f"{key} is in the {b_label} run but missing from the {c_label} run")
    for key in sorted(set(cur) - set(base)):
        problems.append(
            f"{key} is in the {c_label} run but missing from the {b_label} run (a new cell: refresh the baseline)"
        )
    keys = sorted(set(base) & set(cur))
    if not keys:
        problems.append("no cell is present on both sides: nothing to compare")
    tests: list[_Test] = []
    for key in keys:
        b, c = base[key], cur[key]
        cell_problems: list[str] = []
        seen: set[int] = set()
        for side, s in ((b_label, b), (c_label, c)):
            for cell in s.sources:
                if id(cell) not in seen:
                    seen.add(id(cell))
                    p, w = _cell_problems(cell, side)
                    cell_problems.extend(p)
                    warnings.extend(w)
        for name in cfg.metrics:
            bv, cv = b.values.get(name, ()), c.values.get(name, ())
            own = list(cell_problems)
            pairs = _pairs(b, c, name) if cfg.paired else None
            if pairs is not None:
                if len(pairs) < cfg.min_repeats:
                    own.append(
                        f"{key} {name}: {len(pairs)} block(s) with both {b_label} and {c_label}, "
                        f"fewer than the {cfg.min_repeats} the paired test needs"
                    )
            else:
                for side, vals in ((b_label, bv), (c_label, cv)):
                    if len(vals) < cfg.min_repeats:
                        own.append(
                            f"{key} {name}: {len(vals)} repeat(s) in the {side} run, "
                            f"fewer than the {cfg.min_repeats} the rank test needs"
                        )
            tests.append(_Test(key, METRICS[name], b, c, bv, cv, own, pairs=pairs))
    return tests, problems, warnings


def _pairs(b: Series, c: Series, metric: str) -> tuple[float, ...] | None:
    """log(current / base) of the slices of one block, block by block; None
    when the slices carry no block (then the two sides are independent samples)."""
    bb, cb = b.blocks.get(metric, ()), c.blocks.get(metric, ())
    if not bb or not cb or None in bb or None in cb:
        return None
    base = {k: v for k, v in zip(bb, b.values.get(metric, ()), strict=True) if k is not None}
    cur = {k: v for k, v in zip(cb, c.values.get(metric, ()), strict=True) if k is not None}
    return tuple(math.log(cur[k] / base[k]) for k in sorted(set(base) & set(cur)) if base[k] > 0 and cur[k] > 0)


def paired_test(logs: Sequence[float], higher_is_better: bool) -> tuple[float, float, tuple[float, float]]:
    """(p worse, p better, 95% interval of the ratio) from per-block log ratios:
    a one-sample t-test of their mean, one-sided each way."""
    from scipy.stats import t as student

    n = len(logs)
    mean = fmean(logs)
    sd = stdev(logs) if n > 1 else 0.0
    se = sd / math.sqrt(n) if n else 0.0
    if se == 0:
        # every block gave the same ratio (a histogram bucket repeated, say):
        # no spread to test against, so no significance either way
        p_up = p_down = 1.0
        ci = (math.exp(mean), math.exp(mean))
    else:
        stat = mean / se
        p_up = float(student.sf(stat, n - 1))  # the ratio is above 1
        p_down = float(student.cdf(stat, n - 1))
        half = float(student.ppf(0.975, n - 1)) * se
        ci = (math.exp(mean - half), math.exp(mean + half))
    return (p_down, p_up, ci) if higher_is_better else (p_up, p_down, ci)


def _ordered(t: _Test) -> tuple[Sequence[float], Sequence[float]]:
    """(the side a regression makes larger, the other side)."""
    return (t.bv, t.cv) if t.metric.higher_is_better else (t.cv, t.bv)


def smallest_reachable_p(worse_first: Sequence[float], better_first: Sequence[float]) -> float:
    """The smallest p the gate's rank test could give these values, in any arrangement.

    The test is exact and conditional on the tie pattern
    (`stats.mann_whitney_greater_exact`), so the floor is that test's p for
    the most extreme arrangement of the pooled values: the largest
    len(worse_first) of them on the worse side. Without ties this is
    1/C(n+m, n); ties raise it. All values equal is the exception: nothing to
    rank, and no change at all at the metric's resolution, so only the
    number of repeats limits the test (1/C(n+m, n)).
    """
    pooled = sorted([*worse_first, *better_first])
    if len(set(pooled)) <= 1:
        return stats.min_p_value(len(worse_first), len(better_first))
    cut = len(pooled) - len(worse_first)
    return stats.mann_whitney_greater_exact(pooled[cut:], pooled[:cut])[1]


def _refuse_blind_tests(tests: Sequence[_Test], alpha: float) -> None:
    # A rank test cannot produce p below its floor (1/C(n+m, n) without ties,
    # higher with them). If that is above Holm's first step alpha/K, the cell
    # can never be called a regression: passing it would be a blind gate, so
    # it is invalid instead.
    valid = [t for t in tests if not t.problems]
    if not valid:
        return
    level = alpha / len(valid)
    for t in valid:
        if t.pairs is not None:
            continue  # the paired t-test has no floor of its own
        floor = smallest_reachable_p(*_ordered(t))
        if floor > level:
            tied = "" if floor <= stats.min_p_value(len(t.bv), len(t.cv)) * (1 + 1e-9) else " and their ties"
            t.problems.append(
                f"{t.key} {t.metric.name}: with {len(t.bv)} and {len(t.cv)} repeats{tied} the "
                f"smallest reachable p is {floor:.2g}, above the corrected level "
                f"{alpha:g}/{len(valid)} = {level:.2g}; add repeats or compare fewer cells"
            )


def _run_tests(tests: Sequence[_Test], cfg: GateConfig) -> None:
    """Rank tests both ways, bootstrap intervals, then Holm over the valid family."""
    valid = [t for t in tests if not t.problems and t.bv and t.cv]
    for t in valid:
        if t.pairs is not None:
            t.p_worse, t.p_better, t.ci = paired_test(t.pairs, t.metric.higher_is_better)
            continue
        if cfg.bootstrap > 0:
            ci = stats.bootstrap_ratio_ci(t.cv, t.bv, resamples=cfg.bootstrap, seed=_seed(t.key, t.metric.name))
            t.ci = (ci[1], ci[2]) if ci else None
        worse_first, better_first = _ordered(t)
        t.p_worse = stats.mann_whitney_greater_exact(worse_first, better_first)[1]
        t.p_better = stats.mann_whitney_greater_exact(better_first, worse_first)[1]
    adj_worse = stats.holm_adjusted([t.p_worse for t in valid if t.p_worse is not None])
    adj_better = stats.holm_adjusted([t.p_better for t in valid if t.p_better is not None])
    for t, aw, ab in zip(valid, adj_worse, adj_better, strict=True):
        t.adj_worse, t.adj_better = aw, ab


def _verdict(t: _Test, threshold: float, alpha: float) -> str:
    if t.problems:
        return VERDICT_INVALID
    ratio = t.ratio
    if ratio is None or t.adj_worse is None or t.adj_better is None:
        return VERDICT_INVALID
    worse = 1.0 - ratio if t.metric.higher_is_better else ratio - 1.0
    worse_sig, better_sig = t.adj_worse <= alpha, t.adj_better <= alpha
    if worse_sig and worse > threshold:
        return VERDICT_REGRESSION
    if better_sig and -worse > threshold:
        return VERDICT_IMPROVEMENT
    if worse_sig or better_sig:
        return VERDICT_BELOW_THRESHOLD
    if abs(worse) > threshold:
        return VERDICT_NOT_SIGNIFICANT
    return VERDICT_NO_CHANGE


def evaluate(
    base: Mapping[str, Series], cur: Mapping[str, Series], cfg: GateConfig, labels: tuple[str, str]
) -> tuple[list[Comparison], list[str], list[str]]:
    """Comparisons for the keys on both sides; (comparisons, problems, warnings)."""
    tests, problems, warnings = _tests(base, cur, cfg, labels)
    _refuse_blind_tests(tests, cfg.alpha)
    _run_tests(tests, cfg)
    comparisons: list[Comparison] = []
    for t in tests:
        threshold = cfg.thresholds[t.metric.name]
        verdict = _verdict(t, threshold, cfg.alpha)
        problems.extend(t.problems)
        if verdict == VERDICT_INVALID and not t.problems:
            problems.append(f"{t.key} {t.metric.name}: baseline median is zero, no ratio")
        comparisons.append(
            Comparison(
                key=t.key,
                metric=t.metric.name,
                unit=t.cur.unit_override or t.metric.unit,
                higher_is_better=t.metric.higher_is_better,
                setup=t.cur.setup,
                workload=t.cur.workload,
                variant=t.cur.variant,
                users=t.cur.users,
                baseline=t.bv,
                current=t.cv,
                baseline_median=t.base_median,
                current_median=t.cur_median,
                ratio=t.ratio,
                ci_low=t.ci[0] if t.ci else None,
                ci_high=t.ci[1] if t.ci else None,
                p_value=t.p_worse,
                p_adjusted=t.adj_worse,
                p_improvement=t.p_better,
                threshold=threshold,
                verdict=verdict,
                problems=tuple(t.problems),
                notes=tuple(dict.fromkeys(t.base.notes + t.cur.notes)),
            )
        )
    return comparisons, problems, warnings


def _describe(c: Comparison) -> str:
    ci = c.change_ci
    ci_text = f", 95% CI {fmt_pct(ci[0], signed=True)} to {fmt_pct(ci[1], signed=True)}" if ci else ""
    p = (
        f", p={fmt(c.p_value, 2)} (Holm-adjusted {fmt(c.p_adjusted, 2)})"
        if c.p_value is not None and c.p_adjusted is not None
        else ""
    )
    return f"{c.key} {c.metric}: {fmt_pct(c.change, signed=True)}{ci_text}{p}; threshold {fmt_pct(c.threshold, 2)}"


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    outcome: str
    headline: str
    reasons: tuple[str, ...]
    tests: int


def decide(comparisons: Sequence[Comparison], problems: Sequence[str], cfg: GateConfig) -> Outcome:
    """The gate's outcome with its headline and reasons: any problem makes it invalid."""
    regressions = [c for c in comparisons if c.verdict == VERDICT_REGRESSION]
    tests = sum(1 for c in comparisons if c.p_adjusted is not None)
    if problems:
        headline = f"Comparison not valid: {len(problems)} problem(s); first: {problems[0]}"
        if regressions:
            headline += f" (and {len(regressions)} regression(s) among the cells that could be compared)"
        reasons = [*problems, *(f"regression: {_describe(c)}" for c in regressions)]
        return Outcome(EXIT_INVALID, OUTCOME_INVALID, headline, tuple(reasons), tests)
    if regressions:
        worst = max(regressions, key=lambda c: c.worsening or 0.0)
        headline = (
            f"Regression: {len(regressions)} of {tests} comparisons significantly worse by more than "
            f"their threshold; worst {worst.key} {worst.metric} {fmt_pct(worst.change, signed=True)}"
            if worst.change is not None
            else f"Regression: {len(regressions)} of {tests} comparisons"
        )
        reasons = [f"regression: {_describe(c)}" for c in regressions]
        return Outcome(EXIT_REGRESSION, OUTCOME_REGRESSION, headline, tuple(reasons), tests)
    cells = len({c.key for c in comparisons})
    below = [c for c in comparisons if c.verdict == VERDICT_BELOW_THRESHOLD and (c.worsening or 0) > 0]
    noisy = [c for c in comparisons if c.verdict == VERDICT_NOT_SIGNIFICANT and (c.worsening or 0) > 0]
    headline = (
        f"No regression: {tests} comparisons ({cells} cells × {len(cfg.metrics)} metrics), none both "
        f"significant at α={cfg.alpha:g} (Holm) and beyond its threshold"
    )
    reasons = [headline]
    reasons += [f"significant but below threshold: {_describe(c)}" for c in below]
    reasons += [f"beyond threshold but not significant (noise): {_describe(c)}" for c in noisy]
    return Outcome(EXIT_OK, OUTCOME_PASS, headline, tuple(reasons), tests)
