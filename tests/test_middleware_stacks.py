"""The middleware stacks (bench_site.stacks): what settings and scenarios accept,
and the async-native stack answering exactly as Django's startproject stack.

The comparisons run in process through Django's test clients, both
handlers: Client (WSGI, the sync path of every middleware) and AsyncClient
(ASGI, where async-native runs its hooks on the event loop and startproject
runs them through sync_to_async). The thread hops themselves are counted on
real servers in test_middleware_hops.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from types import ModuleType
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from conftest import REPO_ROOT, python_env
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from asyncbench.execute.groups import groups, logged_in
from asyncbench.execute.setups import SetupConfig
from asyncbench.model.endpoints import ArmSpec
from asyncbench.model.scenario import ScenarioError, parse
from bench_site.sessions import COOKIE_NAME, SESSION_KEY, USERNAME, cookie_header, seed_session
from bench_site.stacks import DEFAULT_STACK, MIDDLEWARE_STACKS, SESSION_STACKS
from locustfiles.request import RequestSpec

# --- settings ---------------------------------------------------------------------


def _settings_in_fresh_process(**env: str) -> subprocess.CompletedProcess[str]:
    # Settings are read from the environment once, at start-up.
    code = (
        "import django; django.setup(); from django.conf import settings; import json; "
        "print(json.dumps([settings.MIDDLEWARE, settings.SESSION_ENGINE]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=python_env(DJANGO_SETTINGS_MODULE="bench_site.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the callers read the exit code
    )


@pytest.mark.parametrize("stack", list(MIDDLEWARE_STACKS))
def test_bench_middleware_chooses_the_stack(stack: str) -> None:
    done = _settings_in_fresh_process(BENCH_MIDDLEWARE=stack)
    assert done.returncode == 0, done.stderr
    middleware, engine = json.loads(done.stdout)
    assert middleware == list(MIDDLEWARE_STACKS[stack])
    assert engine == "django.contrib.sessions.backends.db"


def test_sync_middleware_still_appends_to_any_stack() -> None:
    done = _settings_in_fresh_process(BENCH_MIDDLEWARE="startproject", BENCH_SYNC_MIDDLEWARE="1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0] == [
        *MIDDLEWARE_STACKS["startproject"],
        "bench_site.middleware.SyncOnlyMiddleware",
    ]


def test_an_unknown_stack_is_refused_naming_the_allowed_ones() -> None:
    done = _settings_in_fresh_process(BENCH_MIDDLEWARE="everything")
    assert done.returncode != 0
    assert "BENCH_MIDDLEWARE='everything': expected one of minimal, startproject, async-native" in done.stderr


def test_startproject_is_djangos_template() -> None:
    """The stack is the MIDDLEWARE of the installed Django's startproject template, in its order."""
    template = Path(django.__file__).parent / "conf" / "project_template" / "project_name" / "settings.py-tpl"
    block = re.search(r"^MIDDLEWARE = \[(.*?)\]", template.read_text(), re.S | re.M)
    assert block is not None
    assert tuple(re.findall(r"'([\w.]+)'", block.group(1))) == MIDDLEWARE_STACKS["startproject"]


def test_async_native_subclasses_django_one_for_one() -> None:
    """Same behaviour by construction: each async-native class is the
    startproject class at the same position, with its own async path."""
    pairs = zip(MIDDLEWARE_STACKS["async-native"], MIDDLEWARE_STACKS["startproject"], strict=True)
    for native_path, django_path in pairs:
        native, original = import_string(native_path), import_string(django_path)
        assert issubclass(native, original), native_path
        assert native.__acall__ is not MiddlewareMixin.__acall__, native_path
        assert native.sync_capable and native.async_capable, native_path


def _noop(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


async def _anoop(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def test_async_native_csrf_view_hook_is_a_coroutine_only_in_async_mode() -> None:
    """Django wraps a sync process_view in sync_to_async under ASGI; the
    async-native one is a coroutine function there and Django's own under WSGI."""
    csrf = import_string("bench_site.middleware.AsyncCsrfViewMiddleware")
    assert iscoroutinefunction(csrf(_anoop).process_view)
    assert not iscoroutinefunction(csrf(_noop).process_view)


# --- the scenario key ----------------------------------------------------------------


def _scenario(**setup: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "load": {"users": [4]},
        "setups": [{"name": "uvicorn", **setup}],
        "workloads": {"noio": {}},
    }


def test_setup_middleware_defaults_to_minimal_and_is_recorded_only_off_it() -> None:
    plain = parse(_scenario())
    assert plain.setups[0].middleware == DEFAULT_STACK
    # absent from the resolved scenario, so runs compare with baselines recorded before the key
    assert "middleware" not in plain.to_dict()["setups"][0]
    chosen = parse(_scenario(middleware="async-native"))
    assert chosen.setups[0].middleware == "async-native"
    assert chosen.to_dict()["setups"][0]["middleware"] == "async-native"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            {"middleware": "django"},
            "setups[0].middleware: unknown stack 'django'; allowed: minimal, startproject, async-native",
        ),
        ({"middleware": 1}, "setups[0].middleware: expected str, got int"),
    ],
)
def test_a_bad_middleware_is_refused_naming_the_key(setup: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(_scenario(**setup))
    assert message in str(caught.value)


def test_a_stack_is_refused_with_another_project() -> None:
    data = {
        "name": "t",
        "load": {"users": [4]},
        "app": {"pythonpath": "tests/example_app", "asgi": "exampleapp.asgi:application", "health": "/health/"},
        "setups": [{"name": "uvicorn", "middleware": "startproject"}],
        "endpoints": {"items": {"variants": {"sync": "/items/sync/", "async": "/items/async/"}}},
    }
    with pytest.raises(ScenarioError, match=r"setups\[0\]\.middleware: 'startproject' chooses a stack of bench_site"):
        parse(data)


def test_only_session_stacks_send_the_session_cookie() -> None:
    scenario = parse(
        {
            "name": "t",
            "load": {"users": [4]},
            "setups": [
                {"name": f"uvicorn-{stack}", "kind": "uvicorn", "middleware": stack} for stack in MIDDLEWARE_STACKS
            ],
            "workloads": {"noio": {}},
        }
    )
    sent = {arm.setup: arm.request.header_dict() for group in groups(scenario, [""]) for arm in group.arms}
    for stack in MIDDLEWARE_STACKS:
        expected = dict([cookie_header()]) if stack in SESSION_STACKS else {}
        assert sent[f"uvicorn-{stack}"] == expected, stack


def test_an_arm_that_sends_its_own_cookie_keeps_it() -> None:
    own = ArmSpec("sync", "/x/", RequestSpec(headers=(("cookie", "sessionid=mine"),)))
    assert logged_in(SetupConfig("u", "uvicorn", 1, 1, middleware="startproject"), own) == own


# --- the same answers from startproject and async-native -------------------------------


def _session_write_sync(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = 1
    return HttpResponse(b"written")


async def _session_write_async(request: HttpRequest) -> HttpResponse:
    await request.session.aset("visits", 1)
    return HttpResponse(b"written")


def _whoami_sync(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.get_username()})


async def _whoami_async(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": (await request.auser()).get_username()})


def _csrf_token(request: HttpRequest) -> HttpResponse:
    get_token(request)
    return HttpResponse(b"token issued")


def _message(request: HttpRequest) -> HttpResponse:
    messages.info(request, "saved")
    return HttpResponse(b"message queued")


def _post(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"accepted")


urlconf = ModuleType("middleware_stacks_urls")
urlconf.urlpatterns = [  # type: ignore[attr-defined]
    path("t/session-write/sync/", _session_write_sync),
    path("t/session-write/async/", _session_write_async),
    path("t/whoami/sync/", _whoami_sync),
    path("t/whoami/async/", _whoami_async),
    path("t/csrf/", _csrf_token),
    path("t/message/", _message),
    path("t/post/", _post),
    path("", include("bench_site.urls")),
]

# (method, path, cookie): the seeded session, a stale one, or none
REQUESTS: list[tuple[str, str, str | None]] = [
    ("GET", "/sync/noio/", SESSION_KEY),
    ("GET", "/async/noio/", SESSION_KEY),
    ("GET", "/async/noio/", None),
    ("GET", "/sync/noio/", "0" * 32),  # a session the database does not hold: its cookie is deleted
    ("GET", "/async/noio/", "0" * 32),
    ("GET", "/async/noio", SESSION_KEY),  # APPEND_SLASH: CommonMiddleware's redirect
    ("GET", "/t/whoami/sync/", SESSION_KEY),
    ("GET", "/t/whoami/async/", SESSION_KEY),
    ("GET", "/t/session-write/sync/", SESSION_KEY),
    ("GET", "/t/session-write/async/", SESSION_KEY),
    ("GET", "/t/csrf/", SESSION_KEY),
    ("GET", "/t/message/", SESSION_KEY),
    ("POST", "/t/post/", SESSION_KEY),  # no CSRF token: 403 from CsrfViewMiddleware
]

Answer = tuple[int, dict[str, str], dict[str, dict[str, str]], bytes]


def _cookies(response: HttpResponse) -> dict[str, dict[str, str]]:
    """Set-Cookie as name -> attributes; only what must differ is masked:
    `expires` (a clock time) and the CSRF token's value (random per request)."""
    out: dict[str, dict[str, str]] = {}
    jar: SimpleCookie = response.cookies
    for name, morsel in jar.items():
        attrs = {k: str(v) for k, v in morsel.items() if v != "" and k != "expires"}
        attrs["value"] = "<token>" if name == "csrftoken" and morsel.value else morsel.value
        attrs["expires set"] = str(bool(morsel["expires"]))
        out[name] = attrs
    return out


def _answer(response: HttpResponse) -> Answer:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, headers, _cookies(response), response.content


def _ask(stack: str, kind: str, method: str, url: str, cookie: str | None) -> Answer:
    with override_settings(MIDDLEWARE=list(MIDDLEWARE_STACKS[stack]), ROOT_URLCONF=urlconf):
        if kind == "wsgi":
            client: Client | AsyncClient = Client(enforce_csrf_checks=True)
        else:
            client = AsyncClient(enforce_csrf_checks=True)
        if cookie is not None:
            client.cookies[COOKIE_NAME] = cookie
        call: Callable[..., Any] = client.get if method == "GET" else client.post
        response = call(url) if kind == "wsgi" else async_to_sync(call)(url)
    return _answer(response)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_async_native_answers_as_startproject(backend: str, kind: str) -> None:
    seed_session()
    for method, url, cookie in REQUESTS:
        expected = _ask("startproject", kind, method, url, cookie)
        got = _ask("async-native", kind, method, url, cookie)
        assert got == expected, f"{method} {url} cookie={cookie!r} under {kind}"


def test_the_stacks_do_what_they_say(backend: str) -> None:
    """Not only equal: equal and doing the work (a wrong session, a lost
    header would be equal in both)."""
    seed_session()
    for stack in SESSION_STACKS:
        for kind in ("wsgi", "asgi"):
            for variant in ("sync", "async"):
                status, _, _, body = _ask(stack, kind, "GET", f"/t/whoami/{variant}/", SESSION_KEY)
                assert (status, json.loads(body)) == (200, {"user": USERNAME}), (stack, kind, variant)
            status, headers, cookies, _ = _ask(stack, kind, "GET", "/async/noio/", SESSION_KEY)
            assert status == 200 and headers["vary"] == "Cookie" and cookies == {}, (stack, kind)
            assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
            _, _, cookies, _ = _ask(stack, kind, "GET", "/async/noio/", "0" * 32)
            assert cookies[COOKIE_NAME]["value"] == "" and cookies[COOKIE_NAME]["max-age"] == "0", (stack, kind)
            _, _, cookies, _ = _ask(stack, kind, "GET", "/t/session-write/async/", SESSION_KEY)
            assert cookies[COOKIE_NAME]["value"] == SESSION_KEY and cookies[COOKIE_NAME]["max-age"] == "1209600"
            _, _, cookies, _ = _ask(stack, kind, "GET", "/t/csrf/", SESSION_KEY)
            assert cookies["csrftoken"]["value"] == "<token>"
            _, _, cookies, _ = _ask(stack, kind, "GET", "/t/message/", SESSION_KEY)
            assert "messages" in cookies
            assert _ask(stack, kind, "POST", "/t/post/", SESSION_KEY)[0] == 403
            assert _ask(stack, kind, "GET", "/async/noio", SESSION_KEY)[:2][0] == 301


@pytest.mark.parametrize("variant", ["sync", "async"])
def test_bodies_are_identical_across_stacks(backend: str, variant: str) -> None:
    seed_session()
    bodies = {
        (stack, kind): _ask(stack, kind, "GET", f"/{variant}/noio/", SESSION_KEY)[3]
        for stack in MIDDLEWARE_STACKS
        for kind in ("wsgi", "asgi")
    }
    assert len(set(bodies.values())) == 1, bodies
