"""WebSocket workloads, closed loop: each user holds ONE connection, like a real
client, and loops: send a message, wait for its reply, send the next.

Each reply fires locust's request event (request_type "WS", named by the
arm's path) with the round trip as its response time, so the runner's
machinery counts messages as it counts HTTP requests: messages per second is
the throughput, the round trip's p50/p99 the latency. Opening the connection
is not a request: it happens when the user starts, during the slice's settle
(users are spawned over it), before the measured window opens.

A reply is the server's JSON for this user's own text (bench_site.workloads.ws):
it contains `echo_marker(text)`. In a broadcast room the replies to other
users' messages arrive on the same connection: they are read and skipped
(their bytes count in the response length) until this user's own comes
back. A reply naming an `error`, a closed connection or a timeout is a
failure; the connection is then opened again on the next message.

websocket-client is a blocking client; locust's gevent monkey-patching makes
its sockets cooperative, so each user is a greenlet like FastHttpUser's.

Used by the runner's load driver (asyncbench.execute.loaddriver) when an arm's
workload is a websocket one, or directly with the locust CLI:
    BENCH_PATH=/async/ws-echo/ locust -f locustfiles/ws.py --headless \\
        -H http://127.0.0.1:8000 -u 32 -r 32 -t 30s
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time

import websocket
from locust import User, constant, task

try:
    from locustfiles.wsmessage import echo_marker, message_text, ws_url
except ImportError:  # `locust -f locustfiles/ws.py`: only this folder is on sys.path
    from wsmessage import echo_marker, message_text, ws_url  # type: ignore[import-not-found,no-redef]

# Slow cells (a saturated server) must show up as latency, not as client-side
# timeouts, up to a point (as FastHttpUser's network_timeout in endpoint.py).
TIMEOUT_S = 60.0
_ids = itertools.count()


class UnexpectedReply(Exception):
    """The server answered something that is not a reply to a message."""


class WebSocketUser(User):
    wait_time = constant(0)
    path = os.environ.get("BENCH_PATH", "/async/ws-echo/")
    # Connections opened by this class's users so far (its on_start attempts,
    # failed ones included): the load driver opens the window once every user
    # has one, so no handshake falls in the measured window.
    opened = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.uid = next(_ids)
        self.seq = 0
        self.ws: websocket.WebSocket | None = None

    def _connect(self) -> websocket.WebSocket:
        assert self.host is not None
        # skip_utf8_validation: the replies are ASCII JSON; validating them is client CPU, not server work
        return websocket.create_connection(
            ws_url(self.host, self.path), timeout=TIMEOUT_S, skip_utf8_validation=True, enable_multithread=False
        )

    def on_start(self) -> None:
        # A failure here is not raised (locust would end the user): the first
        # message tries again and counts the failure.
        try:
            self.ws = self._connect()
        except Exception:  # counted on the first message instead
            self.ws = None
        finally:
            type(self).opened += 1

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # a connection already gone is closed
                self.ws.close(timeout=1)
            self.ws = None

    @task
    def roundtrip(self) -> None:
        self.seq += 1
        text = message_text(self.uid, self.seq)
        marker = echo_marker(text)
        received = 0
        error: Exception | None = None
        start = time.perf_counter()
        try:
            if self.ws is None:
                self.ws = self._connect()
                start = time.perf_counter()  # a reconnect is not the message's round trip
            self.ws.send(text)
            while True:
                reply = self.ws.recv()
                received += len(reply)
                if isinstance(reply, bytes):
                    raise UnexpectedReply(f"a binary frame of {len(reply)} bytes")
                if marker in reply:
                    break
                if reply.startswith('{"error"'):
                    raise UnexpectedReply(reply[:80])
                # a reply to another user's message (a broadcast room): read on
        except Exception as exc:  # every failure is counted, by kind
            error = exc
            self._close()
        self.environment.events.request.fire(
            request_type="WS",
            name=self.path,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=received,
            exception=error,
            context={},
        )
