"""The A/B gate's accuracy benchmark (gate/ab_accuracy.py), with synthetic runs
standing in for measurements: the sizing rule, the tallies, and the
middleware it writes into head's tree."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from asyncbench.gate import ab_accuracy as acc
from asyncbench.model.results import Run
from tests.synthetic import make_cell, make_run

RESOLVED = {"gate": {"metrics": ["cpu_per_request"], "thresholds": {"cpu_per_request": 0.03}, "min_repeats": 8}}


def ab_run(head_factor: dict[str, float], *, cpu: dict[str, float]) -> Run:
    """8 blocks; base at `cpu[setup]` ms per request (±1% by block), head times head_factor[setup]."""
    cells = []
    wiggle = [1.0, 1.01, 0.99, 1.005, 0.995, 1.0, 1.008, 0.992]
    for setup, ms in cpu.items():
        for rev, f in (("base", 1.0), ("head", head_factor.get(setup, 1.0))):
            c = make_cell(setup, "noio", "sync", 8, [50.0] * 8, revision=rev, cpu_ms_per_request=ms * f)
            reps = tuple(
                r.__class__(**{**r.__dict__, "server_cpu_s": r.server_cpu_s * w})
                for r, w in zip(c.repeats, wiggle, strict=True)
            )
            cells.append(c.__class__(**{**c.__dict__, "repeats": reps}))
    return make_run(cells, scenario_resolved=RESOLVED)


def test_injection_is_sized_per_setup_from_the_first_aa_run():
    run = ab_run({}, cpu={"gunicorn-gthread": 1.5, "uvicorn": 4.0})
    sizes = acc.injection_sizes(run, (0.05, 0.10))
    assert sizes["gunicorn-gthread"] == {0.05: 75, 0.10: 150}
    assert sizes["uvicorn"] == {0.05: 200, 0.10: 400}


def test_rounds_tally_false_alarms_and_detections(tmp_path: Path):
    """A measure() that does what the injection asks: A/A runs pass, head
    slowed by the injected fraction fails; every trial is written as it ends."""
    cpu = {"gunicorn-gthread": 1.5, "uvicorn": 4.0}
    asked: list[tuple[str, dict[str, dict[str, str]]]] = []

    def measure(label: str, trees, env) -> Run:
        asked.append((label, env))
        factor = {}
        for key, e in env.items():
            setup = key.split("@", 1)[1]
            factor[setup] = 1 + int(e["BENCH_INJECT_CPU_US"]) / (cpu[setup] * 1000)
        return ab_run(factor, cpu=cpu)

    out = tmp_path / "acc.json"
    summary = acc.ab_accuracy(measure, rounds=2, levels=(0.05, 0.10), aa_per_round=2, note=lambda _: None, out=out)
    assert summary["aa"]["trials"] == 4 and summary["aa"]["passed"] == 4 and summary["aa"]["hits"] == 0
    for level in ("5%", "10%"):
        assert summary["levels"][level]["trials"] == 2 and summary["levels"][level]["hits"] == 2
    # the injection goes to head's servers only, per setup, on the no-I/O views
    injected = [env for label, env in asked if "inject" in label]
    assert all(set(env) == {"head@gunicorn-gthread", "head@uvicorn"} for env in injected)
    assert all(e["BENCH_INJECT_WORKLOADS"] == "noio" for env in injected for e in env.values())
    assert out.is_file() and '"trials"' in out.read_text()


def test_aa_first_is_required():
    with pytest.raises(ValueError, match="aa_per_round"):
        acc.ab_accuracy(lambda *a: None, rounds=1, aa_per_round=0)  # type: ignore[arg-type,return-value]


def test_the_middleware_burns_cpu_sync_and_async(tmp_path: Path):
    (tmp_path / "bench_site").mkdir()
    (tmp_path / "bench_site" / "settings.py").write_text("MIDDLEWARE = ['a']\n")
    acc.add_middleware(tmp_path, 2000)
    ns: dict[str, object] = {}
    exec((tmp_path / acc.MIDDLEWARE_MODULE).read_text(), ns)
    settings: dict[str, object] = {}
    exec((tmp_path / "bench_site" / "settings.py").read_text(), settings)
    assert settings["MIDDLEWARE"] == ["a", acc.MIDDLEWARE_PATH]
    burn = ns["BurnMiddleware"]

    t0 = time.thread_time()
    assert burn(lambda request: "response")("request") == "response"  # type: ignore[operator]
    assert time.thread_time() - t0 >= 0.002

    async def get_response(request: object) -> str:
        return "async response"

    mw = burn(get_response)  # type: ignore[operator]
    t0 = time.thread_time()
    assert asyncio.run(mw("request")) == "async response"
    assert time.thread_time() - t0 >= 0.002
