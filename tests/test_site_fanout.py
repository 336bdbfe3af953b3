"""Fan-out: call counts, who is concurrent, error mapping, and where calls go.

httpx variants are checked with respx (transport-level mocks, no sockets);
concurrency is shown by counting calls in flight, never by timing. aiohttp is
not covered by respx, so it (and, as a cross-check, every variant) is also run
against `barrier_upstream`, a real local server that holds each request until
the expected number is in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from asgiref.sync import async_to_sync
from conftest import BarrierUpstream
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings as SettingsWrapper

from bench_site.workloads import fanout
from upstream.server import item_value

UPSTREAM = "http://upstream.test:8099"
VARIANTS = ("sync", "sync-threads", "async", "async-aiohttp")
HTTPX_VARIANTS = ("sync", "sync-threads", "async")


@pytest.fixture(autouse=True)
def _fanout_settings(settings: SettingsWrapper) -> None:
    settings.BENCH_UPSTREAM_URL = UPSTREAM
    settings.BENCH_UPSTREAM_TIMEOUT_S = 5.0


def get(path: str) -> tuple[int, str, bytes]:
    """Sync views through Client, async views through AsyncClient."""
    response = async_to_sync(AsyncClient().get)(path) if path.startswith("/async") else Client().get(path)
    return response.status_code, response["Content-Type"], response.content


def item(index: int) -> dict[str, Any]:
    return {"item": index, "name": f"item-{index}", "value": item_value(index)}


def expected_body(calls: int) -> bytes:
    from bench_site.responses import json_bytes

    return json_bytes({"calls": calls, "items": [item(i) for i in range(calls)]})


class InFlight:
    """Counts requests in flight across threads or tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.paths: list[str] = []

    def enter(self, request: httpx.Request) -> None:
        with self.lock:
            self.paths.append(request.url.raw_path.decode())
            self.now += 1
            self.max = max(self.max, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def ok(request: httpx.Request) -> httpx.Response:
    index = int(request.url.path.rsplit("/", 1)[1])
    return httpx.Response(200, json=item(index))


def sync_counting(flight: InFlight) -> Callable[[httpx.Request], httpx.Response]:
    def effect(request: httpx.Request) -> httpx.Response:
        flight.enter(request)
        try:
            return ok(request)
        finally:
            flight.leave()

    return effect


def thread_barrier(flight: InFlight, parties: int) -> Callable[[httpx.Request], httpx.Response]:
    barrier = threading.Barrier(parties, timeout=10)

    def effect(request: httpx.Request) -> httpx.Response:
        flight.enter(request)
        try:
            # Passes only when `parties` calls are in flight at the same time;
            # sequential calls break it (BrokenBarrierError -> a 500).
            barrier.wait()
            return ok(request)
        finally:
            flight.leave()

    return effect


def task_barrier(flight: InFlight, parties: int) -> Callable[[httpx.Request], Any]:
    async def effect(request: httpx.Request) -> httpx.Response:
        flight.enter(request)
        try:
            async with asyncio.timeout(10):
                # max, not now: the first released call may finish before
                # the last one looks.
                while flight.max < parties:
                    await asyncio.sleep(0)
            return ok(request)
        finally:
            flight.leave()

    return effect


@pytest.mark.parametrize("calls", [1, 3, 8])
def test_sync_calls_in_sequence(calls: int) -> None:
    flight = InFlight()
    with respx.mock(base_url=UPSTREAM) as router:
        route = router.get(path__regex=r"^/item/\d+$").mock(side_effect=sync_counting(flight))
        status, _, body = get(f"/sync/fanout/?calls={calls}")
    assert (status, body) == (200, expected_body(calls))
    assert route.call_count == calls
    assert flight.max == 1
    assert flight.paths == [f"/item/{i}" for i in range(calls)]


@pytest.mark.parametrize("calls", [2, 5])
def test_sync_threads_calls_concurrently(calls: int) -> None:
    flight = InFlight()
    with respx.mock(base_url=UPSTREAM) as router:
        route = router.get(path__regex=r"^/item/\d+$").mock(side_effect=thread_barrier(flight, calls))
        status, _, body = get(f"/sync-threads/fanout/?calls={calls}")
    assert (status, body) == (200, expected_body(calls))
    assert route.call_count == calls
    assert flight.max == calls


@pytest.mark.parametrize("calls", [2, 5])
def test_async_calls_concurrently(calls: int) -> None:
    flight = InFlight()
    with respx.mock(base_url=UPSTREAM) as router:
        route = router.get(path__regex=r"^/item/\d+$").mock(side_effect=task_barrier(flight, calls))
        status, _, body = get(f"/async/fanout/?calls={calls}")
    assert (status, body) == (200, expected_body(calls))
    assert route.call_count == calls
    assert flight.max == calls


@pytest.mark.parametrize("variant", HTTPX_VARIANTS)
def test_delay_forwarded_as_integer_only(variant: str) -> None:
    flight = InFlight()
    with respx.mock(base_url=UPSTREAM) as router:
        router.get(path__regex=r"^/item/\d+$").mock(side_effect=sync_counting(flight))
        assert get(f"/{variant}/fanout/?calls=2&delay_ms=0042")[0] == 200
    assert sorted(flight.paths) == ["/item/0?delay_ms=42", "/item/1?delay_ms=42"]


@pytest.mark.parametrize("variant", HTTPX_VARIANTS)
@pytest.mark.parametrize(
    ("effect", "status", "error"),
    [
        (httpx.Response(500, json={"error": "x"}), 502, "upstream returned HTTP 500"),
        (httpx.Response(200, content=b"not json"), 502, "upstream returned invalid JSON"),
        (httpx.Response(200, json=[1, 2]), 502, "upstream returned invalid JSON"),
        (httpx.ConnectError("refused"), 503, "upstream unreachable"),
        (httpx.ReadTimeout("slow"), 504, "upstream timed out"),
        (httpx.ConnectTimeout("slow"), 504, "upstream timed out"),
    ],
)
def test_upstream_failures_mapped(variant: str, effect: Any, status: int, error: str) -> None:
    # The middle call of three fails; the others succeed.
    with respx.mock(base_url=UPSTREAM) as router:
        if isinstance(effect, httpx.Response):
            router.get("/item/1").mock(return_value=effect)
        else:
            router.get("/item/1").mock(side_effect=effect)
        router.get(path__regex=r"^/item/[02]$").mock(side_effect=ok)
        got = get(f"/{variant}/fanout/?calls=3")
    assert got == (status, "application/json", json.dumps({"error": error}, separators=(",", ":")).encode())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("param", ["url", "upstream"])
def test_request_cannot_choose_the_upstream(variant: str, param: str) -> None:
    # assert_all_mocked (respx's default) turns any request to another host into
    # an error; the route on the configured upstream must not be hit either.
    with respx.mock(base_url=UPSTREAM, assert_all_called=False) as router:
        route = router.get(path__regex=r".*").mock(side_effect=ok)
        status, content_type, body = get(f"/{variant}/fanout/?{param}=http://evil.example/")
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body)["param"] == param
    assert route.call_count == 0


def test_upstream_url_comes_from_settings(settings: SettingsWrapper) -> None:
    settings.BENCH_UPSTREAM_URL = "http://other-upstream.test:1234"
    with respx.mock(assert_all_called=False) as router:
        configured = router.get(url__regex=r"^http://other-upstream\.test:1234/item/\d+$").mock(side_effect=ok)
        assert get("/sync/fanout/?calls=2")[0] == 200
    assert configured.call_count == 2


# --- real sockets: aiohttp, and every variant as a cross-check -------------------


@pytest.fixture
def barrier(settings: SettingsWrapper, barrier_upstream: BarrierUpstream) -> BarrierUpstream:
    settings.BENCH_UPSTREAM_URL = barrier_upstream.url
    return barrier_upstream


@pytest.mark.parametrize(
    ("variant", "concurrent"), [("sync", False), ("sync-threads", True), ("async", True), ("async-aiohttp", True)]
)
def test_concurrency_over_real_sockets(barrier: BarrierUpstream, variant: str, concurrent: bool) -> None:
    calls = 4
    barrier.reset(barrier=calls if concurrent else 1)
    status, _, body = get(f"/{variant}/fanout/?calls={calls}&delay_ms=7")
    assert (status, body) == (200, expected_body(calls))
    assert sorted(barrier.requests) == [f"/item/{i}?delay_ms=7" for i in range(calls)]
    assert barrier.max_in_flight == (calls if concurrent else 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_upstream_500_gives_502(barrier: BarrierUpstream, variant: str) -> None:
    barrier.reset(status=500)
    status, _, body = get(f"/{variant}/fanout/?calls=2")
    assert (status, json.loads(body)) == (502, {"error": "upstream returned HTTP 500"})


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_upstream_timeout_gives_504(barrier: BarrierUpstream, settings: SettingsWrapper, variant: str) -> None:
    settings.BENCH_UPSTREAM_TIMEOUT_S = 0.2
    barrier.reset(delay_s=3.0)
    status, _, body = get(f"/{variant}/fanout/?calls=2")
    assert (status, json.loads(body)) == (504, {"error": "upstream timed out"})


@pytest.mark.parametrize("variant", VARIANTS)
def test_refused_connection_gives_503_naming_the_outage(settings: SettingsWrapper, variant: str) -> None:
    """An upstream that is not there is an outage, named as such: 503
    {"error": "upstream unreachable"}, which the load driver keeps as the
    failure's kind and the runner flags `outage`."""
    import socket

    # A port that was free a moment ago and has no listener: connection refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.BENCH_UPSTREAM_URL = f"http://127.0.0.1:{port}"
    status, _, body = get(f"/{variant}/fanout/?calls=2")
    assert (status, json.loads(body)) == (503, {"error": "upstream unreachable"})


# --- one async client per event loop ----------------------------------------------


def test_async_clients_are_per_loop_and_closed_with_the_loop(barrier: BarrierUpstream) -> None:
    """Requests sharing a loop (an ASGI server) share its clients; a loop per
    request (async views under WSGI) gets fresh ones, closed when it ends."""
    seen: list[object] = []

    async def two_requests_on_one_loop() -> None:
        for _ in range(2):
            response = await AsyncClient().get("/async/fanout/?calls=2")
            assert response.status_code == 200
            response = await AsyncClient().get("/async-aiohttp/fanout/?calls=2")
            assert response.status_code == 200
            seen.append(fanout._httpx_clients.get())
            seen.append(fanout._aiohttp_sessions.get())
        assert len(fanout._httpx_clients._objects) == 1

    asyncio.run(two_requests_on_one_loop())
    httpx_first, aiohttp_first, httpx_second, aiohttp_second = seen
    assert httpx_first is httpx_second and aiohttp_first is aiohttp_second
    assert isinstance(httpx_first, httpx.AsyncClient) and httpx_first.is_closed
    assert aiohttp_first.closed is True
    # Under the WSGI path (Client), each request's loop is gone afterwards.
    assert Client().get("/async-aiohttp/fanout/?calls=2").status_code == 200
    assert Client().get("/async/fanout/?calls=2").status_code == 200
    assert fanout._httpx_clients._objects == {}
    assert fanout._aiohttp_sessions._objects == {}
