"""Flag codes and the one policy every reader applies to them.

A flag says a figure is not a clean measurement of the server. What that means
for a claim is decided here, once: the verdicts, the regression gate, the
report's flags section and the terminal all read `POLICY`. A code this table
does not know (a results file from a newer harness) gets `UNKNOWN`: excluded
from verdicts and blocking in the gate, the conservative reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncbench.model.results import Cell, Flag

GENERATOR_BOUND = "generator-bound"  # locust CPU >= ~90% of a core, or near its ceiling
FAILURES = "failures"  # any request failed
SERVER_CRASH = "server-crash"  # server died or respawned a worker during the cell
UNSTABLE = "unstable"  # coefficient of variation across repeats >= threshold
FEW_REQUESTS = "few-requests"  # too few requests per user for percentiles to mean much
ERROR = "error"  # the cell could not be measured (bad body, server did not start, ...)
OUTAGE = "outage"  # a service the view needs (database, upstream) was unreachable during the window
BACKLOG = "backlog"  # the server had not worked off the previous window's queue (its drain timed out)
RATE_NOT_HELD = "rate-not-held"  # open model: requests dropped (no free connection) or left unanswered
NEAR_CAPACITY = "near-capacity"  # open model: the server's CPUs were nearly saturated at the fixed rate


class InVerdicts(StrEnum):
    """What a flag does to a cell in the verdicts."""

    USE = "used"  # the figure stands; its caveat is already in the interval
    LOWER_BOUND = "lower bound"  # the throughput is a lower bound of the server's
    EXCLUDE = "excluded"  # not a measurement of the server: left out and named


class InGate(StrEnum):
    """What a flag on either side does to a gate comparison."""

    WARN = "warns"  # compared, with a warning
    BLOCK = "blocks"  # not compared: the gate's outcome is "invalid" (exit 2)


@dataclass(frozen=True)
class FlagPolicy:
    code: str
    meaning: str  # what the flag says about the figure, for the report
    verdicts: InVerdicts
    gate: InGate


POLICY: dict[str, FlagPolicy] = {
    p.code: p
    for p in (
        FlagPolicy(
            GENERATOR_BOUND,
            "the load generator was the limit, so the throughput is a lower bound of the server's",
            InVerdicts.LOWER_BOUND,
            InGate.BLOCK,
        ),
        FlagPolicy(FAILURES, "some requests failed", InVerdicts.EXCLUDE, InGate.BLOCK),
        FlagPolicy(SERVER_CRASH, "the server died or replaced a worker", InVerdicts.EXCLUDE, InGate.BLOCK),
        FlagPolicy(UNSTABLE, "wide spread across repeats", InVerdicts.USE, InGate.WARN),
        FlagPolicy(FEW_REQUESTS, "too few requests per user", InVerdicts.EXCLUDE, InGate.WARN),
        FlagPolicy(ERROR, "the cell could not be measured", InVerdicts.EXCLUDE, InGate.BLOCK),
        FlagPolicy(OUTAGE, "a service the view needs was unreachable", InVerdicts.EXCLUDE, InGate.BLOCK),
        FlagPolicy(
            BACKLOG,
            "the server was still working off the previous window's queue",
            InVerdicts.EXCLUDE,
            InGate.BLOCK,
        ),
        # A regression large enough to lose the rate shows in latency, which
        # the gate tests: a warning, not a reason to call the comparison invalid.
        FlagPolicy(RATE_NOT_HELD, "the fixed arrival rate was not held", InVerdicts.EXCLUDE, InGate.WARN),
        FlagPolicy(NEAR_CAPACITY, "the fixed rate nearly saturated the server", InVerdicts.USE, InGate.WARN),
    )
}
CODES = tuple(POLICY)
UNKNOWN = FlagPolicy("unknown", "a flag this version does not know", InVerdicts.EXCLUDE, InGate.BLOCK)


def policy(code: str) -> FlagPolicy:
    return POLICY.get(code, UNKNOWN)


def codes(cell: Cell) -> list[str]:
    """Every flag code of a cell, sorted; "error" first for a cell that did not run."""
    found = sorted(cell.flag_codes)
    if cell.status != "ok" and ERROR not in found:
        found.insert(0, ERROR)
    return found


def reasons(cell: Cell) -> list[str]:
    """Human-readable reasons a cell is flagged, most specific first."""
    out: list[str] = []
    if cell.status != "ok":
        out.append(f"error: {cell.error}" if cell.error else f"status {cell.status}")
    for f in cell.all_flags:
        text = f"{f.code}: {f.message}" if f.message else f.code
        if text not in out:
            out.append(text)
    return out


def is_flagged(cell: Cell) -> bool:
    """Any flag at all: how charts and tables mark a cell."""
    return cell.status != "ok" or bool(cell.flag_codes)


def is_excluded(cell: Cell) -> bool:
    """Left out of every claim (and named)."""
    return any(policy(c).verdicts is InVerdicts.EXCLUDE for c in codes(cell))


def is_lower_bound(cell: Cell) -> bool:
    """Usable, but the generator was the limit: the throughput is a lower bound."""
    return not is_excluded(cell) and any(policy(c).verdicts is InVerdicts.LOWER_BOUND for c in cell.flag_codes)


def is_wide(cell: Cell) -> bool:
    """Usable, with a wide spread across repeats (already in the interval)."""
    return not is_excluded(cell) and UNSTABLE in cell.flag_codes


def blocks_gate(flag: Flag) -> bool:
    return policy(flag.code).gate is InGate.BLOCK
