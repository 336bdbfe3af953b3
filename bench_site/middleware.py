"""The sync-only middleware that BENCH_SYNC_MIDDLEWARE=1 appends."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


class SyncOnlyMiddleware:
    """Trivial work in a middleware that cannot run on the event loop.

    Under ASGI, Django must wrap the rest of the chain so this runs in a thread
    (sync_to_async) and the async views below it are called back through
    async_to_sync: that adaptation, not the header, is what the switch measures.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response["X-Bench-Sync-Middleware"] = "1"
        return response
