"""Connections opened on the database server's side, read at a window's edges.

Django's `connection_created` signal (bench_site.telemetry's db_connects)
counts what Django asked for: with psycopg's pool on PostgreSQL that is a
checkout from the pool, not a new server session. Whether the servers really
opened connections is the database's own count:

- PostgreSQL: `pg_stat_database.sessions` of the bench database (PostgreSQL
  14+), sessions established since the statistics were reset;
- MariaDB/MySQL: the global status `Connections`, connection attempts since
  the server started (every database on that server);
- SQLite has no server: Django's connects are its file opens, and the
  telemetry count is all there is (no reader here).

The reader holds ONE connection open for the whole run, so its own reads add
nothing after the first: a difference of two reads is the servers' opens
(plus anything else connecting to that database meanwhile: the count is the
database's, not the benchmark's alone).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


class ConnectionCounter(Protocol):
    """A cumulative count of connections opened on the database server."""

    def read(self) -> int | None: ...

    def close(self) -> None: ...


class PostgresSessions:
    """`pg_stat_database.sessions` of the URL's database, over one open connection."""

    def __init__(self, url: str) -> None:
        import psycopg

        # autocommit: a statistics view read inside a transaction is a
        # snapshot frozen at its first read (stats_fetch_consistency = cache)
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="asyncbench-dbstats")
        row = self._conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        if row is None or int(row[0]) < 140000:
            self._conn.close()
            raise RuntimeError("pg_stat_database.sessions needs PostgreSQL 14 or later")

    def read(self) -> int | None:
        # The server's statistics collector lags by up to a flush interval; a
        # new backend reports its session when it first goes idle, an ending
        # one when it exits: at a window's edges that is a few at most.
        row = self._conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def close(self) -> None:
        self._conn.close()


class MariaDBConnections:
    """The server-wide `Connections` status counter, over one open connection."""

    def __init__(self, url: str) -> None:
        # imported by name: the driver ships no type stubs, and this reader uses two calls of it
        mysqldb = importlib.import_module("MySQLdb")
        u = urlsplit(url)
        kwargs: dict[str, Any] = {
            "host": u.hostname or "127.0.0.1",
            "port": u.port or 3306,
            "user": unquote(u.username or "root"),
            "password": unquote(u.password or ""),
            "connect_timeout": 5,
        }
        if u.path.strip("/"):
            kwargs["database"] = unquote(u.path.strip("/"))
        self._conn = mysqldb.connect(**kwargs)

    def read(self) -> int | None:
        cur = self._conn.cursor()
        try:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            row = cur.fetchone()
        finally:
            cur.close()
        return None if row is None else int(row[1])

    def close(self) -> None:
        self._conn.close()


def open_counter(url: str | None) -> ConnectionCounter | None:
    """The reader for a BENCH_DATABASE_URL (None for SQLite: no server to ask).

    An unknown scheme is an error naming the ones read; a server that does
    not answer raises the driver's error (the caller decides: the run goes on
    without the count)."""
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return PostgresSessions(url)
    if scheme in ("mysql", "mariadb"):
        return MariaDBConnections(url)
    raise ValueError(f"BENCH_DATABASE_URL: scheme {scheme!r} has no connection count; known: postgresql, mysql")
