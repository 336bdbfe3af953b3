"""cpu: fixed pure-Python work, the same in both twins.

Chained SHA-256 over 32 bytes: the input is below hashlib's 2048-byte
threshold for releasing the GIL, so the whole loop holds it, as CPU-bound view
code does. An async view cannot make this faster; on an event loop it blocks
every other request for its duration. The default of BENCH_CPU_ROUNDS=2800 is
about 1 ms on the machine the README's figures come from.
"""

from __future__ import annotations

import hashlib

from django.http import HttpRequest, HttpResponse

from bench_site.responses import json_response

_SEED = b"django-async-bench"


def chain(rounds: int) -> str:
    digest = hashlib.sha256(_SEED).digest()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def sync_view(request: HttpRequest, *, rounds: int) -> HttpResponse:
    return json_response({"rounds": rounds, "digest": chain(rounds)})


async def async_view(request: HttpRequest, *, rounds: int) -> HttpResponse:
    return json_response({"rounds": rounds, "digest": chain(rounds)})


VIEWS = {"sync": sync_view, "async": async_view}
