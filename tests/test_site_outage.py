"""A service the view needs is not there: the site names the cause.

In-process, with Django's test client: the database connection points at a
PostgreSQL port nobody listens on, the fan-out upstream at a refused port. The
answer is a 503 whose JSON names the outage; the load driver keeps that in the
failure kind (locustfiles/causes.py) and the runner flags the window `outage`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import DatabaseError, OperationalError, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.test import AsyncClient, Client
from pytest_django.plugin import DjangoDbBlocker

from bench_site.outage import DATABASE_UNREACHABLE, database_cause
from locustfiles.causes import failure_kind, response_failure

DB_PATHS = ["/sync/orm/", "/async-s2a/orm/", "/async/orm/", "/sync/json/", "/async-s2a/json/", "/async/json/"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(path: str) -> tuple[int, Any]:
    response = async_to_sync(AsyncClient().get)(path) if path.startswith("/async") else Client().get(path)
    return response.status_code, json.loads(response.content)


@pytest.fixture
def database_down(django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """The default database is a PostgreSQL server that is not there."""
    settings = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "bench",
        "USER": "bench",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(_closed_port()),
        "OPTIONS": {"connect_timeout": 2},
        "CONN_MAX_AGE": 0,
    }
    original = connections["default"]
    connections["default"] = DatabaseWrapper(settings, "default")
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections["default"].close()
        connections["default"] = original


@pytest.mark.parametrize("path", DB_PATHS)
def test_an_unreachable_database_is_named(database_down: None, path: str) -> None:
    assert get(path) == (503, {"error": "database unreachable"})


def test_the_load_driver_keeps_the_cause_in_the_failure_kind() -> None:
    text = response_failure(503, b'{"error":"database unreachable"}')
    assert text == "HTTP 503: database unreachable"
    CatchResponseError = type("CatchResponseError", (Exception,), {})  # locust's, by name
    assert failure_kind(CatchResponseError(text)) == "HTTP 503: database unreachable"
    assert response_failure(500, b"<html>oops</html>") == "HTTP 500"
    assert response_failure(502, None) == "HTTP 502"
    assert failure_kind(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


def _wrapped(cause: BaseException) -> DatabaseError:
    exc = OperationalError(str(cause))
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("cause", "named"),
    [
        (psycopg.OperationalError("connection refused"), DATABASE_UNREACHABLE),  # no SQLSTATE: client side
        (psycopg.errors.AdminShutdown("terminating connection"), DATABASE_UNREACHABLE),  # 57P01
        (psycopg.errors.CannotConnectNow("starting up"), DATABASE_UNREACHABLE),  # 57P03
        (psycopg.errors.ConnectionFailure("lost"), DATABASE_UNREACHABLE),  # 08006
        (psycopg.errors.QueryCanceled("statement timeout"), None),  # 57014: the server answered
        (ValueError("not a database error"), None),
    ],
)
def test_only_connection_failures_are_outages(cause: BaseException, named: str | None) -> None:
    assert database_cause(_wrapped(cause)) == named


def test_a_refused_upstream_is_named(settings: Any) -> None:
    settings.BENCH_UPSTREAM_URL = f"http://127.0.0.1:{_closed_port()}"
    for variant in ("sync", "sync-threads", "async", "async-aiohttp"):
        assert get(f"/{variant}/fanout/?calls=2") == (503, {"error": "upstream unreachable"})


# --- MariaDB (mysqlclient is installed by the MariaDB pass) -----------------------


@pytest.fixture
def mariadb_down(django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """The default database is a MariaDB server that is not there."""
    from django.db.backends.mysql.base import DatabaseWrapper as MySQLWrapper

    settings = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.mysql",
        "NAME": "bench",
        "USER": "bench",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(_closed_port()),
        "OPTIONS": {"connect_timeout": 2, "charset": "utf8mb4"},
        "CONN_MAX_AGE": 0,
    }
    original = connections["default"]
    connections["default"] = MySQLWrapper(settings, "default")
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections["default"].close()
        connections["default"] = original


@pytest.mark.mariadb
@pytest.mark.parametrize("path", [*DB_PATHS, "/sync/json-keyindex/", "/async/json-keyindex/"])
def test_an_unreachable_mariadb_is_named(mariadb_down: None, path: str) -> None:
    assert get(path) == (503, {"error": "database unreachable"})


@pytest.mark.mariadb
def test_only_mariadb_connection_failures_are_outages() -> None:
    import MySQLdb

    gone = MySQLdb.OperationalError(2006, "Server has gone away")
    refused = MySQLdb.OperationalError(2003, "Can't connect to server on '127.0.0.1' (111)")
    assert database_cause(_wrapped(refused)) == DATABASE_UNREACHABLE
    assert database_cause(_wrapped(gone)) == DATABASE_UNREACHABLE
    assert database_cause(_wrapped(MySQLdb.InterfaceError(0, ""))) == DATABASE_UNREACHABLE
    # The server answered: saturated (too many connections), or a bad query.
    assert database_cause(_wrapped(MySQLdb.OperationalError(1040, "Too many connections"))) is None
    assert database_cause(_wrapped(MySQLdb.OperationalError(1054, "Unknown column"))) is None
