"""Twins return byte-identical responses: status, content type and body.

Every registry endpoint is requested through Django's test Client (the WSGI
request path) and AsyncClient (the ASGI request path), on SQLite and, in the
PostgreSQL and MariaDB passes, on those. Fan-out calls go to the real upstream.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from conftest import SEED_ROWS, StartUpstream
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings as SettingsWrapper

from bench_site.registry import HTTP_WORKLOADS, endpoints

# Small values keep each request fast; each workload's defaults are covered too.
QUERIES: dict[str, list[str]] = {
    "noio": [""],
    "fanout": ["?calls=3&delay_ms=0", "?calls=1&delay_ms=0"],
    "orm": ["", "?rows=7&page=3", f"?rows=500&page={SEED_ROWS // 500 + 1}"],
    "json": ["", "?rows=3"],
    "json-noindex": ["", "?rows=3"],
    "json-keyindex": ["", "?rows=3"],
    "cpu": ["", "?rounds=1"],
    "wait": ["?ms=1", "?ms=0"],
    "stream": ["", "?chunks=1"],
}

Snapshot = tuple[int, str, bytes]


async def _drain(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def body_of(response: HttpResponseBase) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        if response.is_async:
            return async_to_sync(_drain)(response.streaming_content)  # type: ignore[arg-type]
        content: Iterable[bytes] = response.streaming_content  # type: ignore[assignment]
        return b"".join(content)
    return bytes(response.content)  # type: ignore[attr-defined]


def snapshot(response: HttpResponseBase) -> Snapshot:
    return response.status_code, response["Content-Type"], body_of(response)


def fetch_both(path: str) -> dict[str, Snapshot]:
    # A stream served by the other kind of handler makes Django warn that it
    # must adapt the iterator (see workloads/stream.py); expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume")
        sync_response = Client().get(path)
        async_response = async_to_sync(AsyncClient().get)(path)
        return {"Client": snapshot(sync_response), "AsyncClient": snapshot(async_response)}


@pytest.fixture
def upstream_for_fanout(settings: SettingsWrapper, start_upstream: StartUpstream) -> None:
    settings.BENCH_UPSTREAM_URL = start_upstream("--delay-ms", "0").url


def test_queries_cover_every_workload() -> None:
    # (the WebSocket twins are compared over real servers: tests/test_ws.py)
    assert set(QUERIES) == set(HTTP_WORKLOADS)


@pytest.mark.parametrize("workload", list(HTTP_WORKLOADS))
def test_twins_identical(workload: str, backend: str, upstream_for_fanout: None) -> None:
    for query in QUERIES[workload]:
        seen: dict[str, Snapshot] = {}
        for ep in endpoints():
            # async-native runs on PostgreSQL under ASGI only, and its pool lives on one
            # event loop, which AsyncClient replaces per request: test_site_native.py
            # compares it under a real uvicorn, and its 501s elsewhere.
            if ep.workload != workload or ep.variant == "async-native":
                continue
            for client_name, snap in fetch_both(ep.path + query).items():
                seen[f"{ep.variant} via {client_name}"] = snap
        reference_name, reference = next(iter(seen.items()))
        assert reference[0] == 200, f"{workload}{query}: {reference!r}"
        for name, snap in seen.items():
            assert snap == reference, f"{workload}{query}: {name} differs from {reference_name}"


def test_json_and_noindex_return_the_same_rows(backend: str) -> None:
    # Same rows, same ids in every table: the control differs only by the index.
    control = fetch_both("/sync/json-noindex/?rows=50")["Client"]
    assert control[0] == 200
    assert fetch_both("/sync/json/?rows=50")["Client"] == control
    assert fetch_both("/sync/json-keyindex/?rows=50")["Client"] == control


def test_bodies_do_not_depend_on_the_backend(backend: str) -> None:
    """The same seeded data gives the same bytes on SQLite, PostgreSQL and
    MariaDB: pinned by a digest that every pass must reproduce."""
    import hashlib

    digests = {
        path: hashlib.sha256(fetch_both(path)["Client"][2]).hexdigest()[:16]
        for path in ("/sync/orm/?rows=50&page=2", "/sync/json/?rows=50", "/sync/json-keyindex/?rows=50")
    }
    assert digests == EXPECTED_DIGESTS, f"on {backend}"


# Taken from a SQLite run over SEED_ROWS seeded rows; the PostgreSQL and
# MariaDB passes must produce the same bytes. A change here means seeded data or encoding changed,
# which also invalidates stored baselines.
EXPECTED_DIGESTS: dict[str, Any] = {
    "/sync/orm/?rows=50&page=2": "60b90aa16a1eba53",
    "/sync/json/?rows=50": "90ed5cd6622f3ee1",
    "/sync/json-keyindex/?rows=50": "90ed5cd6622f3ee1",
}
