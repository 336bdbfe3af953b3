"""`gate-instructions`: instructions per request under callgrind, base vs head.

The orchestration: load the scenario, prepare its database the way a run does,
start the upstream stub (outside valgrind) when a fan-out view is gated, check
the base revision out (revisions.worktree), measure both sides interleaved
(asyncbench.gate.instructions), decide, and write instructions.json and
instructions.md into reports/<id>-instructions-<scenario>/.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncbench.commands._common import INVALID, ScenarioOptions
from asyncbench.execute import ROOT
from asyncbench.execute.database import SERVER_HASH_SEED, django_env, prepare_database
from asyncbench.execute.processes import LOOPBACK
from asyncbench.execute.revisions import RevisionError, default_base, worktree
from asyncbench.gate import instructions as ins
from asyncbench.gate.config import INSTRUCTIONS_THRESHOLD_KEY
from asyncbench.model import scenario as sc


def load_scenario(options: ScenarioOptions) -> tuple[sc.Scenario, float | None]:
    """The scenario and its `gate.instructions_threshold` (None when unset).

    The key is taken out of the `gate` table and validated here, by the
    instruction gate's own rule (a fraction in (0, 1)), with the file's name
    in the message; the scenario loader accepts it too (scenario_keys.GATE_KEYS)."""
    path = sc.resolve_path(options.scenario)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise sc.ScenarioError(f"scenario file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise sc.ScenarioError(f"{path}: not valid TOML: {exc}") from None
    gate = dict(data.get("gate", {}))
    threshold = gate.pop(INSTRUCTIONS_THRESHOLD_KEY, None)
    data["gate"] = gate
    try:
        if threshold is not None:
            threshold = ins.validate_threshold(threshold)
        return sc.parse(sc.apply_overrides(data, options.overrides), source=str(path)), threshold
    except (sc.ScenarioError, ins.InstructionsError) as exc:
        raise sc.ScenarioError(f"{path}: {exc}") from None


@contextmanager
def _base_tree(revision: str, base_tree: Path | None) -> Iterator[Path]:
    if base_tree is not None:
        yield base_tree
        return
    with worktree(revision) as tree:
        yield tree


def _write(out_dir: Path, result: Mapping[str, Any], summary: Path | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "instructions.json").write_text(json.dumps(result, indent=1) + "\n")
    md = ins.markdown(result)
    (out_dir / "instructions.md").write_text(md)
    if summary is not None:
        with open(summary, "a") as fh:
            fh.write(md + "\n")
    print(md)
    print(f"results: {out_dir / 'instructions.json'}")


def gate_instructions(
    *,
    options: ScenarioOptions,
    base: str | None = None,
    base_tree: Path | None = None,
    head_env: Mapping[str, str] | None = None,
    threshold: float | None = None,
    runs: int = 3,
    requests: int = 50,
    warmup: int = 20,
    jobs: int = 2,
    handlers: Sequence[str] = ins.HANDLERS,
    views: Sequence[str] | None = None,
    summary: Path | None = None,
) -> int:
    """Base vs head by instructions per request. Exit 0 pass, 1 regression, 2 invalid."""
    started = time.monotonic()
    scenario, scenario_threshold = load_scenario(options)
    chosen = threshold if threshold is not None else scenario_threshold
    try:
        limit = ins.validate_threshold(chosen if chosen is not None else ins.DEFAULT_THRESHOLD)
        phases = ins.phases_for(scenario, handlers, views)
        if runs < 2:
            raise ins.InstructionsError("--runs must be >= 2: the spread of identical runs is the noise estimate")
        if requests < 1 or warmup < 0:
            raise ins.InstructionsError("--requests must be >= 1 and --warmup >= 0")
        revision = str(base_tree) if base_tree is not None else default_base(base, root=ROOT)
    except (ins.InstructionsError, RevisionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-instructions-{scenario.name}"
    out_dir = options.reports_dir / run_id
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    spec = ins.RunSpec(phases=tuple(phases), requests=requests, warmup=warmup, log_dir=log_dir)
    print(
        f"instructions: {len(phases)} phases ({', '.join(p.key for p in phases)}), base {revision} vs working tree, "
        f"{runs} runs a side, {requests} requests a phase"
    )
    env = {**os.environ, **scenario.server_env, **options.server_env}
    notes: list[str] = []
    cells: list[ins.Cell] = []
    try:
        if not ins.valgrind_available():
            raise ins.InstructionsError(ins.MISSING_VALGRIND)
        prepare_database(scenario, django_env(scenario, env), log_dir / "database.log", print)
        with ExitStack() as stack:
            if ins.uses_upstream(phases):
                from asyncbench.execute.upstream import upstream

                up = stack.enter_context(
                    upstream(
                        scenario,
                        cpus=(),
                        log_dir=log_dir,
                        env=env,
                        delay_ms=scenario.upstream.delay_ms,
                        name="upstream",
                    )
                )
                env["BENCH_UPSTREAM_URL"] = f"http://{LOOPBACK}:{up.port}"
            tree = stack.enter_context(_base_tree(revision, base_tree))
            # Both trees through paths of the same length: the paths end up in
            # sys.path and module names, and a different length alone moves
            # the counts by ~0.2% (memory layout: method-cache and dict
            # collisions), measured with one tree under two paths.
            base_link, head_link = _link(out_dir / "trees" / "base", tree), _link(out_dir / "trees" / "head", ROOT)
            stack.callback(base_link.unlink, missing_ok=True)
            stack.callback(head_link.unlink, missing_ok=True)
            sides = [
                ins.Side("base", base_link, _side_env(scenario, env, base_link, {})),
                ins.Side("head", head_link, _side_env(scenario, env, head_link, head_env or {})),
            ]
            measured = ins.measure(spec, sides, runs=runs, jobs=jobs)
        code, cells = ins.decide(measured, limit)
        reason = ""
        if code == ins.FAILED:
            reason = "regression: " + ", ".join(c.key for c in cells if c.status == ins.REGRESSION)
        elif code == ins.INVALID:
            reason = "cannot decide: identical runs spread more than the threshold in " + ", ".join(
                c.key for c in cells if c.status == ins.UNDECIDABLE
            )
    except (ins.InstructionsError, RevisionError) as exc:
        code, reason = INVALID, str(exc)
        print(f"error: {exc}", file=sys.stderr)
    result = ins.result_dict(
        exit_code=code,
        reason=reason,
        base=revision,
        spec=spec,
        runs=runs,
        threshold=limit,
        cells=cells,
        notes=notes,
        wall_s=time.monotonic() - started,
    )
    _write(out_dir, result, summary)
    return code


def _link(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(target.resolve(), target_is_directory=True)
    return link


def _side_env(scenario: sc.Scenario, env: Mapping[str, str], tree: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A side's environment: the servers' (django_env of its tree), one fixed
    hash seed whatever the caller's, plus `extra` (e.g. an injection on head)."""
    out = django_env(scenario, {**env, **extra}, root=tree)
    out["PYTHONHASHSEED"] = SERVER_HASH_SEED
    return out
