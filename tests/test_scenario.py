"""Scenario validation: bad input is rejected before anything starts, with a
message naming the key and the allowed values."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from asyncbench.execute.plan import plan
from asyncbench.model import scenario as sc
from bench_site.registry import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "name": "t",
    "load": {"users": [2, 8], "repeats": 2},
    "setups": [{"name": "uvicorn"}, {"name": "gunicorn-gthread", "threads": 4}],
    "workloads": {"noio": {}, "fanout": {"variants": ["sync", "async"], "params": {"calls": 2}}},
}


def with_(path, value):
    d = copy.deepcopy(GOOD)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (with_(["colour"], 1), ["unknown key 'colour'", "allowed keys", "workloads"]),
        (with_(["load", "userz"], [1]), ["load", "unknown key 'userz'", "users"]),
        (with_(["load", "users"], [0]), ["load.users", "1..10000"]),
        (with_(["load", "users"], "8"), ["load.users", "expected list"]),
        (with_(["load", "repeats"], 0), ["load.repeats", ">= 1"]),
        (with_(["load", "max_s"], 0.5), ["load.max_s", "min_s"]),
        (
            with_(["setups"], [{"name": "tomcat"}]),
            ["setups[0].name", "unknown setup 'tomcat'", "gunicorn-sync", "daphne"],
        ),
        (with_(["setups"], [{"name": "x", "kind": "nginx"}]), ["setups[0].kind", "allowed", "uvicorn"]),
        (with_(["setups"], [{"name": "daphne", "workers": 4}]), ["setups[0].workers", "at most 1"]),
        (with_(["workloads", "graphql"], {}), ["workloads.graphql", "unknown workload", "noio", "fanout"]),
        (
            with_(["workloads", "noio"], {"variants": ["sync", "async-s2a"]}),
            ["workloads.noio.variants", "'async-s2a'", "allowed: sync, async"],
        ),
        (with_(["workloads", "noio"], {"params": {"calls": 3}}), ["workloads.noio.params.calls", "unknown parameter"]),
        (with_(["workloads", "fanout", "params"], {"calls": "3"}), ["workloads.fanout.params.calls", "1..100"]),
        (with_(["workloads", "fanout", "params"], {"calls": 0}), ["calls", "1..100"]),
        (with_(["workloads", "fanout", "params"], {"calls": 101}), ["calls", "1..100"]),
        (
            with_(["workloads", "fanout"], {"sweep": {"delay_ms": [0, 10_001]}}),
            ["workloads.fanout.sweep.delay_ms", "0..10000"],
        ),
        (with_(["database"], {"engine": "oracle"}), ["database.engine", "sqlite, postgres"]),
        (with_(["gate"], {"normalize": "magic"}), ["gate.normalize", "calibration"]),
        (with_(["gate"], {"thresholds": {"p42": 0.1}}), ["gate.thresholds", "unknown metric 'p42'", "throughput"]),
    ],
)
def test_bad_scenarios_name_the_key_and_allowed_values(data, fragments):
    with pytest.raises(sc.ScenarioError) as err:
        sc.parse(data)
    for f in fragments:
        assert f in str(err.value)


@pytest.mark.parametrize(
    ("workload", "param"),
    [(w.name, p) for w in WORKLOADS.values() for p in w.params],
    ids=lambda x: getattr(x, "name", x),
)
def test_param_bounds_are_the_registrys(workload, param):
    # The same bounds the site answers 400 outside of: a scenario cannot ask
    # for a value the views would refuse, nor be refused one they accept.
    def scenario(value):
        return {**GOOD, "workloads": {workload: {"params": {param.name: value}}}}

    for value in (param.minimum - 1, param.maximum + 1):
        with pytest.raises(sc.ScenarioError) as err:
            sc.parse(scenario(value))
        assert (
            f"workloads.{workload}.params.{param.name}: {value} is not an integer in {param.minimum}..{param.maximum}"
            in str(err.value)
        )
    for value in (param.minimum, param.maximum):
        assert sc.parse(scenario(value)).workloads[0].params == {param.name: value}


def test_good_scenario_plans_interleaved_repeats():
    s = sc.parse(GOOD)
    todo = plan(s, [""])
    # 2 setups x (2 noio variants + 2 fanout variants) x 2 users x 2 repeats
    assert len(todo) == 2 * 4 * 2 * 2
    assert plan(s, [""]) == todo  # deterministic
    group = [t for t in todo if t.workload == "noio" and t.users == 2]
    # every arm (setup x variant) once per round, rounds in order: drift hits every arm alike
    arms = {(t.setup, t.variant) for t in group}
    assert len(arms) == 4
    rounds = [[(t.setup, t.variant) for t in group if t.repeat == r] for r in range(2)]
    assert [t.repeat for t in group] == [0] * 4 + [1] * 4
    assert all(sorted(r) == sorted(arms) for r in rounds)
    fan = next(t for t in todo if t.workload == "fanout")
    assert fan.path.endswith("/fanout/?calls=2")


def test_round_order_is_shuffled_so_no_arm_always_goes_first():
    s = sc.parse(with_(["load", "repeats"], 12))
    todo = plan(s, [""])
    firsts = {
        next(t for t in todo if t.workload == "noio" and t.users == 8 and t.repeat == r).variant
        + next(t for t in todo if t.workload == "noio" and t.users == 8 and t.repeat == r).setup
        for r in range(12)
    }
    assert len(firsts) > 1


def test_ab_plan_interleaves_revisions():
    s = sc.parse(GOOD)
    todo = plan(s, ["base", "head"])
    r0 = [t for t in todo if t.workload == "noio" and t.users == 2 and t.repeat == 0]
    assert sorted({t.revision for t in r0}) == ["base", "head"]
    assert len(r0) == 8


def test_sweep_expands_param_sets():
    s = sc.parse(with_(["workloads", "fanout", "sweep"], {"delay_ms": [0, 50]}))
    fan = next(w for w in s.workloads if w.name == "fanout")
    assert fan.param_sets() == [{"calls": 2, "delay_ms": 0}, {"calls": 2, "delay_ms": 50}]


@pytest.mark.parametrize("name", ["quick", "full", "ci"])
def test_shipped_scenarios_are_valid(name):
    s = sc.load(name)
    assert s.name == name
    assert plan(s, [""])


def test_quick_covers_every_card_workload_sync_and_async_on_wsgi_and_asgi():
    from asyncbench.execute.setups import SETUPS
    from bench_site.registry import VARIANTS

    s = sc.load("quick")
    assert {w.name for w in s.workloads} >= {"noio", "fanout", "orm", "json"}
    for w in s.workloads:
        kinds = {VARIANTS[v].kind for v in w.variants}
        assert kinds == {"sync", "async"}, w.name
    assert {SETUPS[x.kind].interface for x in s.setups} == {"wsgi", "asgi"}
    assert len(s.load.users) >= 2 and s.load.repeats >= 3


def test_cli_rejects_bad_scenario_before_starting_anything(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n[load]\nusers = [4]\n[[setups]]\nname = "uvicorn"\n[workloads.noio]\nvariants = ["sideways"]\n'
    )
    done = subprocess.run(
        [sys.executable, "runner.py", "run", str(bad), "--reports-dir", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "workloads.noio.variants" in done.stderr and "sideways" in done.stderr
    assert not (tmp_path / "r").exists()


def test_cli_overrides_are_validated_too(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "runner.py",
            "run",
            "quick",
            "--setups",
            "gunicorn-sync,jetty",
            "--reports-dir",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "jetty" in done.stderr and "allowed" in done.stderr
