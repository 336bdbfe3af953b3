"""The default middleware stack is async-capable; the switch adds a sync-only one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync
from conftest import REPO_ROOT, python_env
from django.conf import settings
from django.test import AsyncClient, Client, override_settings
from django.utils.module_loading import import_string

from bench_site.middleware import SyncOnlyMiddleware


def _middleware_in_fresh_process(**env: str) -> list[str]:
    # Settings are read from the environment once, at start-up: check them in a
    # new interpreter rather than reloading modules in this one.
    code = (
        "import django; django.setup(); from django.conf import settings; import json; "
        "print(json.dumps(settings.MIDDLEWARE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=python_env(DJANGO_SETTINGS_MODULE="bench_site.settings", **env),
        capture_output=True,
        check=True,
        timeout=60,
    )
    result: list[str] = json.loads(out.stdout)
    return result


def test_default_middleware_all_async_capable() -> None:
    assert settings.MIDDLEWARE, "expected a realistic, non-empty stack"
    for dotted in settings.MIDDLEWARE:
        middleware = import_string(dotted)
        assert getattr(middleware, "async_capable", False) is True, dotted
        assert getattr(middleware, "sync_capable", True) is True, dotted


def test_switch_appends_one_sync_only_middleware() -> None:
    default = _middleware_in_fresh_process(BENCH_SYNC_MIDDLEWARE="0")
    switched = _middleware_in_fresh_process(BENCH_SYNC_MIDDLEWARE="1")
    assert switched == [*default, "bench_site.middleware.SyncOnlyMiddleware"]
    assert SyncOnlyMiddleware.async_capable is False
    assert SyncOnlyMiddleware.sync_capable is True


@pytest.mark.parametrize("path", ["/sync/noio/", "/async/noio/"])
def test_sync_only_middleware_serves_both_kinds(path: str) -> None:
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "bench_site.middleware.SyncOnlyMiddleware"]):
        sync_response = Client().get(path)
        async_response = async_to_sync(AsyncClient().get)(path)
    for response in (sync_response, async_response):
        assert response.status_code == 200
        assert response["X-Bench-Sync-Middleware"] == "1"
    assert sync_response.content == async_response.content
