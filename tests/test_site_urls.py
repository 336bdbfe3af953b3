"""The URL scheme is the registry's, exactly; errors are JSON, never HTML or 500."""

from __future__ import annotations

import importlib
import inspect
import json
from types import ModuleType

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import URLPattern, get_resolver, path, resolve

from bench_site import views
from bench_site.registry import HTTP_WORKLOADS, VARIANTS, WORKLOADS, endpoints
from bench_site.workloads import VIEWS_BY_WORKLOAD


def test_every_registry_endpoint_resolves_to_a_view_of_its_kind() -> None:
    for ep in endpoints():
        match = resolve(ep.path)
        assert match.url_name == f"{ep.variant}/{ep.workload}"
        assert iscoroutinefunction(match.func) == (ep.kind == "async"), ep.path


def test_nothing_else_under_the_variant_prefixes() -> None:
    registry_paths = {ep.path for ep in endpoints()}
    served: set[str] = set()
    for pattern in get_resolver().url_patterns:
        assert isinstance(pattern, URLPattern)
        route = "/" + str(pattern.pattern)
        if route.split("/")[1] in VARIANTS:
            served.add(route)
    assert served == registry_paths
    assert {str(x.pattern) for x in get_resolver().url_patterns} == {
        "health",
        "workloads/",
        *(p.lstrip("/") for p in registry_paths),
    }


def test_views_map_matches_registry() -> None:
    # WebSocket workloads name consumers, routed by bench_site.routing (tests/test_ws.py)
    assert set(VIEWS_BY_WORKLOAD) == set(HTTP_WORKLOADS)
    for name, workload in HTTP_WORKLOADS.items():
        assert set(VIEWS_BY_WORKLOAD[name]) == set(workload.variants), name


def test_views_take_exactly_the_registry_params() -> None:
    # The dispatcher passes every registry parameter as a keyword argument, so
    # a view's keyword-only arguments are its workload's parameters, no more.
    for name, workload in HTTP_WORKLOADS.items():
        for variant, view in VIEWS_BY_WORKLOAD[name].items():
            signature = inspect.signature(view).parameters.values()
            keywords = {p.name for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY}
            assert keywords == {p.name for p in workload.params}, (name, variant)


def test_views_come_from_where_the_registry_says() -> None:
    for name, workload in HTTP_WORKLOADS.items():
        module_name, _, attribute = workload.views.partition(":")
        assert module_name.startswith("bench_site.workloads."), name
        module = importlib.import_module(module_name)
        assert VIEWS_BY_WORKLOAD[name] is getattr(module, attribute), name


@pytest.mark.parametrize("client_class", [Client, AsyncClient])
def test_health_without_database(client_class: type[Client] | type[AsyncClient]) -> None:
    # No `db` fixture: pytest-django fails any database access in this test.
    client = client_class()
    response = async_to_sync(client.get)("/health") if isinstance(client, AsyncClient) else client.get("/health")
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert json.loads(response.content) == {"status": "ok"}


def test_workloads_dump() -> None:
    response = Client().get("/workloads/")
    assert response.status_code == 200
    data = json.loads(response.content)
    assert [w["name"] for w in data["workloads"]] == list(WORKLOADS)
    assert set(data["variants"]) == set(VARIANTS)
    dumped = {(e["path"], e["protocol"]) for w in data["workloads"] for e in w["endpoints"]}
    assert dumped == {(ep.path, ep.protocol) for protocol in ("http", "websocket") for ep in endpoints(protocol)}
    assert {ep.workload for ep in endpoints("websocket")} == {"ws-echo", "ws-broadcast"}


@pytest.mark.parametrize(
    "url",
    ["/nope", "/sync/", "/sync/unknown/", "/async-s2a/noio/", "/sync-threads/orm/", "/health/x", "/%ff/"],
)
def test_unknown_path_is_json_404(url: str) -> None:
    response = Client().get(url)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert json.loads(response.content)["error"] == "not found"


def test_missing_slash_redirects_rather_than_fails() -> None:
    # CommonMiddleware's APPEND_SLASH: a 301 to the registry path, not an error.
    response = Client().get("/sync/noio")
    assert (response.status_code, response["Location"]) == (301, "/sync/noio/")


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
@pytest.mark.parametrize("path_", ["/sync/noio/", "/async/noio/"])
def test_unsafe_methods_are_json_405(method: str, path_: str) -> None:
    client = Client()
    response = getattr(client, method)(path_)
    assert (response.status_code, response["Content-Type"]) == (405, "application/json")
    assert response["Allow"] == "GET, HEAD"


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


def test_server_error_is_json() -> None:
    # A module object as ROOT_URLCONF: Django accepts one, no file needed.
    urlconf = ModuleType("boom_urls")
    urlconf.urlpatterns = [path("boom/", _boom)]  # type: ignore[attr-defined]
    urlconf.handler500 = "bench_site.views.server_error"  # type: ignore[attr-defined]
    with override_settings(ROOT_URLCONF=urlconf):
        client = Client(raise_request_exception=False)
        response = client.get("/boom/")
    assert (response.status_code, response["Content-Type"]) == (500, "application/json")
    assert json.loads(response.content) == {"error": "internal server error"}


def test_handlers_are_the_json_views() -> None:
    from bench_site import urls

    assert urls.handler404 == "bench_site.views.not_found"
    assert urls.handler500 == "bench_site.views.server_error"
    assert views.not_found.__name__ == "not_found"
