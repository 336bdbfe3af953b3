"""The machine-readable list of workloads and their paired views.

This module is pure data: it imports nothing from Django, so the runner, the
scenario validator and the report can enumerate the matrix without configuring
a site. `bench_site/urls.py` builds its URL patterns from it and a test checks
that every entry here resolves to a view, so the two cannot drift apart.

URL scheme: ``/<variant>/<workload>/`` (for example ``/sync/noio/``,
``/async/noio/``, ``/async-aiohttp/fanout/``). Twins of one workload return
byte-identical bodies; they differ only in how they wait.
"""

from __future__ import annotations

from dataclasses import dataclass

# How a variant waits. `kind` is what the view is declared as (def or async def).
VARIANTS: dict[str, dict[str, str]] = {
    "sync": {"kind": "sync", "title": "sync view"},
    "sync-threads": {
        "kind": "sync",
        "title": "sync view, concurrent calls in a thread pool",
    },
    "async": {
        "kind": "async",
        "title": "async view (httpx.AsyncClient / async ORM API / asyncio)",
    },
    "async-aiohttp": {"kind": "async", "title": "async view, aiohttp client"},
    "async-s2a": {"kind": "async", "title": "async view, sync ORM through sync_to_async"},
}


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    variants: tuple[str, ...]
    # Query parameters the views accept (all integers), with their defaults as
    # documented; the site's settings hold the effective defaults.
    params: tuple[str, ...] = ()
    # Another workload this one is the control for (json-noindex -> json), so
    # the report can say what the difference buys.
    control_for: str | None = None
    # Whether the workload talks to the upstream service.
    uses_upstream: bool = False
    uses_database: bool = False


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "noio",
            "no I/O",
            "A small JSON response, nothing awaited: the pure cost of the request path.",
            ("sync", "async"),
        ),
        Workload(
            "fanout",
            "fan-out HTTP",
            "N calls to the upstream service (default 3). sync: httpx.Client in sequence; "
            "sync-threads: httpx.Client in a thread pool; async: httpx.AsyncClient with "
            "asyncio.gather; async-aiohttp: aiohttp with asyncio.gather.",
            ("sync", "sync-threads", "async", "async-aiohttp"),
            params=("calls", "delay_ms"),
            uses_upstream=True,
        ),
        Workload(
            "orm",
            "ORM reads",
            "A page of rows (default 20) of a model with a JSONField. sync: the ORM; "
            "async-s2a: the same code through sync_to_async; async: Django's async ORM API.",
            ("sync", "async-s2a", "async"),
            params=("rows", "page"),
            uses_database=True,
        ),
        Workload(
            "json",
            "JSON containment query",
            "metadata__contains on an indexed table (GIN jsonb_path_ops on PostgreSQL; "
            "key lookups on SQLite).",
            ("sync", "async-s2a", "async"),
            params=("rows",),
            uses_database=True,
        ),
        Workload(
            "json-noindex",
            "JSON containment query, no index",
            "The same query on an identical table without the GIN index.",
            ("sync", "async-s2a", "async"),
            params=("rows",),
            control_for="json",
            uses_database=True,
        ),
        Workload(
            "cpu",
            "CPU-bound",
            "Fixed pure-Python work (iterated hashing): async cannot help CPU work.",
            ("sync", "async"),
            params=("rounds",),
        ),
        Workload(
            "wait",
            "wait",
            "time.sleep vs asyncio.sleep of a configured duration (long-poll style).",
            ("sync", "async"),
            params=("ms",),
        ),
        Workload(
            "stream",
            "streaming",
            "StreamingHttpResponse over a sync iterator vs an async iterator.",
            ("sync", "async"),
            params=("chunks",),
        ),
    )
}


@dataclass(frozen=True)
class Endpoint:
    workload: str
    variant: str
    kind: str  # "sync" or "async": how the view is declared
    path: str


def endpoint(workload: str, variant: str) -> Endpoint:
    if workload not in WORKLOADS:
        raise KeyError(f"unknown workload {workload!r}; allowed: {', '.join(WORKLOADS)}")
    if variant not in WORKLOADS[workload].variants:
        raise KeyError(
            f"workload {workload!r} has no variant {variant!r}; "
            f"allowed: {', '.join(WORKLOADS[workload].variants)}"
        )
    return Endpoint(workload, variant, VARIANTS[variant]["kind"], f"/{variant}/{workload}/")


def endpoints() -> list[Endpoint]:
    return [endpoint(w.name, v) for w in WORKLOADS.values() for v in w.variants]
