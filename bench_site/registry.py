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
    # Where it can run at all: server interfaces ("wsgi", "asgi") and database
    # vendors (Django's connection.vendor; empty: any), each with why not
    # elsewhere (for the error). Elsewhere its views answer 501 and the
    # scenario validator refuses it, naming the key.
    interfaces: tuple[str, ...] = ("wsgi", "asgi")
    why_interfaces: str = ""
    databases: tuple[str, ...] = ()
    why_databases: str = ""
    # Not among a workload's default variants: a scenario (or --variants)
    # names it. For a variant that runs only somewhere, so that the same
    # `--workloads orm` measures the same arms on every database and setup.
    opt_in: bool = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("sync", "sync", "sync view", "-", "o"),
        Variant("sync-threads", "sync", "sync view, concurrent calls in a thread pool", (0, (6, 2, 1, 2)), "s"),
        Variant("async", "async", "async view (httpx.AsyncClient / async ORM API / asyncio)", "--", "^"),
        Variant("async-aiohttp", "async", "async view, aiohttp client", (0, (1, 1.5)), "D"),
        Variant("async-s2a", "async", "async view, sync ORM through sync_to_async", (0, (4, 1.5, 1, 1.5, 1, 1.5)), "v"),
        Variant(
            "async-native",
            "async",
            "async view, django-async-backend's native async PostgreSQL ORM (no thread hop)",
            (0, (2, 1, 2, 4)),
            "P",
            interfaces=("asgi",),
            why_interfaces="django-async-backend has no sync path, and its connection pool lives on one event "
            "loop, while a WSGI server runs an async view in a new event loop per request",
            databases=("postgresql",),
            why_databases="django-async-backend is a PostgreSQL backend (psycopg 3's AsyncConnection)",
            opt_in=True,
        ),
    )
}


def unavailable(variant: str, *, interface: str | None = None, database: str | None = None) -> str | None:
    """Why `variant` cannot run under `interface` ("wsgi"/"asgi") on `database`
    (a Django vendor: "sqlite", "postgresql", "mysql"), or None when it can.
    None for either argument skips that check."""
    v = VARIANTS[variant]
    if interface is not None and interface not in v.interfaces:
        needs = " or ".join(i.upper() for i in v.interfaces)
        return f"{variant} needs an {needs} server, not {interface.upper()}: {v.why_interfaces}"
    if database is not None and v.databases and database not in v.databases:
        return f"{variant} needs {' or '.join(v.databases)}, not {database}: {v.why_databases}"
    return None


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
    # Compare only under the setups where the numerator runs (async-native
    # runs under ASGI only: against the a-methods under the same servers, not
    # against a faster WSGI setup's).
    same_setups: bool = False


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
    # The workloads this one is the control for (json-noindex -> json and
    # json-keyindex), so the report can say what each difference buys.
    control_for: tuple[str, ...] = ()
    # Whether the workload talks to the upstream service.
    uses_upstream: bool = False
    uses_database: bool = False
    # Short name for sentences ("fan-out"); `title` is for headings.
    label: str = ""
    # Variant comparisons the verdict's notes make.
    contrasts: tuple[Contrast, ...] = ()
    # "http": Django views, `views` maps variant -> view. "websocket": Channels
    # consumers, `views` maps variant -> consumer class; they are routed by
    # bench_site.asgi (not urls.py), served by ASGI setups only, loaded by a
    # user that holds one connection and counts messages as requests.
    protocol: str = "http"

    @property
    def default_variants(self) -> tuple[str, ...]:
        """The variants a scenario gets when it names none: all but the opt-in ones."""
        return tuple(v for v in self.variants if not VARIANTS[v].opt_in)


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
# Measured only when async-native is asked for (PostgreSQL, ASGI); without it
# the comparison has no numerator and is left out.
_NATIVE_ORM = Contrast(
    "native async ORM, under the same ASGI servers",
    ("async-native",),
    ("async",),
    "django-async-backend",
    "Django's async ORM API (a-methods)",
    same_setups=True,
)

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
            "async-s2a: the same code through sync_to_async; async: Django's async ORM API; async-native "
            "(opt-in, PostgreSQL and ASGI only): django-async-backend's asyncio connection and pool.",
            ("sync", "async-s2a", "async", "async-native"),
            views="bench_site.workloads.orm:VIEWS",
            params=(Param("rows", 1, 500, "BENCH_ORM_ROWS"), Param("page", 1, 1_000_000, fixed_default=1)),
            uses_database=True,
            label="ORM",
            contrasts=(_ORM_API, _NATIVE_ORM),
        ),
        Workload(
            "json",
            "JSON containment query",
            "metadata__contains on a table with a GIN index (jsonb_path_ops) on PostgreSQL; on SQLite (two "
            "key lookups) and MariaDB/MySQL (JSON_CONTAINS) no index serves it: a full scan, like json-noindex.",
            ("sync", "async-s2a", "async", "async-native"),
            views="bench_site.workloads.jsonq:VIEWS",
            params=_JSON_PARAMS,
            uses_database=True,
            label="JSON query",
            contrasts=(_ORM_API, _NATIVE_ORM),
        ),
        Workload(
            "json-noindex",
            "JSON containment query, no index",
            "The same query on an identical table without any index on metadata: the control.",
            ("sync", "async-s2a", "async", "async-native"),
            views="bench_site.workloads.jsonq:NOINDEX_VIEWS",
            params=_JSON_PARAMS,
            control_for=("json", "json-keyindex"),
            uses_database=True,
            label="JSON query (no index)",
            contrasts=(_ORM_API, _NATIVE_ORM),
        ),
        Workload(
            "json-keyindex",
            "JSON key query, generated-column index",
            "The same question through STORED generated columns extracted from the two JSON keys, with a "
            "B-tree index on (color, vendor_country, id): the index SQLite, MariaDB/MySQL and PostgreSQL all have.",
            ("sync", "async-s2a", "async", "async-native"),
            views="bench_site.workloads.jsonq:KEYINDEX_VIEWS",
            params=_JSON_PARAMS,
            uses_database=True,
            label="JSON query (generated-column index)",
            contrasts=(_ORM_API, _NATIVE_ORM),
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
        Workload(
            "ws-echo",
            "WebSocket echo",
            "One held WebSocket connection per user; each message is answered with a small JSON echo "
            "(a digest computed on the server). sync: Channels' WebsocketConsumer (each message in a "
            "thread, each send hopped back to the loop); async: AsyncWebsocketConsumer.",
            ("sync", "async"),
            views="bench_site.workloads.ws:ECHO_CONSUMERS",
            label="WebSocket echo",
            protocol="websocket",
        ),
        Workload(
            "ws-broadcast",
            "WebSocket broadcast",
            "Every connection joins one group of the in-memory channel layer; each message is sent to the "
            "group, so every user receives every user's messages (a chat room). sync: WebsocketConsumer "
            "with async_to_sync(group_send); async: AsyncWebsocketConsumer awaiting it.",
            ("sync", "async"),
            views="bench_site.workloads.ws:BROADCAST_CONSUMERS",
            label="WebSocket broadcast",
            protocol="websocket",
        ),
    )
}

PROTOCOLS = ("http", "websocket")
# The workloads served by Django's URL patterns (urls.py, the body check over HTTP).
HTTP_WORKLOADS: dict[str, Workload] = {n: w for n, w in WORKLOADS.items() if w.protocol == "http"}


@dataclass(frozen=True)
class Endpoint:
    workload: str
    variant: str
    kind: str  # "sync" or "async": how the view is declared
    path: str
    protocol: str = "http"  # "http" or "websocket" (then `path` is a ws:// path)


def endpoint(workload: str, variant: str) -> Endpoint:
    if workload not in WORKLOADS:
        raise KeyError(f"unknown workload {workload!r}; allowed: {', '.join(WORKLOADS)}")
    if variant not in WORKLOADS[workload].variants:
        raise KeyError(
            f"workload {workload!r} has no variant {variant!r}; allowed: {', '.join(WORKLOADS[workload].variants)}"
        )
    w = WORKLOADS[workload]
    return Endpoint(workload, variant, VARIANTS[variant].kind, f"/{variant}/{workload}/", w.protocol)


def endpoints(protocol: str = "http") -> list[Endpoint]:
    """Every endpoint of one protocol: HTTP by default (the URL patterns'),
    "websocket" for the Channels consumers bench_site.asgi routes."""
    if protocol not in PROTOCOLS:
        raise KeyError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    return [endpoint(w.name, v) for w in WORKLOADS.values() if w.protocol == protocol for v in w.variants]
