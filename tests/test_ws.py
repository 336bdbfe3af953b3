"""WebSocket twins (ws-echo, ws-broadcast): routed, identical, measured, refused where they cannot run.

Real servers on free ports (the runner's own setups: uvicorn with --ws wsproto,
daphne), real connections with websocket-client, a real short locust run; the
validator's refusals need no server.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from asyncbench.execute.servers import Server, start_server, stop_server
from asyncbench.execute.setups import SETUPS, SetupConfig
from asyncbench.model import scenario as scenario_mod
from asyncbench.model.results import load_run
from asyncbench.model.scenario import ScenarioError
from bench_site.registry import WORKLOADS, endpoints
from locustfiles.wsmessage import echo_marker, message_text, ws_url
from tests import cli

ROOT = Path(__file__).resolve().parent.parent
WS_WORKLOADS = ("ws-echo", "ws-broadcast")

# Text messages of several shapes, as a client might send them.
MESSAGES = [message_text(3, 7), "plain text", "ünïcødé ✓ 😀", '{"nested": {"a": [1, 2, 3]}}', ""]


def test_registry_lists_websocket_endpoints_apart_from_http() -> None:
    ws = endpoints("websocket")
    assert {(e.workload, e.variant, e.kind, e.path) for e in ws} == {
        ("ws-echo", "sync", "sync", "/sync/ws-echo/"),
        ("ws-echo", "async", "async", "/async/ws-echo/"),
        ("ws-broadcast", "sync", "sync", "/sync/ws-broadcast/"),
        ("ws-broadcast", "async", "async", "/async/ws-broadcast/"),
    }
    assert all(e.protocol == "websocket" for e in ws)
    assert not {e.workload for e in endpoints()} & set(WS_WORKLOADS)
    with pytest.raises(KeyError, match="allowed: http, websocket"):
        endpoints("grpc")


def test_websocket_routes_follow_the_registry() -> None:
    from bench_site.routing import websocket_urlpatterns
    from bench_site.workloads.ws import BROADCAST_CONSUMERS, ECHO_CONSUMERS

    routed = {"/" + str(p.pattern): p.callback for p in websocket_urlpatterns if p.name != "refuse"}
    assert set(routed) == {e.path for e in endpoints("websocket")}
    for e in endpoints("websocket"):
        consumers = ECHO_CONSUMERS if e.workload == "ws-echo" else BROADCAST_CONSUMERS
        assert routed[e.path].consumer_class is consumers[e.variant]  # type: ignore[attr-defined]
        # the declared kind is the consumer's: sync consumers run handlers in threads
        assert routed[e.path].consumer_class._sync == (e.kind == "sync")  # type: ignore[attr-defined]


# --- the validator -----------------------------------------------------------------


def _scenario(setups: str, workload: str = "ws-echo", load: str = "") -> dict[str, object]:
    import tomllib

    return tomllib.loads(
        f'name = "t"\n[load]\nusers = [4]\n{load}{setups}[workloads.{workload}]\nvariants = ["sync", "async"]\n'
    )


@pytest.mark.parametrize("wsgi", [k for k, v in SETUPS.items() if v.interface == "wsgi"])
def test_websocket_workload_with_only_wsgi_setups_is_refused(wsgi: str) -> None:
    data = _scenario(f'[[setups]]\nname = "{wsgi}"\n')
    with pytest.raises(ScenarioError) as err:
        scenario_mod.parse(data)
    text = str(err.value)
    assert text.startswith("setups: none of"), text
    assert f"{wsgi!r} (WSGI) can serve workload 'ws-echo'" in text
    assert "WSGI has no WebSocket" in text
    assert "allowed for WebSocket workloads: uvicorn, uvicorn-uvloop, gunicorn-uvicorn" in text


@pytest.mark.parametrize("wsgi", [k for k, v in SETUPS.items() if v.interface == "wsgi"])
def test_a_wsgi_setup_beside_an_asgi_one_measures_no_websocket_arm(wsgi: str) -> None:
    from asyncbench.execute.groups import groups, left_out

    data = _scenario(f'[[setups]]\nname = "uvicorn"\n[[setups]]\nname = "{wsgi}"\n')
    scenario = scenario_mod.parse(data)
    arms = [(a.setup, a.variant) for g in groups(scenario, [""]) for a in g.arms]
    assert arms == [("uvicorn", "sync"), ("uvicorn", "async")]
    assert left_out(scenario) == [f"ws-echo not under {wsgi} (WSGI has no WebSocket)"] * 2


def test_websocket_workload_on_granian_only_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"setups: none of 'granian-asgi' \(ASGI\) can serve"):
        scenario_mod.parse(_scenario('[[setups]]\nname = "granian-asgi"\n'))


def test_websocket_workload_in_the_open_model_is_refused() -> None:
    with pytest.raises(
        ScenarioError, match=r"^load\.rate: workload 'ws-echo' is a WebSocket workload, measured closed"
    ):
        scenario_mod.parse(_scenario('[[setups]]\nname = "uvicorn"\n', load="rate = 100.0\n"))


def test_broadcast_needs_one_server_process() -> None:
    with pytest.raises(ScenarioError, match=r"^setups\[0\]\.workers: workload 'ws-broadcast' needs one server process"):
        scenario_mod.parse(_scenario('[[setups]]\nname = "uvicorn"\nworkers = 2\n', "ws-broadcast"))
    # daphne is one process whatever its workers say; uvicorn with one worker is fine
    ok = scenario_mod.parse(
        _scenario('[[setups]]\nname = "daphne"\n[[setups]]\nname = "uvicorn"\nworkers = 1\n', "ws-broadcast")
    )
    assert [w.name for w in ok.workloads] == ["ws-broadcast"]
    assert ok.catalog.arm("ws-broadcast", "sync").protocol == "websocket"


def test_echo_runs_on_every_websocket_setup() -> None:
    able = [k for k, v in SETUPS.items() if v.websocket]
    assert {SETUPS[k].interface for k in able} == {"asgi"}
    setups = "".join(f'[[setups]]\nname = "{k}"\n' for k in able)
    assert len(scenario_mod.parse(_scenario(setups)).setups) == len(able)


# --- real servers ------------------------------------------------------------------


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def ws_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="bench_site.settings", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    name = str(request.param)
    server = start_server(
        SetupConfig(name, name, 1, 1),
        revision="",
        root=ROOT,
        env=env,
        cpus=(),
        log_dir=tmp_path_factory.mktemp(f"ws-{name}"),
    )
    try:
        yield server
    finally:
        stop_server(server)


def _exchange(server: Server, path: str, frames: list[str | bytes]) -> list[str]:
    ws = websocket.create_connection(ws_url(server.base_url, path), timeout=10)
    try:
        replies = []
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_binary(frame)
            else:
                ws.send(frame)
            reply = ws.recv()
            assert isinstance(reply, str)
            replies.append(reply)
        return replies
    finally:
        ws.close()


@pytest.mark.servers
@pytest.mark.parametrize("workload", WS_WORKLOADS)
def test_twins_reply_byte_identical(ws_server: Server, workload: str) -> None:
    frames: list[str | bytes] = [*MESSAGES, b"\x00\x01binary", "x" * (64 * 1024 + 1)]
    sync = _exchange(ws_server, f"/sync/{workload}/", frames)
    async_ = _exchange(ws_server, f"/async/{workload}/", frames)
    assert sync == async_
    for text, reply in zip(MESSAGES, sync, strict=False):
        data = json.loads(reply)
        assert data["echo"] == text and data["bytes"] == len(text.encode())
        assert echo_marker(text) in reply  # what the load's user looks for
    assert json.loads(sync[-2]) == {"error": "text frames only"}
    assert json.loads(sync[-1]) == {"error": "message longer than 65536 characters"}


@pytest.mark.servers
def test_broadcast_reaches_every_member_of_the_room(ws_server: Server) -> None:
    for variant in ("sync", "async"):
        url = ws_url(ws_server.base_url, f"/{variant}/ws-broadcast/")
        a = websocket.create_connection(url, timeout=10)
        b = websocket.create_connection(url, timeout=10)
        try:
            a.send("from a")
            got_a, got_b = a.recv(), b.recv()
            assert got_a == got_b and echo_marker("from a") in got_a, variant
            # the other variant's room is another group: nothing leaks into it
            other = "async" if variant == "sync" else "sync"
            c = websocket.create_connection(ws_url(ws_server.base_url, f"/{other}/ws-broadcast/"), timeout=10)
            try:
                b.send("from b")
                assert echo_marker("from b") in a.recv()
                c.settimeout(0.3)
                with pytest.raises(websocket.WebSocketTimeoutException):
                    c.recv()
            finally:
                c.close()
        finally:
            a.close()
            b.close()


@pytest.mark.servers
def test_unknown_websocket_path_is_refused(ws_server: Server) -> None:
    for path in ("/nope/", "/sync/noio/", "/async-s2a/ws-echo/"):
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            websocket.create_connection(ws_url(ws_server.base_url, path), timeout=10)
        assert err.value.status_code == 403, path


# --- end to end: the runner over ws-echo ---------------------------------------------

run_cli = functools.partial(cli.run_cli, timeout=240)


@pytest.mark.servers
def test_run_measures_websocket_messages(tmp_path: Path) -> None:
    p = tmp_path / "ws.toml"
    p.write_text(
        'name = "ws"\n[load]\nusers = [4]\nmin_blocks = 3\nmax_blocks = 3\n'
        "settle_s = 0.3\nwindow_s = 0.5\nmax_window_s = 0.5\nmin_requests_per_user = 1\n"
        '[[setups]]\nname = "uvicorn"\nworkers = 1\n[[setups]]\nname = "daphne"\n'
        '[workloads.ws-echo]\nvariants = ["sync", "async"]\n'
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n'
    )
    reports = tmp_path / "reports"
    done = run_cli("run", str(p), "--reports-dir", str(reports), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert {(c.setup, c.variant) for c in run.cells} == {
        (s, v) for s in ("uvicorn", "daphne") for v in ("sync", "async")
    }
    for c in run.cells:
        assert c.status == "ok", c.error
        assert c.workload == "ws-echo" and c.path == f"/{c.variant}/ws-echo/"
        assert c.histogram is not None and c.histogram["count"] == sum(r.requests for r in c.repeats) > 0
        for r in c.repeats:
            assert r.failures == {}
            assert r.requests > 0 and r.throughput_rps > 0
            assert 0 < r.latency.p50_ms <= r.latency.p99_ms <= r.latency.max_ms
            # the server answered the messages the load counted: a message is
            # its request (the HTTP request counter sees none in the window)
            counters = r.server_counters
            assert counters is not None
            assert counters["ws_messages"] >= r.requests * 0.9
            assert counters["requests"] == 0
            # the sync consumer hops to a thread per message and back per send
            if c.variant == "sync":
                assert counters["async_to_sync"] >= r.requests * 0.9
            else:
                assert counters["async_to_sync"] == 0
    assert WORKLOADS["ws-echo"].protocol == "websocket"
