"""Per-workload verdicts: where async pays off, where it costs, and by how much.

A `Verdict` holds numbers and cells only; render/text.py writes its sentence,
claim and notes, and `render.text.METHOD` states the method (the README and
the report repeat it). Everything here is a pure function of a `Run`, so the
report and the terminal summary can be regenerated from results.json without
measuring again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asyncbench.analysis.comparison import (
    LOSES,
    WINS,
    Comparison,
    crossover,
    sweep,
    top_comparison,
)
from asyncbench.analysis.selection import (
    axis_cells,
    cell_kind,
    cell_order,
    delay_sweep_cells,
    is_async,
    is_sync,
    usable_cells,
    workload_order,
)
from asyncbench.model import flags
from asyncbench.model.results import Cell, GroupRecord, Run
from asyncbench.model.summary import ParamsKey, params_key
from bench_site.registry import WORKLOADS, Contrast

OUTCOME_PAYS_OFF = "pays off"
OUTCOME_COSTS = "costs"
OUTCOME_NO_DIFFERENCE = "no difference"
OUTCOME_INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class ContrastResult:
    """One of the workload's registry contrasts, measured at its top level."""

    contrast: Contrast
    comparison: Comparison
    # "alternative" contrasts: each alternative against the best sync setup,
    # to say whether the verdict depends on the choice.
    num_vs_sync: Comparison | None = None
    den_vs_sync: Comparison | None = None


@dataclass(frozen=True)
class ControlResult:
    """A workload against its control (json vs json-noindex), per view kind."""

    treated: str
    control: str
    by_kind: tuple[tuple[str, Comparison], ...]  # ("sync", ...), ("async", ...)
    database: str  # what the difference was measured on, "" when unknown


@dataclass(frozen=True)
class Verdict:
    workload: str
    outcome: str  # OUTCOME_*
    ratio: float | None  # headline throughput ratio async/sync
    ci: tuple[float, float] | None
    p99_ratio: float | None
    level: float | None  # users at which the headline ratio holds
    crossover: float | None  # users from which async wins (None if it never does)
    levels: tuple[Comparison, ...]
    params: ParamsKey = ()  # the parameter set of the users axis
    loss_from: float | None = None  # users from which async loses at every decided level
    delay_levels: tuple[Comparison, ...] = ()
    delay_users: int | None = None
    delay_crossover_ms: float | None = None
    excluded: tuple[Cell, ...] = ()  # cells of the axis left out of every claim
    wide: tuple[Cell, ...] = ()  # used cells with a wide spread across repeats
    lower_bound: tuple[Cell, ...] = ()  # used generator-bound cells
    contrasts: tuple[ContrastResult, ...] = ()
    controls: tuple[ControlResult, ...] = ()
    # The comparison group of the headline level as it ran (version 2): its
    # precision target and why it stopped.
    group: GroupRecord | None = None

    @property
    def precision(self) -> float | None:
        """The headline ratio's half-width as a fraction (0.041 = ±4.1%)."""
        head = self.head
        return head.precision if head else None

    @property
    def precision_missed(self) -> bool:
        """The group stopped (budget, max_blocks, ...) before its ratios reached the target."""
        g = self.group
        if g is None or g.stop_reason == "precision":
            return False
        return g.precision_achieved is None or g.precision_achieved > g.precision_target

    @property
    def all_agree(self) -> bool:
        """Every level measured has a decision, and the same one: "at every load level" may be said."""
        outcomes = {c.outcome for c in self.levels}
        return len(outcomes) == 1 and all(c.decided for c in self.levels)

    @property
    def decided(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.levels if c.decided)

    @property
    def undecided(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.levels if not c.decided)

    @property
    def head(self) -> Comparison | None:
        """The highest decided level: where the headline ratio is read."""
        decided = self.decided
        return decided[-1] if decided else None


def workload_verdict(run: Run, workload: str) -> Verdict:
    cells, pk = axis_cells(run, workload)
    levels = sweep(cells, axis="users", level_of=lambda c: c.users, is_num=is_async, is_den=is_sync)

    delay_cells, delay_users = delay_sweep_cells(run, workload)
    delay_levels: list[Comparison] = []
    if delay_cells:
        delay_levels = sweep(
            delay_cells,
            axis="delay_ms",
            level_of=lambda c: float(c.params["delay_ms"]),
            is_num=is_async,
            is_den=is_sync,
        )

    ordered = sorted(cells, key=cell_order)
    win_from = crossover(levels, WINS)
    loss_from = crossover(levels, LOSES)
    decided = [c for c in levels if c.decided]
    if win_from is not None:
        outcome = OUTCOME_PAYS_OFF
    elif loss_from is not None:
        outcome = OUTCOME_COSTS
    elif decided:
        outcome = OUTCOME_NO_DIFFERENCE
    else:
        outcome = OUTCOME_INSUFFICIENT
    head = decided[-1] if decided else None
    return Verdict(
        workload=workload,
        outcome=outcome,
        ratio=head.ratio if head else None,
        ci=head.ci if head else None,
        p99_ratio=head.p99_ratio if head else None,
        level=head.level if head else None,
        crossover=win_from,
        levels=tuple(levels),
        params=pk,
        loss_from=loss_from,
        delay_levels=tuple(delay_levels),
        delay_users=delay_users,
        delay_crossover_ms=crossover(delay_levels) if delay_levels else None,
        excluded=tuple(c for c in ordered if flags.is_excluded(c)),
        wide=tuple(c for c in ordered if flags.is_wide(c)),
        lower_bound=tuple(c for c in ordered if flags.is_lower_bound(c)),
        contrasts=_contrasts(workload, cells),
        controls=_controls(run, workload),
        group=_group(run, workload, head.level, pk) if head else None,
    )


def _group(run: Run, workload: str, users: float, pk: ParamsKey) -> GroupRecord | None:
    for g in run.groups:
        if g.workload == workload and g.users == int(users) and params_key(g.params) == pk and not g.revision_pairs:
            return g
    # An A/B run's groups hold both revisions; the report describes head.
    for g in run.groups:
        if g.workload == workload and g.users == int(users) and params_key(g.params) == pk:
            return g
    return None


def variant_in(names: tuple[str, ...]) -> Callable[[Cell], bool]:
    return lambda c: c.variant in names


def _contrasts(workload: str, cells: Sequence[Cell]) -> tuple[ContrastResult, ...]:
    """Where a variant changes the answer: the registry's contrasts, measured."""
    w = WORKLOADS.get(workload)
    if w is None:
        return ()
    variants = {c.variant for c in cells}
    out: list[ContrastResult] = []
    for k in w.contrasts:
        if not (variants & set(k.num) and variants & set(k.den)):
            continue
        mine = cells
        if k.same_setups:
            where = {c.setup for c in cells if c.variant in k.num}
            mine = [c for c in cells if c.setup in where]
        comp = top_comparison(mine, variant_in(k.num), variant_in(k.den))
        if comp is None:
            continue
        if k.kind == "alternative":
            num_vs_sync = top_comparison(cells, variant_in(k.num), is_sync)
            den_vs_sync = top_comparison(cells, variant_in(k.den), is_sync)
            out.append(ContrastResult(k, comp, num_vs_sync, den_vs_sync))
        else:
            out.append(ContrastResult(k, comp))
    return tuple(out)


def _of(workload: str, kind: str) -> Callable[[Cell], bool]:
    return lambda c: c.workload == workload and cell_kind(c) == kind


def _controls(run: Run, workload: str) -> tuple[ControlResult, ...]:
    """What a control workload buys: the workload against its control, or as one."""
    pairs = [(workload, w.name) for w in WORKLOADS.values() if workload in w.control_for]
    targets = WORKLOADS[workload].control_for if workload in WORKLOADS else ()
    pairs.extend((target, workload) for target in targets)
    out: list[ControlResult] = []
    for treated, control in pairs:
        t_cells, _ = axis_cells(run, treated)
        c_cells, _ = axis_cells(run, control)
        if not t_cells or not c_cells:
            continue
        by_kind: list[tuple[str, Comparison]] = []
        for kind in ("sync", "async"):
            # Different groups: their block numbers pair nothing (Welch).
            comp = top_comparison([*t_cells, *c_cells], _of(treated, kind), _of(control, kind), paired=False)
            if comp is not None:
                by_kind.append((kind, comp))
        if by_kind:
            out.append(ControlResult(treated, control, tuple(by_kind), _database_name(run)))
    return tuple(out)


def _database_name(run: Run) -> str:
    if run.environment.database.label:
        return run.environment.database.label
    sr = (run.scenario_resolved or {}).get("database")
    if isinstance(sr, dict):
        return str(sr.get("engine") or "")
    return sr if isinstance(sr, str) else ""


def verdicts(run: Run) -> list[Verdict]:
    """One verdict per measured workload, in the registry's order."""
    return [workload_verdict(run, w) for w in workload_order({c.workload for c in usable_cells(run)})]
