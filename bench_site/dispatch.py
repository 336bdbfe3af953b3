"""The single wrapper around every measured view.

It does, in one place and identically for both kinds of view: method check,
query-parameter parsing and validation (400 on bad input), fault
injection, and a 503 naming the cause when the database is unreachable
(bench_site.outage), and with the session stacks, loading the logged-in
user (`_load_user`). The wrapper keeps the view's kind: an async view gets an `async def`
wrapper, so Django calls it on the event loop and never adds a thread hop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase

from bench_site.injection import Injection
from bench_site.outage import OUTAGE_STATUS, database_cause
from bench_site.params import BadParam, parse_params
from bench_site.registry import WORKLOADS, Endpoint
from bench_site.responses import error_response

SyncView = Callable[..., HttpResponseBase]
AsyncView = Callable[..., Awaitable[HttpResponseBase]]
View = Callable[..., Any]

_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _method_not_allowed() -> HttpResponseBase:
    response = error_response(405, "method not allowed", allowed=sorted(_SAFE_METHODS))
    response["Allow"] = ", ".join(sorted(_SAFE_METHODS))
    return response


def _outage_response(exc: DatabaseError) -> HttpResponseBase:
    """503 naming the cause when the database was unreachable; any other
    database error propagates (Django's 500)."""
    cause = database_cause(exc)
    if cause is None:
        raise exc
    return error_response(OUTAGE_STATUS, cause)


def _load_user(request: HttpRequest) -> None:
    """Resolve the lazy request.user, as a view that checks who is asking does.

    Only the session stacks (bench_site.stacks) set it: their cost includes
    loading the session and the user, which a real project's view (a
    permission check, a "hello, <name>") triggers. The async twin does the
    same with `await request.auser()`. The body never depends on the user.
    """
    user = getattr(request, "user", None)
    if user is not None:
        user.is_authenticated  # noqa: B018  # forces the SimpleLazyObject to load


def measured_view(endpoint: Endpoint, view: View, injection: Injection) -> View:
    """Wrap `view`, which implements `endpoint`, as a Django view."""
    specs = WORKLOADS[endpoint.workload].params
    inject = injection.applies_to(endpoint.workload)
    is_async = iscoroutinefunction(view)
    if is_async != (endpoint.kind == "async"):
        raise ImproperlyConfigured(
            f"{endpoint.path}: the registry declares a {endpoint.kind} view, "
            f"but {view.__module__}.{view.__qualname__} is {'async' if is_async else 'sync'}"
        )

    if is_async:

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest) -> HttpResponseBase:
            if request.method not in _SAFE_METHODS:
                return _method_not_allowed()
            try:
                params = parse_params(request.GET, specs)
            except BadParam as exc:
                return exc.response()
            if inject:
                await injection.apply_async()
            try:
                auser = getattr(request, "auser", None)
                if auser is not None:
                    await auser()
                response: HttpResponseBase = await view(request, **params)
            except DatabaseError as exc:
                return _outage_response(exc)
            return response

        return async_wrapper

    @functools.wraps(view)
    def sync_wrapper(request: HttpRequest) -> HttpResponseBase:
        if request.method not in _SAFE_METHODS:
            return _method_not_allowed()
        try:
            params = parse_params(request.GET, specs)
        except BadParam as exc:
            return exc.response()
        if inject:
            injection.apply_sync()
        try:
            _load_user(request)
            response: HttpResponseBase = view(request, **params)
        except DatabaseError as exc:
            return _outage_response(exc)
        return response

    return sync_wrapper
