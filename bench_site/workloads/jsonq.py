"""json / json-noindex / json-keyindex: one JSON query, three ways to index it.

The query asks for items whose metadata contains
{"color": "red", "vendor": {"country": "SE"}}; the seeded data has 10 colours
and 20 countries drawn independently, so about 0.5 % of rows match (~500 of
100,000). On PostgreSQL it is `metadata @> '{...}'` (served by the
jsonb_path_ops GIN index on Item); on MariaDB/MySQL the same containment is
JSON_CONTAINS(metadata, '{...}'), which no index serves; SQLite has neither @>
nor GIN, so the same logical query is two key lookups (json_extract). On
SQLite and MariaDB json and json-noindex are therefore both full scans.

json-keyindex asks the same question of ItemKeyIndex through its generated
columns (`color`, `vendor_country`, extracted from those JSON keys by the
database) and their B-tree index: the index every database has, which the
article suggests where GIN does not exist.

The body has the total match count and the first `rows` matches by id. The
count is deliberate even though, without an index, it scans the whole table
(tens of ms at 100k rows): it makes the query visit every match, so json vs
json-noindex measures what the index buys. With the page alone, the no-index
query would stop after the first `rows` matches by id (a few thousand rows),
and the difference would depend on where matches happen to lie.

Plans on PostgreSQL over the seeded 100k rows (checked by a test over 30k):
the count is a Bitmap Index Scan on the GIN index vs a Seq Scan on the
control (~1.7 ms vs ~19 ms here); the page query is served in id order by the
primary key with @> as a filter on both tables, stopping after `rows` matches.

Twins as in orm: sync, async-s2a (sync_to_async of the same function), async
(async ORM API: acount() and `async for`), async-native (the async view's
code on django-async-backend's queryset: bench_site.native; ASGI and
PostgreSQL only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from bench_site import native
from bench_site.models import Item, ItemBase, ItemKeyIndex, ItemNoIndex
from bench_site.responses import json_response

_COLOR, _COUNTRY = "red", "SE"
TARGET = {"color": _COLOR, "vendor": {"country": _COUNTRY}}


def matching(model: type[ItemBase], objects: Any = None) -> QuerySet[Any]:
    """The matches of `model`, from `objects` (its default manager unless
    given: the async-native view passes the async backend's), so every twin
    runs one query."""
    if objects is None:
        objects = model._default_manager
    if model is ItemKeyIndex:
        # The generated columns, so the (color, vendor_country, id) index applies.
        return objects.filter(color=_COLOR, vendor_country=_COUNTRY)  # type: ignore[no-any-return]
    if connection.vendor in ("postgresql", "mysql"):
        return objects.filter(metadata__contains=TARGET)  # type: ignore[no-any-return]
    return objects.filter(metadata__color=_COLOR, metadata__vendor__country=_COUNTRY)  # type: ignore[no-any-return]


def _body(count: int, rows: int, items: list[ItemBase]) -> dict[str, Any]:
    return {"count": count, "rows": rows, "items": [item.to_dict() for item in items]}


def _views(model: type[ItemBase]) -> dict[str, Callable[..., Any]]:
    def load(rows: int) -> dict[str, Any]:
        matches = matching(model)
        return _body(matches.count(), rows, list(matches.order_by("id")[:rows]))

    load_in_thread: Callable[[int], Awaitable[dict[str, Any]]] = sync_to_async(load)

    def sync_view(request: HttpRequest, *, rows: int) -> HttpResponse:
        return json_response(load(rows))

    async def async_s2a_view(request: HttpRequest, *, rows: int) -> HttpResponse:
        return json_response(await load_in_thread(rows))

    async def async_view(request: HttpRequest, *, rows: int) -> HttpResponse:
        matches = matching(model)
        count = await matches.acount()
        items = [item async for item in matches.order_by("id")[:rows]]
        return json_response(_body(count, rows, items))

    @native.native_view
    async def async_native_view(request: HttpRequest, *, rows: int) -> HttpResponse:
        # The async view's code on django-async-backend's queryset: same SQL, no thread.
        matches = matching(model, native.objects(model))
        count = await matches.acount()
        items = [item async for item in matches.order_by("id")[:rows]]
        return json_response(_body(count, rows, items))

    return {"sync": sync_view, "async-s2a": async_s2a_view, "async": async_view, "async-native": async_native_view}


VIEWS = _views(Item)
NOINDEX_VIEWS = _views(ItemNoIndex)
KEYINDEX_VIEWS = _views(ItemKeyIndex)
