"""The cyclic GC's policy as a setup option (`gc = "default" | "freeze"`):
the scenario key, the entry points applying BENCH_GC, and a real server that
froze its objects (its counters say how many) while the default froze none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncbench.execute.servers import start_server, stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.model.scenario import ScenarioError, parse
from bench_site.gcpolicy import POLICIES
from bench_site.telemetry import read_counters

ROOT = Path(__file__).resolve().parent.parent


def _scenario(**setup: Any) -> dict[str, Any]:
    return {"name": "t", "load": {"users": [4]}, "setups": [{"name": "uvicorn", **setup}], "workloads": {"noio": {}}}


def test_gc_defaults_to_cpythons_and_is_recorded_only_off_it() -> None:
    plain = parse(_scenario())
    assert plain.setups[0].gc == "default" and POLICIES == ("default", "freeze")
    # absent from the resolved scenario, so runs compare with baselines recorded before the key
    assert "gc" not in plain.to_dict()["setups"][0]
    frozen = parse(_scenario(gc="freeze"))
    assert frozen.setups[0].gc == "freeze" and frozen.to_dict()["setups"][0]["gc"] == "freeze"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"gc": "off"}, "setups[0].gc: unknown policy 'off'; allowed: default, freeze"),
        ({"gc": True}, "setups[0].gc: expected str, got bool"),
    ],
)
def test_a_bad_gc_policy_is_refused_naming_the_key(setup: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(_scenario(**setup))
    assert message in str(caught.value)


def test_a_gc_policy_is_refused_with_another_project() -> None:
    data = {
        "name": "t",
        "load": {"users": [4]},
        "app": {"pythonpath": "tests/example_app", "asgi": "exampleapp.asgi:application", "health": "/health/"},
        "setups": [{"name": "uvicorn", "gc": "freeze"}],
        "endpoints": {"items": {"variants": {"sync": "/items/sync/", "async": "/items/async/"}}},
    }
    with pytest.raises(ScenarioError, match=r"setups\[0\]\.gc: 'freeze' is applied by bench_site's entry points"):
        parse(data)


def _frozen_after_import(module: str, policy: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_GC", "BENCH_DATABASE_URL", "BENCH_TELEMETRY_DIR")}
    env.update(DJANGO_SETTINGS_MODULE="bench_site.settings", BENCH_SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    if policy is not None:
        env["BENCH_GC"] = policy
    # what the import froze (an interpreter may start with a few hundred frozen objects)
    code = f"import gc; before = gc.get_freeze_count(); import {module}; print(gc.get_freeze_count() - before)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("module", ["bench_site.wsgi", "bench_site.asgi"])
def test_the_entry_points_freeze_only_when_asked(module: str, tmp_path: Path) -> None:
    default = _frozen_after_import(module, None, tmp_path)
    assert default.returncode == 0, default.stderr[-2000:]
    assert int(default.stdout.split()[-1]) == 0
    frozen = _frozen_after_import(module, "freeze", tmp_path)
    assert frozen.returncode == 0, frozen.stderr[-2000:]
    # Django, the site and their dependencies: tens of thousands of objects
    assert int(frozen.stdout.split()[-1]) > 10_000
    bad = _frozen_after_import(module, "off", tmp_path)
    assert bad.returncode != 0 and "BENCH_GC='off': allowed: default, freeze" in bad.stderr


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn-gthread"])
def test_a_frozen_setups_server_froze_its_objects_and_the_default_none(kind: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"}
    # inherited from the runner's shell: never what a server gets, the scenario decides
    env.update(BENCH_SQLITE_PATH=str(tmp_path / "db.sqlite3"), PYTHONPATH=str(ROOT), BENCH_GC="freeze")
    frozen: dict[str, int] = {}
    for policy in POLICIES:
        config = SetupConfig(f"{kind}-{policy}", kind, workers=1, threads=2, gc=policy)
        server = start_server(
            config, revision="", root=ROOT, env=env, cpus=(), log_dir=tmp_path, telemetry=tmp_path / policy
        )
        try:
            assert server.info is not None
            assert server.info.env.get("BENCH_GC") == (None if policy == "default" else policy)
            assert ("gc.freeze()" in server.info.notes) == (policy == "freeze")
            frozen[policy] = read_counters(tmp_path / policy)["gc_frozen_objects"]
        finally:
            stop_server(server)
    assert frozen["default"] == 0
    assert frozen["freeze"] > 10_000
