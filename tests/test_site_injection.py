"""Fault injection: off by default, applied once per request to the chosen
workloads, the same in sync and async twins."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import ModuleType

import pytest
from asgiref.sync import async_to_sync
from conftest import REPO_ROOT, python_env
from django.test import AsyncClient, Client, override_settings
from pytest_django.fixtures import Settings as SettingsWrapper

from bench_site import injection as injection_module
from bench_site.injection import Injection, burn_cpu_us, injection_from_settings
from bench_site.registry import Endpoint, endpoints
from bench_site.urls import build_urlpatterns

# Workloads that need neither the database nor the upstream.
PLAIN = ("noio", "cpu", "wait", "stream")


class BurnCounter:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, microseconds: int) -> None:
        self.calls.append(microseconds)


def _serve_with(injection: Injection) -> ModuleType:
    urlconf = ModuleType("injected_urls")
    urlconf.urlpatterns = build_urlpatterns(injection)  # type: ignore[attr-defined]
    return urlconf


def _get(path: str) -> int:
    if path.startswith("/async"):
        return int(async_to_sync(AsyncClient().get)(path).status_code)
    return int(Client().get(path).status_code)


def test_off_by_default() -> None:
    assert injection_from_settings() == Injection()
    assert not Injection().active


def test_from_settings(settings: SettingsWrapper) -> None:
    settings.BENCH_INJECT_CPU_US = 500
    settings.BENCH_INJECT_DELAY_MS = 2
    settings.BENCH_INJECT_WORKLOADS = ("noio", "cpu")
    assert injection_from_settings() == Injection(500, 2, frozenset({"noio", "cpu"}))


def test_read_from_environment_at_start_up() -> None:
    code = (
        "import django, json; django.setup();"
        "from bench_site.injection import injection_from_settings as f; i = f();"
        "print(json.dumps([i.cpu_us, i.delay_ms, sorted(i.workloads)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=python_env(
            DJANGO_SETTINGS_MODULE="bench_site.settings",
            BENCH_INJECT_CPU_US="250",
            BENCH_INJECT_DELAY_MS="3",
            BENCH_INJECT_WORKLOADS=" noio, orm ,",
        ),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == [250, 3, ["noio", "orm"]]


@pytest.mark.parametrize("ep", [e for e in endpoints() if e.workload in PLAIN], ids=lambda e: e.path)
def test_cpu_injection_once_per_request_in_every_twin(monkeypatch: pytest.MonkeyPatch, ep: Endpoint) -> None:
    counter = BurnCounter()
    monkeypatch.setattr(injection_module, "burn_cpu_us", counter)
    with override_settings(ROOT_URLCONF=_serve_with(Injection(cpu_us=1234))):
        assert _get(ep.path + ("?ms=0" if ep.workload == "wait" else "")) == 200
    assert counter.calls == [1234]


def test_workload_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = BurnCounter()
    monkeypatch.setattr(injection_module, "burn_cpu_us", counter)
    with override_settings(ROOT_URLCONF=_serve_with(Injection(cpu_us=10, workloads=frozenset({"cpu"})))):
        for path in ("/sync/noio/", "/async/noio/", "/sync/cpu/", "/async/cpu/", "/health", "/workloads/"):
            assert _get(path) == 200
    assert counter.calls == [10, 10]


def test_no_injection_on_rejected_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = BurnCounter()
    monkeypatch.setattr(injection_module, "burn_cpu_us", counter)
    with override_settings(ROOT_URLCONF=_serve_with(Injection(cpu_us=10))):
        assert _get("/sync/cpu/?rounds=x") == 400
    assert counter.calls == []


def test_delay_injection_uses_the_twins_own_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[tuple[str, float]] = []

    async def fake_async_sleep(seconds: float) -> None:
        slept.append(("asyncio", seconds))

    monkeypatch.setattr(injection_module.time, "sleep", lambda s: slept.append(("time", s)))
    monkeypatch.setattr(injection_module.asyncio, "sleep", fake_async_sleep)
    with override_settings(ROOT_URLCONF=_serve_with(Injection(delay_ms=25))):
        assert _get("/sync/noio/") == 200
        assert _get("/async/noio/") == 200
    assert slept == [("time", 0.025), ("asyncio", 0.025)]


def test_burn_spends_at_least_the_requested_cpu() -> None:
    # Process CPU, not wall clock, and a floor, not a ceiling: cannot flake.
    before = time.process_time()
    burn_cpu_us(30_000)
    assert time.process_time() - before >= 0.03
