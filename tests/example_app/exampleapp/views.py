"""View pairs: a sync view and its async twin side by side, same body, different waiting."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

MAX_ITEMS = 1_000


def _count(request: HttpRequest) -> int | None:
    raw = request.GET.get("n", "50")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_ITEMS else None


def _item(i: int) -> dict[str, Any]:
    digest = hashlib.sha256(f"item-{i}".encode()).hexdigest()
    return {"id": i, "name": f"item-{i}", "sku": digest[:12], "price_cents": int(digest[12:18], 16) % 10_000}


def _bad(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


@require_GET
def items_sync(request: HttpRequest) -> JsonResponse:
    n = _count(request)
    if n is None:
        return _bad(f"n: an integer in 1..{MAX_ITEMS}")
    return JsonResponse({"count": n, "items": [_item(i) for i in range(n)]})


@require_GET
async def items_async(request: HttpRequest) -> JsonResponse:
    n = _count(request)
    if n is None:
        return _bad(f"n: an integer in 1..{MAX_ITEMS}")
    items = []
    for i in range(n):
        items.append(_item(i))
        if i % 10 == 9:
            await asyncio.sleep(0)  # let other requests in, as an async view that awaits would
    return JsonResponse({"count": n, "items": items})


def _echo(body: bytes) -> JsonResponse:
    try:
        data = json.loads(body)
    except ValueError:
        return _bad("the body is not JSON")
    if not isinstance(data, dict):
        return _bad("the body is not a JSON object")
    return JsonResponse({"received": data, "sha256": hashlib.sha256(body).hexdigest()}, status=201)


@csrf_exempt
@require_POST
def echo_sync(request: HttpRequest) -> JsonResponse:
    return _echo(request.body)


@csrf_exempt
@require_POST
async def echo_async(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0)
    return _echo(request.body)
