"""`check-intervals`: measure A/A groups and report how often the intervals cover 1.

A benchmark of the statistics, not a test: it measures (minutes), then says
what fraction of nominal 95% intervals of A/A ratios contained 1.0, with that
fraction's own Wilson interval, beside the 99% intervals from the same slices.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from asyncbench.analysis.coverage import aa_pairs, coverage
from asyncbench.commands._common import INTERRUPTED, OK, ScenarioOptions
from asyncbench.commands._measure import measure
from asyncbench.model.results import load_run

GOAL = 0.93  # the bar for the nominal 95% interval


def check_intervals(*, options: ScenarioOptions) -> int:
    measured = measure(options, on_interrupt="\ninterrupted: the A/A groups measured so far are in {run_dir}")
    run = load_run(measured.run_dir)
    pairs = aa_pairs(run)
    results = [coverage(pairs, c) for c in (0.95, 0.99)]
    groups = {(p.workload, p.users, p.params) for p in pairs}
    print(f"A/A pairs: {len(pairs)} in {len(groups)} groups (run {run.run_id})")
    for r in results:
        print(
            f"  {r.confidence:.0%} intervals: {r.covered}/{r.pairs} contain 1.0 = {r.rate:.1%} "
            f"(95% CI {r.wilson[0]:.1%}–{r.wilson[1]:.1%}); mean half-width ±{r.mean_precision:.1%}"
        )
    for p in pairs:
        iv95, iv99 = p.intervals[0.95], p.intervals[0.99]
        mark = "" if p.covers(0.95) else "   <- misses 1.0"
        print(
            f"    {p.setup} {p.workload}/{p.variant} u={p.users}: {iv95.point:.3f} "
            f"95% {iv95.lo:.3f}–{iv95.hi:.3f}, 99% {iv99.lo:.3f}–{iv99.hi:.3f} ({iv95.n} blocks){mark}"
        )
    out = measured.run_dir / "check-intervals.json"
    out.write_text(
        json.dumps(
            {"run": run.run_id, "pairs": len(pairs), "groups": len(groups), "coverage": [asdict(r) for r in results]},
            indent=1,
        )
        + "\n"
    )
    print(f"results: {out}")
    if measured.interrupted:
        return INTERRUPTED
    ok95 = results[0].pairs >= 40 and results[0].rate >= GOAL
    print(
        f"goal (>= {GOAL:.0%} over >= 40 pairs): {'met' if ok95 else 'NOT met'}; "
        f"99% wider than 95%: {results[1].mean_precision > results[0].mean_precision}"
    )
    return OK
