"""A scenario's own view pairs ([endpoints.<name>]) and the project serving
them ([app]): validation with messages that name the key and the allowed
values, the catalog the runner and the report read, the request the load
driver and the body check send. No server here (tests/test_own_endpoints.py
runs the example app end to end)."""

from __future__ import annotations

import copy
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from asyncbench.analysis.selection import run_variant_kind
from asyncbench.analysis.verdict import verdicts
from asyncbench.execute.checks import check_body
from asyncbench.execute.database import django_env
from asyncbench.execute.groups import groups
from asyncbench.execute.setups import SETUPS
from asyncbench.gate.instructions import InstructionsError, phases_for
from asyncbench.model import scenario as sc
from asyncbench.model.endpoints import Catalog
from locustfiles.causes import response_failure
from locustfiles.request import RequestSpec
from tests.synthetic import make_run, v2_cell

GOOD: dict[str, Any] = {
    "name": "own",
    "load": {"users": [2, 8], "min_blocks": 3, "max_blocks": 6},
    "setups": [{"name": "uvicorn"}, {"name": "gunicorn-gthread", "threads": 4}],
    "endpoints": {
        "items": {"variants": {"sync": "/api/items/", "async": "/api/v2/items/"}, "users": [4]},
        "echo": {
            "method": "post",
            "json": {"name": "widget", "sizes": [3, 5]},
            "status": 201,
            "headers": {"X-Trace": "1"},
            "variants": {
                "sync": "/echo/",
                "async": "/async/echo/",
                "v2": {"path": "/v2/echo/", "kind": "async"},
            },
        },
    },
}
APP = {
    "pythonpath": "tests/example_app",
    "settings": "exampleapp.settings",
    "wsgi": "exampleapp.wsgi:application",
    "asgi": "exampleapp.asgi:application",
    "health": "/health/",
}


def with_(path: list[str], value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    d = copy.deepcopy(base or GOOD)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    if value is None:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


def test_endpoints_are_workloads_whose_arms_are_setup_x_variant() -> None:
    s = sc.parse(GOOD)
    assert [w.name for w in s.workloads] == ["items", "echo"]
    items, echo = s.workloads
    assert items.variants == ("sync", "async") and items.users == (4,)
    assert echo.variants == ("sync", "async", "v2") and echo.users is None
    gs = groups(s, [""])
    # items at its own level (4), echo at the scenario's (2, 8)
    assert [(g.workload, g.users, len(g.arms)) for g in gs] == [("items", 4, 4), ("echo", 2, 6), ("echo", 8, 6)]
    arm = next(a for a in gs[1].arms if a.variant == "v2")
    assert (arm.kind, arm.path, arm.request.method, arm.request.status) == ("async", "/v2/echo/", "POST", 201)
    # the json table goes out compact and sorted, as JSON
    assert arm.request.body == b'{"name":"widget","sizes":[3,5]}'
    assert arm.request.header_dict() == {"X-Trace": "1", "Content-Type": "application/json"}
    assert next(a for a in gs[0].arms if a.variant == "sync").request == RequestSpec("GET", (), b"", 200)


def test_the_catalog_is_recorded_and_read_back_without_the_toml() -> None:
    s = sc.parse(GOOD)
    resolved = json.loads(json.dumps(s.to_dict()))  # as results.json stores it
    assert set(resolved["endpoints"]) == {"items", "echo"}
    back = Catalog.from_resolved(resolved)
    assert back == s.catalog
    assert back.arm("echo", "v2") == s.catalog.arm("echo", "v2")
    # built-in workloads come from the registry, alike
    assert Catalog().arm("noio", "async").path == "/async/noio/"
    assert Catalog.from_resolved({}).endpoints == {}
    # a scenario of built-in workloads records neither key: it compares with older baselines
    assert not {"endpoints", "app"} & set(sc.load("ci").to_dict())


def test_built_in_workloads_and_endpoints_mix() -> None:
    s = sc.parse({**GOOD, "workloads": {"noio": {}}})
    assert [w.name for w in s.workloads] == ["noio", "items", "echo"]
    assert s.catalog.kind("noio", "async") == "async" and s.catalog.kind("echo", "v2") == "async"


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            with_(["endpoints", "items", "verb"], "GET"),
            ["endpoints.items: unknown key 'verb'", "allowed keys", "body", "headers", "identical_bodies", "method"],
        ),
        (
            with_(["endpoints", "echo", "method"], "FETCH"),
            ["endpoints.echo.method", "'FETCH'", "allowed: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"],
        ),
        (
            with_(["endpoints", "echo", "variants", "v2"], "/v2/echo/"),
            ["endpoints.echo.variants.v2", "kind of variant 'v2' is needed", 'kind = "sync" | "async"', "sync (sync)"],
        ),
        (
            with_(["endpoints", "echo", "variants", "v2"], {"kind": "async"}),
            ["endpoints.echo.variants.v2", "missing required key 'path'"],
        ),
        (
            with_(["endpoints", "echo", "variants", "v2"], {"path": "/v2/", "kind": "fast"}),
            ["endpoints.echo.variants.v2.kind", "'fast'", "allowed: sync, async"],
        ),
        (
            with_(["endpoints", "echo", "variants", "v2"], {"path": "/v2/", "kind": "async", "weight": 2}),
            ["endpoints.echo.variants.v2: unknown key 'weight'", "kind, path"],
        ),
        (
            with_(["endpoints", "echo", "variants", "sync"], {"path": "/echo/", "kind": "async"}),
            ["endpoints.echo.variants.sync.kind", "built-in variant of kind 'sync'"],
        ),
        (with_(["endpoints", "items", "variants", "async"], "api/v2/"), ["endpoints.items.variants.async", "'/'"]),
        (with_(["endpoints", "items", "variants"], None), ["endpoints.items", "missing required key 'variants'"]),
        (with_(["endpoints", "echo", "body"], "x"), ["endpoints.echo", "'body' (text) or 'json' (a table)"]),
        (
            with_(["endpoints", "items", "body"], "x"),
            ["endpoints.items.body", "a GET sends no body", "POST, PUT, PATCH, DELETE"],
        ),
        (with_(["endpoints", "echo", "status"], 42), ["endpoints.echo.status", "100..599"]),
        (with_(["endpoints", "echo", "status"], "201"), ["endpoints.echo.status", "expected int"]),
        (with_(["endpoints", "echo", "headers"], {"X-N": 1}), ["endpoints.echo.headers.X-N", "expected a string"]),
        (with_(["endpoints", "echo", "identical_bodies"], "no"), ["endpoints.echo.identical_bodies", "expected bool"]),
        (with_(["endpoints", "items", "users"], [0]), ["endpoints.items.users", "1..10000"]),
        (with_(["endpoints", "noio"], {"variants": {"sync": "/x/"}}), ["endpoints.noio", "built-in workload"]),
        (with_(["endpoints", "a b"], {"variants": {"sync": "/x/"}}), ["endpoints.a b", "letters, digits"]),
        (
            with_(["endpoints", "other"], {"variants": {"v2": {"path": "/o/", "kind": "sync"}}}),
            ["endpoints.other.variants.v2", "kind 'sync'", "endpoints.echo.variants.v2 says 'async'"],
        ),
        (with_(["endpoints"], {}), ["missing required key 'workloads'", "'endpoints' (your own view pairs)"]),
        (
            with_(["workloads"], {"items2": {}}),
            ["workloads.items2: unknown workload", "or one of this scenario's endpoints: items, echo"],
        ),
        (with_(["app"], {**APP, "port": 1}), ["app: unknown key 'port'", "asgi, health, pythonpath, settings, wsgi"]),
        (
            with_(["app"], {k: v for k, v in APP.items() if k != "wsgi"}),
            ["app.wsgi: missing", "WSGI setups", 'wsgi = "yourproject.wsgi:application"'],
        ),
        (with_(["app"], {**APP, "asgi": "exampleapp.asgi"}), ["app.asgi", '"module:attribute"']),
        (with_(["app"], {**APP, "health": "health/"}), ["app.health", "must start with '/'"]),
        (
            {**with_(["app"], APP), "workloads": {"noio": {}}},
            ["workloads.noio", "bench_site's views", "[endpoints.<name>]"],
        ),
    ],
)
def test_bad_endpoint_keys_name_the_key_and_the_allowed_values(data: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(sc.ScenarioError) as err:
        sc.parse(data)
    for f in fragments:
        assert f in str(err.value)


def test_an_app_with_asgi_setups_only_needs_no_wsgi_module() -> None:
    data = {**GOOD, "setups": [{"name": "uvicorn"}], "app": {k: v for k, v in APP.items() if k != "wsgi"}}
    assert sc.parse(data).app == sc.AppConfig(**{k: v for k, v in APP.items() if k != "wsgi"})


def test_the_command_line_chooses_endpoints_and_load_levels() -> None:
    data = {**GOOD, "workloads": {"noio": {}}}
    only = sc.parse(sc.apply_overrides(data, sc.Overrides(workloads=("echo",))))
    assert [w.name for w in only.workloads] == ["echo"] and [e.name for e in only.endpoints] == ["echo"]
    mixed = sc.parse(sc.apply_overrides(data, sc.Overrides(workloads=("noio", "items"), users=(3,))))
    assert [(w.name, w.users) for w in mixed.workloads] == [("noio", None), ("items", None)]
    assert mixed.load.users == (3,)
    with pytest.raises(sc.ScenarioError, match=r"--workloads: unknown 'nope'.*endpoints: items, echo"):
        sc.parse(sc.apply_overrides(data, sc.Overrides(workloads=("nope",))))


def test_the_example_scenario_serves_the_example_app() -> None:
    s = sc.load("example-own-app")
    assert s.app is not None and s.app.health == "/health/"
    assert {e.name for e in s.endpoints} == {"items", "echo"}
    echo = s.catalog.arm("echo", "sync")
    assert (echo.request.method, echo.request.status, echo.identical_bodies) == ("POST", 201, True)
    # the servers get the app's module, its settings and its folder on the path
    gthread = SETUPS["gunicorn-gthread"].command("127.0.0.1", 8000, 1, 8, s.app.module("wsgi"))
    uvicorn = SETUPS["uvicorn"].command("127.0.0.1", 8000, 1, 1, s.app.module("asgi"))
    assert "exampleapp.wsgi:application" in gthread and "exampleapp.asgi:application" in uvicorn
    assert "bench_site.wsgi:application" in SETUPS["gunicorn-gthread"].command("127.0.0.1", 8000, 1, 8)
    env = django_env(s, {"DJANGO_SETTINGS_MODULE": "bench_site.settings"})
    assert env["DJANGO_SETTINGS_MODULE"] == "exampleapp.settings"
    assert env["PYTHONPATH"].split(":")[0].endswith("tests/example_app")


def test_the_instruction_gate_says_it_drives_built_in_views_only() -> None:
    with pytest.raises(InstructionsError, match=r"built-in views only.*items, echo"):
        phases_for(sc.parse(GOOD))


# ------------------------------------------------------------------ the request


def test_a_request_spec_goes_through_the_driver_protocol_and_the_environment() -> None:
    spec = sc.parse(GOOD).catalog.arm("echo", "sync").request
    assert RequestSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert RequestSpec.from_dict(None).plain and RequestSpec().plain and not spec.plain
    env = {"BENCH_METHOD": "post", "BENCH_HEADERS": '{"A": "b"}', "BENCH_BODY": "{}", "BENCH_STATUS": "201"}
    assert RequestSpec.from_env(env) == RequestSpec("POST", (("A", "b"),), b"{}", 201)
    assert RequestSpec.from_env({}) == RequestSpec()
    # built-in: any 2xx; an endpoint: exactly its status
    assert RequestSpec().accepts(204) and not RequestSpec().accepts(302)
    assert spec.accepts(201) and not spec.accepts(200)
    assert response_failure(200, b"{}", 201) == "HTTP 200 (expected 201)"
    assert response_failure(503, b'{"error": "db down"}') == "HTTP 503: db down"


# ------------------------------------------------------------------ the body check


class _Handler(http.server.BaseHTTPRequestHandler):
    """/echo/* answers 201 with the body it got (plus which path, for /differ/*)."""

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/differ/"):
            data = json.dumps({"body": data.decode(), "path": self.path}).encode()
        status = 201 if self.headers.get("X-Trace") == "1" else 400
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _arms(extra: dict[str, Any]) -> dict[str, Any]:
    s = sc.parse(with_(["endpoints", "echo"], {**GOOD["endpoints"]["echo"], **extra}))
    (group, *_) = (g for g in groups(s, [""]) if g.workload == "echo")
    return {(a.setup, a.variant): a for a in group.arms}


def test_the_body_check_sends_the_method_headers_and_body_and_expects_the_status(echo_port: int) -> None:
    arms = _arms({})
    refs: dict[Any, Any] = {}
    for arm in arms.values():
        assert check_body(arm, echo_port, refs) is None  # POSTed, 201, the same bytes from every twin
    ((_, _, body),) = refs.values()
    assert body == b'{"name":"widget","sizes":[3,5]}'
    wrong = _arms({"status": 200})[("uvicorn", "sync")]
    expected = 'POST /echo/ answered HTTP 201 (expected 200): {"name":"widget","sizes":[3,5]}'
    assert check_body(wrong, echo_port, {}) == expected


def test_twins_that_differ_are_an_error_unless_bodies_need_not_be_identical(echo_port: int) -> None:
    variants = {"sync": "/differ/sync/", "async": "/differ/async/"}
    arms = _arms({"variants": variants})
    refs: dict[Any, Any] = {}
    assert check_body(arms[("uvicorn", "sync")], echo_port, refs) is None
    problem = check_body(arms[("uvicorn", "async")], echo_port, refs)
    twin = "body of /differ/async/ on uvicorn differs from its twin (uvicorn sync)"
    assert problem == f"{twin} at byte 67 (75 vs 74 bytes)"
    loose = _arms({"variants": variants, "identical_bodies": False})
    assert all(check_body(a, echo_port, {}) is None for a in loose.values())


# ------------------------------------------------------------------ verdicts and charts


def test_an_endpoint_gets_a_verdict_like_a_built_in_workload() -> None:
    cells = [
        v2_cell(setup, "echo", variant, users, rps, kind=kind, seed=3)
        for setup in ("gthread", "uvicorn")
        for variant, kind, factor in (("sync", "sync", 1.0), ("v2", "async", 1.5))
        for users, rps in ((4, 900.0 * factor), (16, 1000.0 * factor))
    ]
    run = make_run(cells, scenario_resolved=sc.parse(GOOD).to_dict())
    (v,) = verdicts(run)
    assert v.workload == "echo" and v.outcome == "pays off"
    assert v.ratio == pytest.approx(1.5, rel=0.1)
    # a variant name the registry does not know takes the kind its cells recorded
    assert run_variant_kind(run, "v2") == "async"
