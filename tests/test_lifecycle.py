"""Every server setup starts, answers, and stops with nothing left behind."""

import os

import pytest

from asyncbench.execute.processes import check_port_free
from asyncbench.execute.servers import start_server, stop_server
from asyncbench.execute.setups import SETUPS, SetupConfig

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("kind", list(SETUPS))
def test_setup_starts_answers_and_leaves_nothing(kind, tmp_path):
    spec = SETUPS[kind]
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench_site.settings",
        BENCH_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        BENCH_DEBUG="0",
        PYTHONPATH=os.getcwd(),
    )
    env.pop("BENCH_DATABASE_URL", None)
    # two workers where the setup allows, so the group has a master and workers
    workers = 1 if spec.max_workers == 1 else 2
    config = SetupConfig(kind, kind, workers=workers, threads=2)
    server = start_server(
        config, revision="", root=os.path.dirname(os.path.dirname(__file__)), env=env, cpus=(), log_dir=tmp_path
    )
    try:
        from asyncbench.execute.processes import http_get

        status, body, _ = http_get("127.0.0.1", server.port, "/sync/noio/")
        assert status == 200
        status2, body2, _ = http_get("127.0.0.1", server.port, "/async/noio/")
        assert (status2, body2) == (status, body)
        assert server.proc.group_pids()
        assert server.info.interface == spec.interface
        assert server.info.keepalive == spec.keepalive
    finally:
        stop_server(server)
    assert server.proc.group_pids() == [], "a process of the server's group survived"
    check_port_free(server.port)
