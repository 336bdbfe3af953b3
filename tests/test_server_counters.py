"""The servers' own counters as the runner reads them: real servers on free
ports with BENCH_TELEMETRY_DIR set, a known number of requests, the counters'
differences over exactly those requests; the database's own count of
connections (PostgreSQL, MariaDB); a short real run whose results carry the
counters per slice; and what the results, the CSV, the terminal and the report
derive from them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from asyncbench.execute.dbstats import MariaDBConnections, PostgresSessions, open_counter
from asyncbench.execute.processes import http_get
from asyncbench.execute.servers import Server, start_server, stop_server
from asyncbench.execute.setups import SetupConfig
from asyncbench.model import results
from asyncbench.model.results import load_run
from asyncbench.render import connections
from asyncbench.render.csv import cells_csv
from asyncbench.render.report import render_report
from asyncbench.render.terminal import terminal_summary
from bench_site.telemetry import difference, read_counters
from tests import cli
from tests.synthetic import make_cell, make_run

ROOT = Path(__file__).resolve().parent.parent
N = 25  # requests per check: sequential, each one counted exactly once
ORM = "/{variant}/orm/?rows=5&page=1"
ASKED = ("requests", "sync_to_async", "async_to_sync", "db_connects")


def _site_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="bench_site.settings", BENCH_DEBUG="0", PYTHONPATH=str(ROOT), **extra)
    return env


def _manage(env: dict[str, str], *argv: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
    )


def _counted(server: Server, path: str, n: int = N) -> dict[str, int]:
    """The counters' difference over `n` sequential requests of `path` (one
    uncounted request first: a first request's set-up is not what is asked)."""
    assert server.telemetry is not None
    status, body, _ = http_get("127.0.0.1", server.port, path)
    assert status == 200, body[:300]
    before = _settled(server.telemetry)
    for _ in range(n):
        status, body, _ = http_get("127.0.0.1", server.port, path)
        assert status == 200, body[:300]
    return difference(_settled(server.telemetry), before)


def _settled(directory: Path) -> dict[str, int]:
    """The counters once the last request's work is over: under ASGI, Django
    sends request_finished and closes the response (two sync_to_async calls)
    after the client has its answer. Polled until the counters asked about
    (an ASGI process samples its loop's lag all the time) have not moved for
    0.3 s, so a server preempted on a busy machine still finishes, by a
    deadline."""

    def read() -> dict[str, int]:
        return {k: v for k, v in read_counters(directory).items() if k in ASKED}

    deadline = time.monotonic() + 10
    last = read()
    since = time.monotonic()
    while time.monotonic() - since < 0.3:
        assert time.monotonic() < deadline, "the counters never settled"
        time.sleep(0.05)  # polling interval, bounded by the deadline
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def _start(kind: str, env: dict[str, str], tmp: Path) -> Server:
    return start_server(
        SetupConfig(kind, kind, workers=1, threads=2),
        revision="",
        root=ROOT,
        env=env,
        cpus=(),
        log_dir=tmp,
        telemetry=tmp / f"telemetry-{kind}",
    )


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = _site_env(BENCH_SQLITE_PATH=str(tmp_path_factory.mktemp("db") / "db.sqlite3"))
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "seed", "--rows", "300")
    return env


@pytest.fixture(scope="module")
def gthread(sqlite_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start("gunicorn-gthread", sqlite_env, tmp_path_factory.mktemp("gthread"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def uvicorn(sqlite_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start("uvicorn", sqlite_env, tmp_path_factory.mktemp("uvicorn"))
    try:
        yield server
    finally:
        stop_server(server)


# --- real servers -----------------------------------------------------------------


@pytest.mark.servers
def test_sync_view_under_wsgi_counts_requests_and_no_hop(gthread: Server) -> None:
    d = _counted(gthread, "/sync/noio/")
    assert d["requests"] == N
    assert d["sync_to_async"] == 0 and d["async_to_sync"] == 0
    assert d["db_connects"] == 0  # no-I/O touches no database


@pytest.mark.servers
def test_async_view_under_wsgi_pays_one_async_to_sync_per_request(gthread: Server) -> None:
    d = _counted(gthread, "/async/noio/")
    assert d["requests"] == N
    assert d["async_to_sync"] == N  # a new event loop per request: WSGIHandler runs the view through async_to_sync
    assert d["sync_to_async"] == 0


@pytest.mark.servers
def test_sync_view_under_asgi_pays_one_more_sync_to_async_than_its_twin(uvicorn: Server) -> None:
    sync = _counted(uvicorn, "/sync/noio/")
    twin = _counted(uvicorn, "/async/noio/")
    assert sync["requests"] == twin["requests"] == N
    assert sync["async_to_sync"] == twin["async_to_sync"] == 0
    # Django runs the sync view in a thread: exactly one hop per request more
    # than its async twin; the rest (the same in both) is the handler's own
    # (signals, response.close) and the middleware's sync hooks.
    assert sync["sync_to_async"] - twin["sync_to_async"] == N
    assert twin["sync_to_async"] % N == 0  # a fixed number per request, whatever the stack


@pytest.mark.servers
@pytest.mark.parametrize("variant", ["sync", "async-s2a", "async"])
def test_orm_on_sqlite_opens_one_connection_per_request(gthread: Server, variant: str) -> None:
    d = _counted(gthread, ORM.format(variant=variant))
    assert d["requests"] == N
    # CONN_MAX_AGE=0: Django opens a connection per request (and closes it at the end), whichever twin
    assert d["db_connects"] == N


@pytest.mark.servers
@pytest.mark.postgres
@pytest.mark.parametrize("variant", ["sync", "async"])
def test_orm_on_postgres_checks_out_from_the_pool_without_new_sessions(
    variant: str, django_db_setup: None, tmp_path: Path
) -> None:
    """Django's connect (connection_created) fires on every checkout from
    psycopg's pool; the database server sees no new session once the pool
    holds its connections. The test database (seeded once per session) is
    the server's, so nothing else connects to it meanwhile."""
    from django.db import connection

    url = urlsplit(os.environ["BENCH_DATABASE_URL"])
    test_url = urlunsplit(url._replace(path="/" + str(connection.settings_dict["NAME"])))
    env = _site_env(BENCH_DATABASE_URL=test_url, BENCH_DB_POOL_MIN="1", BENCH_DB_POOL_MAX="4")
    counter = PostgresSessions(test_url)
    server = _start("gunicorn-gthread", env, tmp_path)
    try:
        _counted(server, ORM.format(variant=variant), n=5)  # the pool fills
        sessions = counter.read()
        d = _counted(server, ORM.format(variant=variant))
        opened = (counter.read() or 0) - (sessions or 0)
    finally:
        stop_server(server)
        counter.close()
    assert d["requests"] == N and d["db_connects"] == N
    # sequential requests need one connection: the pool (max 4) never opens one per request
    assert 0 <= opened <= 4


@pytest.mark.postgres
def test_postgres_sessions_count_new_connections_but_not_its_own_reads() -> None:
    import psycopg

    url = os.environ["BENCH_DATABASE_URL"]
    counter = open_counter(url)
    assert isinstance(counter, PostgresSessions)
    try:
        first = counter.read()
        assert counter.read() == first  # its own reads open nothing
        for _ in range(3):
            psycopg.connect(url).close()
        after = counter.read()
        assert first is not None and after is not None
        assert after - first >= 3  # others may connect too: at least ours
    finally:
        counter.close()


def _mariadb() -> str:
    import MySQLdb

    url = "mysql://root@127.0.0.1:3306/"
    try:
        MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()
    except MySQLdb.Error as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"MariaDB at 127.0.0.1:3306 unreachable: {exc} (CI=true)", pytrace=False)
        pytest.skip(f"MariaDB at 127.0.0.1:3306 unreachable: {exc}")
    return url


@pytest.mark.mariadb  # the MariaDB pass: mysqlclient is installed there (make install-mariadb)
def test_mariadb_connections_count_new_connections_but_not_its_own_reads() -> None:
    import MySQLdb

    counter = open_counter(_mariadb())
    assert isinstance(counter, MariaDBConnections)
    try:
        first = counter.read()
        assert counter.read() == first
        for _ in range(3):
            MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="").close()
        after = counter.read()
        assert first is not None and after is not None
        assert after - first >= 3
    finally:
        counter.close()


def test_sqlite_has_no_database_side_count_and_an_unknown_scheme_is_named() -> None:
    assert open_counter(None) is None and open_counter("") is None
    with pytest.raises(ValueError, match=r"'oracle'.*postgresql, mysql"):
        open_counter("oracle://x@h/db")


# --- a real run -------------------------------------------------------------------


def _scenario(tmp_path: Path) -> Path:
    p = tmp_path / "counted.toml"
    p.write_text(
        'name = "counted"\ndescription = "test"\n'
        "[load]\nusers = [2]\nmin_blocks = 3\nmax_blocks = 3\n"
        "settle_s = 0.2\nwindow_s = 0.6\nmax_window_s = 0.6\nmin_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        'restart = "block"\n'
        '[[setups]]\nname = "gunicorn-gthread"\nworkers = 1\nthreads = 2\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n'
    )
    return p


@pytest.mark.servers
def test_run_stores_the_counters_per_slice_and_no_telemetry_stores_none(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = cli.run_cli("run", str(_scenario(tmp_path)), "--reports-dir", str(reports), "--no-report", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert run.scenario_resolved["telemetry"] is True
    assert {c.variant for c in run.cells} == {"sync", "async"}
    for c in run.cells:
        assert len(c.repeats) == 3
        for r in c.repeats:
            counted = r.server_counters
            assert counted is not None
            # the server counts arrivals between the runner's two reads, locust
            # completions in its window: the same but for the edges (the reads
            # follow locust's window messages by a few ms)
            assert abs(counted["requests"] - r.requests) <= 0.03 * r.requests + 2 * c.users
            assert counted["sync_to_async"] == 0
            if c.variant == "async":
                # one hop per request, but the server counts a request when it
                # arrives and its hop when Django calls the view: a read between
                # the two (at either edge) finds up to one request per user apart
                assert counted["async_to_sync"] > 0
                assert abs(counted["async_to_sync"] - counted["requests"]) <= c.users
            else:
                assert counted["async_to_sync"] == 0
            assert r.db_connections is None  # SQLite: no server-side count
        s = c.summary
        assert s.served == sum((r.server_counters or {})["requests"] for r in c.repeats)
        if c.variant == "async":
            assert s.hops_per_request == pytest.approx(1.0, abs=c.users / s.served)
        else:
            assert s.hops_per_request == 0.0
    # a fresh server per block (restart = "block"), each start with its own folder of counters
    assert sorted(p.name for p in (reports / "latest" / "telemetry" / "gunicorn-gthread").iterdir()) == ["0", "1", "2"]
    # the terminal shows them after the table
    assert "Server counters" in done.stdout and "hops/req" in done.stdout

    run_dir = tmp_path / "off"
    done = cli.run_cli(
        "run", str(_scenario(tmp_path)), "--reports-dir", str(run_dir), "--no-report", "--no-telemetry", timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(run_dir / "latest")
    assert run.scenario_resolved["telemetry"] is False
    assert all(r.server_counters is None and r.db_connections is None for c in run.cells for r in c.repeats)
    assert not (run_dir / "latest" / "telemetry").exists()
    assert "Server counters" not in done.stdout
    assert all("BENCH_TELEMETRY_DIR" not in s.env for s in run.setups.values())


# --- what is derived from them ------------------------------------------------------


def _with_counters(cell, per_request: dict[str, float], db_per_request: float | None = None):  # type: ignore[no-untyped-def]
    reps = tuple(
        replace(
            r,
            server_counters={"requests": r.requests, **{k: round(v * r.requests) for k, v in per_request.items()}},
            db_connections=None if db_per_request is None else round(db_per_request * r.requests),
        )
        for r in cell.repeats
    )
    return replace(cell, repeats=reps)


def _pg_run():  # type: ignore[no-untyped-def]
    sync = _with_counters(
        make_cell("gunicorn-gthread", "orm", "sync", 32, [1350, 1300, 1400], params={"rows": 20}),
        {"db_connects": 1.0},
        db_per_request=0.0,
    )
    slow = _with_counters(
        make_cell("gunicorn-gthread", "orm", "async", 32, [129, 130, 128], params={"rows": 20}),
        {"db_connects": 1.0, "sync_to_async": 1.0, "async_to_sync": 1.0},
        db_per_request=1.0,
    )
    return make_run([sync, slow], environment={"database": {"vendor": "postgresql", "version": "15"}})


def test_summary_csv_terminal_and_report_show_the_counters() -> None:
    run = _pg_run()
    cells = {c.variant: c.summary for c in run.cells}
    assert cells["async"].hops_per_request == 2.0 and cells["sync"].hops_per_request == 0.0
    assert cells["async"].django_connects_per_1k == 1000.0
    assert cells["async"].db_connections_per_1k == 1000.0 and cells["sync"].db_connections_per_1k == 0.0
    async_row = next(r for r in csv.DictReader(io.StringIO(cells_csv(run))) if r["variant"] == "async")
    assert async_row["hops_per_request"] == "2.0" and async_row["db_connections_per_1k"] == "1000.0"
    (sentence,) = connections.contrasts(run)
    # computed from the results: the two counts and the two throughputs
    assert "async opened 1,000 database connections per 1,000 requests, sync 0" in sentence
    assert "129 req/s vs 1,350 req/s" in sentence
    assert sentence in terminal_summary(run)
    page = render_report(run)
    assert 'id="connections"' in page and sentence in page


def test_twins_with_the_same_connection_counts_get_no_sentence() -> None:
    run = _pg_run()
    cells = tuple(
        _with_counters(c, {"db_connects": 1.0}, db_per_request=0.0) if c.variant == "async" else c for c in run.cells
    )
    assert connections.contrasts(replace(run, cells=cells)) == []


def test_results_without_counters_read_as_not_measured_and_round_trip(tmp_path: Path) -> None:
    run = _pg_run()
    results.save_run(run, tmp_path)
    again = load_run(tmp_path)
    assert again.cells[1].repeats[0].server_counters == run.cells[1].repeats[0].server_counters
    assert again.cells[1].repeats[0].db_connections == run.cells[1].repeats[0].db_connections
    # a file written before the fields existed: null, "not measured", never zeros
    data = json.loads((tmp_path / "results.json").read_text())
    for c in data["cells"]:
        for r in c["repeats"]:
            del r["server_counters"], r["db_connections"]
    old = results.from_dict(data)
    assert all(r.server_counters is None and r.db_connections is None for c in old.cells for r in c.repeats)
    assert all(c.summary.served is None and c.summary.hops_per_request is None for c in old.cells)
    assert connections.rows(old) == [] and "Server counters" not in terminal_summary(old)
    assert 'id="connections"' not in render_report(old)


def test_loop_lag_thread_wait_and_gc_per_request_from_the_counters() -> None:
    cell = _with_counters(
        make_cell("uvicorn", "noio", "async", 32, [900, 950, 1000]),
        # per request: 7 hops waiting 30 µs each, 0.05 lag samples of 2 ms each, 4 µs of GC
        {
            "sync_to_async": 7.0,
            "thread_wait_ns": 7 * 30_000.0,
            "loop_lag_samples": 0.05,
            "loop_lag_ns": 0.05 * 2_000_000,
            "gc_pause_ns": 4_000.0,
        },
    )
    worst = [3_000_000, 9_000_000, 5_000_000]
    cell = replace(
        cell,
        repeats=tuple(
            replace(r, server_counters={**(r.server_counters or {}), "loop_lag_max_ns": w})
            for r, w in zip(cell.repeats, worst, strict=True)
        ),
    )
    s = cell.summary
    assert s.thread_wait_us_per_hop is not None and abs(s.thread_wait_us_per_hop - 30.0) < 0.1
    assert s.loop_lag_mean_ms is not None and abs(s.loop_lag_mean_ms - 2.0) < 0.05
    assert s.loop_lag_max_ms == 9.0  # the worst window's, not a sum
    assert s.gc_pause_us_per_request is not None and abs(s.gc_pause_us_per_request - 4.0) < 0.01
    # a WSGI cell has no loop: its lag is not 0 but absent
    wsgi = _with_counters(make_cell("gunicorn-gthread", "noio", "sync", 32, [5000, 5100, 5200]), {})
    assert wsgi.summary.loop_lag_mean_ms is None and connections.lag(None, None) == "–"
