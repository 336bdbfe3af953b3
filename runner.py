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
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

REPORTS = ROOT / "reports"
DEFAULT_BASELINE = REPORTS / "baseline.json"


# ------------------------------------------------------------------ scenario loading


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


def load_scenario(args: argparse.Namespace) -> Any:
    """Read the scenario file, apply command-line overrides, validate the result."""
    from asyncbench.model import scenario as sc

    return sc.load(
        args.scenario,
        sc.Overrides(
            users=tuple(args.users) if getattr(args, "users", None) else None,
            repeats=getattr(args, "repeats", None),
            duration=getattr(args, "duration", None),
            warmup=getattr(args, "warmup", None),
            processes=getattr(args, "processes", None),
            setups=tuple(args.setups) if getattr(args, "setups", None) else None,
            workloads=tuple(args.workloads) if getattr(args, "workloads", None) else None,
            db=getattr(args, "db", None),
            rows=getattr(args, "rows", None),
        ),
    )


# ------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    from asyncbench.execute.run import RunInterrupted, run_scenario

    scenario = load_scenario(args)
    try:
        run_dir = run_scenario(
            scenario,
            reports_dir=Path(args.reports_dir),
            command=_reproduce_command(),
            server_env=_env_pairs(args.server_env), port_base=args.port_base,
        )
    except RunInterrupted as exc:
        print(f"\ninterrupted: finished measurements kept in {exc.run_dir}/results.json", file=sys.stderr)
        _finish(exc.run_dir, args)
        return 130
    _finish(run_dir, args)
    return 0


def _finish(run_dir: Path, args: argparse.Namespace) -> None:
    from asyncbench.model.results import load_run

    run = load_run(run_dir)
    from asyncbench.render.report import write_report
    from asyncbench.render.terminal import terminal_summary

    print(terminal_summary(run))
    if not getattr(args, "no_report", False):
        print(f"report:  {write_report(run, run_dir)}")
    print(f"results: {run_dir / 'results.json'}")


def _reproduce_command() -> list[str]:
    return ["python", "runner.py", *sys.argv[1:]]


def cmd_report(args: argparse.Namespace) -> int:
    from asyncbench.render.report import write_report
    from asyncbench.model.results import load_run

    run_dir = Path(args.run_dir)
    run = load_run(run_dir)
    out = Path(args.out) if args.out else (run_dir if run_dir.is_dir() else run_dir.parent)
    page = write_report(run, out)
    if args.terminal:
        from asyncbench.render.terminal import terminal_summary

        print(terminal_summary(run))
    print(f"report: {page}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from asyncbench.model.results import load_run
    from asyncbench.render.terminal import terminal_summary

    print(terminal_summary(load_run(args.run_dir)))
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from asyncbench.model import scenario as sc

    status = 0
    for path in sorted(sc.SCENARIO_DIR.glob("*.toml")):
        try:
            s = sc.load(str(path))
            from asyncbench.execute.run import plan

            n = len(plan(s, [""]))
            print(f"{path.stem:10s} ok   {n:4d} measurements  {s.description}")
        except sc.ScenarioError as exc:
            print(f"{path.stem:10s} BAD  {exc}")
            status = 2
    return status


def cmd_setups(args: argparse.Namespace) -> int:
    from asyncbench.execute.setups import SETUPS

    for s in SETUPS.values():
        ka = "keep-alive" if s.keepalive else "no keep-alive"
        print(f"{s.name:18s} {s.interface}  {s.worker_class:34s} loop={s.event_loop:12s} {ka:13s} {s.notes}")
    return 0


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from asyncbench.model.results import load_run, save_run

    run = load_run(args.run_dir)
    if not run.complete:
        print(f"error: {args.run_dir} is an incomplete run; a baseline must be complete", file=sys.stderr)
        return 2
    dest = save_run(run, args.to)
    print(f"baseline saved: {dest} (run {run.run_id}, {len(run.cells)} cells)")
    return 0


def cmd_baseline_run(args: argparse.Namespace) -> int:
    from asyncbench.execute.run import RunInterrupted, run_scenario

    scenario = load_scenario(args)
    try:
        run_dir = run_scenario(scenario, reports_dir=Path(args.reports_dir), command=_reproduce_command(),
                               server_env=_env_pairs(args.server_env), port_base=args.port_base)
    except RunInterrupted as exc:
        print(f"interrupted: no baseline written ({exc.run_dir} kept)", file=sys.stderr)
        return 130
    _finish(run_dir, args)
    args.run_dir = str(run_dir)
    return cmd_baseline_save(args)


def cmd_gate(args: argparse.Namespace) -> int:
    from asyncbench.gate import core as gate_mod
    from asyncbench.render import gate_page as gate_render
    from asyncbench.model.results import ResultsError, load_run

    if args.ab:
        return _gate_ab(args)
    baseline_path = Path(args.baseline)
    if not baseline_path.exists():
        print(
            f"error: no baseline at {baseline_path}. Make one with `make baseline` "
            "(runs the ci scenario and stores it there), or `python runner.py baseline save RUN_DIR` "
            "for an existing run; commit it so CI compares against it.",
            file=sys.stderr,
        )
        return 2
    try:
        baseline = load_run(baseline_path)
    except ResultsError as exc:
        print(f"error: baseline {baseline_path}: {exc}", file=sys.stderr)
        return 2
    if args.current:
        run_dir = Path(args.current)
    else:
        from asyncbench.execute.run import RunInterrupted, run_scenario

        scenario = load_scenario(args)
        try:
            run_dir = run_scenario(scenario, reports_dir=Path(args.reports_dir), command=_reproduce_command(),
                                   server_env=_env_pairs(args.server_env), port_base=args.port_base)
        except RunInterrupted as exc:
            print(f"interrupted ({exc.run_dir} kept)", file=sys.stderr)
            return 130
    current = load_run(run_dir)
    result = gate_mod.compare(baseline, current, **_gate_options(args))
    return _gate_output(result, baseline, current, run_dir if run_dir.is_dir() else run_dir.parent, args, gate_render)


def _gate_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.threshold is not None:
        opts["threshold"] = args.threshold
    if args.alpha is not None:
        opts["alpha"] = args.alpha
    if args.normalize:
        opts["normalize"] = args.normalize
    if args.allow_env_mismatch:
        opts["allow_env_mismatch"] = True
    return opts


def _gate_output(result: Any, baseline: Any, current: Any, out_dir: Path, args: argparse.Namespace,
                 gate_render: Any) -> int:
    print(gate_render.terminal_text(result))
    # gate.json carries the exit code, so CI can tell 1 from 2 even through make
    paths = gate_render.write_outputs(result, baseline, current, out_dir)
    if args.summary:
        with open(args.summary, "a") as fh:
            fh.write(paths["markdown"].read_text() + "\n")
    print(f"comparison: {paths['html']}")
    return int(result.exit_code)


def _gate_ab(args: argparse.Namespace) -> int:
    """A/B in one job: measure the base revision and the working tree interleaved."""
    import subprocess

    from asyncbench.gate import core as gate_mod
    from asyncbench.render import gate_page as gate_render
    from asyncbench.model.results import load_run
    from asyncbench.execute.run import RunInterrupted, run_scenario

    worktree = ROOT / "var" / "ab-base"
    if worktree.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
        shutil.rmtree(worktree, ignore_errors=True)
    done = subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.ab], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"error: cannot check out {args.ab!r}: {done.stderr.strip()}", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args)
        try:
            run_dir = run_scenario(scenario, reports_dir=Path(args.reports_dir), command=_reproduce_command(),
                                   server_env=_env_pairs(args.server_env), port_base=args.port_base,
                                   revisions={"base": worktree, "head": ROOT})
        except RunInterrupted as exc:
            print(f"interrupted ({exc.run_dir} kept)", file=sys.stderr)
            return 130
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    run = load_run(run_dir)
    opts = _gate_options(args)
    opts.pop("allow_env_mismatch", None)
    result = gate_mod.compare_revisions(run, **opts)
    return _gate_output(result, run, run, run_dir, args, gate_render)


def cmd_gate_accuracy(args: argparse.Namespace) -> int:
    from asyncbench.gate import accuracy as gate_accuracy

    return int(gate_accuracy.main(args, load_scenario=load_scenario) or 0)


# ------------------------------------------------------------------ parser


def _add_scenario_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("scenario", nargs="?", default=default,
                   help=f"scenario name in scenarios/ or a .toml path (default: {default})")
    p.add_argument("--setups", type=_csv, help="comma-separated setups to run instead of the scenario's")
    p.add_argument("--workloads", type=_csv, help="comma-separated workloads to run instead of the scenario's")
    p.add_argument("--users", type=_ints, help="comma-separated user levels, e.g. 1,8,32")
    p.add_argument("--repeats", type=int, help="repeats per cell")
    p.add_argument("--duration", type=float, help="fixed measured window in seconds (disables adaptive windows)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each measured window")
    p.add_argument("--processes", type=int, help="load-driver processes (locust) to split users across")
    p.add_argument("--db", help="sqlite (default), postgres (127.0.0.1:5432), or a postgresql:// URL")
    p.add_argument("--rows", type=int, help="rows to seed")
    p.add_argument("--server-env", action="append", metavar="KEY=VALUE",
                   help="extra environment for the servers, e.g. BENCH_INJECT_CPU_US=500 (repeatable)")
    p.add_argument("--reports-dir", default=str(REPORTS), help="where run folders go (default: reports/)")
    p.add_argument("--port-base", type=int,
                   help="serve setups on consecutive ports from this one (default: free ports from the OS); "
                   "a port already in use is an error naming it")


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
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="(re)generate the HTML report of a run from its results.json")
    p.add_argument("run_dir", help="a run folder (or its results.json), e.g. reports/latest")
    p.add_argument("--out", help="folder for index.html and cells.csv (default: the run folder)")
    p.add_argument("--terminal", action="store_true", help="also print the verdicts and table")
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

    p = sub.add_parser("gate", help="compare a run with the baseline; exit 0 ok, 1 regression, 2 invalid")
    _add_scenario_options(p, "ci")
    p.add_argument("--baseline", default=str(DEFAULT_BASELINE), help="baseline results file")
    p.add_argument("--current", help="compare this existing run instead of measuring")
    p.add_argument("--ab", metavar="REV",
                   help="A/B in one job: measure git revision REV and the working tree interleaved")
    p.add_argument("--threshold", type=float, help="practical threshold (fraction, default from scenario or 0.10)")
    p.add_argument("--alpha", type=float, help="family-wise significance level (default 0.05)")
    p.add_argument("--normalize", choices=["none", "calibration", "async-sync-ratio"],
                   help="compare raw figures, figures divided by the calibration cell, or async/sync ratios")
    p.add_argument("--allow-env-mismatch", action="store_true",
                   help="compare runs from different environments anyway (with a warning)")
    p.add_argument("--summary", metavar="FILE", help="append the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("gate-accuracy",
                       help="benchmark the gate itself: false-alarm rate (A/A) and detection rate for injected slowdowns")
    _add_scenario_options(p, "ci")
    p.add_argument("--pairs", type=int, default=5, help="A/A and injected pairs per level")
    p.add_argument("--levels", type=_ints, default=[10, 20, 50], help="injected slowdowns in percent")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--resample", metavar="RUN_DIR",
                   help="instead of measuring, estimate from one run with many repeats (resampling, labelled as such)")
    p.add_argument("--splits", type=int, default=200, help="random A/A splits for --resample")
    p.add_argument("--inject-workloads", help="comma list for BENCH_INJECT_WORKLOADS (default: noio)")
    p.add_argument("--target", help="cell key the injected slowdown is sized for")
    p.add_argument("--normalize", choices=["none", "calibration", "async-sync-ratio"])
    p.set_defaults(func=cmd_gate_accuracy)
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
    from asyncbench.model.results import ResultsError
    from asyncbench.model.scenario import ScenarioError

    try:
        return int(args.func(args))
    except ScenarioError as exc:
        print(f"error: bad scenario: {exc}", file=sys.stderr)
        return 2
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
