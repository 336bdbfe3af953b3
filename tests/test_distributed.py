"""Distributed load on locust's own master and workers, with real processes.

- a master with 2 local workers: one common window per slice (every worker's
  view of it within a few ms of the master's), the merged histogram's count
  the sum of the workers', and on a cell far from saturation (the upstream
  stub with a 20-ms delay: throughput = users / delay) the same throughput as
  one process;
- the open model on workers: the rate split, every request due in the window
  counted once;
- a worker on another "host": a network namespace joined to the master by a
  veth pair (needs root and `ip`; skipped with the reason otherwise);
- the runner end to end with `--workers 2`: every slice records each
  worker's CPU.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncbench.execute.distributed import DistributedLoad, PoolOptions
from asyncbench.execute.load import DriverError, LoadGenerator, Measurement
from asyncbench.execute.processes import free_port
from asyncbench.model.results import load_run

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent
DELAY_MS = 20
USERS = 8
# every worker's view of the window (when it saw it open, when its last tick
# ended) within this of the master's: a tenth of the 0.5-s tick, so the
# workers shared one window, with room for a gevent loop woken late on a busy
# machine and a clock offset estimated from 8 pings (11 ms seen on a quiet one)
COMMON_WINDOW_TOLERANCE_S = 0.05


def _upstream(host: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The upstream stub on `host`, a free port: /item/1 answers after DELAY_MS."""
    port = free_port(host)
    argv = [sys.executable, "-m", "upstream", "--host", host, "--port", str(port), "--delay-ms", str(DELAY_MS)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert re.search(r"listening on http://", line), line
    return proc, f"http://{host}:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The upstream stub on loopback: /item/1 answers after DELAY_MS."""
    proc, url = _upstream("127.0.0.1", tmp_path_factory.mktemp("stub") / "upstream.log")
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedLoad]:
    log_dir = tmp_path_factory.mktemp("pool")
    with DistributedLoad(workers=2, cpus=(), log_dir=log_dir, env=dict(os.environ)) as gen:
        yield gen


def _closed(gen: LoadGenerator, host: str, users: int = USERS) -> Measurement:
    return gen.measure(
        host=host,
        path="/item/1",
        users=users,
        warmup_s=0.3,
        min_s=2.0,
        max_s=2.0,
        target_rse=0.0,
        min_requests_per_user=1,
    )


def _assert_common_window(m: Measurement, workers: int, tolerance: float = COMMON_WINDOW_TOLERANCE_S) -> None:
    assert m.window_start is not None and m.window_stop is not None
    assert m.duration_s == pytest.approx(m.window_stop - m.window_start)
    assert len(m.worker_windows) == workers
    for opened, closed in m.worker_windows:
        assert abs(opened - m.window_start) < tolerance, (opened - m.window_start, m.worker_windows)
        assert abs(closed - m.window_stop) < tolerance, (closed - m.window_stop, m.worker_windows)


def _assert_merged(m: Measurement, workers: int) -> None:
    assert len(m.workers) == workers
    # the merged histogram holds every worker's answers, no more, no less
    assert m.histogram.count == m.requests == sum(w["latency_count"] for w in m.workers)
    assert m.requests == sum(w["requests"] for w in m.workers)
    assert all(w["requests"] > 0 for w in m.workers)
    # throughput: every answer over the one window
    assert m.throughput_rps == pytest.approx(m.requests / m.duration_s)
    # each worker's own CPU, the busiest one's as the generator's
    assert len(m.driver_cpu_percents) == workers
    assert all(c > 0 for c in m.driver_cpu_percents)
    assert m.generator_cpu_percent == max(m.driver_cpu_percents)
    assert sum(s["requests"] for s in m.series) <= m.requests


def test_two_workers_share_one_window_and_match_one_process(stub: str, pool: DistributedLoad, tmp_path: Path) -> None:
    events: list[tuple[str, float]] = []
    m = pool.measure(
        host=stub,
        path="/item/1",
        users=USERS,
        warmup_s=0.3,
        min_s=2.0,
        max_s=2.0,
        target_rse=0.0,
        min_requests_per_user=1,
        on_window_start=lambda: events.append(("start", time.time())),
        on_window_end=lambda: events.append(("end", time.time())),
    )
    assert [e for e, _ in events] == ["start", "end"]
    _assert_common_window(m, 2)
    _assert_merged(m, 2)
    # the runner's monitors bracket the common window
    assert events[0][1] >= m.window_start - 0.005
    assert events[1][1] >= m.window_stop - 0.005
    assert m.stop_reason == "max_s" and m.duration_s == pytest.approx(2.0)
    # the users were split 4 + 4
    assert all(w["local"] for w in m.workers)

    with LoadGenerator(processes=1, cpus=(), log_dir=tmp_path, env=dict(os.environ)) as one:
        single = _closed(one, stub)
    # far from saturation a closed loop's throughput is users / latency: the
    # same from one process and from two workers, within the noise of two
    # 2-s windows seconds apart (1.7 ms more scheduling delay is 8%)
    ideal = USERS / (DELAY_MS / 1000.0)
    assert single.throughput_rps == pytest.approx(m.throughput_rps, rel=0.15), (single.throughput_rps, m)
    assert 0.8 * ideal < m.throughput_rps <= 1.02 * ideal
    assert len(single.driver_cpu_percents) == 1


def test_users_fewer_than_workers_leave_a_worker_out(stub: str, pool: DistributedLoad) -> None:
    m = _closed(pool, stub, users=1)
    _assert_merged(m, 1)
    assert m.throughput_rps == pytest.approx(1 / (DELAY_MS / 1000.0), rel=0.2)


def test_open_model_splits_the_rate_in_one_window(stub: str, pool: DistributedLoad) -> None:
    rate = 200.0
    m = pool.measure(
        host=stub,
        path="/item/1",
        users=4,
        warmup_s=0.3,
        min_s=1.0,
        max_s=1.0,
        target_rse=0.0,
        min_requests_per_user=1,
        rate=rate,
    )
    assert m.open is not None
    # every request due in the one window, from either worker, exactly once
    assert m.open["due"] == int(rate * 1.0)
    assert m.open["target_rps"] == pytest.approx(rate)
    assert m.open["dropped"] == 0 and m.open["unfinished"] == 0
    assert m.requests == m.open["due"]
    assert m.duration_s == pytest.approx(1.0)
    # a worker sees the window open at its first due request: within a gap of the start
    _assert_common_window(m, 2, tolerance=COMMON_WINDOW_TOLERANCE_S + 2 / rate)
    _assert_merged(m, 2)


def test_several_targets_share_the_workers_window(stub: str, pool: DistributedLoad) -> None:
    ms = pool.measure_joint(
        targets=[(stub, "/item/1"), (stub, "/item/2")],
        rate=100.0,
        arrival="uniform",
        settle_s=0.3,
        window_s=1.0,
        connections=16,
    )
    assert len(ms) == 2
    assert sum(m.open["due"] for m in ms if m.open) == 200
    assert ms[0].window_start == ms[1].window_start and ms[0].window_stop == ms[1].window_stop
    for m in ms:
        assert m.requests > 80
        assert len(m.driver_cpu_percents) == 2


# ------------------------------------------------------------------ another host


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return f"needs root to create a network namespace (running as uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2) to create a network namespace"
    return None


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this one by a veth pair: (name, our address, its address)."""
    why = _netns_unavailable()
    if why:
        pytest.skip(why)
    name = f"abtest{os.getpid()}"
    subnet = random.randrange(16, 250)
    here, there = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    veth, peer = f"vab{os.getpid() % 100000}", f"vabp{os.getpid() % 100000}"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", name],
        ["ip", "addr", "add", f"{here}/30", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{there}/30", "dev", peer],
        ["ip", "netns", "exec", name, "ip", "link", "set", peer, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot set up a network namespace here: `{' '.join(step)}` said {done.stderr.strip()!r}")
        yield name, here, there
    finally:
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def test_a_worker_on_another_host_joins_the_master(netns: tuple[str, str, str], tmp_path: Path) -> None:
    name, here, _ = netns
    up, url = _upstream(here, tmp_path / "upstream.log")
    port = free_port(here)
    gen = DistributedLoad(
        workers=1,
        cpus=(),
        log_dir=tmp_path,
        env=dict(os.environ),
        pool=PoolOptions(expect_workers=1, master_bind=f"{here}:{port}", wait_s=60),
        note=lambda _: None,
    )
    entered: list[BaseException | None] = []
    starter = threading.Thread(target=lambda: entered.append(_enter(gen)), daemon=True)
    starter.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (tmp_path / "remote-worker.log").open("wb") as worker_log:
        remote = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "runner.py", "worker", "--master", f"{here}:{port}"],
            cwd=ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        starter.join(timeout=90)
        assert entered == [None], (entered, (tmp_path / "remote-worker.log").read_text()[-2000:])
        remote_info = [w for w in gen.joined if not w["local"]]
        assert len(remote_info) == 1 and remote_info[0]["master"] == f"{here}:{port}"
        m = _closed(gen, url)
        _assert_common_window(m, 2)
        _assert_merged(m, 2)
        assert sorted(w["local"] for w in m.workers) == [False, True]
        assert m.throughput_rps > 0.8 * USERS / (DELAY_MS / 1000.0)
        # this machine's loopback is out of the remote worker's reach: said, not measured
        with pytest.raises(DriverError, match="cannot reach"):
            _closed(gen, "http://127.0.0.1:9")
        # the pool is still in step after the refused slice
        _assert_merged(_closed(gen, url), 2)
    finally:
        gen.close()
        # the master's quit ends the remote worker too
        try:
            remote.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(remote.pid, 9)
            remote.wait(timeout=5)
            pytest.fail("the remote worker did not quit with the master")
        finally:
            _stop(up)
    assert remote.returncode == 0, (tmp_path / "remote-worker.log").read_text()[-2000:]
    assert "joined the master" in (tmp_path / "remote-worker.log").read_text()


def _enter(gen: DistributedLoad) -> BaseException | None:
    try:
        gen.__enter__()
    except BaseException as exc:  # handed to the test's thread
        return exc
    return None


# ------------------------------------------------------------------ the runner


def test_run_with_two_workers_records_each_workers_cpu(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        'name = "tiny"\ndescription = "test"\n'
        "[load]\nusers = [4]\nmin_blocks = 3\nmax_blocks = 3\n"
        "settle_s = 0.2\nwindow_s = 1.0\nmax_window_s = 1.0\nmin_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        '[[setups]]\nname = "uvicorn"\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n'
    )
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "runner.py",
            "run",
            str(scenario),
            "--workers",
            "2",
            "--reports-dir",
            str(reports),
            "--no-report",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert run.complete
    assert run.scenario_resolved["load"]["workers"] == 2
    assert run.generator_ceiling.processes == 2
    assert run.generator_ceiling.extra["local_workers"] == 2
    assert len(run.generator_ceiling.extra["workers"]) == 2
    for c in run.cells:
        assert c.status == "ok", c.error
        assert len(c.repeats) == 3
        for r in c.repeats:
            assert len(r.worker_cpu_percents) == 2
            assert all(cpu > 0 for cpu in r.worker_cpu_percents)
            assert r.generator_cpu_percent == max(r.worker_cpu_percents)
            assert r.throughput_rps == pytest.approx(r.requests / r.duration_s, rel=1e-3)
            # one common window: [started_at, started_at + duration_s), as every worker saw it
            assert len(r.worker_windows) == 2
            for opened, closed in r.worker_windows:
                assert abs(opened - r.started_at) < COMMON_WINDOW_TOLERANCE_S
                assert abs(closed - (r.started_at + r.duration_s)) < COMMON_WINDOW_TOLERANCE_S
    logs = reports / "latest" / "logs"
    assert (logs / "locust-master.log").exists()
    assert (logs / "locust-worker-0.log").exists() and (logs / "locust-worker-1.log").exists()
