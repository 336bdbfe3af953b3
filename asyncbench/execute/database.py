"""The database the servers use: its environment, its preparation, its record."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from asyncbench.execute import ROOT
from asyncbench.execute.processes import ProcessError, tail
from asyncbench.model.scenario import DEFAULT_MARIADB_URL, Scenario

DEFAULT_SQLITE = ROOT / "var" / "bench.sqlite3"


SERVER_HASH_SEED = "0"


def django_env(scenario: Scenario, base_env: dict[str, str], root: Path = ROOT) -> dict[str, str]:
    env = dict(base_env)
    env["DJANGO_SETTINGS_MODULE"] = "bench_site.settings"
    env["PYTHONPATH"] = str(root)
    app = scenario.app
    if app is not None:
        # another Django project ([app]): its folder first on the path, its
        # settings (or none, and its wsgi/asgi module's own default applies)
        if app.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join((str(root / app.pythonpath), str(root)))
        if app.settings:
            env["DJANGO_SETTINGS_MODULE"] = app.settings
        else:
            del env["DJANGO_SETTINGS_MODULE"]
    env["BENCH_DEBUG"] = "0"  # DEBUG is off in measured runs, whatever the caller's environment says
    # Two processes of the same code differ by up to ~10% in throughput here
    # depending on Python's string-hash seed (A/A pairs of one setup under two
    # names read 0.89-0.96 in one run, 1.02-1.06 in another, 0.98-1.00 with the
    # seed fixed). One fixed seed makes an arm one thing: a ratio then compares
    # code, not two draws of the hash seed. A caller's own seed is kept.
    env.setdefault("PYTHONHASHSEED", SERVER_HASH_SEED)
    env.pop("BENCH_DATABASE_URL", None)
    if scenario.database.engine == "postgres":
        env["BENCH_DATABASE_URL"] = scenario.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    elif scenario.database.engine == "mariadb":
        env["BENCH_DATABASE_URL"] = scenario.database.url or DEFAULT_MARIADB_URL
    else:
        # one file per data-set size: quick (100k rows) and ci (20k) would
        # otherwise reseed each other's database on every run
        env["BENCH_SQLITE_PATH"] = scenario.database.sqlite_path or str(
            DEFAULT_SQLITE.with_name(f"bench-{scenario.database.rows}.sqlite3")
        )
    return env


MYSQLCLIENT_MISSING = (
    "the mariadb database needs the mysqlclient driver, an optional install (it builds against "
    "libmariadb-dev and pkg-config): run `make install-mariadb`, or "
    "`.venv/bin/pip install --no-deps -r requirements-mariadb.lock`"
)


def _mysql_connect(url: str, *, database: bool) -> Any:
    """A mysqlclient connection for a mysql:// URL, to the URL's database or to none."""
    try:
        import MySQLdb
    except ImportError:
        raise ProcessError(MYSQLCLIENT_MISSING) from None
    u = urlsplit(url)
    kwargs: dict[str, Any] = {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "charset": "utf8mb4",
        "connect_timeout": 5,
    }
    if database:
        kwargs["database"] = unquote(u.path.lstrip("/"))
    return MySQLdb.connect(**kwargs)


def create_mysql_database(url: str) -> bool:
    """Create the database a mysql:// URL names when it is missing (utf8mb4).

    PostgreSQL's default URL names the `postgres` database, which always
    exists; MariaDB has no such default, so `--db mariadb` would otherwise fail
    on a fresh server. Returns True if it was created.
    """
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name or "`" in name:
        raise ProcessError(f"database url {url!r}: expected a database name (no backquotes) in the path")
    try:
        conn = _mysql_connect(url, database=False)
    except ProcessError:
        raise
    except Exception as exc:  # the driver's own error, named with the server it could not reach
        raise ProcessError(f"MariaDB at {urlsplit(url).netloc.rpartition('@')[2]} unreachable: {exc}") from exc
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
        if cursor.fetchone():
            return False
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return True
    finally:
        conn.close()


def prepare_database(scenario: Scenario, env: dict[str, str], log_path: Path, note: Callable[[str], None]) -> None:
    """Create (MariaDB), migrate and seed, all idempotent, logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if (
        scenario.app is None
        and scenario.database.engine == "mariadb"
        and create_mysql_database(env["BENCH_DATABASE_URL"])
    ):
        note(f"database: created {urlsplit(env['BENCH_DATABASE_URL']).path.lstrip('/')} (utf8mb4)")
    with open(log_path, "ab") as log:
        for argv in (
            [sys.executable, "manage.py", "migrate", "--noinput"],
            [sys.executable, "manage.py", "seed", "--rows", str(scenario.database.rows)],
        ):
            note(f"database: {' '.join(argv[1:])}")
            done = subprocess.run(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1800, check=False
            )
            if done.returncode != 0:
                raise ProcessError(
                    f"{' '.join(argv[1:])} failed with code {done.returncode}; last lines of "
                    f"{log_path}:\n{tail(log_path)}"
                )


def database_info(scenario: Scenario, env: dict[str, str]) -> dict[str, Any]:
    if scenario.app is not None:
        return {"vendor": "", "note": "the [app] project's own; not prepared or recorded by the runner"}
    if scenario.database.engine == "sqlite":
        return {
            "vendor": "sqlite",
            "version": sqlite3.sqlite_version,
            "path": env.get("BENCH_SQLITE_PATH"),
            "rows": scenario.database.rows,
        }
    url = env["BENCH_DATABASE_URL"]
    version = None
    vendor = "postgresql"
    if scenario.database.engine == "mariadb":
        try:
            conn = _mysql_connect(url, database=False)
            try:
                cursor = conn.cursor()
                cursor.execute("SELECT VERSION()")
                row = cursor.fetchone()
                version = str(row[0]) if row else None
            finally:
                conn.close()
        except Exception as exc:  # recorded, not fatal: migrate would have failed first
            version = f"unknown ({type(exc).__name__})"
        # MySQL answers the same protocol; say which one measured.
        vendor = "mariadb" if version is None or "mariadb" in version.lower() else "mysql"
    else:
        version = _postgres_version(url)
    u = urlsplit(url)
    # never store a password in a results file
    return {
        "vendor": vendor,
        "version": version,
        "host": u.hostname,
        "port": u.port,
        "name": u.path.lstrip("/"),
        "rows": scenario.database.rows,
    }


def _postgres_version(url: str) -> str | None:
    version = None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = row[0] if row else None
    except Exception as exc:  # recorded, not fatal: migrate would have failed first
        version = f"unknown ({type(exc).__name__})"
    return version
