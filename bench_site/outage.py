"""Naming an outage: a service a view needs was not there.

A view whose database or upstream cannot be reached answers 503 with
{"error": "database unreachable"} or {"error": "upstream unreachable"}: the
load driver keeps that cause in the failure kind and the runner flags the
window `outage`, naming it, instead of reporting only failures or too few
requests. (The fan-out upstream's mapping lives in workloads/fanout.py.)

Only failures of the connection count as an outage of the database, not any
error: psycopg's client-side errors (no SQLSTATE: refused, reset, closed by
the server), SQLSTATE class 08 (connection exception) and 57P01-57P03 (the
server is shutting down or not accepting connections). A timeout waiting for
the connection pool counts only when the pool failed to open connections
since the last look; otherwise it is a saturated pool, a result, and stays
a 500. The same holds for django-async-backend (the async-native variant): it
wraps psycopg's errors in Django's the same way, and its AsyncConnectionPool
raises the same PoolTimeout, so its pool's connection errors count too.

On MariaDB/MySQL (mysqlclient), the client's connection errors count:
2002/2003 (cannot connect: socket, TCP), 2005 (unknown host), 2006 (server
has gone away), 2013/2055 (connection lost), and the server's 1053 (shutting
down); an InterfaceError from mysqlclient is a closed connection. Not 1040
(too many connections): the server is up and saying it is saturated, a result.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import DatabaseError, InterfaceError

DATABASE_UNREACHABLE = "database unreachable"
UPSTREAM_UNREACHABLE = "upstream unreachable"
OUTAGE_STATUS = 503

_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
_MYSQL_UNREACHABLE_CODES = frozenset({2002, 2003, 2005, 2006, 2013, 2055, 1053})
_pool_errors_seen: dict[int, int] = {}
_pool_lock = threading.Lock()


def _new_errors(pool: Any) -> bool:
    """True when `pool` counted connection errors since the last look."""
    errors = int(pool.get_stats().get("connections_errors", 0))
    with _pool_lock:
        before = _pool_errors_seen.get(id(pool), 0)
        _pool_errors_seen[id(pool)] = max(before, errors)
    return errors > before


def _async_pools() -> list[Any]:
    """The async-native variant's pools that exist in this process (looked up,
    never created: only a pool that was used can have failed)."""
    try:
        from django_async_backend.db.backends.postgresql.async_base import (  # type: ignore[import-untyped]
            AsyncDatabaseWrapper,
        )
    except ImportError:  # pragma: no cover - installs without django-async-backend
        return []
    return list(AsyncDatabaseWrapper._connection_pools.values())


def _pool_failed_to_connect() -> bool:
    """True when the default database's pool, or an async-native pool,
    counted new connection errors."""
    from django.db import connection

    pool: Any = getattr(connection, "pool", None)
    pools = ([] if pool is None else [pool]) + _async_pools()
    # Every pool is looked at (no short-circuit), so each one's count stays current.
    new = [_new_errors(p) for p in pools]
    return any(new)


def database_cause(exc: BaseException) -> str | None:
    """DATABASE_UNREACHABLE when `exc` (a Django database error) says the
    database could not be reached, else None."""
    if not isinstance(exc, DatabaseError):
        return None
    if _mysql_unreachable(exc.__cause__):
        return DATABASE_UNREACHABLE
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:  # pragma: no cover - SQLite-only installs
        return None
    cause = exc.__cause__
    if isinstance(cause, PoolTimeout):
        return DATABASE_UNREACHABLE if _pool_failed_to_connect() else None
    if isinstance(cause, psycopg.InterfaceError) or (isinstance(exc, InterfaceError) and cause is None):
        return DATABASE_UNREACHABLE
    if isinstance(cause, psycopg.OperationalError):
        state = cause.sqlstate
        if state is None or state.startswith("08") or state in _SHUTDOWN_STATES:
            return DATABASE_UNREACHABLE
    return None


def _mysql_unreachable(cause: BaseException | None) -> bool:
    """True when `cause` is mysqlclient's word for a server it cannot reach."""
    try:
        import MySQLdb
    except ImportError:  # mysqlclient is an optional install (MariaDB only)
        return False
    if isinstance(cause, MySQLdb.InterfaceError):
        return True
    if isinstance(cause, MySQLdb.OperationalError):
        code = cause.args[0] if cause.args else None
        return code in _MYSQL_UNREACHABLE_CODES
    return False
