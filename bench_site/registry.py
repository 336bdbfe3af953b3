"""The machine-readable list of workloads and their paired views.

This module is pure data: it imports nothing from Django, so the runner, the
scenario validator and the report can enumerate the matrix without configuring
a site. Everything about a workload is declared here once: its variants, its
query parameters with their bounds and defaults (the site's 400s and the
scenario validator both read them), and where its views live. `urls.py`
imports the views named here and a test checks that every endpoint resolves to
a view, so a new workload is one module under `bench_site/workloads/` plus one
entry here.

URL scheme: ``/<variant>/<workload>/`` (for example ``/sync/noio/``,
``/async/noio/``, ``/async-aiohttp/fanout/``). Twins of one workload return
byte-identical bodies; they differ only in how they wait.
"""

from __future__ import annotations

from dataclasses import dataclass

LineStyle = str | tuple[float, tuple[float, ...]]  # a matplotlib line style


@dataclass(frozen=True)
class Variant:
    """How a view waits. `kind` is what the view is declared as (def or async def)."""

    name: str
    kind: str  # "sync" or "async"
    title: str
    # How charts draw it: sync variants solid-ish, async dashed-ish.
    line: LineStyle = "-"
    marker: str = "o"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("sync", "sync", "sync view", "-", "o"),
        Variant("sync-threads", "sync", "sync view, concurrent calls in a thread pool", (0, (6, 2, 1, 2)), "s"),
        Variant("async", "async", "async view (httpx.AsyncClient / async ORM API / asyncio)", "--", "^"),
        Variant("async-aiohttp", "async", "async view, aiohttp client", (0, (1, 1.5)), "D"),
        Variant("async-s2a", "async", "async view, sync ORM through sync_to_async", (0, (4, 1.5, 1, 1.5, 1, 1.5)), "v"),
    )
}


@dataclass(frozen=True)
class Contrast:
    """A comparison between variants that a workload's verdict notes make.

    "alternative": two ways of writing the async view (httpx vs aiohttp, the
    async ORM API vs sync_to_async); the note also says whether the verdict
    against sync depends on the choice. "concurrency": the best async variant
    against overlapping the same calls in threads, so "async" is not confused
    with "concurrent".
    """

    topic: str
    num: tuple[str, ...]
    den: tuple[str, ...]
    num_name: str
    den_name: str
    kind: str = "alternative"  # or "concurrency"


@dataclass(frozen=True)
class Param:
    """An integer query parameter of a workload's views.

    The default is the Django setting `default_setting` names (so a server's
    environment can change it), else `fixed_default`; with neither the
    parameter is optional and an absent one reaches the view as None.
    """

    name: str
    minimum: int
    maximum: int
    default_setting: str | None = None
    fixed_default: int | None = None

    def allowed(self) -> dict[str, int]:
        return {"min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    variants: tuple[str, ...]
    # "module:ATTRIBUTE", a mapping of variant -> view; a string so that this
    # module stays free of Django.
    views: str
    # The query parameters every variant's view takes, as keyword arguments.
    params: tuple[Param, ...] = ()
    # Another workload this one is the control for (json-noindex -> json), so
    # the report can say what the difference buys.
    control_for: str | None = None
    # Whether the workload talks to the upstream service.
    uses_upstream: bool = False
    uses_database: bool = False
    # Short name for sentences ("fan-out"); `title` is for headings.
    label: str = ""
    # Variant comparisons the verdict's notes make.
    contrasts: tuple[Contrast, ...] = ()


_HTTP_CLIENT = Contrast("HTTP client", ("async-aiohttp",), ("async",), "aiohttp", "httpx")
_CONCURRENCY = Contrast(
    "concurrency",
    ("async", "async-aiohttp"),
    ("sync-threads",),
    "async",
    "sync-threads (the calls in a thread pool)",
    kind="concurrency",
)
_ORM_API = Contrast("ORM API", ("async",), ("async-s2a",), "the async ORM API", "sync_to_async")

_JSON_PARAMS = (Param("rows", 1, 500, "BENCH_JSON_ROWS"),)

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "noio",
            "no I/O",
            "A small JSON response, nothing awaited: the pure cost of the request path.",
            ("sync", "async"),
            views="bench_site.workloads.noio:VIEWS",
            label="no-I/O",
        ),
        Workload(
            "fanout",
            "fan-out HTTP",
            "N calls to the upstream service (default 3). sync: httpx.Client in sequence; "
            "sync-threads: httpx.Client in a thread pool; async: httpx.AsyncClient with "
            "asyncio.gather; async-aiohttp: aiohttp with asyncio.gather.",
            ("sync", "sync-threads", "async", "async-aiohttp"),
            views="bench_site.workloads.fanout:VIEWS",
            params=(
                Param("calls", 1, 100, "BENCH_FANOUT_CALLS"),
                # Optional: absent means the upstream's own default delay applies.
                Param("delay_ms", 0, 10_000),
            ),
            uses_upstream=True,
            label="fan-out",
            contrasts=(_HTTP_CLIENT, _CONCURRENCY),
        ),
        Workload(
            "orm",
            "ORM reads",
            "A page of rows (default 20) of a model with a JSONField. sync: the ORM; "
            "async-s2a: the same code through sync_to_async; async: Django's async ORM API.",
            ("sync", "async-s2a", "async"),
            views="bench_site.workloads.orm:VIEWS",
            params=(Param("rows", 1, 500, "BENCH_ORM_ROWS"), Param("page", 1, 1_000_000, fixed_default=1)),
            uses_database=True,
            label="ORM",
            contrasts=(_ORM_API,),
        ),
        Workload(
            "json",
            "JSON containment query",
            "metadata__contains on an indexed table (GIN jsonb_path_ops on PostgreSQL; key lookups on SQLite).",
            ("sync", "async-s2a", "async"),
            views="bench_site.workloads.jsonq:VIEWS",
            params=_JSON_PARAMS,
            uses_database=True,
            label="JSON query",
            contrasts=(_ORM_API,),
        ),
        Workload(
            "json-noindex",
            "JSON containment query, no index",
            "The same query on an identical table without the GIN index.",
            ("sync", "async-s2a", "async"),
            views="bench_site.workloads.jsonq:NOINDEX_VIEWS",
            params=_JSON_PARAMS,
            control_for="json",
            uses_database=True,
            label="JSON query (no index)",
            contrasts=(_ORM_API,),
        ),
        Workload(
            "cpu",
            "CPU-bound",
            "Fixed pure-Python work (iterated hashing): async cannot help CPU work.",
            ("sync", "async"),
            views="bench_site.workloads.cpu:VIEWS",
            params=(Param("rounds", 1, 1_000_000, "BENCH_CPU_ROUNDS"),),
            label="CPU-bound",
        ),
        Workload(
            "wait",
            "wait",
            "time.sleep vs asyncio.sleep of a configured duration (long-poll style).",
            ("sync", "async"),
            views="bench_site.workloads.wait:VIEWS",
            params=(Param("ms", 0, 10_000, "BENCH_WAIT_MS"),),
            label="wait",
        ),
        Workload(
            "stream",
            "streaming",
            "StreamingHttpResponse over a sync iterator vs an async iterator.",
            ("sync", "async"),
            views="bench_site.workloads.stream:VIEWS",
            params=(Param("chunks", 1, 10_000, "BENCH_STREAM_CHUNKS"),),
            label="streaming",
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
            f"workload {workload!r} has no variant {variant!r}; allowed: {', '.join(WORKLOADS[workload].variants)}"
        )
    return Endpoint(workload, variant, VARIANTS[variant].kind, f"/{variant}/{workload}/")


def endpoints() -> list[Endpoint]:
    return [endpoint(w.name, v) for w in WORKLOADS.values() for v in w.variants]
