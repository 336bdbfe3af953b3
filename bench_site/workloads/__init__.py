"""One module per workload, each holding its sync view and async twin(s).

`VIEWS_BY_WORKLOAD` maps registry workload -> variant -> view, imported from
where each registry entry's `views` says; urls.py builds the URL patterns from
the registry and this map, and a test checks that every registry endpoint has
a view and every view an endpoint. WebSocket workloads name Channels consumers
instead (`consumers_by_workload`), routed by bench_site.routing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from bench_site.registry import HTTP_WORKLOADS, WORKLOADS, Workload

View = Callable[..., Any]


def _import_views(workload: Workload) -> Mapping[str, View]:
    module_name, _, attribute = workload.views.partition(":")
    views = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(views, Mapping):
        raise ImproperlyConfigured(
            f"registry workload {workload.name!r}: views={workload.views!r} does not name a mapping of variant -> view"
        )
    return views


VIEWS_BY_WORKLOAD: Mapping[str, Mapping[str, View]] = {
    name: _import_views(workload) for name, workload in HTTP_WORKLOADS.items()
}


def consumers_by_workload() -> Mapping[str, Mapping[str, View]]:
    """WebSocket workload -> variant -> Channels consumer class (bench_site.routing).

    A function, not a module constant: importing Channels' consumers is for
    the ASGI entry point, not for every import of the views."""
    return {name: _import_views(w) for name, w in WORKLOADS.items() if w.protocol == "websocket"}
