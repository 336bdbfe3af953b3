"""`gate-accuracy`: benchmark the gate itself (false alarms, detection)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from asyncbench.commands._common import ScenarioOptions, load_scenario
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
