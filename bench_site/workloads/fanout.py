"""fanout: `calls` GETs to the upstream service, four ways of waiting.

- sync: one pooled httpx.Client per process, calls in sequence;
- sync-threads: the same client, calls concurrently in a process-wide thread pool;
- async: httpx.AsyncClient, calls concurrently with asyncio.gather;
- async-aiohttp: aiohttp.ClientSession, calls concurrently with asyncio.gather.

The upstream base URL comes from settings.BENCH_UPSTREAM_URL only; the view's
query parameters are integers (calls, delay_ms) and nothing else is accepted.

All twins return `{"calls": n, "items": [upstream objects, in call order]}`.
On failure the first failing call, in call order, decides the response:
HTTP error status or invalid body -> 502, upstream unreachable (connection
error) -> 503 {"error": "upstream unreachable"} (bench_site.outage), timeout -> 504,
with the same body in every variant. The concurrent variants wait for all
their calls before answering, so no call outlives its request.

Async clients and event loops: an httpx.AsyncClient or aiohttp.ClientSession
holds connections bound to the event loop that opened them, so it must never be
shared across loops. `_PerLoop` keeps one per running loop. Under an ASGI server
the loop lives as long as the worker, so the client and its keep-alive
connections are reused by every request. Under WSGI, Django runs an async view
through async_to_sync, which starts a fresh loop per request (asyncio.run in a
new thread): each request then builds a new client and opens new TCP
connections to the upstream (no keep-alive across requests), and the client is
closed when that loop shuts down. That is the real price of async views under
WSGI, and the benchmark measures it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import aiohttp
import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from bench_site.outage import OUTAGE_STATUS, UPSTREAM_UNREACHABLE
from bench_site.responses import error_response, json_response

# httpx builds an SSL context (loading the CA bundle) for every client unless
# given one: ~40 ms each, measured here. Calls are plain HTTP, but per-loop
# clients under WSGI are built per request, so build the context once.
_SSL_CONTEXT = httpx.create_ssl_context()


class UpstreamFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> HttpResponse:
        return error_response(self.status, self.message)


_TIMED_OUT = (504, "upstream timed out")
_UNREACHABLE = (OUTAGE_STATUS, UPSTREAM_UNREACHABLE)


def _item_urls(calls: int, delay_ms: int | None) -> list[str]:
    base = settings.BENCH_UPSTREAM_URL
    # delay_ms is an int validated by the dispatcher; formatted, never copied.
    suffix = "" if delay_ms is None else f"?delay_ms={delay_ms:d}"
    return [f"{base}/item/{index}{suffix}" for index in range(calls)]


def _decode(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise UpstreamFailure(502, f"upstream returned HTTP {status}")
    try:
        item = json.loads(body)
    except ValueError:
        raise UpstreamFailure(502, "upstream returned invalid JSON") from None
    if not isinstance(item, dict):
        raise UpstreamFailure(502, "upstream returned invalid JSON")
    return item


def _body(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"calls": len(items), "items": items}


def _limits() -> httpx.Limits:
    size = settings.BENCH_HTTP_MAX_CONNECTIONS
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


# --- sync ---------------------------------------------------------------------


class _Once[T]:
    """An object created on first use, once even when threads race for it.

    Not at import: a gunicorn master that preloads the app must not fork a
    client's sockets or a pool's threads into its workers.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._obj: T | None = None

    def get(self) -> T:
        obj = self._obj
        if obj is None:
            with self._lock:
                obj = self._obj
                if obj is None:
                    obj = self._obj = self._factory()
        return obj


_sync_client = _Once(lambda: httpx.Client(limits=_limits(), verify=_SSL_CONTEXT))
_executor = _Once(lambda: ThreadPoolExecutor(max_workers=settings.BENCH_FANOUT_THREADS, thread_name_prefix="fanout"))


def _fetch(client: httpx.Client, url: str) -> dict[str, Any]:
    try:
        response = client.get(url, timeout=settings.BENCH_UPSTREAM_TIMEOUT_S)
    except httpx.TimeoutException:
        raise UpstreamFailure(*_TIMED_OUT) from None
    except httpx.HTTPError:
        raise UpstreamFailure(*_UNREACHABLE) from None
    return _decode(response.status_code, response.content)


def sync_view(request: HttpRequest, *, calls: int, delay_ms: int | None) -> HttpResponse:
    client = _sync_client.get()
    try:
        items = [_fetch(client, url) for url in _item_urls(calls, delay_ms)]
    except UpstreamFailure as failure:
        return failure.response()
    return json_response(_body(items))


def sync_threads_view(request: HttpRequest, *, calls: int, delay_ms: int | None) -> HttpResponse:
    client = _sync_client.get()
    futures = [_executor.get().submit(_fetch, client, url) for url in _item_urls(calls, delay_ms)]
    wait(futures)
    try:
        items = [future.result() for future in futures]
    except UpstreamFailure as failure:
        return failure.response()
    return json_response(_body(items))


# --- async --------------------------------------------------------------------


class _PerLoop[T]:
    """One object per running event loop, closed when that loop shuts down.

    Closing rides on asyncio's own shutdown: with each new object a "keeper"
    task is started that waits forever; asyncio.run() (used by asgiref's
    async_to_sync and by uvicorn) cancels every remaining task before closing
    the loop, and the keeper's `finally` then closes the object while the loop
    can still run it. Servers that close a loop without cancelling its tasks
    leave the client to process exit, which is when that happens anyway.
    """

    def __init__(self, factory: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._factory = factory
        self._close = close
        self._objects: dict[asyncio.AbstractEventLoop, T] = {}
        # The loop keeps only weak references to tasks; these keep the keepers.
        self._keepers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        obj = self._objects.get(loop)
        if obj is None:
            # No await between the lookup and the insert: no other task of this
            # loop can interleave, and other loops use other keys.
            obj = self._factory()
            self._objects[loop] = obj
            self._keepers[loop] = loop.create_task(self._keep(loop, obj))
        return obj

    async def _keep(self, loop: asyncio.AbstractEventLoop, obj: T) -> None:
        try:
            await loop.create_future()
        finally:
            self._objects.pop(loop, None)
            self._keepers.pop(loop, None)
            await self._close(obj)


async def _close_httpx(client: httpx.AsyncClient) -> None:
    await client.aclose()


async def _close_aiohttp(session: aiohttp.ClientSession) -> None:
    await session.close()


def _new_aiohttp_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.BENCH_HTTP_MAX_CONNECTIONS))


_httpx_clients: _PerLoop[httpx.AsyncClient] = _PerLoop(
    lambda: httpx.AsyncClient(limits=_limits(), verify=_SSL_CONTEXT), _close_httpx
)
_aiohttp_sessions: _PerLoop[aiohttp.ClientSession] = _PerLoop(_new_aiohttp_session, _close_aiohttp)


async def _fetch_httpx(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await client.get(url, timeout=settings.BENCH_UPSTREAM_TIMEOUT_S)
    except httpx.TimeoutException:
        raise UpstreamFailure(*_TIMED_OUT) from None
    except httpx.HTTPError:
        raise UpstreamFailure(*_UNREACHABLE) from None
    return _decode(response.status_code, response.content)


async def _fetch_aiohttp(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=settings.BENCH_UPSTREAM_TIMEOUT_S)
    try:
        async with session.get(url, timeout=timeout) as response:
            status = response.status
            body = await response.read()
    # TimeoutError first: aiohttp's timeout errors also derive from ClientError.
    except TimeoutError:
        raise UpstreamFailure(*_TIMED_OUT) from None
    except aiohttp.ClientError:
        raise UpstreamFailure(*_UNREACHABLE) from None
    return _decode(status, body)


async def _gather(calls: list[Awaitable[dict[str, Any]]]) -> HttpResponse:
    results = await asyncio.gather(*calls, return_exceptions=True)
    items: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, UpstreamFailure):
            return result.response()
        if isinstance(result, BaseException):
            raise result
        items.append(result)
    return json_response(_body(items))


async def async_view(request: HttpRequest, *, calls: int, delay_ms: int | None) -> HttpResponse:
    client = _httpx_clients.get()
    return await _gather([_fetch_httpx(client, url) for url in _item_urls(calls, delay_ms)])


async def async_aiohttp_view(request: HttpRequest, *, calls: int, delay_ms: int | None) -> HttpResponse:
    session = _aiohttp_sessions.get()
    return await _gather([_fetch_aiohttp(session, url) for url in _item_urls(calls, delay_ms)])


VIEWS = {
    "sync": sync_view,
    "sync-threads": sync_threads_view,
    "async": async_view,
    "async-aiohttp": async_aiohttp_view,
}
