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
a 500.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import DatabaseError, InterfaceError

DATABASE_UNREACHABLE = "database unreachable"
UPSTREAM_UNREACHABLE = "upstream unreachable"
OUTAGE_STATUS = 503

_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
_pool_errors_seen: dict[int, int] = {}
_pool_lock = threading.Lock()


def _pool_failed_to_connect() -> bool:
    """True when the default database's pool counted new connection errors."""
    from django.db import connection

    pool: Any = getattr(connection, "pool", None)
    if pool is None:
        return False
    errors = int(pool.get_stats().get("connections_errors", 0))
    with _pool_lock:
        before = _pool_errors_seen.get(id(pool), 0)
        _pool_errors_seen[id(pool)] = max(before, errors)
    return errors > before


def database_cause(exc: BaseException) -> str | None:
    """DATABASE_UNREACHABLE when `exc` (a Django database error) says the
    database could not be reached, else None."""
    if not isinstance(exc, DatabaseError):
        return None
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
