"""The instruction-count gate: instructions per request under callgrind, base vs head.

Wall-clock figures on a shared machine move by percents; instruction counts of
the same code on the same input barely move. This mode drives every gated view
(the scenario's workloads x variants) in process through Django's WSGI and
ASGI handlers (asyncbench/execute/callgrind_driver.py: no sockets, no server)
under `valgrind --tool=callgrind`, counting only the measured requests (start-up
and warm-up run uninstrumented), and compares the base revision with the
working tree, `runs` identical runs a side, interleaved.

Decision per view x handler: with `change` = head/base - 1 (means of the runs)
and `spread` = the larger side's (max - min) / mean of its runs,
  * regression   when change > max(threshold, 3 x spread);
  * undecidable  when not a regression and spread > threshold (identical runs
    disagree by more than the change the gate is asked to catch);
  * pass         otherwise (an improvement beyond the margin is noted).
Exit 1 when any cell regressed, else 2 when any is undecidable, else 0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from asyncbench.execute import callgrind_driver
from asyncbench.gate.config import DEFAULT_INSTRUCTIONS_THRESHOLD
from asyncbench.model.scenario import Scenario
from bench_site.registry import WORKLOADS, endpoint

HANDLERS = ("wsgi", "asgi")
DRIVER = Path(callgrind_driver.__file__).resolve()
# --instr-atstart=no: start-up runs uninstrumented (about 10x faster than
# instrumented) and the driver switches counting on around each measured phase.
VALGRIND_ARGS = (
    "--tool=callgrind",
    "--instr-atstart=no",
    "--dump-instr=no",
    "--dump-line=no",
    "--collect-systime=no",
)
PASS, REGRESSION, UNDECIDABLE = "pass", "regression", "undecidable"
OK, FAILED, INVALID = 0, 1, 2
MISSING_VALGRIND = (
    "valgrind is not installed: install it with `apt-get install valgrind` "
    "(`make gate-instructions` does so itself when run as root)"
)


class InstructionsError(Exception):
    """The comparison cannot be made (valgrind missing, a view failing, twins differing)."""


@dataclass(frozen=True)
class Phase:
    """One view under one handler: what a measured phase of the driver runs."""

    workload: str
    variant: str
    handler: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.variant}@{self.handler}"


def phases_for(
    scenario: Scenario, handlers: Sequence[str] = HANDLERS, views: Sequence[str] | None = None
) -> list[Phase]:
    """The scenario's workloads x variants (fixed params), under each handler.

    `views` keeps only the phases named `workload/variant@handler` or
    `workload/variant` (both handlers); an unknown name is an error."""
    if scenario.endpoints or scenario.app is not None:
        # The driver runs bench_site's views in process with plain GETs; a
        # project of one's own (its settings, its methods and bodies) is gated
        # on its measured runs: `gate` with a baseline of the same scenario.
        own = ", ".join(e.name for e in scenario.endpoints) or "[app]"
        raise InstructionsError(
            f"the instruction-count gate drives bench_site's built-in views only; this scenario has its own "
            f"endpoints ({own}): gate them with `python runner.py gate {scenario.name}` (measured runs)"
        )
    out: list[Phase] = []
    for wl in scenario.workloads:
        query = urlencode(sorted(wl.params.items()))
        for variant in wl.variants:
            path = endpoint(wl.name, variant).path + (f"?{query}" if query else "")
            out.extend(Phase(wl.name, variant, h, path) for h in handlers)
    if views is not None:
        known = {p.key for p in out} | {p.key.split("@")[0] for p in out}
        unknown = [v for v in views if v not in known]
        if unknown:
            raise InstructionsError(
                f"unknown view(s) {', '.join(unknown)}; the scenario has: {', '.join(sorted(known))}"
            )
        out = [p for p in out if p.key in views or p.key.split("@")[0] in views]
    if not out:
        raise InstructionsError("no views to measure")
    return out


def uses_upstream(phases: Sequence[Phase]) -> bool:
    return any(WORKLOADS[p.workload].uses_upstream for p in phases)


# ------------------------------------------------------------------ one run


def parse_dump(path: Path) -> tuple[str, int]:
    """(trigger, instructions) of one callgrind dump: the trigger line's text
    ("Client Request: phase-3", "Program termination") and its `totals:` (or
    `summary:`) count of the first event, Ir."""
    trigger, totals, summary = "", None, None
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.startswith("desc: Trigger:"):
                trigger = line.split(":", 2)[2].strip()
            elif line.startswith("totals:"):
                totals = int(line.split()[1])
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    count = totals if totals is not None else summary
    if count is None:
        raise InstructionsError(f"{path}: no totals/summary line (not a callgrind dump?)")
    return trigger, count


def phase_counts(dumps: Sequence[Path], phases: Sequence[Phase], requests: int) -> dict[str, float]:
    """Instructions per request per phase key, from the dumps of one run.
    Each phase must have exactly one dump labelled `phase-<index>`."""
    by_label: dict[str, list[int]] = {}
    for d in dumps:
        trigger, count = parse_dump(d)
        if trigger.startswith("Client Request:"):
            by_label.setdefault(trigger.split(":", 1)[1].strip(), []).append(count)
    out: dict[str, float] = {}
    for i, phase in enumerate(phases):
        counts = by_label.get(f"phase-{i}", [])
        if len(counts) != 1:
            raise InstructionsError(f"{phase.key}: expected one callgrind dump labelled phase-{i}, found {len(counts)}")
        out[phase.key] = counts[0] / requests
    return out


def check_answers(answers: Sequence[Mapping[str, Any]], phases: Sequence[Phase], where: str) -> None:
    """Every response 200, every body of a phase the same, and twins (every
    variant and handler of one workload) byte-identical, like the runner."""
    first: dict[str, tuple[str, str]] = {}
    for phase, ans in zip(phases, answers, strict=True):
        if ans["statuses"] != [200]:
            raise InstructionsError(
                f"{where}: {phase.key} ({phase.path}) answered {ans['statuses']}, not 200: {ans['body'][:200]!r}"
            )
        if not ans["same_body"]:
            raise InstructionsError(f"{where}: {phase.key} returned different bodies across its requests")
        seen = first.setdefault(phase.workload, (phase.key, ans["body"]))
        if seen[1] != ans["body"]:
            raise InstructionsError(
                f"{where}: twins differ: {seen[0]} returned {seen[1][:120]!r}, {phase.key} {ans['body'][:120]!r}"
            )


@dataclass(frozen=True)
class RunSpec:
    """How every run measures: the phases, the request counts, where logs go."""

    phases: tuple[Phase, ...]
    requests: int
    warmup: int
    log_dir: Path
    timeout_s: float = 3600.0


def valgrind_available() -> bool:
    return shutil.which("valgrind") is not None


def run_once(spec: RunSpec, *, tree: Path, env: Mapping[str, str], tag: str) -> dict[str, float]:
    """One valgrind run of the driver on `tree`: instructions per request per phase key."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise InstructionsError(MISSING_VALGRIND)
    work = spec.log_dir / tag
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec_file, answers_file, log = work / "spec.json", work / "answers.json", work / "valgrind.log"
    phases = [{"path": p.path, "handler": p.handler} for p in spec.phases]
    spec_file.write_text(json.dumps({"phases": phases, "warmup": spec.warmup, "requests": spec.requests}))
    argv = [
        valgrind,
        *VALGRIND_ARGS,
        f"--callgrind-out-file={work / 'callgrind.out'}",
        sys.executable,
        "-P",  # the tree under test, not the driver's folder, is on sys.path (PYTHONPATH)
        str(DRIVER),
        str(spec_file),
        str(answers_file),
    ]
    with open(log, "wb") as out:
        done = subprocess.run(
            argv, cwd=tree, env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=spec.timeout_s, check=False
        )
    if done.returncode != 0 or not answers_file.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise InstructionsError(
            f"{tag}: the driver under valgrind exited with {done.returncode}; end of {log}:\n{tail}"
        )
    check_answers(json.loads(answers_file.read_text())["phases"], spec.phases, tag)
    dumps = sorted(work.glob("callgrind.out*"))
    counts = phase_counts(dumps, spec.phases, spec.requests)
    for d in dumps:  # up to a megabyte each; the counts are kept in the result
        d.unlink()
    return counts


# ------------------------------------------------------------------ base vs head


@dataclass(frozen=True)
class Side:
    """A source tree measured as one side, with its environment."""

    name: str  # "base" or "head"
    tree: Path
    env: dict[str, str]


def measure(
    spec: RunSpec, sides: Sequence[Side], *, runs: int, jobs: int = 1, note: Callable[[str], None] = print
) -> dict[str, dict[str, list[float]]]:
    """`runs` runs of every side, interleaved (base 1, head 1, base 2, ...),
    `jobs` at a time: {side: {phase key: [instructions/request per run]}}."""
    order = [(side, i) for i in range(runs) for side in sides]
    out: dict[str, dict[str, list[float]]] = {s.name: {p.key: [] for p in spec.phases} for s in sides}

    def one(item: tuple[Side, int]) -> tuple[str, dict[str, float]]:
        side, i = item
        t0 = time.monotonic()
        counts = run_once(spec, tree=side.tree, env=side.env, tag=f"{side.name}-{i + 1}")
        note(f"  {side.name} run {i + 1}/{runs}: {time.monotonic() - t0:.0f} s")
        return side.name, counts

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for name, counts in pool.map(one, order):  # in submission order: results stay interleaved
            for key, value in counts.items():
                out[name][key].append(value)
    return out


def spread(values: Sequence[float]) -> float:
    """(max - min) / mean of identical runs: 0 for one run."""
    mean = sum(values) / len(values)
    return (max(values) - min(values)) / mean if mean else 0.0


@dataclass(frozen=True)
class Cell:
    key: str
    base: float  # instructions per request, mean of the runs
    head: float
    change: float  # head / base - 1
    base_spread: float
    head_spread: float
    margin: float  # max(threshold, 3 x spread)
    status: str
    base_runs: list[float] = field(default_factory=list)
    head_runs: list[float] = field(default_factory=list)


def decide_cell(key: str, base: Sequence[float], head: Sequence[float], threshold: float) -> Cell:
    b, h = sum(base) / len(base), sum(head) / len(head)
    bs, hs = spread(base), spread(head)
    noise = max(bs, hs)
    change = h / b - 1
    margin = max(threshold, 3 * noise)
    if change > margin:
        status = REGRESSION
    elif noise > threshold:
        status = UNDECIDABLE
    else:
        status = PASS
    return Cell(key, b, h, change, bs, hs, margin, status, list(base), list(head))


def decide(measured: Mapping[str, Mapping[str, Sequence[float]]], threshold: float) -> tuple[int, list[Cell]]:
    """(exit code, cells) of base vs head."""
    cells = [decide_cell(k, measured["base"][k], measured["head"][k], threshold) for k in measured["head"]]
    if any(c.status == REGRESSION for c in cells):
        return FAILED, cells
    if any(c.status == UNDECIDABLE for c in cells):
        return INVALID, cells
    return OK, cells


def validate_threshold(value: object) -> float:
    from asyncbench.gate.config import INSTRUCTIONS_THRESHOLD_KEY, validate_gate_section

    problems = validate_gate_section({INSTRUCTIONS_THRESHOLD_KEY: value})
    if problems:
        raise InstructionsError("; ".join(problems))
    return float(value)  # type: ignore[arg-type]


# ------------------------------------------------------------------ output

VERDICT = {OK: "pass", FAILED: "REGRESSION", INVALID: "INVALID"}


def markdown(result: Mapping[str, Any]) -> str:
    """The job summary: verdict, rule, and one row per view x handler."""
    t = result["threshold"]
    lines = [
        f"## Instruction-count gate: {VERDICT[result['exit_code']]}",
        "",
        f"base `{result['base']}` vs head (working tree), {result['runs']} runs a side, "
        f"{result['requests']} requests a phase after {result['warmup']} warm-up; "
        f"regression when change > max({t:.1%}, 3 × spread).",
    ]
    if result.get("reason"):
        lines += ["", f"**{result['reason']}**"]
    if result.get("cells"):
        lines += [
            "",
            "| view @ handler | base instr/req | head instr/req | change | spread base / head | margin | verdict |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in result["cells"]:
            lines.append(
                f"| `{c['key']}` | {c['base']:,.0f} | {c['head']:,.0f} | {c['change']:+.3%} | "
                f"{c['base_spread']:.3%} / {c['head_spread']:.3%} | {c['margin']:.2%} | {c['status']} |"
            )
    for n in result.get("notes", []):
        lines += ["", n]
    return "\n".join(lines) + "\n"


def result_dict(
    *,
    exit_code: int,
    reason: str,
    base: str,
    spec: RunSpec,
    runs: int,
    threshold: float,
    cells: Sequence[Cell],
    notes: Sequence[str] = (),
    wall_s: float = 0.0,
) -> dict[str, Any]:
    return {
        "kind": "instructions",
        "exit_code": exit_code,
        "verdict": VERDICT[exit_code],
        "reason": reason,
        "base": base,
        "runs": runs,
        "requests": spec.requests,
        "warmup": spec.warmup,
        "threshold": threshold,
        "valgrind_args": list(VALGRIND_ARGS),
        "phases": [asdict(p) | {"key": p.key} for p in spec.phases],
        "cells": [asdict(c) for c in cells],
        "notes": list(notes),
        "wall_s": round(wall_s, 1),
    }


DEFAULT_THRESHOLD = DEFAULT_INSTRUCTIONS_THRESHOLD
