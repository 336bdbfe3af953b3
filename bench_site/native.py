"""async-native: the ORM workloads through django-async-backend.

Django's async ORM API (`acount`, `async for`) is sync_to_async around the
sync ORM: every query still hops to a thread and runs on a sync connection.
django-async-backend (github.com/Arfey/django-async-backend) replaces the
database layer: its QuerySet compiles the same SQL and runs it on a psycopg
AsyncConnection taken from a psycopg_pool AsyncConnectionPool, on the event
loop, with no thread. The async-native views build their querysets from
`objects(model)` and otherwise share the other twins' code, so they run the
same SQL and return the same bytes.

How it is configured (bench_site/settings.py): on PostgreSQL the `default`
alias's ENGINE is django-async-backend's, whose sync DatabaseWrapper is
Django's own PostgreSQL wrapper (a subclass that only adds a warning), so the
other variants run exactly as before; its AsyncDatabaseWrapper reads the same
DATABASES entry, so the async pool gets the same OPTIONS["pool"] (min/max
size, timeout) as the sync one: two pools per process, each sized alike, and
only the one a variant uses opens. The package's app is deliberately not
installed: its ready() would patch every model and connect an async receiver
to request_started/request_finished, which Django runs through async_to_sync,
a thread hop on every request of every variant. Instead `native_view`
returns the task's connection to the pool when the view ends, which is what
that receiver does.

It cannot run under WSGI or on another database (registry.VARIANTS says why);
there the view answers 501 naming the reason, and the scenario validator
refuses such a scenario before anything starts.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db import DEFAULT_DB_ALIAS
from django.db.utils import load_backend
from django.http import HttpRequest, HttpResponseBase
from django_async_backend.db import async_connections  # type: ignore[import-untyped]
from django_async_backend.db.models.query import QuerySet as AsyncQuerySet  # type: ignore[import-untyped]

from bench_site.registry import unavailable
from bench_site.responses import error_response

VARIANT = "async-native"
ENGINE = "django_async_backend.db.backends.postgresql"
UNAVAILABLE_STATUS = 501

AsyncView = Callable[..., Awaitable[HttpResponseBase]]


def objects(model: type[Any]) -> Any:
    """The root queryset of `model` on the async backend: what
    `model.objects` is to the sync twins (typed Any: the package has no
    stubs, and it mirrors Django's QuerySet API with async terminals)."""
    return AsyncQuerySet(model=model)


def why_unavailable(request: HttpRequest) -> str | None:
    """Why this request cannot be served natively async, or None. From the
    settings the async connection is made from (not django.db.connection,
    which is per thread)."""
    interface = "asgi" if isinstance(request, ASGIRequest) else "wsgi"
    engine = async_connections.settings[DEFAULT_DB_ALIAS]["ENGINE"]
    reason = unavailable(VARIANT, interface=interface, database=load_backend(engine).DatabaseWrapper.vendor)
    if reason is None and engine != ENGINE:
        # PostgreSQL through Django's own backend (another project's settings).
        reason = f"{VARIANT} needs DATABASES['default']['ENGINE'] = {ENGINE!r}, not {engine!r}"
    return reason


async def release() -> None:
    """Put this task's async connections back into the pool (the package's
    request_finished receiver, without its thread hops). Only the aliases this
    task opened: asking for another would create a wrapper for nothing."""
    for conn in async_connections.all(initialized_only=True):
        await conn.close()


def native_view(view: AsyncView) -> AsyncView:
    """An async-native view: 501 where it cannot run, and its connection back
    in the pool when it ends, whatever happened."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, **params: Any) -> HttpResponseBase:
        reason = why_unavailable(request)
        if reason is not None:
            return error_response(UNAVAILABLE_STATUS, reason)
        try:
            return await view(request, **params)
        finally:
            await release()

    return wrapper
