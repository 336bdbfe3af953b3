#!/usr/bin/env python3
"""django-async-bench: measure where async pays off in Django, and where it costs.

The command line only: it parses arguments and calls the asyncbench package,
where every phase (scenario, servers, load, results, statistics, report, gate)
lives in its own module.

Exit codes: 0 success; 1 a regression (gate) or a failed command; 2 invalid
input or an invalid comparison; 130 interrupted (finished measurements kept).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from asyncbench.commands._common import DEFAULT_BASELINE, FAILED, INTERRUPTED, INVALID, REPORTS, ScenarioOptions
from asyncbench.model.scenario import Overrides

# The commands are imported when called: `--help` need not load locust,
# matplotlib or scipy.


# ------------------------------------------------------------------ argument types


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def _env_pairs(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        if "=" not in item:
            raise SystemExit(f"error: --server-env expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def _tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values else None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _targets(args: argparse.Namespace) -> tuple[Any, ...]:
    """run --target/--agent as targets; TargetError (exit 2) names the flag."""
    targets, agents = getattr(args, "target", None) or [], getattr(args, "agent", None) or []
    if not targets and not agents:
        return ()
    from asyncbench.execute.target import TargetError, parse_targets

    parsed = parse_targets(targets, agents)
    # what configures servers the runner starts has no meaning for a deployment it does not
    for flag, value, why in (
        ("--setups", args.setups, "each target is a setup, named by --target NAME=URL"),
        ("--db", args.db, "the deployment's database is its own; the runner does not migrate or seed it"),
        ("--rows", args.rows, "the deployment's database is its own; the runner does not seed it"),
        ("--server-env", args.server_env, "the runner does not start the deployment's servers"),
        ("--port-base", args.port_base, "the runner does not start the deployment's servers"),
    ):
        if value:
            raise TargetError(f"{flag}: not with --target ({why})")
    return parsed


def _workers(args: argparse.Namespace) -> int | None:
    """--workers, or the deprecated --processes (its old name), said so."""
    if args.processes is not None:
        print("warning: --processes is deprecated: use --workers (a locust master and N workers)", file=sys.stderr)
        if args.workers is None:
            return int(args.processes)
    return args.workers if args.workers is None else int(args.workers)


def _pool(args: argparse.Namespace) -> Any:
    """--expect-workers and --master-bind: load workers on other machines (None: local only)."""
    if not args.expect_workers and not args.master_bind:
        return None
    from asyncbench.execute.distributed import PoolOptions

    return PoolOptions(expect_workers=args.expect_workers or 0, master_bind=args.master_bind or "")


def _hostport(value: str) -> str:
    from asyncbench.execute.distributed import parse_bind

    try:
        parse_bind(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def scenario_options(args: argparse.Namespace) -> ScenarioOptions:
    """The scenario options of a measuring command, from its parsed arguments."""
    return ScenarioOptions(
        scenario=args.scenario,
        overrides=Overrides(
            users=_tuple(args.users),
            blocks=args.blocks,
            duration=args.duration,
            warmup=args.warmup,
            precision=args.precision,
            budget=args.budget,
            workers=_workers(args),
            setups=_tuple(args.setups),
            workloads=_tuple(args.workloads),
            variants=_tuple(getattr(args, "variants", None)),
            db=args.db,
            rows=args.rows,
            # only `run` has --profile
            profile=getattr(args, "profile", False),
        ),
        server_env=_env_pairs(args.server_env),
        reports_dir=Path(args.reports_dir),
        port_base=args.port_base,
        # how to reproduce the run, recorded in its results
        command=("python", "runner.py", *sys.argv[1:]),
        targets=_targets(args),
        pool=_pool(args),
        telemetry=not getattr(args, "no_telemetry", False),
    )


# ------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    from asyncbench.commands import run

    return run.run(options=scenario_options(args), report=not args.no_report)


def cmd_agent(args: argparse.Namespace) -> int:
    from asyncbench.execute.agent import serve

    return serve(pid=args.pid, name=args.name, bind=args.bind)


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a locust worker process (locust patches the standard library at
    import, so it gets a fresh interpreter rather than this one)."""
    import os

    root = str(Path(__file__).resolve().parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "asyncbench.execute.locustworker", "--master", args.master]
    if args.cpus:
        argv += ["--cpus", args.cpus]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # replaces this process: never returns


def cmd_check_intervals(args: argparse.Namespace) -> int:
    from asyncbench.commands import check_intervals

    return check_intervals.check_intervals(options=scenario_options(args))


def cmd_cross_check(args: argparse.Namespace) -> int:
    from asyncbench.commands import cross_check

    return cross_check.cross_check_command(options=scenario_options(args), rounds=args.rounds, seconds=args.seconds)


def cmd_report(args: argparse.Namespace) -> int:
    from asyncbench.commands import report

    return report.report(
        run_dir=Path(args.run_dir),
        out=_path(args.out),
        terminal=args.terminal,
        evidence=[Path(e) for e in args.evidence],
    )


def cmd_summary(args: argparse.Namespace) -> int:
    from asyncbench.commands import report

    return report.summary(run_dir=Path(args.run_dir))


def cmd_scenarios(args: argparse.Namespace) -> int:
    from asyncbench.commands import catalog

    return catalog.scenarios()


def cmd_setups(args: argparse.Namespace) -> int:
    from asyncbench.commands import catalog

    return catalog.setups()


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from asyncbench.commands import baseline

    return baseline.save(run_dir=Path(args.run_dir), to=Path(args.to))


def cmd_baseline_run(args: argparse.Namespace) -> int:
    from asyncbench.commands import baseline

    return baseline.run(options=scenario_options(args), to=Path(args.to), report=not args.no_report)


def cmd_gate(args: argparse.Namespace) -> int:
    from asyncbench.commands import gate

    if args.baseline is None and args.current is None:
        # the default: A/B in one job against the base revision (--ab, $BASE,
        # HEAD for a tree with changes, else HEAD~1)
        return gate.gate_ab(
            options=scenario_options(args),
            revision=args.ab,
            head_env=_env_pairs(args.head_env),
            threshold=args.threshold,
            alpha=args.alpha,
            normalize=args.normalize,
            summary=_path(args.summary),
        )
    return gate.gate(
        options=scenario_options(args),
        baseline=Path(args.baseline or DEFAULT_BASELINE),
        current=_path(args.current),
        threshold=args.threshold,
        alpha=args.alpha,
        normalize=args.normalize,
        allow_env_mismatch=args.allow_env_mismatch,
        summary=_path(args.summary),
    )


def cmd_gate_accuracy(args: argparse.Namespace) -> int:
    from asyncbench.commands import accuracy

    if args.ab:
        return accuracy.gate_accuracy_ab(
            options=scenario_options(args),
            rounds=args.rounds,
            percents=tuple(args.percent),
            middleware_us=args.middleware_us,
            out=_path(args.out),
            aa_per_round=args.aa_per_round,
            middleware_rounds=args.middleware_rounds,
            lock=_path(args.lock),
        )
    return accuracy.gate_accuracy(
        options=scenario_options(args),
        pairs=args.pairs,
        levels=tuple(args.levels),
        out=_path(args.out),
        resample=_path(args.resample),
        splits=args.splits,
        inject_workloads=args.inject_workloads,
        target=args.target,
        normalize=args.normalize,
    )


def cmd_gate_instructions(args: argparse.Namespace) -> int:
    from asyncbench.commands import instructions

    return instructions.gate_instructions(
        options=ScenarioOptions(
            scenario=args.scenario,
            overrides=Overrides(workloads=_tuple(args.workloads)),
            server_env=_env_pairs(args.server_env),
            reports_dir=Path(args.reports_dir),
            command=("python", "runner.py", *sys.argv[1:]),
        ),
        base=args.base,
        base_tree=_path(args.base_tree),
        head_env=_env_pairs(args.head_env),
        threshold=args.threshold,
        runs=args.runs,
        requests=args.requests,
        warmup=args.warmup,
        jobs=args.jobs,
        handlers=tuple(args.handlers),
        views=args.views,
        summary=_path(args.summary),
    )


# ------------------------------------------------------------------ parser


def _add_scenario_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "scenario", nargs="?", default=default, help=f"scenario name in scenarios/ or a .toml path (default: {default})"
    )
    p.add_argument("--setups", type=_csv, help="comma-separated setups to run instead of the scenario's")
    p.add_argument("--workloads", type=_csv, help="comma-separated workloads to run instead of the scenario's")
    p.add_argument(
        "--variants",
        type=_csv,
        help="comma-separated variants instead of the scenario's; each workload runs those it has "
        "(async-native, PostgreSQL and ASGI setups only, runs only when named here or in the scenario)",
    )
    p.add_argument("--users", type=_ints, help="comma-separated user levels, e.g. 1,8,32")
    p.add_argument(
        "--blocks", "--repeats", type=int, help="a fixed number of blocks per group (instead of stopping on precision)"
    )
    p.add_argument("--duration", type=float, help="a fixed slice window in seconds (slow arms are not extended)")
    p.add_argument("--warmup", type=float, help="settle seconds before each slice's window")
    p.add_argument("--precision", type=float, help="target half-width of every ratio's 95%% interval, e.g. 0.05")
    p.add_argument("--budget", type=float, help="measuring budget of the whole run in seconds (0 = no limit)")
    p.add_argument(
        "--workers",
        type=int,
        help="load workers on this machine (default: the scenario's load.workers, 1 = one locust process); "
        "2 or more start a locust master and that many workers, pinned to the generator's CPUs, measuring "
        "one common window per slice",
    )
    p.add_argument("--processes", type=int, help="deprecated: the old name of --workers")
    p.add_argument(
        "--expect-workers",
        type=int,
        metavar="M",
        help="also wait for M load workers from other machines (`runner.py worker --master HOST:PORT` there); "
        "the servers must be reachable from them (--target)",
    )
    p.add_argument(
        "--master-bind",
        type=_hostport,
        metavar="HOST[:PORT]",
        help="where the locust master listens for workers (default 127.0.0.1 and a free port; 0.0.0.0 or an "
        "address the load machines reach, for --expect-workers)",
    )
    p.add_argument(
        "--db",
        help="sqlite (default), postgres (127.0.0.1:5432), mariadb (mysql://root@127.0.0.1:3306/bench, "
        "created if missing; needs mysqlclient: make install-mariadb), or a postgresql:// or mysql:// URL",
    )
    p.add_argument("--rows", type=int, help="rows to seed")
    p.add_argument(
        "--server-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment for the servers, e.g. BENCH_INJECT_CPU_US=500 (repeatable)",
    )
    p.add_argument("--reports-dir", default=str(REPORTS), help="where run folders go (default: reports/)")
    p.add_argument(
        "--port-base",
        type=int,
        help="serve setups on consecutive ports from this one (default: free ports from the OS); "
        "a port already in use is an error naming it",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner.py",
        description="Measure paired sync/async Django views under real servers with locust; "
        "write versioned results, an HTML report, and gate regressions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a scenario and write reports/<run>/results.json and index.html")
    _add_scenario_options(p, "quick")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    p.add_argument(
        "--profile",
        action="store_true",
        help="after each group's measured blocks, one profiling slice per arm with py-spy attached to the "
        "server (never in a statistic): <run>/profiles/<arm>.txt and .svg, and the report's 'Where the time "
        "goes'; the scenario's [profile] table sets seconds, rate and users",
    )
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="do not count requests, thread hops and database connections inside the servers "
        "(bench_site.telemetry) nor read the database's connection count; the slices record them as not measured",
    )
    p.add_argument(
        "--target",
        action="append",
        metavar="[NAME=]URL",
        help="measure an existing deployment of bench_site at this http:// or https:// URL instead of the "
        "scenario's setups (repeatable, one setup each; a bare URL is named 'target'; the URL's path is a "
        "prefix of every endpoint). Nothing is started, migrated or seeded; server CPU and RSS are not "
        "measured without --agent",
    )
    p.add_argument(
        "--agent",
        action="append",
        metavar="[NAME=]URL",
        help="with --target: the resource agent (`runner.py agent` on the server host) of that target, "
        "http://HOST:PORT, read at each window's start and end for the server's CPU and RSS",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "agent",
        help="on a server host: report one process tree's CPU and RSS over HTTP for run --target --agent",
        description=(
            "A read-only HTTP sidecar: GET /usage answers the CPU (ns, per process, children included) and RSS "
            "of the process tree fixed at start (--pid, or --name matching exactly one tree). It never takes "
            "a process from a request and only answers GET. Stop it with Ctrl-C."
        ),
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pid", type=int, help="the server's root process (e.g. gunicorn's master)")
    which.add_argument("--name", help="the server's process name as `ps -eo comm` shows it; exactly one tree")
    p.add_argument(
        "--bind",
        default="127.0.0.1:8089",
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:8089; port 0 = any free port, printed at start). "
        "No authentication: bind beyond loopback only on a network you trust",
    )
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser(
        "worker",
        help="on a load machine: join a run's locust master as a load worker (run --expect-workers)",
        description=(
            "Runs a locust worker that joins the master at HOST:PORT (the run prints it), measures the slices "
            "it is sent in the master's common window, and serves until the master quits. Ctrl-C stops it."
        ),
    )
    p.add_argument("--master", required=True, type=_hostport, metavar="HOST:PORT", help="the run's locust master")
    p.add_argument("--cpus", help="pin the worker to these CPUs, e.g. 2,3")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "check-intervals",
        help="measure A/A groups (one setup under two names) and report how often 95%% intervals contain 1",
    )
    _add_scenario_options(p, "aa")
    p.set_defaults(func=cmd_check_intervals)

    p = sub.add_parser("cross-check", help="locust vs wrk, back to back, on the scenario's no-I/O arms")
    _add_scenario_options(p, "quick")
    p.add_argument("--rounds", type=int, default=5, help="alternating locust/wrk rounds per arm (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="window of each round (default 2)")
    p.set_defaults(func=cmd_cross_check)

    p = sub.add_parser("report", help="(re)generate the HTML report of a run from its results.json")
    p.add_argument("run_dir", help="a run folder (or its results.json), e.g. reports/latest")
    p.add_argument("--out", help="folder for index.html and cells.csv (default: the run folder)")
    p.add_argument("--terminal", action="store_true", help="also print the verdicts and table")
    p.add_argument(
        "--evidence",
        action="append",
        default=[],
        metavar="OTHER_RUN",
        help="another run (folder or results.json, e.g. the same scenario on PostgreSQL or MariaDB) whose numbers "
        "join the article's-claims section, each row naming its run and database; repeatable. The rest of the "
        "report describes RUN alone",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("summary", help="print a run's verdicts and table")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("scenarios", help="list and validate the scenarios in scenarios/")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("setups", help="list the server setups and what each implies")
    p.set_defaults(func=cmd_setups)

    b = sub.add_parser("baseline", help="store a baseline for the regression gate")
    bsub = b.add_subparsers(dest="baseline_command", required=True)
    p = bsub.add_parser("save", help="store an existing run as the baseline")
    p.add_argument("run_dir")
    p.add_argument("--to", default=str(DEFAULT_BASELINE), help="baseline file (default: reports/baseline.json)")
    p.set_defaults(func=cmd_baseline_save)
    p = bsub.add_parser("run", help="run a scenario (default: ci) and store it as the baseline")
    _add_scenario_options(p, "ci")
    p.add_argument("--to", default=str(DEFAULT_BASELINE))
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(func=cmd_baseline_run)

    p = sub.add_parser(
        "gate",
        help="A/B in one job (default) or against a stored baseline; exit 0 ok, 1 regression, 2 invalid",
        description=(
            "By default, measure a base revision and the working tree in one job, each arm's base and head "
            "in the same windows, and compare head with base. The base is --ab REV, else $BASE, else HEAD "
            "when the tree has changes, else HEAD~1. --baseline FILE (or --current RUN) compares with a "
            "stored baseline instead (local use: a baseline from another machine is refused)."
        ),
    )
    _add_scenario_options(p, "ci")
    p.add_argument(
        "--baseline",
        help=f"stored-baseline mode: compare with this results file (make baseline writes {DEFAULT_BASELINE})",
    )
    p.add_argument("--current", help="stored-baseline mode: compare this existing run instead of measuring")
    p.add_argument("--ab", metavar="REV", help="the base revision of the A/B mode (default: $BASE, HEAD, HEAD~1)")
    p.add_argument(
        "--head-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A/B mode: extra environment for head's servers only (e.g. BENCH_INJECT_CPU_US=200)",
    )
    p.add_argument("--threshold", type=float, help="practical threshold (fraction, default from scenario or 0.10)")
    p.add_argument("--alpha", type=float, help="family-wise significance level (default 0.05)")
    p.add_argument(
        "--normalize",
        choices=["none", "async-sync-ratio"],
        help="compare raw figures or async/sync ratios (the calibration mode was removed)",
    )
    p.add_argument(
        "--allow-env-mismatch",
        action="store_true",
        help="compare runs from different environments anyway (with a warning)",
    )
    p.add_argument("--summary", metavar="FILE", help="append the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser(
        "gate-accuracy",
        help="benchmark the gate itself: false-alarm rate (A/A) and detection rate for injected slowdowns",
    )
    _add_scenario_options(p, "ci")
    p.add_argument("--pairs", type=int, default=5, help="A/A and injected pairs per level")
    p.add_argument("--levels", type=_ints, default=[10, 20, 50], help="injected slowdowns in percent")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument(
        "--resample",
        metavar="RUN_DIR",
        help="instead of measuring, estimate from one run with many repeats (resampling, labelled as such)",
    )
    p.add_argument("--splits", type=int, default=200, help="random A/A splits for --resample")
    p.add_argument("--inject-workloads", help="comma list for BENCH_INJECT_WORKLOADS (default: noio)")
    p.add_argument("--target", help="cell key the injected slowdown is sized for")
    p.add_argument("--normalize", choices=["none", "async-sync-ratio"])
    p.add_argument(
        "--ab",
        action="store_true",
        help="the default gate's accuracy: rounds of real A/B runs (A/A, and CPU injected into head per --percent)",
    )
    p.add_argument("--rounds", type=int, default=5, help="--ab: rounds (each: one A/A run and one run per level)")
    p.add_argument("--percent", type=_ints, default=[5, 10], help="--ab: injected CPU per request, percent")
    p.add_argument(
        "--middleware-us",
        type=int,
        help="--ab: also, per round, a head tree with a middleware of its own burning this many µs per request",
    )
    p.add_argument("--aa-per-round", type=int, default=1, help="--ab: A/A runs per round")
    p.add_argument("--middleware-rounds", type=int, help="--ab: the middleware run in the first N rounds only")
    p.add_argument("--lock", help="--ab: hold this flock file during each run (serialize with other benchmarks)")
    p.set_defaults(func=cmd_gate_accuracy)

    p = sub.add_parser(
        "gate-instructions",
        help="base vs working tree by instructions per request under valgrind (callgrind), in process; "
        "exit 0 ok, 1 regression, 2 invalid",
    )
    p.add_argument("scenario", nargs="?", default="ci", help="scenario whose views are gated (default: ci)")
    p.add_argument(
        "--base", metavar="REV", help="base revision (default: $BASE, else HEAD if the tree has changes, else HEAD~1)"
    )
    p.add_argument("--base-tree", metavar="DIR", help="measure this source tree as the base instead of a revision")
    p.add_argument("--workloads", type=_csv, help="comma-separated workloads instead of the scenario's")
    p.add_argument(
        "--views", type=_csv, help="only these, e.g. noio/sync@wsgi,noio/async@asgi (or noio/sync: both handlers)"
    )
    p.add_argument("--handlers", type=_csv, default=["wsgi", "asgi"], help="wsgi,asgi (default both)")
    p.add_argument("--threshold", type=float, help="fraction (default: gate.instructions_threshold, else 0.005)")
    p.add_argument("--runs", type=int, default=3, help="identical runs per side, interleaved (default 3)")
    p.add_argument("--requests", type=int, default=50, help="measured requests per view and handler (default 50)")
    p.add_argument("--warmup", type=int, default=20, help="uncounted requests before each (default 20)")
    p.add_argument("--jobs", type=int, default=2, help="valgrind runs at once (default 2)")
    p.add_argument("--server-env", action="append", metavar="KEY=VALUE", help="extra environment for both sides")
    p.add_argument("--head-env", action="append", metavar="KEY=VALUE", help="extra environment for head only")
    p.add_argument("--reports-dir", default=str(REPORTS), help="where run folders go (default: reports/)")
    p.add_argument("--summary", metavar="FILE", help="append the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=cmd_gate_instructions)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # SIGTERM (CI cancelling a job) takes the same path as Ctrl-C: stop every
    # child, keep what was measured.
    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    # A shell starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: restore it, so `kill -INT`
    # stops a backgrounded run cleanly too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from asyncbench.execute.processes import PortInUseError, ProcessError
    from asyncbench.execute.target import TargetError
    from asyncbench.model.results import ResultsError
    from asyncbench.model.scenario import ScenarioError

    try:
        return int(args.func(args))
    except ScenarioError as exc:
        print(f"error: bad scenario: {exc}", file=sys.stderr)
        return INVALID
    except (ResultsError, PortInUseError, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID
    except ProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
