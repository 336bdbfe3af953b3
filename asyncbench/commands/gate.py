"""`gate`: compare a run with the baseline, or two revisions measured in one job."""

from __future__ import annotations

import sys
from pathlib import Path

from asyncbench.commands._common import INTERRUPTED, INVALID, ScenarioOptions
from asyncbench.commands._measure import measure
from asyncbench.execute import ROOT
from asyncbench.execute.revisions import RevisionError, default_base, worktree
from asyncbench.gate import GateResult, compare
from asyncbench.gate.api import REVISION_BASE, REVISION_HEAD
from asyncbench.model.results import ResultsError, Run, load_run
from asyncbench.render import gate_page

NO_BASELINE = (
    "error: no baseline at {path}. Make one with `make baseline` "
    "(runs the ci scenario and stores it there), or `python runner.py baseline save RUN_DIR` "
    "for an existing run; commit it so CI compares against it."
)


def gate(
    *,
    options: ScenarioOptions,
    baseline: Path,
    current: Path | None = None,
    threshold: float | None = None,
    alpha: float | None = None,
    normalize: str | None = None,
    allow_env_mismatch: bool = False,
    summary: Path | None = None,
) -> int:
    """Compare `current` (or a run measured now) with the baseline.
    Exit 0 ok, 1 regression, 2 invalid, 130 interrupted."""
    if not baseline.exists():
        print(NO_BASELINE.format(path=baseline), file=sys.stderr)
        return INVALID
    try:
        base = load_run(baseline)
    except ResultsError as exc:
        print(f"error: baseline {baseline}: {exc}", file=sys.stderr)
        return INVALID
    if current is not None:
        run_dir = current
    else:
        measured = measure(options, on_interrupt="interrupted ({run_dir} kept)")
        if measured.interrupted:
            return INTERRUPTED
        run_dir = measured.run_dir
    head = load_run(run_dir)
    result = compare(
        base, head, threshold=threshold, alpha=alpha, normalize=normalize or None,
        allow_env_mismatch=allow_env_mismatch,
    )  # fmt: skip
    return _output(result, base, head, run_dir if run_dir.is_dir() else run_dir.parent, summary)


def gate_ab(
    *,
    options: ScenarioOptions,
    revision: str | None,
    head_env: dict[str, str] | None = None,
    threshold: float | None = None,
    alpha: float | None = None,
    normalize: str | None = None,
    summary: Path | None = None,
) -> int:
    """A/B in one job: measure git revision `revision` (None: `default_base`)
    and the working tree interleaved, then compare head with base arm by arm."""
    try:
        revision = default_base(revision)
        print(f"gate: A/B in one job, base {revision} vs the working tree", file=sys.stderr)
        with worktree(revision) as base_tree:
            measured = measure(
                options,
                on_interrupt="interrupted ({run_dir} kept)",
                revisions={REVISION_BASE: base_tree, REVISION_HEAD: ROOT},
                arm_env={REVISION_HEAD: dict(head_env)} if head_env else None,
            )
    except RevisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID
    if measured.interrupted:
        return INTERRUPTED
    run = load_run(measured.run_dir)
    result = compare(run, threshold=threshold, alpha=alpha, normalize=normalize or None)
    return _output(result, run, run, measured.run_dir, summary)


def _output(result: GateResult, baseline: Run, current: Run, out_dir: Path, summary: Path | None) -> int:
    print(gate_page.terminal_text(result))
    # gate.json carries the exit code, so CI can tell 1 from 2 even through make
    paths = gate_page.write_outputs(result, baseline, current, out_dir)
    if summary is not None:
        with open(summary, "a") as fh:
            fh.write(paths["markdown"].read_text() + "\n")
    print(f"comparison: {paths['html']}")
    return int(result.exit_code)
