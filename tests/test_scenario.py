"""Scenario validation: bad input is rejected before anything starts, with a
message naming the key and the allowed values."""

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncbench.execute.groups import SETUP_S, groups, planned_wall_s
from asyncbench.model import scenario as sc
from bench_site.registry import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "name": "t",
    "load": {"users": [2, 8], "min_blocks": 3, "max_blocks": 6},
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
        (with_(["load", "repeats"], 2), ["load", "unknown key 'repeats'", "min_blocks", "precision"]),
        (with_(["load", "min_blocks"], 2), ["load.min_blocks", ">= 3"]),
        (with_(["load", "max_blocks"], 2), ["load.max_blocks", "min_blocks"]),
        (with_(["load", "max_window_s"], 0.5), ["load.max_window_s", "window_s"]),
        (with_(["load", "precision"], 5), ["load.precision", "0.05"]),
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
        (with_(["database"], {"engine": "oracle"}), ["database.engine", "sqlite, postgres, mariadb"]),
        (
            with_(["database"], {"engine": "mariadb", "url": "postgresql://postgres@127.0.0.1/x"}),
            ["database.url", "mariadb needs a mysql:// or mariadb:// URL"],
        ),
        (with_(["gate"], {"normalize": "magic"}), ["gate.normalize", "'magic'", "allowed: none, async-sync-ratio"]),
        # the removed calibration normalisation: refused with the reason, not as an unknown value
        (
            with_(["gate"], {"normalize": "calibration"}),
            ["gate.normalize: 'calibration' was removed", "Django view", "same windows", "none, async-sync-ratio"],
        ),
        (
            with_(["gate"], {"calibration": {"workload": "cpu", "variant": "sync", "users": 1}}),
            ["gate.calibration", "was removed", "Django view", "same windows", "none, async-sync-ratio"],
        ),
        (with_(["load", "arrival"], "bursty"), ["load.arrival", "'bursty'", "uniform, poisson"]),
        (with_(["load", "restart"], "always"), ["load.restart", "never, block"]),
        (with_(["load", "interleave"], "run"), ["load.interleave", "min_blocks = load.max_blocks"]),
        (with_(["load", "interleave"], "cell"), ["load.interleave", "group, run"]),
        (with_(["load", "rate_fraction"], 1.5), ["load.rate_fraction", "(0, 1)"]),
        (
            {**with_(["load", "rate"], 100), "load": {**GOOD["load"], "rate": 100, "rate_fraction": 0.2}},
            ["load.rate and load.rate_fraction"],
        ),
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


def test_good_scenario_plans_groups_of_arms():
    s = sc.parse(GOOD)
    gs = groups(s, [""])
    # (noio + fanout) x 2 users = 4 groups; each holds every setup x variant
    assert [(g.workload, g.users) for g in gs] == [("noio", 2), ("noio", 8), ("fanout", 2), ("fanout", 8)]
    assert all(len(g.arms) == 2 * 2 for g in gs)
    assert groups(s, [""]) == gs  # deterministic
    fan = gs[2].arms[0]
    assert fan.path.endswith("/fanout/?calls=2")


def test_every_block_runs_every_arm_once_in_a_fresh_order():
    s = sc.parse(GOOD)
    g = groups(s, [""])[0]
    orders = [g.order(s.name, b) for b in range(12)]
    for b, order in enumerate(orders):
        assert sorted((a.setup, a.variant) for a in order) == sorted((a.setup, a.variant) for a in g.arms)
        assert {a.repeat for a in order} == {b}  # each slice carries its block
    assert g.order(s.name, 3) == orders[3]  # reproducible
    assert len({(o[0].setup, o[0].variant) for o in orders}) > 1  # no arm always goes first


def test_ab_groups_interleave_revisions():
    s = sc.parse(GOOD)
    g = groups(s, ["base", "head"])[0]
    assert sorted({a.revision for a in g.arms}) == ["base", "head"]
    assert len(g.arms) == 8


def test_planned_wall_time_is_bounded_by_the_budget():
    s = sc.parse(with_(["load", "budget_s"], 60.0))
    least, most = planned_wall_s(s, groups(s, [""]))
    unbounded = planned_wall_s(sc.parse(GOOD), groups(sc.parse(GOOD), [""]))[1]
    assert unbounded > SETUP_S + 60.0  # without a budget: every group at max_blocks
    # with one: the budget, unless the groups' minimum blocks need more
    assert most == pytest.approx(max(least, SETUP_S + 60.0))


def test_sweep_expands_param_sets():
    s = sc.parse(with_(["workloads", "fanout", "sweep"], {"delay_ms": [0, 50]}))
    fan = next(w for w in s.workloads if w.name == "fanout")
    assert fan.param_sets() == [{"calls": 2, "delay_ms": 0}, {"calls": 2, "delay_ms": 50}]


def test_a_sweep_limited_to_some_levels_runs_the_fixed_params_elsewhere():
    fanout = {"variants": ["sync", "async"], "params": {"calls": 2, "delay_ms": 50}}
    s = sc.parse(with_(["workloads", "fanout"], {**fanout, "sweep": {"delay_ms": [0, 50, 200]}, "sweep_users": [8]}))
    by_users: dict[int, list[int]] = {}
    for g in groups(s, [""]):
        if g.workload == "fanout":
            by_users.setdefault(g.users, []).append(dict(g.params)["delay_ms"])
    assert by_users == {2: [50], 8: [0, 50, 200]}
    with pytest.raises(sc.ScenarioError, match="sweep_users: needs a sweep"):
        sc.parse(with_(["workloads", "fanout"], {**fanout, "sweep_users": [8]}))


@pytest.mark.parametrize("name", ["quick", "full", "ci", "seed", "example-own-app"])
def test_shipped_scenarios_are_valid(name):
    s = sc.load(name)
    assert s.name == name
    assert groups(s, [""])


def test_quick_covers_every_card_workload_sync_and_async_on_wsgi_and_asgi():
    from asyncbench.execute.setups import SETUPS
    from bench_site.registry import VARIANTS

    s = sc.load("quick")
    assert {w.name for w in s.workloads} >= {"noio", "fanout", "orm", "json"}
    for w in s.workloads:
        kinds = {VARIANTS[v].kind for v in w.variants}
        assert kinds == {"sync", "async"}, w.name
    assert {SETUPS[x.kind].interface for x in s.setups} == {"wsgi", "asgi"}
    assert len(s.load.users) >= 2 and s.load.min_blocks >= 3


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


@pytest.mark.parametrize(
    ("db", "engine", "url"),
    [
        ("mariadb", "mariadb", sc.DEFAULT_MARIADB_URL),
        ("mysql", "mariadb", sc.DEFAULT_MARIADB_URL),
        ("mysql://bench:pw@10.0.0.5:3307/b", "mariadb", "mysql://bench:pw@10.0.0.5:3307/b"),
        ("postgres", "postgres", sc.DEFAULT_PG_URL),
        ("sqlite", "sqlite", ""),
    ],
)
def test_db_override_picks_the_engine_and_url(db, engine, url):
    data = sc.apply_overrides(GOOD, sc.Overrides(db=db))
    parsed = sc.parse(data)
    assert (parsed.database.engine, parsed.database.url) == (engine, url)


def test_db_override_does_not_keep_another_engines_url():
    pg = {**GOOD, "database": {"engine": "postgres", "url": "postgresql://u@h/db"}}
    assert sc.parse(sc.apply_overrides(pg, sc.Overrides(db="mariadb"))).database.url == sc.DEFAULT_MARIADB_URL


def test_unknown_db_override_names_the_allowed_values():
    with pytest.raises(sc.ScenarioError, match="--db: unknown 'oracle'; allowed: sqlite, postgres, mariadb"):
        sc.apply_overrides(GOOD, sc.Overrides(db="oracle"))


def test_load_arms_is_chosen_or_all() -> None:
    from asyncbench.model.scenario import ScenarioError as Refused
    from asyncbench.model.scenario import parse as parse_scenario

    base = {"name": "t", "load": {"users": [4]}, "setups": [{"name": "uvicorn"}], "workloads": {"noio": {}}}
    assert parse_scenario(base).load.arms == "chosen"
    base["load"] = {"users": [4], "arms": "all"}
    assert parse_scenario(base).load.arms == "all"
    base["load"] = {"users": [4], "arms": "some"}
    with pytest.raises(Refused, match=r"load\.arms: unknown 'some'; allowed: chosen, all"):
        parse_scenario(base)


def test_a_workload_can_name_the_setups_it_runs_on() -> None:
    from asyncbench.execute.groups import groups
    from asyncbench.model.scenario import ScenarioError as Refused
    from asyncbench.model.scenario import parse as parse_scenario

    data: dict[str, Any] = {
        "name": "t",
        "load": {"users": [4]},
        "setups": [{"name": "gunicorn-gthread"}, {"name": "uvicorn"}, {"name": "daphne"}],
        "workloads": {"noio": {"setups": ["gunicorn-gthread", "uvicorn"]}, "ws-echo": {"setups": ["daphne"]}},
    }
    s = parse_scenario(data)
    arms = {(a.workload, a.setup) for g in groups(s, [""]) for a in g.arms}
    assert arms == {("noio", "gunicorn-gthread"), ("noio", "uvicorn"), ("ws-echo", "daphne")}
    assert list(s.to_dict()["workloads"]["noio"]["setups"]) == ["gunicorn-gthread", "uvicorn"]
    assert "setups" not in parse_scenario({**data, "workloads": {"noio": {}}}).to_dict()["workloads"]["noio"]
    data["workloads"] = {"noio": {"setups": ["granian"]}}
    with pytest.raises(Refused, match=r"workloads\.noio\.setups: unknown setup 'granian'; allowed: gunicorn-gthread"):
        parse_scenario(data)
    data["workloads"] = {"ws-echo": {"setups": ["gunicorn-gthread"]}}
    with pytest.raises(Refused, match=r"workloads\.ws-echo\.setups: none of 'gunicorn-gthread' \(WSGI\) can serve"):
        parse_scenario(data)


def test_a_setup_can_run_without_telemetry() -> None:
    from asyncbench.model.scenario import parse as parse_scenario

    data: dict[str, Any] = {
        "name": "t",
        "load": {"users": [4]},
        "setups": [{"name": "on", "kind": "uvicorn"}, {"name": "off", "kind": "uvicorn", "telemetry": False}],
        "workloads": {"noio": {}},
    }
    s = parse_scenario(data)
    assert [x.telemetry for x in s.setups] == [True, False]
    resolved = s.to_dict()["setups"]
    assert "telemetry" not in resolved[0] and resolved[1]["telemetry"] is False
