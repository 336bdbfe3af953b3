"""orm: a page of `rows` Items ordered by id, as model instances.

Three twins run the same query and build the same body:
- sync: the ORM, in the request thread;
- async-s2a: the very same sync function through asgiref's sync_to_async
  (thread_sensitive, Django's default: under ASGI, one thread per request);
- async: Django's async ORM API (`async for`), which today also hops to a
  thread per query internally; the comparison shows what that costs;
- async-native: the same `async for` on django-async-backend's queryset
  (bench_site.native): an asyncio PostgreSQL connection, no thread at all.
  ASGI and PostgreSQL only; elsewhere it answers 501.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from bench_site import native
from bench_site.models import Item
from bench_site.responses import json_response


def _page(rows: int, page: int, objects: Any = None) -> QuerySet[Item]:
    """The page's queryset, from `objects` (Item.objects unless given: the
    async-native view passes the async backend's), so every twin runs one query."""
    start = (page - 1) * rows
    return (Item.objects if objects is None else objects).order_by("id")[start : start + rows]


def _body(items: list[Item], rows: int, page: int) -> dict[str, Any]:
    return {"page": page, "rows": rows, "items": [item.to_dict() for item in items]}


def load(rows: int, page: int) -> dict[str, Any]:
    return _body(list(_page(rows, page)), rows, page)


_load_in_thread = sync_to_async(load)


def sync_view(request: HttpRequest, *, rows: int, page: int) -> HttpResponse:
    return json_response(load(rows, page))


async def async_s2a_view(request: HttpRequest, *, rows: int, page: int) -> HttpResponse:
    return json_response(await _load_in_thread(rows, page))


async def async_view(request: HttpRequest, *, rows: int, page: int) -> HttpResponse:
    items = [item async for item in _page(rows, page)]
    return json_response(_body(items, rows, page))


@native.native_view
async def async_native_view(request: HttpRequest, *, rows: int, page: int) -> HttpResponse:
    items = [item async for item in _page(rows, page, native.objects(Item))]
    return json_response(_body(items, rows, page))


VIEWS = {"sync": sync_view, "async-s2a": async_s2a_view, "async": async_view, "async-native": async_native_view}
