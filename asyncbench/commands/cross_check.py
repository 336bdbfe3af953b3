"""`cross-check`: locust against wrk, back to back, on the fastest cells of a scenario."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime

from asyncbench.commands._common import INVALID, OK, ScenarioOptions, load_scenario
from asyncbench.execute import ROOT
from asyncbench.execute.crosscheck import AGREEMENT, CrossCheck, WrkMissing, cross_check
from asyncbench.execute.database import django_env, prepare_database
from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.plan import Planned, cpu_plan
from asyncbench.execute.servers import start_server, stop_server


def cross_check_command(*, options: ScenarioOptions, rounds: int = 5, seconds: float = 2.0) -> int:
    """The scenario's no-I/O arms (its fastest: they load the generator most),
    at each of its load levels, measured by locust and by wrk in turn."""
    scenario = load_scenario(options)
    wl = next((w for w in scenario.workloads if w.name == "noio"), None)
    if wl is None:
        print("error: cross-check measures the noio workload; the scenario has none", file=sys.stderr)
        return INVALID
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-crosscheck-{scenario.name}"
    out_dir = options.reports_dir / run_id
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    server_cpus, gen_cpus = cpu_plan(scenario)
    env = django_env(scenario, {**os.environ, **scenario.server_env, **options.server_env})
    prepare_database(scenario, env, log_dir / "database.log", print)
    results: list[CrossCheck] = []
    own = os.sched_getaffinity(0)
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)
    try:
        with ExitStack() as stack:
            gen = stack.enter_context(LoadGenerator(processes=1, cpus=gen_cpus, log_dir=log_dir, env=env))
            for config in scenario.setups:
                server = start_server(config, revision="", root=ROOT, env=env, cpus=server_cpus, log_dir=log_dir)
                stack.callback(stop_server, server)
                for users in scenario.users_for(wl):
                    for variant in wl.variants:
                        path = Planned(config.name, "noio", variant, users, (), "", 0).path
                        results.append(
                            cross_check(
                                server,
                                path,
                                users=users,
                                rounds=rounds,
                                seconds=seconds,
                                gen=gen,
                                gen_cpus=gen_cpus,
                                note=print,
                            )
                        )
    except WrkMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID
    finally:
        os.sched_setaffinity(0, own)
    print(f"\nlocust / wrk, {rounds} rounds of {seconds:g} s each, alternating (flagged below {1 - AGREEMENT:.0%}):")
    for c in results:
        ci = c.ratio_ci
        interval = f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else ""
        mark = "  FLAGGED: locust is the limit" if c.flagged else ""
        print(
            f"  {c.setup:18s} {c.path:14s} u={c.users:<3d} locust {sum(c.locust_rps) / rounds:8,.0f}  "
            f"wrk {sum(c.wrk_rps) / rounds:8,.0f}  ratio {c.ratio:.3f}{interval}{mark}"
        )
    out = out_dir / "cross-check.json"
    out.write_text(json.dumps([{**asdict(c), "ratio": c.ratio, "flagged": c.flagged} for c in results], indent=1))
    print(f"results: {out}")
    return OK
