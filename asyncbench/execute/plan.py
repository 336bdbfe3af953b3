"""What a run measures and where: the ordered measurements and the CPU split."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from urllib.parse import urlencode

from asyncbench.model.scenario import Scenario
from bench_site.registry import endpoint


def cpu_plan(scenario: Scenario) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server CPUs, generator CPUs). Generator CPUs also host the upstream."""
    available = sorted(os.sched_getaffinity(0))
    server, generator = scenario.cpu.server, scenario.cpu.generator
    if server or generator:
        return tuple(server), tuple(generator)
    if len(available) < 2:
        return (), ()
    half = len(available) // 2
    return tuple(available[:half]), tuple(available[half:])


@dataclass(frozen=True)
class Planned:
    setup: str
    workload: str
    variant: str
    users: int
    params: tuple[tuple[str, int], ...]
    revision: str
    repeat: int

    @property
    def cell_id(self) -> tuple[str, str, str, int, tuple[tuple[str, int], ...], str]:
        return (self.setup, self.workload, self.variant, self.users, self.params, self.revision)

    @property
    def path(self) -> str:
        base = endpoint(self.workload, self.variant).path
        return base + ("?" + urlencode(self.params) if self.params else "")

    @property
    def label(self) -> str:
        p = "".join(f" {k}={v}" for k, v in self.params)
        r = f" [{self.revision}]" if self.revision else ""
        return f"{self.setup} {self.workload}/{self.variant} u={self.users}{p}{r} #{self.repeat + 1}"


def plan(scenario: Scenario, revisions: list[str]) -> list[Planned]:
    """Every measurement, in the order it will run.

    All setups' servers are up for the whole run, so within each (workload,
    users, parameters) group every arm (setup x variant x revision) is
    measured once per round, in an order shuffled with a fixed seed per round:
    slow drift over the minutes a group takes hits every arm alike, including
    the setups the verdict compares, and no arm always goes first.
    """
    out: list[Planned] = []
    for wl in scenario.workloads:
        for users in scenario.users_for(wl):
            for params in wl.param_sets():
                key = tuple(sorted(params.items()))
                arms = [(s.name, v, rev) for s in scenario.setups for v in wl.variants for rev in revisions]
                for r in range(scenario.load.repeats):
                    order = list(arms)
                    random.Random(f"{scenario.name}/{wl.name}/{users}/{key}/{r}").shuffle(order)
                    out.extend(Planned(setup, wl.name, v, users, key, rev, r) for setup, v, rev in order)
    return out
