"""The fixed arrival rate of an open-model group, and the rule that chose it.

`load.rate` fixes it outright (req/s per arm). `load.rate_fraction` derives
it from capacity, measured here and now: one closed-loop probe slice per arm
of the group (its `users`, no think time, the scenario's window) gives each
arm's saturation throughput; the group's rate is

    rate = rate_fraction x (the slowest arm's capacity) / (arms sharing a window)

rounded down to two significant figures, and at most GENERATOR_SHARE of the
generator's measured ceiling over the arms sharing a window. One rate for the
whole group: twins, setups and revisions are compared at the same load.

Why a small fraction: on this kind of machine a request at a light load costs
the server two to three times the CPU it costs at saturation (every request
wakes an idle process; at saturation the wake-ups are shared), so 20% of the
closed-loop capacity already keeps a server's CPU near half busy, and arms
measured in one window share the server's CPUs. Windows where the server's
CPUs were busier than 75% are flagged near-capacity; windows that lost
requests, rate-not-held.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.processes import ProcessError

if TYPE_CHECKING:
    from asyncbench.execute.groups import Group
    from asyncbench.execute.slices import RunContext

GENERATOR_SHARE = 0.05  # of the generator's ceiling, for all the arms of one window
MIN_RATE = 5.0
PROBE_WINDOW_S = 1.0  # a capacity probe need not be precise: the rate is a small fraction of it


def round_down(x: float, digits: int = 2) -> float:
    """x rounded down to `digits` significant figures (483 -> 480, 0.0347 -> 0.034)."""
    if x <= 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(x)))
    # the epsilon keeps 0.57 from reading as 0.5699999 and rounding to 0.56
    return float(math.floor(x * scale * (1 + 1e-12)) / scale)


def share(group: Group, joint: bool) -> int:
    """How many arms share one window: the revisions of an A/B run when measured jointly."""
    return max(1, len({a.revision for a in group.arms})) if joint else 1


def choose_rate(
    group: Group, ctx: RunContext, gen: LoadGenerator, ceiling: float | None, *, joint: bool
) -> tuple[float, str]:
    """(rate in req/s per arm, the rule as a sentence)."""
    load = ctx.scenario.load
    if load.rate:
        return load.rate, f"fixed arrival rate {load.rate:g} req/s per arm ({load.arrival}; the scenario's load.rate)"
    n = share(group, joint)
    capacities: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for arm in group.arms:
        if (arm.setup, arm.variant) in seen:
            continue  # one probe per setup x variant: revisions share the rate
        seen.add((arm.setup, arm.variant))
        server, _ = ctx.running(arm)
        if server is None:
            continue
        try:
            m = gen.measure(
                host=server.base_url,
                path=server.prefix + arm.path,
                users=arm.users,
                warmup_s=load.settle_s,
                min_s=PROBE_WINDOW_S,
                max_s=PROBE_WINDOW_S,
                slow_max_s=max(PROBE_WINDOW_S, load.max_window_s),
                target_rse=0.0,
                min_requests_per_user=load.min_requests_per_user,
            )
        except ProcessError as exc:
            ctx.progress.note(f"  capacity probe of {arm.setup}/{arm.variant} failed: {exc}")
            continue
        if m.requests and not m.failures:
            capacities[f"{arm.setup}/{arm.variant}"] = m.throughput_rps
    if not capacities:
        return MIN_RATE, f"no arm answered its capacity probe: {MIN_RATE:g} req/s per arm"
    slowest = min(capacities, key=lambda k: capacities[k])
    rate = load.rate_fraction * capacities[slowest] / n
    why = (
        f"{load.rate_fraction:g} x {capacities[slowest]:,.0f} req/s (the slowest arm's closed-loop capacity "
        f"at {group.users} users: {slowest})" + (f" / {n} arms per window" if n > 1 else "")
    )
    if ceiling:
        cap = GENERATOR_SHARE * ceiling / n
        if cap < rate:
            rate = cap
            why += f", capped at {GENERATOR_SHARE:.0%} of the generator's ceiling ({ceiling:,.0f} req/s)"
    rate = max(MIN_RATE, round_down(rate))
    probes = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(capacities.items()))
    return rate, f"arrival rate {rate:g} req/s per arm ({load.arrival}) = {why}; capacities: {probes} req/s"
