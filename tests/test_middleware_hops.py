"""Thread hops per request, counted in real servers, for every middleware stack
x view kind x interface: each count is what Django's code implies, exactly.

The servers run with BENCH_TELEMETRY_DIR, so bench_site.telemetry counts
asgiref's sync_to_async and async_to_sync calls in every server process;
`read_counters` sums them. Each test sends N requests one after another and
compares the counters' growth with N times the derivation below.

Under ASGI (uvicorn), per request:
- Django's ASGIHandler: 2 sync_to_async, whatever the stack: one for
  request_started.asend (its receivers, close_old_connections and
  reset_queries, are sync) and one for response.close (which sends
  request_finished).
- MiddlewareMixin.__acall__: one sync_to_async per process_request and per
  process_response the class defines, and BaseHandler adapts every sync
  process_view with sync_to_async: minimal 5 (security 2, common 2,
  clickjacking 1), startproject 13 (security 2, session 2, common 2, csrf 3,
  auth 1, messages 2, clickjacking 1), async-native 0 (its hooks run on the
  loop; test_mixin_hooks_follow_from_the_classes derives 5 and 13 from the
  classes themselves).
- a sync view: 1 sync_to_async (the handler runs it in a thread), where it
  also loads the session and the user, synchronously: no further hop.
- an async view of a session stack: `await request.auser()` costs 2
  sync_to_async inside Django's async API: the session row
  (SessionStore.aload -> QuerySet.aget) and the user
  (ModelBackend.aget_user -> QuerySet.aget); Django 6.1's async ORM is
  sync_to_async around the sync ORM.
Under WSGI (gunicorn gthread): a sync view 0; an async view 1 async_to_sync
(the handler runs it in an event loop), plus the same 2 sync_to_async for the
session stacks' user.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import (
    GUNICORN_LISTENING,
    UVICORN_ARGV,
    UVICORN_LISTENING,
    Processes,
    python_env,
    wait_for_health,
    wait_for_log,
)
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from bench_site.sessions import cookie_header
from bench_site.stacks import MIDDLEWARE_STACKS, SESSION_STACKS
from bench_site.telemetry import read_counters

N = 20
STARTUP_S = 60.0
ASGI_HANDLER_HOPS = 2
MIXIN_HOOK_HOPS = {"minimal": 5, "startproject": 13, "async-native": 0}
ASYNC_USER_LOAD_HOPS = 2


def expected_hops(stack: str, variant: str, interface: str) -> dict[str, int]:
    """sync_to_async and async_to_sync calls per request (see the module docstring)."""
    user = ASYNC_USER_LOAD_HOPS if stack in SESSION_STACKS and variant == "async" else 0
    if interface == "asgi":
        view = 1 if variant == "sync" else 0
        return {"sync_to_async": ASGI_HANDLER_HOPS + MIXIN_HOOK_HOPS[stack] + view + user, "async_to_sync": 0}
    return {"sync_to_async": user, "async_to_sync": 1 if variant == "async" else 0}


def test_mixin_hooks_follow_from_the_classes() -> None:
    """The 5 and 13 above, from MiddlewareMixin's rule: one hop per hook the class has."""
    for stack in ("minimal", "startproject"):
        hooks = 0
        for dotted in MIDDLEWARE_STACKS[stack]:
            cls = import_string(dotted)
            assert cls.__acall__ is MiddlewareMixin.__acall__, dotted
            hooks += sum(hasattr(cls, hook) for hook in ("process_request", "process_view", "process_response"))
        assert hooks == MIXIN_HOOK_HOPS[stack], stack


# --- servers, one per stack x interface, started when first asked for -------------------

SERVERS = {
    "asgi": (["uvicorn", *UVICORN_ARGV], UVICORN_LISTENING),
    "wsgi": (
        [
            "gunicorn",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "60",
            "--no-control-socket",
            "bench_site.wsgi:application",
        ],
        GUNICORN_LISTENING,
    ),
}


@dataclass(frozen=True)
class Site:
    base: str
    telemetry: Path
    stack: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], Site]]:
    root = tmp_path_factory.mktemp("hops")
    db = python_env(DJANGO_SETTINGS_MODULE="bench_site.settings", BENCH_SQLITE_PATH=str(root / "hops.sqlite3"))
    for command in (["migrate", "--no-input", "-v0"], ["seed", "--rows", "10"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=Path(__file__).resolve().parent.parent,
            env=db,
            check=True,
            capture_output=True,
            timeout=300,
        )
    processes = Processes(log_dir=root)
    started: dict[tuple[str, str], Site] = {}

    def get(stack: str, interface: str) -> Site:
        if (stack, interface) not in started:
            argv, pattern = SERVERS[interface]
            telemetry = root / f"telemetry-{stack}-{interface}"
            env = {**db, "BENCH_MIDDLEWARE": stack, "BENCH_TELEMETRY_DIR": str(telemetry)}
            proc, log = processes.start(
                [str(Path(sys.executable).parent / argv[0]), *argv[1:]], env=env, name=f"{stack}-{interface}"
            )
            deadline = time.monotonic() + STARTUP_S
            base = f"http://127.0.0.1:{wait_for_log(log, re.compile(pattern), proc, deadline).group(1)}"
            wait_for_health(f"{base}/health", proc, deadline, log)
            started[stack, interface] = Site(base, telemetry, stack)
        return started[stack, interface]

    try:
        yield get
    finally:
        processes.stop_all()


def _headers(stack: str) -> dict[str, str]:
    """What the runner sends (asyncbench.execute.groups.logged_in)."""
    return dict([cookie_header()]) if stack in SESSION_STACKS else {}


@pytest.mark.servers
@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
@pytest.mark.parametrize("variant", ["sync", "async"])
@pytest.mark.parametrize("stack", list(MIDDLEWARE_STACKS))
def test_hops_per_request(site: Callable[[str, str], Site], stack: str, variant: str, interface: str) -> None:
    server = site(stack, interface)
    url = f"{server.base}/{variant}/noio/"
    with httpx.Client(timeout=30, headers=_headers(stack)) as client:
        # one first request: anything done once per process (imports, the
        # first connection) happens outside the counted ones
        assert client.get(url).status_code == 200
        # Django's ASGI handler closes the response after sending it, so the
        # counters of the last request may still move: poll, with a deadline,
        # until every counted request is complete (the counts stop changing)
        before = _settled(server.telemetry)
        for _ in range(N):
            response = client.get(url)
            assert response.status_code == 200, response.text
    after = _settled(server.telemetry)
    grown = {name: after[name] - before[name] for name in COUNTED}
    expected = {name: N * per_request for name, per_request in expected_hops(stack, variant, interface).items()}
    assert grown == {"requests": N, **expected}, f"{stack} {variant} view under {interface}"
    if stack in SESSION_STACKS:
        # the logged-in session was read: Django varies on the cookie, and
        # deletes it (Set-Cookie) only when the session is not in the database
        assert response.headers["vary"] == "Cookie" and "set-cookie" not in response.headers


COUNTED = ("requests", "sync_to_async", "async_to_sync")


def _settled(telemetry: Path, deadline_s: float = 10.0, quiet_s: float = 0.3) -> dict[str, int]:
    """The request and hop counters once they have not moved for `quiet_s`
    (no request still finishing, even on a busy machine where the server's
    last hops come late; the loop-lag and GC counters move on their own)."""
    deadline = time.monotonic() + deadline_s
    last = {name: read_counters(telemetry)[name] for name in COUNTED}
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)  # polling with a deadline
        now = {name: read_counters(telemetry)[name] for name in COUNTED}
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise TimeoutError(f"the counters in {telemetry} kept moving: {last}")
