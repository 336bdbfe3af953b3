"""One module per workload, each holding its sync view and async twin(s).

`VIEWS_BY_WORKLOAD` maps registry workload -> variant -> view, imported from
where each registry entry's `views` says; urls.py builds the URL patterns from
the registry and this map, and a test checks that every registry endpoint has
a view and every view an endpoint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from bench_site.registry import WORKLOADS, Workload

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
    name: _import_views(workload) for name, workload in WORKLOADS.items()
}
