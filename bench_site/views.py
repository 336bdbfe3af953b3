"""Views that are not measured: health, the registry dump, error handlers."""

from __future__ import annotations

import dataclasses

from django.http import HttpRequest, HttpResponse

from bench_site.registry import VARIANTS, WORKLOADS, endpoint
from bench_site.responses import error_response, json_response


async def health(request: HttpRequest) -> HttpResponse:
    # Async and free of I/O: answers at once under every server, and never
    # touches the database, so readiness does not depend on it.
    return json_response({"status": "ok"})


def workloads(request: HttpRequest) -> HttpResponse:
    return json_response(
        {
            "variants": {name: dataclasses.asdict(v) for name, v in VARIANTS.items()},
            "workloads": [
                {
                    **dataclasses.asdict(w),
                    "endpoints": [dataclasses.asdict(endpoint(w.name, v)) for v in w.variants],
                }
                for w in WORKLOADS.values()
            ],
        }
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(404, "not found", path=request.path)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(500, "internal server error")
