"""The site under real servers: gunicorn (WSGI, sync worker) and uvicorn (ASGI).

Each server binds 127.0.0.1 port 0 (a free port chosen by the kernel, so no
race with other processes) and the port is read from its startup log; the
test then polls /health with a deadline, requests every registry endpoint
once, and checks that twins, and both servers, return the same bytes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import (
    GUNICORN_LISTENING,
    UVICORN_ARGV,
    UVICORN_LISTENING,
    Processes,
    StartUpstream,
    python_env,
    wait_for_health,
    wait_for_log,
)

from bench_site.registry import HTTP_WORKLOADS, WORKLOADS, endpoints, unavailable

pytestmark = pytest.mark.servers

QUERIES = {
    "noio": "",
    "fanout": "?calls=3&delay_ms=1",
    "orm": "?rows=5&page=2",
    "json": "?rows=5",
    "json-noindex": "?rows=5",
    "json-keyindex": "?rows=5",
    "cpu": "?rounds=10",
    "wait": "?ms=1",
    "stream": "?chunks=3",
}
SEED_ROWS = 2_000
STARTUP_S = 60.0


def start_server(processes: Processes, name: str, argv: list[str], env: dict[str, str], pattern: str) -> str:
    proc, log = processes.start(argv, env=env, name=name)
    deadline = time.monotonic() + STARTUP_S
    port = wait_for_log(log, re.compile(pattern), proc, deadline).group(1)
    base = f"http://127.0.0.1:{port}"
    wait_for_health(f"{base}/health", proc, deadline, log)
    return base


def test_pairs_identical_under_gunicorn_and_uvicorn(
    tmp_path: Path, processes: Processes, start_upstream: StartUpstream
) -> None:
    upstream = start_upstream("--delay-ms", "0")
    env = python_env(
        DJANGO_SETTINGS_MODULE="bench_site.settings",
        BENCH_SQLITE_PATH=str(tmp_path / "smoke.sqlite3"),
        BENCH_UPSTREAM_URL=upstream.url,
    )
    for command in (["migrate", "--no-input", "-v0"], ["seed", "--rows", str(SEED_ROWS)]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    bin_dir = Path(sys.executable).parent
    servers = {
        "gunicorn-sync": start_server(
            processes,
            "gunicorn",
            [
                str(bin_dir / "gunicorn"),
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--worker-class",
                "sync",
                "--timeout",
                "60",
                # gunicorn 27 otherwise opens a control socket at one fixed path in
                # $HOME, shared by every gunicorn on the machine.
                "--no-control-socket",
                "bench_site.wsgi:application",
            ],
            env,
            GUNICORN_LISTENING,
        ),
        "uvicorn": start_server(
            processes,
            "uvicorn",
            [
                str(bin_dir / "uvicorn"),
                *UVICORN_ARGV,
            ],
            env,
            UVICORN_LISTENING,
        ),
    }

    # HTTP workloads (the WebSocket twins: tests/test_ws.py)
    results: dict[str, dict[str, tuple[int, str, bytes]]] = {w: {} for w in HTTP_WORKLOADS}
    with httpx.Client(timeout=30) as client:
        for server, base in servers.items():
            for ep in endpoints():
                if unavailable(ep.variant, database="sqlite") is not None:
                    continue  # async-native: PostgreSQL only (test_site_native.py serves it under uvicorn)
                response = client.get(base + ep.path + QUERIES[ep.workload])
                results[ep.workload][f"{ep.variant} on {server}"] = (
                    response.status_code,
                    response.headers["content-type"],
                    response.content,
                )

    for workload, seen in results.items():
        (reference_name, reference), *_ = seen.items()
        assert reference[0] == 200, f"{workload}: {reference_name} -> {reference!r}"
        for name, snap in seen.items():
            assert snap == reference, f"{workload}: {name} differs from {reference_name}"
    assert len(results["fanout"]) == 2 * len(WORKLOADS["fanout"].variants)
