"""async-native: django-async-backend's views against their twins.

- The scenario validator refuses async-native off PostgreSQL or under a WSGI
  setup, naming the key and why, and leaves it out of default variants
  (no database).
- Where it cannot run, the view answers 501 naming why (SQLite pass).
- On PostgreSQL it runs the same SQL, with the same parameters, as the sync
  view, and returns the same bytes (in process, each test on one event loop:
  the native pool cannot outlive the loop it was opened on, and the test
  clients make a new loop per request).
- A real uvicorn serves /async-native/... with the sync twin's body, and its
  connections go back to the pool (a pool of 2 serves 40 requests).
- An unreachable database is a 503 naming it, for a refused connect and for
  the pool timing out after failed connects.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from asgiref.sync import async_to_sync
from conftest import Processes, python_env, wait_for_health
from django.db import connections
from django.test import AsyncClient, AsyncRequestFactory, Client, RequestFactory
from django.urls import resolve
from django_async_backend.db import async_connections  # type: ignore[import-untyped]
from django_async_backend.db.backends.postgresql.async_base import (  # type: ignore[import-untyped]
    AsyncDatabaseWrapper,
)

from asyncbench.model.scenario import Overrides, ScenarioError, load, parse
from bench_site import native
from bench_site.registry import VARIANTS, WORKLOADS
from bench_site.workloads import VIEWS_BY_WORKLOAD

NATIVE_WORKLOADS = [w.name for w in WORKLOADS.values() if native.VARIANT in w.variants]
PARAMS: dict[str, dict[str, int]] = {
    "orm": {"rows": 7, "page": 3},
    "json": {"rows": 5},
    "json-noindex": {"rows": 5},
    "json-keyindex": {"rows": 5},
}
QUERY = {"orm": "?rows=7&page=3", "json": "?rows=5", "json-noindex": "?rows=5", "json-keyindex": "?rows=5"}


def test_the_orm_and_json_workloads_have_it_opt_in() -> None:
    assert {"orm", "json", "json-noindex"} <= set(NATIVE_WORKLOADS)
    assert VARIANTS[native.VARIANT].kind == "async" and VARIANTS[native.VARIANT].opt_in
    for name in NATIVE_WORKLOADS:
        assert native.VARIANT not in WORKLOADS[name].default_variants
        assert set(WORKLOADS[name].default_variants) == set(WORKLOADS[name].variants) - {native.VARIANT}
    others = [v for v in VARIANTS.values() if v.name != native.VARIANT]
    assert all((v.line, v.marker) != (VARIANTS[native.VARIANT].line, VARIANTS[native.VARIANT].marker) for v in others)


# --- the scenario validator (no database) ----------------------------------------


def test_default_variants_leave_it_out_on_any_database() -> None:
    for db in ("sqlite", "postgres"):
        s = load("quick", Overrides(workloads=("orm",), setups=("uvicorn",), db=db))
        assert s.workloads[0].variants == ("sync", "async-s2a", "async"), db


def test_named_on_postgres_under_asgi_it_is_accepted() -> None:
    s = load(
        "quick",
        Overrides(workloads=("orm", "noio"), setups=("uvicorn",), variants=("sync", "async-native"), db="postgres"),
    )
    assert {w.name: w.variants for w in s.workloads} == {"orm": ("sync", "async-native"), "noio": ("sync",)}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            Overrides(workloads=("orm",), setups=("uvicorn",), variants=("sync", "async-native")),
            ["workloads.orm.variants", "async-native needs postgresql, not sqlite", "database.engine is 'sqlite'"],
        ),
        (
            Overrides(workloads=("json",), setups=("gunicorn-gthread",), variants=("async-native",), db="postgres"),
            [
                "workloads.json.variants",
                "async-native needs an ASGI server, not WSGI",
                "no sync path",
                "no setup can run it: 'gunicorn-gthread' (WSGI)",
            ],
        ),
        (
            Overrides(workloads=("noio",), setups=("uvicorn",), variants=("async-native",), db="postgres"),
            ["--variants", "workload 'noio' has none of async-native", "allowed: sync, async"],
        ),
        (
            Overrides(workloads=("orm",), setups=("uvicorn",), variants=("sync", "async-aiohttp"), db="postgres"),
            ["--variants", "no workload of this run has 'async-aiohttp'", "allowed: async, async-native"],
        ),
    ],
)
def test_the_validator_refuses_it_where_it_cannot_run(overrides: Overrides, expected: list[str]) -> None:
    with pytest.raises(ScenarioError) as info:
        load("quick", overrides)
    for text in expected:
        assert text in str(info.value)


def test_a_scenario_file_naming_it_under_a_wsgi_setup_is_refused() -> None:
    data = {
        "name": "t",
        "load": {"users": [4]},
        "setups": [{"name": "uvicorn"}, {"name": "granian-wsgi"}],
        "workloads": {"orm": {"variants": ["async", "async-native"]}},
        "database": {"engine": "postgres", "url": "postgresql://u@127.0.0.1:5432/db"},
    }
    # beside an ASGI setup, the WSGI one measures the other variants only
    from asyncbench.execute.groups import groups, left_out

    mixed = parse(data)
    arms = {(a.setup, a.variant) for g in groups(mixed, [""]) for a in g.arms}
    assert arms == {("uvicorn", "async"), ("uvicorn", "async-native"), ("granian-wsgi", "async")}
    assert left_out(mixed) == ["orm/async-native not under granian-wsgi (WSGI)"]
    data["setups"] = [{"name": "granian-wsgi"}]
    with pytest.raises(
        ScenarioError, match=r"workloads\.orm\.variants: async-native needs an ASGI server.*'granian-wsgi'"
    ):
        parse(data)
    data["setups"] = [{"name": "uvicorn"}, {"name": "hypercorn"}]
    assert parse(data).workloads[0].variants == ("async", "async-native")


# --- 501 where it cannot run ----------------------------------------------------


@pytest.mark.parametrize("workload", NATIVE_WORKLOADS)
def test_under_wsgi_it_answers_501_naming_asgi(workload: str) -> None:
    response = Client().get(f"/async-native/{workload}/")
    assert response.status_code == 501
    error = json.loads(response.content)["error"]
    assert error.startswith("async-native needs an ASGI server, not WSGI: django-async-backend has no sync path")


@pytest.mark.parametrize("workload", NATIVE_WORKLOADS)
def test_off_postgresql_it_answers_501_naming_postgresql(workload: str) -> None:
    if connections["default"].vendor == "postgresql":
        pytest.skip("runs off PostgreSQL (the SQLite pass)")
    response = async_to_sync(AsyncClient().get)(f"/async-native/{workload}/")
    assert response.status_code == 501
    vendor = connections["default"].vendor
    assert json.loads(response.content) == {
        "error": f"async-native needs postgresql, not {vendor}: django-async-backend is a PostgreSQL backend "
        "(psycopg 3's AsyncConnection)"
    }


# --- PostgreSQL: the same SQL, the same bytes -------------------------------------

Captured = list[tuple[str, tuple[Any, ...]]]


def _normalized(params: Any) -> tuple[Any, ...]:
    # JSON parameters are psycopg Jsonb wrappers (no __eq__): compare what they hold.
    return tuple(getattr(p, "obj", p) for p in params or ())


def _recorder(captured: Captured) -> Callable[..., Any]:
    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        captured.append((sql, _normalized(params)))
        return execute(sql, params, many, context)

    return record


async def _on_one_loop(coroutine: Awaitable[Any]) -> Any:
    """Await `coroutine`, then close the native pool it opened on this loop."""
    try:
        return await coroutine
    finally:
        pool = AsyncDatabaseWrapper._connection_pools.pop("default", None)
        if pool is not None:
            await pool.close()


@pytest.mark.postgres
@pytest.mark.parametrize("workload", NATIVE_WORKLOADS)
def test_the_same_sql_and_bytes_as_the_sync_view(workload: str, db: None) -> None:
    views = VIEWS_BY_WORKLOAD[workload]
    sync_sql: Captured = []
    with connections["default"].execute_wrapper(_recorder(sync_sql)):
        sync_response = views["sync"](RequestFactory().get("/"), **PARAMS[workload])

    native_sql: Captured = []

    async def native_view() -> Any:
        with async_connections["default"].execute_wrapper(_recorder(native_sql)):
            return await views[native.VARIANT](AsyncRequestFactory().get("/"), **PARAMS[workload])

    native_response = async_to_sync(_on_one_loop)(native_view())
    assert sync_sql, "the sync view ran no query"
    assert native_sql == sync_sql
    assert native_response.status_code == sync_response.status_code == 200
    assert native_response.content == sync_response.content


# --- PostgreSQL: a real uvicorn ------------------------------------------------------


def _test_database_url() -> str:
    """BENCH_DATABASE_URL pointing at the session's seeded test database."""
    import os

    parts = urlsplit(os.environ["BENCH_DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + str(connections["default"].settings_dict["NAME"])))


@pytest.mark.postgres
@pytest.mark.servers
def test_uvicorn_serves_it_with_the_sync_body_and_returns_connections(
    processes: Processes, django_db_setup: None
) -> None:
    env = python_env(
        DJANGO_SETTINGS_MODULE="bench_site.settings",
        BENCH_DATABASE_URL=_test_database_url(),
        # Two connections per pool, and a short wait for one: a connection not
        # put back would fail the third request with a pool timeout (500).
        BENCH_DB_POOL_MIN="1",
        BENCH_DB_POOL_MAX="2",
        BENCH_DB_POOL_TIMEOUT_S="3",
    )
    argv = [str(Path(sys.executable).with_name("uvicorn")), "bench_site.asgi:application", "--host", "127.0.0.1"]
    argv += ["--port", "0", "--lifespan", "off", "--no-access-log", "--loop", "asyncio", "--http", "h11"]
    proc, log = processes.start(argv, env=env, name="uvicorn-native")
    deadline = time.monotonic() + 60
    while "Uvicorn running on" not in (log.read_text(errors="replace") if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.05)  # polling the log with a deadline
    port = log.read_text().split("Uvicorn running on http://127.0.0.1:")[1].split()[0]
    base = f"http://127.0.0.1:{port}"
    wait_for_health(f"{base}/health", proc, deadline, log)

    with httpx.Client(timeout=30) as client:
        for workload in NATIVE_WORKLOADS:
            sync = client.get(f"{base}/sync/{workload}/{QUERY[workload]}")
            nat = client.get(f"{base}/async-native/{workload}/{QUERY[workload]}")
            assert sync.status_code == nat.status_code == 200, (workload, nat.text[:300])
            assert nat.headers["content-type"] == sync.headers["content-type"]
            assert nat.content == sync.content, workload
        expected = client.get(f"{base}/sync/orm/").content

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(*(client.get(f"{base}/async-native/orm/") for _ in range(40))))

    responses = asyncio.run(many())
    assert [r.status_code for r in responses] == [200] * 40, responses[0].text[:300]
    assert all(r.content == expected for r in responses)


# --- outages ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead(pool: dict[str, Any] | None) -> dict[str, Any]:
    """A DATABASES entry for the async backend at a port nobody listens on."""
    options: dict[str, Any] = {"connect_timeout": 2}
    if pool is not None:
        options["pool"] = pool
    return {
        **connections["default"].settings_dict,
        "ENGINE": native.ENGINE,
        "NAME": "bench",
        "USER": "bench",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(_closed_port()),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }


@pytest.fixture
def native_database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async backend's database is PostgreSQL at a port nobody listens on
    (the settings the async connection is made from; any pass)."""
    monkeypatch.setattr(async_connections, "settings", {"default": _dead(pool=None)})


@pytest.mark.parametrize("workload", NATIVE_WORKLOADS)
def test_a_refused_connect_is_named(native_database_down: None, workload: str) -> None:
    response = async_to_sync(AsyncClient().get)(f"/async-native/{workload}/")
    assert (response.status_code, json.loads(response.content)) == (503, {"error": "database unreachable"})


def test_a_pool_timeout_after_failed_connects_is_named(
    native_database_down: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # min_size 0: nothing connects before the request; the request's getconn
    # makes the pool try (and fail) to connect until its timeout.
    monkeypatch.setattr(
        async_connections, "settings", {"default": _dead(pool={"min_size": 0, "max_size": 1, "timeout": 1.5})}
    )
    view = resolve("/async-native/orm/").func

    async def request() -> Any:
        return await view(AsyncRequestFactory().get("/async-native/orm/"))

    response = async_to_sync(_on_one_loop)(request())
    assert (response.status_code, json.loads(response.content)) == (503, {"error": "database unreachable"})
