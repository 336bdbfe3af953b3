"""bench_site.telemetry in one process: what each counter counts, exactly.

Each test runs in a fresh interpreter (the module patches asgiref globally
when it is installed, which must not leak into the other tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO_ROOT


def _run(tmp_path: Path, body: str) -> dict[str, int]:
    script = (
        textwrap.dedent(
            """
        import asyncio, gc, json, os, sys, time
        from pathlib import Path
        from bench_site import telemetry
        assert telemetry.install()
        from asgiref.sync import async_to_sync, sync_to_async
        D = Path(os.environ["BENCH_TELEMETRY_DIR"])
        """
        )
        + textwrap.dedent(body)
        + "\nprint(json.dumps(telemetry.read_counters(D)))\n"
    )
    env = {**os.environ, "BENCH_TELEMETRY_DIR": str(tmp_path / "t"), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    counts: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return counts


def test_off_without_the_directory() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TELEMETRY_DIR"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = "from bench_site import telemetry; print(telemetry.install(), telemetry.enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_hops_are_counted_one_per_adapter_call(tmp_path: Path) -> None:
    counts = _run(
        tmp_path,
        """
        def work(): return 1
        async def three_hops():
            for _ in range(3):
                await sync_to_async(work)()
        asyncio.run(three_hops())       # 3 sync_to_async
        async_to_sync(three_hops)()     # 1 async_to_sync, 3 more sync_to_async
        """,
    )
    assert counts["sync_to_async"] == 6
    assert counts["async_to_sync"] == 1
    # every hop waited for its thread for some time, and not for seconds
    assert 0 < counts["thread_wait_ns"] < 6 * 1_000_000_000


def test_requests_and_loop_lag_in_an_asgi_wrapper(tmp_path: Path) -> None:
    counts = _run(
        tmp_path,
        """
        async def app(scope, receive, send):
            time.sleep(0.06)              # blocks the loop: the sampler wakes up late
            await asyncio.sleep(0.1)
        wrapped = telemetry.wrap_asgi(app)
        async def main():
            await wrapped({"type": "http"}, None, None)
            await wrapped({"type": "http"}, None, None)
            await wrapped({"type": "lifespan"}, None, None)
        asyncio.run(main())
        """,
    )
    assert counts["requests"] == 2  # lifespan is not a request
    assert counts["loop_lag_samples"] >= 2
    assert counts["loop_lag_over_10ms"] >= 1
    assert counts["loop_lag_max_ns"] >= 10_000_000
    assert counts["loop_lag_ns"] >= counts["loop_lag_max_ns"]


def test_gc_pauses_are_counted(tmp_path: Path) -> None:
    counts = _run(tmp_path, "for _ in range(3): gc.collect()\n")
    assert counts["gc_collections"] >= 3
    assert counts["gc_pause_ns"] > 0


def test_a_forked_child_writes_its_own_file_and_the_sums_add_up(tmp_path: Path) -> None:
    counts = _run(
        tmp_path,
        """
        telemetry.add("requests", 5)
        pid = os.fork()
        if pid == 0:
            telemetry.add("requests", 7)
            os._exit(0)
        os.waitpid(pid, 0)
        assert len(list(D.glob("*.counters"))) == 2
        """,
    )
    assert counts["requests"] == 12


def test_difference_and_reset_of_maxima(tmp_path: Path) -> None:
    counts = _run(
        tmp_path,
        """
        telemetry.add("requests", 3)
        telemetry.maximum("loop_lag_max_ns", 500)
        before = telemetry.read_counters(D)
        telemetry.reset_maxima(D)
        telemetry.add("requests", 2)
        telemetry.maximum("loop_lag_max_ns", 200)
        window = telemetry.difference(telemetry.read_counters(D), before)
        assert window["requests"] == 2, window
        assert window["loop_lag_max_ns"] == 200, window   # the window's, not the process's
        """,
    )
    assert counts["requests"] == 5
