"""The database the servers use: its environment, its preparation, its record."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncbench.execute import ROOT
from asyncbench.execute.processes import ProcessError, tail
from asyncbench.model.scenario import Scenario

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
    else:
        # one file per data-set size: quick (100k rows) and ci (20k) would
        # otherwise reseed each other's database on every run
        env["BENCH_SQLITE_PATH"] = scenario.database.sqlite_path or str(
            DEFAULT_SQLITE.with_name(f"bench-{scenario.database.rows}.sqlite3")
        )
    return env


def prepare_database(scenario: Scenario, env: dict[str, str], log_path: Path, note: Callable[[str], None]) -> None:
    """Migrate and seed (both idempotent), logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
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
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = row[0] if row else None
    except Exception as exc:  # recorded, not fatal: migrate would have failed first
        version = f"unknown ({type(exc).__name__})"
    u = urlsplit(url)
    # never store a password in a results file
    return {
        "vendor": "postgresql",
        "version": version,
        "host": u.hostname,
        "port": u.port,
        "name": u.path.lstrip("/"),
        "rows": scenario.database.rows,
    }
