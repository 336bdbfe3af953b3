"""One module per workload, each holding its sync view and async twin(s).

`VIEWS_BY_WORKLOAD` maps registry workload -> variant -> view; urls.py builds
the URL patterns from the registry and this map, and a test checks that every
registry endpoint has a view and every view an endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench_site.workloads import cpu, fanout, jsonq, noio, orm, stream, wait

VIEWS_BY_WORKLOAD: Mapping[str, Mapping[str, Callable[..., Any]]] = {
    "noio": noio.VIEWS,
    "fanout": fanout.VIEWS,
    "orm": orm.VIEWS,
    "json": jsonq.VIEWS,
    "json-noindex": jsonq.NOINDEX_VIEWS,
    "cpu": cpu.VIEWS,
    "wait": wait.VIEWS,
    "stream": stream.VIEWS,
}
