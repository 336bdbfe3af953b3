"""wait: a pure wait of `ms` milliseconds (long-poll style), no CPU, no I/O.

The sync twin holds its worker thread for the whole wait; the async twin only
holds a coroutine. This is where async should pay off most clearly.
"""

from __future__ import annotations

import asyncio
import time

from django.http import HttpRequest, HttpResponse

from bench_site.responses import json_response


def sync_view(request: HttpRequest, *, ms: int) -> HttpResponse:
    time.sleep(ms / 1000)
    return json_response({"waited_ms": ms})


async def async_view(request: HttpRequest, *, ms: int) -> HttpResponse:
    await asyncio.sleep(ms / 1000)
    return json_response({"waited_ms": ms})


VIEWS = {"sync": sync_view, "async": async_view}
