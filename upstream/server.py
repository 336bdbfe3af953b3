"""A minimal HTTP/1.1 server on asyncio.Protocol: the fan-out views' upstream.

Why no framework: it has to answer far more requests per second than the Django
site under test can make, on one core, or the fan-out figures would measure it.
A Protocol with a hand-written parser and timer callbacks (loop.call_later,
not a task per request) keeps the per-request cost to a few microseconds.

Routes: GET /health -> {"status":"ok"}; GET /item/<i>[?delay_ms=N] -> after the
delay, {"item": i, "name": "item-i", "value": <from i>} (or, at --error-rate,
a 500); anything else -> 404. Keep-alive by default (HTTP/1.1), pipelined
requests are answered in order, a request split across reads is reassembled,
`Connection: close` and HTTP/1.0 close after the response.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl

MAX_HEADER_BYTES = 16 * 1024
MAX_DELAY_MS = 600_000
# Stop reading from a connection that has this many responses queued (a client
# pipelining without reading), resume when it drains below the low mark.
PAUSE_AT = 256
RESUME_AT = 64

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8099
    delay_ms: float = 50.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    seed: int = 1


def item_value(index: int) -> int:
    """A deterministic value for item `index` (Knuth's multiplicative hash)."""
    return (index * 2_654_435_761) % 1_000_003


def _json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _response(status: int, body: bytes, *, close: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
    )
    return head.encode("ascii") + body


_HEALTH_BODY = _json({"status": "ok"})
_NOT_FOUND_BODY = _json({"error": "not found"})
_FAILURE_BODY = _json({"error": "injected failure"})


class _Pending:
    """One response slot, kept in request order on its connection."""

    __slots__ = ("close", "data", "ready")

    def __init__(self, data: bytes, close: bool, ready: bool) -> None:
        self.data = data
        self.close = close
        self.ready = ready


class Upstream:
    """Routing and the seeded randomness shared by all connections."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Two streams: whether a request fails must not depend on jitter.
        self._errors = random.Random(config.seed)
        self._jitter = random.Random(config.seed + 1)
        self.connections: set[HttpProtocol] = set()

    def delay_s(self, override_ms: float | None) -> float:
        base = self.config.delay_ms if override_ms is None else override_ms
        if self.config.jitter_ms:
            base += self._jitter.uniform(-self.config.jitter_ms, self.config.jitter_ms)
        return max(0.0, base) / 1000

    def route(self, method: str, target: str) -> tuple[int, bytes, float]:
        """(status, body, delay in seconds) for one request."""
        path, _, query = target.partition("?")
        if method != "GET":
            return 405, _json({"error": "method not allowed"}), 0.0
        if path == "/health":
            return 200, _HEALTH_BODY, 0.0
        if path.startswith("/item/"):
            raw = path[len("/item/") :]
            if raw.isascii() and raw.isdigit() and len(raw) <= 12:
                return self._item(int(raw), query)
        return 404, _NOT_FOUND_BODY, 0.0

    def _item(self, index: int, query: str) -> tuple[int, bytes, float]:
        override: float | None = None
        for key, value in parse_qsl(query):
            if key == "delay_ms":
                if not (value.isascii() and value.isdigit()) or int(value) > MAX_DELAY_MS:
                    body = _json({"error": f"delay_ms must be an integer in 0..{MAX_DELAY_MS}"})
                    return 400, body, 0.0
                override = int(value)
        delay = self.delay_s(override)
        if self.config.error_rate and self._errors.random() < self.config.error_rate:
            return 500, _FAILURE_BODY, delay
        body = _json({"item": index, "name": f"item-{index}", "value": item_value(index)})
        return 200, body, delay


class HttpProtocol(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._queue: deque[_Pending] = deque()
        self._closing = False
        self._paused = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports implement the
        # interface without subclassing asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._upstream.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._upstream.connections.discard(self)
        self._closing = True
        self._queue.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer += data
        self._parse()

    # --- parsing ---

    def _parse(self) -> None:
        while not self._closing:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    self._reply_now(431, _json({"error": "headers too large"}), close=True)
                return
            head = bytes(self._buffer[:end])
            lines = head.split(b"\r\n")
            try:
                method, target, version = lines[0].decode("ascii").split(" ")
            except (UnicodeDecodeError, ValueError):
                self._reply_now(400, _json({"error": "bad request line"}), close=True)
                return
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                self._reply_now(400, _json({"error": "unsupported HTTP version"}), close=True)
                return
            keep_alive = version == "HTTP/1.1"
            body_length = 0
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    self._reply_now(400, _json({"error": "bad header line"}), close=True)
                    return
                name = name.strip().lower()
                if name == b"connection":
                    tokens = {t.strip() for t in value.lower().split(b",")}
                    if b"close" in tokens:
                        keep_alive = False
                    elif b"keep-alive" in tokens:
                        keep_alive = True
                elif name == b"content-length":
                    raw = value.strip()
                    if not raw.isdigit():
                        self._reply_now(400, _json({"error": "bad content-length"}), close=True)
                        return
                    body_length = int(raw)
                elif name == b"transfer-encoding":
                    self._reply_now(501, _json({"error": "chunked bodies not supported"}), close=True)
                    return
            total = end + 4 + body_length
            if len(self._buffer) < total:
                return  # the body (ignored, but it must be skipped) is still arriving
            del self._buffer[:total]
            status, body, delay = self._upstream.route(method, target)
            self._enqueue(_response(status, body, close=not keep_alive), not keep_alive, delay)
            if not keep_alive:
                # Nothing after a closing request is answered.
                self._closing = True
                self._buffer.clear()

    # --- responses, in request order ---

    def _enqueue(self, data: bytes, close: bool, delay: float) -> None:
        if delay <= 0 and not self._queue:
            self._write(data, close)
            return
        pending = _Pending(data, close, ready=delay <= 0)
        self._queue.append(pending)
        if not pending.ready:
            self._loop.call_later(delay, self._mark_ready, pending)
        if len(self._queue) >= PAUSE_AT and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._flush()

    def _mark_ready(self, pending: _Pending) -> None:
        pending.ready = True
        self._flush()

    def _flush(self) -> None:
        while self._queue and self._queue[0].ready:
            pending = self._queue.popleft()
            self._write(pending.data, pending.close)
        if self._paused and len(self._queue) < RESUME_AT and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _write(self, data: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(data)
        if close:
            transport.close()

    def _reply_now(self, status: int, body: bytes, *, close: bool) -> None:
        # Protocol errors: answer after whatever is already queued, then close.
        self._closing = True
        self._buffer.clear()
        self._enqueue(_response(status, body, close=close), close, 0.0)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(config: Config, *, ready: asyncio.Future[int] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); announce the bound port."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(config)
    server = await loop.create_server(
        lambda: HttpProtocol(upstream), config.host, config.port, reuse_address=True, backlog=4096
    )
    port: int = server.sockets[0].getsockname()[1]
    print(f"listening on http://{config.host}:{port}", flush=True)
    if ready is not None:
        ready.set_result(port)
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (RuntimeError, ValueError):
            # Not the main thread (e.g. run inside a test's thread): the caller
            # stops us by cancelling instead.
            pass
    try:
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        server.close()
        # Keep-alive connections would keep wait_closed() waiting: close them.
        for protocol in list(upstream.connections):
            protocol.abort()
        await server.wait_closed()
