"""`gate-accuracy`: benchmark the gate itself (false alarms, detection)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asyncbench.commands._common import ScenarioOptions, load_scenario
from asyncbench.execute import ROOT
from asyncbench.gate import accuracy


def gate_accuracy(
    *,
    options: ScenarioOptions,
    pairs: int = 5,
    levels: tuple[int, ...] = (10, 20, 50),
    out: Path | None = None,
    resample: Path | None = None,
    splits: int = 200,
    inject_workloads: str | None = None,
    target: str | None = None,
    normalize: str | None = None,
) -> int:
    """A/A pairs and pairs with an injected slowdown (or a resampling estimate
    from one run), through the gate; prints and optionally writes the rates."""
    # gate.accuracy reads its settings from runner.py's namespace (and the
    # server environment and reports folder from the same place)
    args = argparse.Namespace(
        pairs=pairs,
        levels=list(levels),
        out=str(out) if out is not None else None,
        resample=str(resample) if resample is not None else None,
        splits=splits,
        inject_workloads=inject_workloads,
        target=target,
        normalize=normalize,
        reports_dir=str(options.reports_dir),
        server_env=[f"{k}={v}" for k, v in options.server_env.items()],
    )

    def load(_: argparse.Namespace) -> Any:
        return load_scenario(options)

    return int(accuracy.main(args, measure=None, load_scenario=load) or 0)


def gate_accuracy_ab(
    *,
    options: ScenarioOptions,
    rounds: int,
    percents: tuple[int, ...],
    middleware_us: int | None,
    out: Path | None,
    aa_per_round: int = 1,
    middleware_rounds: int | None = None,
    lock: Path | None = None,
) -> int:
    """Rounds of real A/B runs of the default gate: A/A, injected levels,
    optionally a middleware of its own in a head tree; prints the rates."""
    from contextlib import ExitStack

    from asyncbench.execute.revisions import worktree
    from asyncbench.execute.run import run_scenario
    from asyncbench.gate.ab_accuracy import ab_accuracy, add_middleware
    from asyncbench.gate.api import REVISION_BASE, REVISION_HEAD
    from asyncbench.model.results import Run, load_run

    scenario = load_scenario(options)
    if aa_per_round < 1:
        print("error: --aa-per-round must be >= 1 (the first A/A run sizes the injection)", file=sys.stderr)
        return 2
    if middleware_us and _changed(ROOT, "bench_site"):
        # head is a worktree of HEAD plus the middleware, base the working tree:
        # uncommitted site changes would be measured as part of the "regression"
        print("error: --middleware-us needs bench_site/ committed (head is HEAD plus the middleware)", file=sys.stderr)
        return 2
    options.reports_dir.mkdir(parents=True, exist_ok=True)
    target = out or options.reports_dir / "gate-accuracy-ab.json"

    def measure(label: str, trees: dict[str, Path] | None, env: dict[str, dict[str, str]]) -> Run:
        revisions = {REVISION_BASE: ROOT, REVISION_HEAD: ROOT, **(trees or {})}
        with _locked(lock):
            run_dir = run_scenario(
                scenario,
                reports_dir=options.reports_dir,
                command=[*options.command, f"# {label}"],
                server_env=dict(options.server_env),
                revisions=revisions,
                arm_env=env,
            )
        return load_run(run_dir)

    with ExitStack() as stack:
        tree = None
        if middleware_us:
            tree = stack.enter_context(worktree("HEAD"))
            add_middleware(tree, middleware_us)
        summary = ab_accuracy(
            measure,
            rounds=rounds,
            levels=tuple(p / 100 for p in percents),
            aa_per_round=aa_per_round,
            middleware_rounds=middleware_rounds,
            middleware_us=middleware_us,
            middleware_tree=tree,
            out=target,
        )
    print(
        f"\nA/A: {summary['aa']['passed']} of {summary['aa']['trials']} passed "
        f"({summary['aa']['hits']} false alarms, {summary['aa']['invalid']} invalid)"
    )
    for level, t in summary["levels"].items():
        print(f"injected {level}: detected {t['hits']} of {t['trials']} ({t['invalid']} invalid)")
    if summary.get("middleware"):
        m = summary["middleware"]
        print(f"middleware {middleware_us} µs: detected {m['hits']} of {m['trials']} ({m['invalid']} invalid)")
    for arm, d in summary["per_arm"].items():
        print(f"  {arm}: {d['hits']}/{d['trials']} flagged, measured changes {d['changes']}")
    print(f"results: {target}")
    return 0


def _changed(root: Path, path: str) -> bool:
    """Whether git sees uncommitted changes under `path`."""
    argv = ["git", "status", "--porcelain", "--", path]
    done = subprocess.run(argv, check=False, cwd=root, capture_output=True, text=True)
    return bool(done.stdout.strip())


@contextmanager
def _locked(lock: Path | None) -> Iterator[None]:
    """Hold `lock` (an exclusive flock) while one run measures, so other
    benchmarks on the machine that take the same lock wait between runs."""
    if lock is None:
        yield
        return
    import fcntl

    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
