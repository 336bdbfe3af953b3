"""Comparison groups, the order of their slices, and their share of the budget.

A group is one workload x users x parameters: the arms (setup x variant x
revision) a verdict compares. Its slices run in blocks; each block measures
every arm once, in a fresh random order drawn from a seed that names the
group and the block, so a run's order is reproducible and no arm always goes
first (the previous arm's leftovers, a warm cache, fall on every arm alike).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

from asyncbench.execute.plan import Planned
from asyncbench.execute.setups import SetupConfig
from asyncbench.model.endpoints import ArmSpec
from asyncbench.model.results import GroupRecord
from asyncbench.model.scenario import LoadConfig, Scenario, not_here, runs_on
from asyncbench.model.summary import ParamsKey, params_label
from bench_site.registry import WORKLOADS
from bench_site.sessions import cookie_header
from bench_site.stacks import SESSION_STACKS

# Per slice, beyond settle and window: spawning the users, stopping them,
# draining the server, reading CPU counters. Measured here: about 0.35 s.
SLICE_OVERHEAD_S = 0.35
# Set-up before the first slice: database preparation (a seeded database is
# reused), servers started and health-checked, the generator's ceiling.
SETUP_S = 30.0


@dataclass(frozen=True)
class Group:
    workload: str
    users: int
    params: ParamsKey
    arms: tuple[Planned, ...]  # repeat 0: the arm itself; a slice is the arm at a block

    @property
    def label(self) -> str:
        extra = f" {params_label(self.params, ' ')}" if self.params else ""
        return f"{self.workload} u={self.users}{extra}"

    def order(self, scenario: str, block: int) -> list[Planned]:
        """The arms of one block, shuffled, each stamped with the block."""
        arms = [replace(a, repeat=block) for a in self.arms]
        random.Random(f"{scenario}/{self.label}/{block}").shuffle(arms)
        return arms

    def units(self, scenario: str, block: int, *, joint: bool) -> list[list[Planned]]:
        """What one block measures, in order: each arm alone, or with `joint`
        the revisions of one setup x variant together (one window, interleaved)."""
        arms = self.order(scenario, block)
        if not joint:
            return [[a] for a in arms]
        units: dict[tuple[str, str], list[Planned]] = {}
        for a in arms:
            units.setdefault((a.setup, a.variant), []).append(a)
        return list(units.values())


def logged_in(setup: SetupConfig, arm: ArmSpec) -> ArmSpec:
    """The arm as a logged-in browser asks it when the setup's middleware
    stack has sessions (bench_site.stacks): with the seeded session's cookie
    (bench_site.sessions), unless the arm already sends a Cookie header."""
    if setup.middleware not in SESSION_STACKS:
        return arm
    request = arm.request
    if any(name.lower() == "cookie" for name, _ in request.headers):
        return arm
    return replace(arm, request=replace(request, headers=(*request.headers, cookie_header())))


def left_out(scenario: Scenario) -> list[str]:
    """The arms the scenario's setups cannot serve (scenario.not_here), for the plan."""
    return [
        why
        for wl in scenario.workloads
        for v in wl.variants
        for s in scenario.setups
        if runs_on(wl, s) and (why := not_here(s, wl.name, v)) is not None
    ]


def groups(scenario: Scenario, revisions: list[str]) -> list[Group]:
    out: list[Group] = []
    catalog = scenario.catalog
    for wl in scenario.workloads:
        for users in scenario.users_for(wl):
            for params in wl.param_sets(users):
                key = tuple(sorted(params.items()))
                arms = tuple(
                    Planned(s.name, wl.name, v, users, key, rev, 0, logged_in(s, catalog.arm(wl.name, v)))
                    for s in scenario.setups
                    if runs_on(wl, s)
                    for v in wl.variants
                    if not_here(s, wl.name, v) is None
                    for rev in revisions
                )
                out.append(Group(wl.name, users, key, arms))
    return out


def slice_s(load: LoadConfig, group: Group, delay_ms: float = 0.0) -> float:
    """Expected seconds of one slice: a slow arm's window runs on until users
    completed their requests (fan-out waits on the upstream for every call)."""
    window = load.window_s
    wl = WORKLOADS.get(group.workload)
    if wl is not None and wl.uses_upstream:
        calls = dict(group.params).get("calls", 3)
        delay = dict(group.params).get("delay_ms", delay_ms)
        window = max(window, min(load.max_window_s, load.min_requests_per_user * calls * delay / 1000.0))
    return load.settle_s + window + SLICE_OVERHEAD_S


def block_s(load: LoadConfig, group: Group, delay_ms: float = 0.0) -> float:
    return len(group.arms) * slice_s(load, group, delay_ms)


def budget_for(remaining_s: float, weights: list[float]) -> float:
    """This group's share of what is left: the first of `weights` (its own and
    every later group's), so time a group did not need flows to the next."""
    total = sum(weights)
    return remaining_s * weights[0] / total if total > 0 else remaining_s


def planned_wall_s(scenario: Scenario, gs: list[Group]) -> tuple[float, float]:
    """(least, most) seconds the run will take, printed before it starts.

    Least: every group at `min_blocks`. Most: the budget when there is one (a
    group's minimum blocks still run when its share is smaller), else every
    group at `max_blocks`.
    """
    load, delay = scenario.load, float(scenario.upstream.delay_ms)
    least = sum(load.min_blocks * block_s(load, g, delay) for g in gs)
    most = sum(load.max_blocks * block_s(load, g, delay) for g in gs)
    if load.budget_s > 0:
        most = max(least, min(most, load.budget_s))
    return SETUP_S + least, SETUP_S + most


@dataclass
class GroupState:
    """A group in progress: enough to record it however the run ends."""

    group: Group
    budget_s: float
    precision_target: float
    t0: float = field(default_factory=time.monotonic)
    blocks: int = 0
    precision: float | None = None
    rate: float | None = None  # open model: req/s per arm
    rate_rule: str = ""

    def record(self, stop_reason: str) -> GroupRecord:
        return GroupRecord(
            workload=self.group.workload,
            users=self.group.users,
            params=dict(self.group.params),
            revision_pairs=any(a.revision for a in self.group.arms),
            blocks=self.blocks,
            elapsed_s=round(time.monotonic() - self.t0, 2),
            budget_s=round(self.budget_s, 2),
            precision_target=self.precision_target,
            # inf (a ratio with no interval yet) is recorded as "not reached at all"
            precision_achieved=round(self.precision, 5) if self.precision not in (None, math.inf) else None,
            stop_reason=stop_reason,
            rate_rps=self.rate,
            rate_rule=self.rate_rule,
        )
