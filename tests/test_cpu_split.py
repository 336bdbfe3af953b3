"""The CPU split's classifier on py-spy stacks, its arithmetic, and the [profile] table."""

import pytest

from asyncbench.analysis.cpu_split import (
    DJANGO,
    OTHER,
    PARTS,
    SERVER,
    THREADS,
    VIEW,
    WAITING,
    ArmSplit,
    classify,
    parse_collapsed,
    part_counts,
    split,
    split_stack,
    top_frames,
)
from asyncbench.model.profiles import ProfileRecord, profile_from_dict
from asyncbench.model.results import Cell, Latency, Repeat
from asyncbench.model.scenario import ScenarioError, parse
from asyncbench.render.flamegraph import flamegraph_svg

UVICORN_ROOT = (
    'process 4531:"python uvicorn bench_site.asgi:application --port 1; x=1";<module> (uvicorn:6);'
    "main (uvicorn/main.py:448);Server.run (uvicorn/server.py:86);run (asyncio/runners.py:194);"
    "BaseEventLoop.run_forever (asyncio/base_events.py:639);BaseEventLoop._run_once (asyncio/base_events.py:1987);"
    "Handle._run (asyncio/events.py:84)"
)
ASGI = (
    "RequestResponseCycle.run_asgi (uvicorn/protocols/http/h11_impl.py:403);"
    "ASGIHandler.__call__ (django/core/handlers/asgi.py:172);ASGIHandler.handle (django/core/handlers/asgi.py:197)"
)
THREAD = (
    "Thread._bootstrap (threading.py:1030);Thread._bootstrap_inner (threading.py:1073);Thread.run (threading.py:1010)"
)


def stack(*parts: str) -> list[str]:
    return split_stack(";".join(parts))


def test_the_view_claims_everything_it_calls():
    # the ORM, httpx, asyncio, even Django's response class: beneath the view frame, all of it is the view's
    for leaf in (
        "SQLCompiler.execute_sql (django/db/models/sql/compiler.py:1562)",
        "AsyncClient.send (httpx/_client.py:1629)",
        "_SelectorSocketTransport.write (asyncio/selector_events.py:1071)",
        "JsonResponse.__init__ (django/http/response.py:731)",
    ):
        frames = stack(UVICORN_ROOT, ASGI, "async_view (bench_site/workloads/fanout.py:120)", leaf)
        assert classify(frames) == VIEW, leaf


def test_the_deepest_library_frame_decides_outside_the_view():
    assert classify(stack(UVICORN_ROOT, ASGI)) == DJANGO
    # Django awaiting uvicorn's send: the server's work
    assert classify(
        stack(UVICORN_ROOT, ASGI, "RequestResponseCycle.send (uvicorn/protocols/http/h11_impl.py:470)")
    ) == (SERVER)
    # the asyncio loop under uvicorn, with nothing more specific: the server
    assert classify(stack(UVICORN_ROOT, "H11Protocol.data_received (uvicorn/protocols/http/h11_impl.py:170)")) == SERVER
    # asyncio beneath a Django frame: Django's (a library frame beats the standard library)
    assert classify(stack(UVICORN_ROOT, ASGI, "create_task (asyncio/tasks.py:420)")) == DJANGO
    # an aiohttp protocol's callback on the loop, no view frame above: the view's client
    assert classify(stack(UVICORN_ROOT, "ResponseHandler.data_received (aiohttp/client_proto.py:300)")) == VIEW


def test_thread_hops_and_the_orm_in_asgirefs_thread():
    hop = stack(THREAD, "_worker (concurrent/futures/thread.py:92)", "SyncToAsync.thread_handler (asgiref/sync.py:522)")
    assert classify(hop) == DJANGO  # a thread hop Django makes
    # the async ORM API's work runs in that thread with no view frame: still the view's (the ORM)
    orm = hop + stack("QuerySet.get (django/db/models/query.py:640)", "execute (django/db/backends/utils.py:100)")
    assert classify(orm) == VIEW
    # Django's request signals close the connection: Django's, though it runs ORM code
    closing = hop + stack(
        "Signal.send (django/dispatch/dispatcher.py:189)",
        "close_old_connections (django/db/__init__.py:62)",
        "BaseDatabaseWrapper.close (django/db/backends/base/base.py:365)",
    )
    assert classify(closing) == DJANGO


def test_wait_sites_and_unclassified_samples():
    # a pool thread still waking from its queue: runnable, not running
    assert classify(stack(THREAD, "_worker (concurrent/futures/thread.py:89)")) == WAITING
    assert classify(stack(THREAD, "Condition.wait (threading.py:355)")) == WAITING
    # a selector's poll beneath gunicorn: waiting too, not the server's CPU
    gthread = stack(
        "<module> (gunicorn:8)",
        "ThreadWorker.run (gunicorn/workers/gthread.py:300)",
        "EpollSelector.select (selectors.py:468)",
    )
    assert classify(gthread) == WAITING
    # the same selector unregistering a socket is real work: the server's
    assert classify([*gthread[:-1], "_PollLikeSelector.unregister (selectors.py:368)"]) == SERVER
    # nothing any rule names
    assert classify(stack("<module> (gunicorn:8)", "Thread.start (threading.py:992)")) == OTHER
    assert classify([]) == THREADS  # no Python frame at all: a thread starting or ending


def test_collapsed_parsing_keeps_process_frames_whole():
    text = f"{UVICORN_ROOT};{ASGI} 7\n{THREAD};_worker (concurrent/futures/thread.py:89) 5\nnot a sample line\n"
    stacks = parse_collapsed(text)
    assert [n for _, n in stacks] == [7, 5]
    # the ';' inside the quoted command line does not split the process frame
    assert stacks[0][0][0].startswith('process 4531:"python uvicorn') and stacks[0][0][0].endswith('x=1"')
    assert stacks[0][0][1] == "<module> (uvicorn:6)"
    counts = part_counts(stacks)
    assert counts == {SERVER: 0, DJANGO: 7, VIEW: 0, THREADS: 0, OTHER: 0, WAITING: 5}
    (top,) = top_frames(stacks)  # waiting samples are not anyone's own time
    assert (top.frame, top.part, top.samples) == ("ASGIHandler.handle (django/core/handlers/asgi.py:197)", DJANGO, 7)
    svg = flamegraph_svg(stacks, title="t")
    assert svg.startswith("<?xml") and "ASGIHandler.handle" in svg and "12 samples" in svg


def _cell(cpu_s: float, requests: int) -> Cell:
    lat = Latency(count=requests, mean_ms=1, p50_ms=1, p90_ms=1, p95_ms=1, p99_ms=1, max_ms=1)
    rep = Repeat(
        index=0,
        started_at=0.0,
        duration_s=1.0,
        warmup_s=0.2,
        requests=requests,
        failures={},
        throughput_rps=float(requests),
        latency=lat,
        locust={},
        server_cpu_s=cpu_s,
        server_cpu_percent=50.0,
        server_rss_peak_mb=50.0,
        generator_cpu_percent=10.0,
        generator_cpu_peak_percent=10.0,
        server_worker_changes=0,
        server_counters={"requests": requests, "sync_to_async": 2 * requests, "async_to_sync": 0},
    )
    return Cell(setup="uvicorn", workload="noio", variant="async", kind="async", users=4, path="/", repeats=(rep,))


def test_the_split_multiplies_the_measured_cpu_by_the_shares():
    cell = _cell(cpu_s=0.5, requests=500)  # 1 ms per request
    profile = ProfileRecord(
        setup="uvicorn",
        workload="noio",
        variant="async",
        kind="async",
        users=4,
        samples=100,
        parts={SERVER: 25, DJANGO: 50, VIEW: 20, OTHER: 5, WAITING: 400},
    )
    s = split(cell, profile)
    assert s is not None
    assert s.ms[SERVER] == pytest.approx(0.25) and s.ms[DJANGO] == pytest.approx(0.5)
    assert sum(s.ms.values()) == pytest.approx(cell.summary.cpu_ms_per_request)
    assert s.hops_per_request == pytest.approx(2.0)
    # no on-CPU samples: nothing to split, never a division by zero
    assert split(cell, ProfileRecord("uvicorn", "noio", "async", "async", 4, parts={WAITING: 3})) is None
    # the record survives its JSON form
    assert profile_from_dict({**profile.__dict__, "top_frames": []}) == profile
    assert set(PARTS) == {SERVER, DJANGO, VIEW, THREADS, OTHER}


BASE = {"name": "s", "load": {"users": [2]}, "setups": [{"name": "uvicorn"}], "workloads": {"noio": {}}}


def test_profile_table():
    assert parse(BASE).profile is None
    assert "profile" not in parse(BASE).to_dict()  # absent as before (the gate compares resolved scenarios)
    p = parse({**BASE, "profile": {"enabled": True, "seconds": 2, "rate": 100, "users": [2]}}).profile
    assert p is not None and p.enabled and p.seconds == 2 and p.rate == 100 and p.profiles(2) and not p.profiles(8)
    with pytest.raises(
        ScenarioError, match=r"profile: unknown key .hz.; allowed keys: enabled, nonblocking, rate, seconds, users"
    ):
        parse({**BASE, "profile": {"hz": 3}})
    with pytest.raises(ScenarioError, match=r"profile.rate: samples per second in 1..1000, got 5000"):
        parse({**BASE, "profile": {"rate": 5000}})
    with pytest.raises(ScenarioError, match=r"profile.seconds: must be in \(0, 60\]"):
        parse({**BASE, "profile": {"seconds": 0}})


def test_without_py_spy_every_arm_is_skipped_with_the_reason(monkeypatch, tmp_path):
    from asyncbench.execute import profiler
    from asyncbench.execute.plan import Planned
    from asyncbench.model.profiles import PROFILE_SKIPPED, ProfileConfig

    monkeypatch.setattr(profiler, "py_spy_binary", lambda: None)
    notes: list[str] = []
    p = profiler.Profiler(ProfileConfig(enabled=True), tmp_path, notes.append)
    item = Planned("uvicorn", "noio", "async", 4, (), "", 0)
    record = p._profile_arm(item, ctx=None, gen=None, rate=None)  # type: ignore[arg-type]  # never reached
    assert record.status == PROFILE_SKIPPED and "py-spy is not installed" in record.reason
    assert record.key == "uvicorn/noio/async/u4" and record.kind == "async"


def test_a_running_thread_without_a_python_frame_is_a_thread_starting_or_ending():
    """py-spy writes such a sample as the process frame alone (--subprocesses)
    or as an empty stack (one process): counted as THREADS, not OTHER; a
    thread frame (--threads) does not make it Python."""
    raw = (
        'process 4531:"python uvicorn bench_site.asgi:application --port 1; x=1" 57\n'
        " 154\n"
        'process 4531:"python uvicorn";thread (0x7f01) 3\n'
        f"{UVICORN_ROOT} 9\n"
    )
    stacks = parse_collapsed(raw)
    assert [n for _, n in stacks] == [57, 154, 3, 9]
    assert [classify(frames) for frames, _ in stacks] == [THREADS, THREADS, THREADS, SERVER]
    counts = part_counts(stacks)
    assert counts[THREADS] == 214 and counts[OTHER] == 0 and THREADS in PARTS
    # a Python frame no rule claims is still OTHER
    assert classify(stack('process 1:"python x"', "main (myscript.py:3)")) == OTHER


def test_the_sentence_names_the_gc_and_its_full_collections_only_when_they_differ():
    from dataclasses import replace

    from asyncbench.render.sections_profile import sentence

    def arm(setup: str, variant: str, counters: dict[str, int]) -> ArmSplit:
        cell = _cell(cpu_s=0.5, requests=500)
        rep = replace(cell.repeats[0], server_counters={"requests": 500, **counters})
        cell = replace(cell, setup=setup, variant=variant, kind=variant, repeats=(rep,))
        profile = ProfileRecord(setup, "noio", variant, variant, 4, samples=10, parts={SERVER: 5, DJANGO: 5})
        s = split(cell, profile)
        assert s is not None
        return s

    ref = arm("gunicorn-gthread", "sync", {"gc_pause_ns": 0, "gc_full_collections": 0, "gc_full_pause_ns": 0})
    # 500 requests: 60 ms of GC, 40 ms of it in one full collection
    a = arm("uvicorn", "async", {"gc_pause_ns": 60_000_000, "gc_full_collections": 1, "gc_full_pause_ns": 40_000_000})
    text = sentence(a, ref)
    assert "The cyclic GC stopped it 120 µs per request against 0 µs" in text
    assert "80.0 µs of it in full collections, each a 40.0-ms pause of the whole server" in text
    # the same GC on both sides: no clause
    assert "cyclic GC" not in sentence(ref, ref)
