"""noio: a small fixed JSON body, nothing awaited; the bare request path."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from bench_site.responses import JSON_CONTENT_TYPE, json_bytes

# Encoded once: the workload measures the request path, not json.dumps.
_BODY = json_bytes({"message": "hello", "numbers": [1, 2, 3], "ok": True})


def sync_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_BODY, content_type=JSON_CONTENT_TYPE)


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_BODY, content_type=JSON_CONTENT_TYPE)


VIEWS = {"sync": sync_view, "async": async_view}
