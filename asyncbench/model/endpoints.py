"""A scenario's own view pairs: `[endpoints.<name>]`, and the project that serves them, `[app]`.

An endpoint is a workload of any Django project: a path per variant (a sync
view and its async twin, or more), one request (method, headers, body, the
status that counts as an answer), and whether the twins must answer
byte-identical bodies. Everything downstream treats it as a workload whose
arms are setup x variant; the `Catalog` answers, for built-in workloads
(bench_site.registry) and endpoints alike, what an arm's kind, path and
request are. The catalog is part of the scenario as recorded in results.json
(`scenario_resolved["endpoints"]`), so a report or a gate re-renders without
the TOML.

    [app]                                    # optional: the runner's setups serve this project
    pythonpath = "tests/example_app"         # prepended to PYTHONPATH; relative: to the project root
    settings = "exampleapp.settings"         # DJANGO_SETTINGS_MODULE
    wsgi = "exampleapp.wsgi:application"     # for WSGI setups
    asgi = "exampleapp.asgi:application"     # for ASGI setups
    health = "/health/"                      # answers 200 fast: readiness and the drain between slices

    [endpoints.items]
    variants = { sync = "/items/", async = "/async/items/" }
    [endpoints.echo]
    method = "POST"
    json = { name = "widget", sizes = [1, 2, 3] }
    status = 201
    variants = { sync = "/echo/", async = "/async/echo/", v2 = { path = "/v2/echo/", kind = "async" } }

A variant named like a built-in one (sync, sync-threads, async, async-aiohttp,
async-s2a) takes that one's kind; any other name gives it: `{ path, kind }`.
One variant name has one kind in a scenario, so legends and styles agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncbench.model.scenario_keys import ScenarioError, check_keys, int_list
from bench_site.registry import VARIANTS, WORKLOADS, endpoint
from locustfiles.request import BODYLESS, METHODS, RequestSpec

KINDS = ("sync", "async")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

ENDPOINT_KEYS: Mapping[str, type] = {
    "variants": dict,
    "method": str,
    "headers": dict,
    "body": str,
    "json": dict,
    "status": int,
    "identical_bodies": bool,
    "users": list,
}
VARIANT_KEYS: Mapping[str, type] = {"path": str, "kind": str}
APP_KEYS: Mapping[str, type] = {"pythonpath": str, "settings": str, "wsgi": str, "asgi": str, "health": str}
EXAMPLE_VARIANT = '{ path = "/v2/items/", kind = "async" }'
APP_MODULE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class EndpointVariant:
    name: str
    kind: str  # "sync" or "async": how the view is declared
    path: str  # relative to the server (or the --target URL), query string allowed


@dataclass(frozen=True)
class Endpoint:
    """One `[endpoints.<name>]`: a workload whose views are any project's."""

    name: str
    variants: tuple[EndpointVariant, ...]
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # what is sent: the `body` given, or the `json` table serialised
    json: dict[str, Any] | None = None  # as given, for the record
    status: int = 200
    identical_bodies: bool = True

    def variant(self, name: str) -> EndpointVariant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"endpoint {self.name!r} has no variant {name!r}; allowed: {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def request(self) -> RequestSpec:
        return RequestSpec(self.method, tuple(self.headers.items()), self.body.encode("utf-8"), self.status)


@dataclass(frozen=True)
class AppConfig:
    """`[app]`: the Django project the runner's setups serve instead of bench_site."""

    pythonpath: str = ""
    settings: str = ""
    wsgi: str = ""
    asgi: str = ""
    health: str = "/health"

    def module(self, interface: str) -> str:
        return self.wsgi if interface == "wsgi" else self.asgi


@dataclass(frozen=True)
class ArmSpec:
    """What the runner needs of one workload x variant: how it is declared, where it is, how it is asked."""

    kind: str
    path: str
    request: RequestSpec = field(default_factory=RequestSpec)
    identical_bodies: bool = True
    # "websocket": a Channels consumer (bench_site's ws-* workloads), loaded by
    # locustfiles/ws.py and checked by a message rather than a GET
    protocol: str = "http"


@dataclass(frozen=True)
class Catalog:
    """Built-in workloads (bench_site.registry) and a scenario's endpoints, looked up alike."""

    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)

    def arm(self, workload: str, variant: str) -> ArmSpec:
        own = self.endpoints.get(workload)
        if own is None:
            ep = endpoint(workload, variant)
            return ArmSpec(ep.kind, ep.path, protocol=ep.protocol)
        v = own.variant(variant)
        return ArmSpec(v.kind, v.path, own.request(), own.identical_bodies)

    def kind(self, workload: str, variant: str) -> str:
        return self.arm(workload, variant).kind

    @classmethod
    def from_resolved(cls, resolved: Mapping[str, Any] | None) -> Catalog:
        """The catalog a run recorded (results.json's scenario_resolved)."""
        found = (resolved or {}).get("endpoints") or {}
        out: dict[str, Endpoint] = {}
        for name, d in found.items():
            fields_ = {k: v for k, v in d.items() if k != "variants"}
            variants = tuple(EndpointVariant(**v) for v in d.get("variants", ()))
            out[name] = Endpoint(**{**fields_, "variants": variants})
        return cls(out)


# ------------------------------------------------------------------ validation


def parse_endpoints(section: Mapping[str, Any]) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    kinds: dict[str, tuple[str, str]] = {}  # variant -> (kind, where it was declared)
    for name, e in section.items():
        where = f"endpoints.{name}"
        if not NAME.fullmatch(name):
            raise ScenarioError(f"{where}: a name of letters, digits, '.', '_' and '-' (it names charts and files)")
        if name in WORKLOADS:
            raise ScenarioError(
                f"{where}: {name!r} is a built-in workload; name the endpoint otherwise "
                f"(built-in: {', '.join(WORKLOADS)})"
            )
        if not isinstance(e, dict):
            raise ScenarioError(f"{where}: expected a table, got {e!r}")
        check_keys(where, e, ENDPOINT_KEYS)
        ep = _endpoint(where, name, e)
        for v in ep.variants:
            seen = kinds.setdefault(v.name, (v.kind, f"{where}.variants.{v.name}"))
            if seen[0] != v.kind:
                raise ScenarioError(
                    f"{where}.variants.{v.name}: kind {v.kind!r}, but {seen[1]} says {seen[0]!r}; "
                    "a variant name has one kind in a scenario"
                )
        out.append(ep)
    return tuple(out)


def endpoint_users(where: str, e: Mapping[str, Any]) -> tuple[int, ...] | None:
    return int_list(f"{where}.users", e["users"], 1, 10_000) if "users" in e else None


def _endpoint(where: str, name: str, e: Mapping[str, Any]) -> Endpoint:
    if not e.get("variants"):
        raise ScenarioError(
            f"{where}: missing required key 'variants' (a path per variant, e.g. "
            'variants = { sync = "/items/", async = "/async/items/" })'
        )
    variants = tuple(_variant(f"{where}.variants.{vname}", vname, v) for vname, v in e["variants"].items())
    method = e.get("method", "GET")
    if method.upper() not in METHODS:
        raise ScenarioError(f"{where}.method: unknown {method!r}; allowed: {', '.join(METHODS)}")
    method = method.upper()
    headers = dict(e.get("headers", {}))
    for k, v in headers.items():
        if not isinstance(v, str):
            raise ScenarioError(f"{where}.headers.{k}: expected a string, got {v!r}")
    if "body" in e and "json" in e:
        raise ScenarioError(f"{where}: give 'body' (text) or 'json' (a table), not both")
    body = e.get("body", "")
    raw_json = e.get("json")
    if raw_json is not None:
        body = json.dumps(raw_json, separators=(",", ":"), sort_keys=True)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if (body or raw_json is not None) and method in BODYLESS:
        raise ScenarioError(
            f"{where}.{'json' if raw_json is not None else 'body'}: a {method} sends no body; "
            f"set method to one of {', '.join(m for m in METHODS if m not in BODYLESS)}"
        )
    status = e.get("status", 200)
    if not 100 <= status <= 599:
        raise ScenarioError(f"{where}.status: {status!r} is not an HTTP status in 100..599")
    return Endpoint(
        name=name,
        variants=variants,
        method=method,
        headers=headers,
        body=body,
        json=raw_json,
        status=status,
        identical_bodies=e.get("identical_bodies", True),
    )


def _variant(where: str, name: str, v: Any) -> EndpointVariant:
    builtin = ", ".join(f"{n} ({VARIANTS[n].kind})" for n in VARIANTS)
    if not NAME.fullmatch(name):
        raise ScenarioError(f"{where}: a variant name of letters, digits, '.', '_' and '-'")
    if isinstance(v, str):
        path, kind = v, None
    elif isinstance(v, dict):
        check_keys(where, v, VARIANT_KEYS)
        if "path" not in v:
            raise ScenarioError(f"{where}: missing required key 'path' (e.g. {EXAMPLE_VARIANT})")
        path, kind = v["path"], v.get("kind")
    else:
        raise ScenarioError(f'{where}: expected a path ("/items/") or a table {{ path, kind }}, got {v!r}')
    if not path.startswith("/"):
        raise ScenarioError(f"{where}: the path {path!r} must start with '/' (it is relative to the server)")
    if kind is None:
        if name not in VARIANTS:
            raise ScenarioError(
                f"{where}: the kind of variant {name!r} is needed: "
                f'{{ path = "{path}", kind = "sync" | "async" }}; '
                f"built-in names take their own kind: {builtin}"
            )
        kind = VARIANTS[name].kind
    if kind not in KINDS:
        raise ScenarioError(f"{where}.kind: unknown {kind!r}; allowed: {', '.join(KINDS)}")
    if name in VARIANTS and VARIANTS[name].kind != kind:
        raise ScenarioError(
            f"{where}.kind: {name!r} is a built-in variant of kind {VARIANTS[name].kind!r}; "
            "name a variant of the other kind otherwise"
        )
    return EndpointVariant(name, kind, path)


def parse_app(section: Mapping[str, Any], interfaces: set[str]) -> AppConfig:
    """`[app]`, checked against the interfaces (wsgi, asgi) of the scenario's setups."""
    check_keys("app", section, APP_KEYS)
    app = AppConfig(**section)
    for interface in sorted(interfaces):
        module = app.module(interface)
        if not module:
            raise ScenarioError(
                f"app.{interface}: missing; the scenario has {interface.upper()} setups, so [app] needs "
                f'{interface} = "yourproject.{interface}:application"'
            )
    for key in ("wsgi", "asgi"):
        value = getattr(app, key)
        if value and not APP_MODULE.fullmatch(value):
            raise ScenarioError(f'app.{key}: {value!r} is not "module:attribute" (e.g. "mysite.{key}:application")')
    if not app.health.startswith("/"):
        raise ScenarioError(f"app.health: the path {app.health!r} must start with '/'")
    return app
