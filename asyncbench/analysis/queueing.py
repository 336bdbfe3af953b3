"""The one Little's-law model: the throughput ceiling of a slot-limited setup.

A closed-loop load of N users on S concurrent slots, each request holding its
slot for T seconds, cannot exceed min(N, S) / T requests per second. The
report's model table, the fan-out charts' model lines and the verdicts' notes
all take their ceilings from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncbench.model.results import Cell, Run

# Fallbacks when neither the cell nor the scenario records them; the chart
# says "assumed" whenever they are used.
DEFAULT_FANOUT_CALLS = 3
DEFAULT_DELAY_MS = 50.0


def fanout_model_inputs(run: Run, cell: Cell | None = None) -> tuple[int, float, bool]:
    """(calls, delay_ms, assumed) for fan-out: the cell's params, then the
    scenario as resolved, then the documented defaults (assumed=True)."""
    sr = run.scenario_resolved or {}
    calls: Any = cell.params.get("calls") if cell else None
    delay: Any = cell.params.get("delay_ms") if cell else None
    assumed = False
    if calls is None:
        wl = sr.get("workloads")
        if isinstance(wl, dict):
            fan = wl.get("fanout")
            if isinstance(fan, dict):
                calls = fan.get("calls") or (fan.get("params") or {}).get("calls")
        if calls is None:
            calls = (sr.get("params") or {}).get("calls") if isinstance(sr.get("params"), dict) else None
    if delay is None:
        up = sr.get("upstream")
        if isinstance(up, dict):
            delay = up.get("delay_ms")
        if isinstance(delay, list):  # a sweep: the cell should have carried it
            delay = None
    if calls is None:
        calls, assumed = DEFAULT_FANOUT_CALLS, True
    if delay is None:
        delay, assumed = DEFAULT_DELAY_MS, True
    return int(calls), float(delay), assumed


@dataclass(frozen=True)
class ModelLine:
    """Little's-law ceiling of a slot-limited setup for one fan-out variant.

    A closed-loop load of N users on S concurrent slots, each request taking T
    seconds, cannot exceed min(N, S) / T requests per second.
    """

    setup: str
    variant: str
    slots: int
    time_per_request_s: float
    calls: int
    delay_ms: float
    assumed: bool  # calls/delay taken from defaults, not from the run

    @property
    def ceiling_rps(self) -> float:
        return self.slots / self.time_per_request_s

    def at(self, users: int) -> float:
        return min(users, self.slots) / self.time_per_request_s


def model_line(run: Run, setup: str, variant: str, cell: Cell | None = None) -> ModelLine | None:
    """The ceiling for a fan-out variant on a slot-limited (WSGI) setup, else None.

    A WSGI worker holds its slot for the whole request whatever the view does
    (an async view runs under async_to_sync inside it), so S = workers x threads.
    T is calls x delay for sequential calls and about one delay when the calls
    overlap (sync-threads, async gather). ASGI setups have no fixed slot count
    for async views, so they get no line.
    """
    info = run.setups.get(setup)
    if info is None or info.interface != "wsgi":
        return None
    calls, delay_ms, assumed = fanout_model_inputs(run, cell)
    if delay_ms <= 0:
        return None
    slots = max(1, info.workers) * max(1, info.threads)
    sequential = variant == "sync"
    t = (calls if sequential else 1) * delay_ms / 1000.0
    return ModelLine(setup, variant, slots, t, calls, delay_ms, assumed)
