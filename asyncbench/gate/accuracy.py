"""How good is the gate? False-alarm rate, detection rate, wall time.

The `gate-accuracy` command and its Markdown report.

Two ways, never to be confused:

1. measured.measure_accuracy — the real thing: repeated rounds of real runs,
   A/A pairs and runs with CPU injected into the servers (injection.py sizes
   the injection).
2. resample.resampling_estimate — a cheap statistical estimate from ONE real
   run with many repeats (within-run noise only; not a measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from asyncbench.gate.config import NORMALIZE_MODES
from asyncbench.gate.measured import LEVELS, Measure, measure_accuracy
from asyncbench.gate.resample import ResampleError, resampling_estimate
from asyncbench.model.results import Run, load_run
from asyncbench.render.format import fmt, fmt_pct

LoadScenario = Callable[[argparse.Namespace], Any]


def _rate_text(r: Mapping[str, Any]) -> str:
    if r.get("rate") is None:
        return "–"
    lo, hi = r["ci95"]
    return f"{r['hits']}/{r['trials']} = {fmt_pct(r['rate'], 2)} (95% CI {fmt_pct(lo, 2)}–{fmt_pct(hi, 2)})"


def format_accuracy(result: Mapping[str, Any]) -> str:
    """Markdown for the README: the method named first, then the rates."""
    lines = [f"**Method:** {result['method']}", ""]
    fa = result["false_alarm"]
    invalid = f"; invalid {fa['invalid']}" if fa.get("invalid") else ""
    lines.append(f"- False alarms (A/A): {_rate_text(fa)}{invalid}")
    for d in result["detection"]:
        extra = ""
        if "inject_cpu_us" in d:
            ach = d.get("achieved_slowdown_target", {}).get("median")
            achieved = fmt_pct(ach, 2) if ach is not None else "–"
            extra = f"; injected {fmt(d['inject_cpu_us'])} µs CPU/request, achieved {achieved} on the target"
        inv = f"; invalid {d['invalid']}" if d.get("invalid") else ""
        lines.append(f"- Detection of a {fmt_pct(d['slowdown'], 2)} slowdown: {_rate_text(d)}{extra}{inv}")
    t = result["gate_wall_time"]
    if t.get("n"):
        lines.append(
            f"- Gate wall time: median {fmt(t['median_s'])} s, max {fmt(t['max_s'])} s over {t['n']} comparisons"
        )
    for n in result.get("notes", ()):
        lines.append(f"- Note: {n}")
    return "\n".join(lines) + "\n"


def _fractions(levels: Sequence[float | int | str]) -> tuple[float, ...]:
    """0.1 or 10 both mean 10% (the runner takes percent, the API fractions)."""
    out = []
    for x in levels:
        v = float(x)
        out.append(v / 100.0 if v >= 1 else v)
    return tuple(out)


def runner_measure(args: argparse.Namespace, load_scenario: LoadScenario) -> Measure:
    """A `measure` that runs the runner's scenario (with its command-line
    overrides) with extra server environment, one run folder per label."""
    # imported here: measuring pulls in the process machinery, which
    # `resample` and the tests of this module never need
    from asyncbench.execute.run import run_scenario

    scenario = load_scenario(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    extra: dict[str, str] = {}
    for item in getattr(args, "server_env", None) or []:
        k, _, v = str(item).partition("=")
        extra[k] = v
    prepared = False

    def measure(env: dict[str, str], label: str) -> Run:
        nonlocal prepared
        run_dir = run_scenario(
            scenario,
            reports_dir=Path(getattr(args, "reports_dir", "reports")),
            command=[sys.executable, "runner.py", "gate-accuracy", f"# {label}"],
            run_id=f"gate-accuracy-{stamp}-{label}",
            server_env={**extra, **env},
            # seeding is idempotent but not free: once per accuracy session
            skip_prepare=prepared,
        )
        prepared = True
        return load_run(run_dir)

    return measure


def _emit(result: Mapping[str, Any], json_path: str | None) -> None:
    print(format_accuracy(result))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
            fh.write("\n")
        print(f"written: {json_path}")


def _main_from_runner(
    args: argparse.Namespace,
    *,
    measure: Measure | None,
    load_scenario: LoadScenario | None,
) -> int:
    """Entry from runner.py's parsed `gate-accuracy` arguments.

    Reads: pairs (rounds), levels (percent or fractions), out (JSON path), and
    optionally resample (a run folder: do the resampling estimate instead),
    splits, inject_workloads (comma list), target, normalize.
    """
    levels = _fractions(getattr(args, "levels", None) or LEVELS)
    kwargs: dict[str, Any] = {}
    if getattr(args, "normalize", None):
        kwargs["normalize"] = args.normalize
    resample = getattr(args, "resample", None)
    if resample:
        try:
            result = resampling_estimate(
                load_run(resample),
                splits=int(getattr(args, "splits", None) or 200),
                levels=levels,
                compare_kwargs=kwargs,
            )
        except ResampleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        if measure is None:
            if load_scenario is None:
                raise ValueError("gate accuracy needs either `measure` or `load_scenario`")
            measure = runner_measure(args, load_scenario)
        wl = getattr(args, "inject_workloads", None)
        result = measure_accuracy(
            measure,
            rounds=int(getattr(args, "pairs", None) or 5),
            levels=levels,
            workloads=[w for w in str(wl).split(",") if w] if wl else None,
            target=getattr(args, "target", None),
            compare_kwargs=kwargs,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    _emit(result, getattr(args, "out", None))
    return 0


def main(
    argv: Sequence[str] | argparse.Namespace | None = None,
    *,
    measure: Measure | None = None,
    load_scenario: LoadScenario | None = None,
) -> int:
    """Command line. Given runner.py's parsed Namespace, runs from it (see
    `_main_from_runner`); given argv, parses its own: `resample RUN_DIR` works
    on a results file alone, `measure` needs `measure` or the runner."""
    if isinstance(argv, argparse.Namespace):
        return _main_from_runner(argv, measure=measure, load_scenario=load_scenario)
    parser = argparse.ArgumentParser(prog="gate-accuracy", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rs = sub.add_parser("resample", help="estimate from one run with many repeats (not a measurement)")
    rs.add_argument("run", help="run folder or results.json")
    rs.add_argument("--splits", type=int, default=200)
    rs.add_argument("--seed", type=int, default=12345)
    rs.add_argument("--workloads", default="", help="comma list of workloads to slow (default: all cells)")
    ms = sub.add_parser("measure", help="real runs with injected CPU (slow: rounds x (2 + levels) runs)")
    ms.add_argument("--rounds", type=int, default=5)
    ms.add_argument("--workloads", default="", help="comma list for BENCH_INJECT_WORKLOADS (default: noio)")
    ms.add_argument("--target", default=None, help="cell key the injection is sized for")
    ms.add_argument("--seed", type=int, default=20240601)
    for p in (rs, ms):
        p.add_argument("--levels", default="10,20,50", help="slowdowns in percent (or fractions)")
        p.add_argument("--normalize", choices=NORMALIZE_MODES, default=None)
        p.add_argument("--json", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    levels = _fractions([x for x in args.levels.split(",") if x])
    kwargs: dict[str, Any] = {}
    if args.normalize:
        kwargs["normalize"] = args.normalize
    wl = [w for w in args.workloads.split(",") if w] or None
    if args.command == "resample":
        try:
            result = resampling_estimate(
                load_run(args.run),
                splits=args.splits,
                levels=levels,
                workloads=wl,
                compare_kwargs=kwargs,
                seed=args.seed,
            )
        except ResampleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        if measure is None:
            parser.error("measure needs the runner: run it as `python runner.py gate-accuracy ...`")
        result = measure_accuracy(
            measure,
            rounds=args.rounds,
            levels=levels,
            workloads=wl,
            target=args.target,
            compare_kwargs=kwargs,
            seed=args.seed,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    _emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
