"""What a run measures and where: the arm (a setup x workload x variant x users cell) and the CPU split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlencode

from asyncbench.model.endpoints import ArmSpec, Catalog
from asyncbench.model.scenario import Scenario
from locustfiles.request import RequestSpec


def cpu_plan(scenario: Scenario) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server CPUs, generator CPUs). Generator CPUs also host the upstream.

    A scenario that pins one side only pins the other to the CPUs left: a
    pinned server beside an unpinned generator would share its CPUs with
    locust and the upstream, and the generator's CPUs could not be watched.
    When one side takes every CPU, the other stays unpinned (nothing is left).
    """
    available = sorted(os.sched_getaffinity(0))
    server, generator = tuple(scenario.cpu.server), tuple(scenario.cpu.generator)
    if server and not generator:
        return server, tuple(c for c in available if c not in server)
    if generator and not server:
        return tuple(c for c in available if c not in generator), generator
    if server or generator:
        return server, generator
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
    # kind, path and request of the workload x variant (a scenario's own
    # endpoint); None: the built-in workload's, from the registry
    spec: ArmSpec | None = None

    @property
    def arm(self) -> ArmSpec:
        return self.spec or Catalog().arm(self.workload, self.variant)

    @property
    def kind(self) -> str:
        return self.arm.kind

    @property
    def request(self) -> RequestSpec:
        return self.arm.request

    @property
    def cell_id(self) -> tuple[str, str, str, int, tuple[tuple[str, int], ...], str]:
        return (self.setup, self.workload, self.variant, self.users, self.params, self.revision)

    @property
    def path(self) -> str:
        base = self.arm.path
        return base + ("?" + urlencode(self.params) if self.params else "")

    @property
    def label(self) -> str:
        p = "".join(f" {k}={v}" for k, v in self.params)
        r = f" [{self.revision}]" if self.revision else ""
        return f"{self.setup} {self.workload}/{self.variant} u={self.users}{p}{r} #{self.repeat + 1}"
