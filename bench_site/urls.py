"""URL patterns, built from the registry: `/<variant>/<workload>/` for every
registry endpoint and nothing else under those prefixes, plus /health and
/workloads/. Every measured view goes through `dispatch.measured_view`."""

from __future__ import annotations

from django.urls import URLPattern, path

from bench_site import views
from bench_site.dispatch import measured_view
from bench_site.injection import Injection, injection_from_settings
from bench_site.registry import endpoints
from bench_site.workloads import VIEWS_BY_WORKLOAD


def build_urlpatterns(injection: Injection) -> list[URLPattern]:
    patterns = [
        path("health", views.health, name="health"),
        path("workloads/", views.workloads, name="workloads"),
    ]
    for ep in endpoints():
        view = VIEWS_BY_WORKLOAD[ep.workload][ep.variant]
        patterns.append(
            path(
                ep.path.lstrip("/"),
                measured_view(ep, view, injection),
                name=f"{ep.variant}/{ep.workload}",
            )
        )
    return patterns


urlpatterns = build_urlpatterns(injection_from_settings())

handler404 = "bench_site.views.not_found"
handler500 = "bench_site.views.server_error"
