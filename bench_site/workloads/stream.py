"""stream: StreamingHttpResponse over a sync generator vs an async generator.

Both produce the same `chunks` chunks of fixed text. Served by the matching
kind of server (sync under WSGI, async under ASGI) each chunk is written as it
is produced. Across kinds Django has to adapt, and warns: under ASGI a sync
iterator is consumed through a thread; under WSGI an async iterator is drained
into memory before the first byte is sent. That adaptation is measured too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, StreamingHttpResponse

CONTENT_TYPE = "text/plain; charset=utf-8"
# 1 KiB per chunk including the 8-digit counter and the newline.
_FILLER = "x" * (1024 - 10)


def _chunk(index: int) -> bytes:
    return f"{index:08d} {_FILLER}\n".encode()


def _sync_chunks(count: int) -> Iterator[bytes]:
    for index in range(count):
        yield _chunk(index)


async def _async_chunks(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield _chunk(index)


def sync_view(request: HttpRequest, *, chunks: int) -> StreamingHttpResponse:
    return StreamingHttpResponse(_sync_chunks(chunks), content_type=CONTENT_TYPE)


async def async_view(request: HttpRequest, *, chunks: int) -> StreamingHttpResponse:
    return StreamingHttpResponse(_async_chunks(chunks), content_type=CONTENT_TYPE)


VIEWS = {"sync": sync_view, "async": async_view}
