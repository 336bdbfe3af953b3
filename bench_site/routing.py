"""WebSocket routes, built from the registry: `/<variant>/<workload>/` for
every websocket workload's consumer, and a refusal for any other path.

Imported by bench_site.asgi after Django is set up (consumers import Django).
"""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import URLPattern, path, re_path

from bench_site.registry import endpoints
from bench_site.workloads import consumers_by_workload
from bench_site.workloads.ws import Refuse


def build_websocket_urlpatterns() -> list[URLPattern]:
    consumers = consumers_by_workload()
    patterns = [
        path(
            ep.path.lstrip("/"),
            consumers[ep.workload][ep.variant].as_asgi(),  # type: ignore[attr-defined]
            name=f"{ep.variant}/{ep.workload}",
        )
        for ep in endpoints("websocket")
    ]
    patterns.append(re_path(r"", Refuse.as_asgi(), name="refuse"))
    return patterns


websocket_urlpatterns = build_websocket_urlpatterns()
websocket_application: Any = URLRouter(websocket_urlpatterns)
