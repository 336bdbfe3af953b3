"""ws-echo and ws-broadcast: WebSocket twins, a Channels sync consumer and its async twin.

WebSocket connections are the first place people are told async pays off: a
connection is held for minutes while it mostly waits, and a sync server would
hold a thread for each. These consumers let the harness measure that claim like
any other workload: each simulated user holds one connection and sends a
message, waits for its reply, sends the next (locustfiles/ws.py); a message
answered is a request, its round trip the latency.

Both twins answer a text frame with the same bytes, `reply_for(text)`: a small
JSON object with the text echoed, its length and a SHA-256 prefix computed on
the server (so a reply proves the server read the message). They differ only
in how they wait, as Channels ships them:

- sync (`WebsocketConsumer`): every incoming message is dispatched in a thread
  (`database_sync_to_async`, which also runs Django's close_old_connections
  around it), and every `send` goes back to the event loop through
  `async_to_sync`: two thread hops per message;
- async (`AsyncWebsocketConsumer`): handled on the event loop; Channels 4.2+
  still runs `close_old_connections` through one `sync_to_async` per message
  (`aclose_old_connections` in AsyncConsumer.dispatch), so even the async
  twin pays one hop per message. That is what a Channels user deploys, so it
  is kept, not patched away.

ws-broadcast: every connection joins one group of the in-memory channel layer
(settings.CHANNEL_LAYERS["broadcast"]) and every message is sent to the group,
so each user receives every user's messages (a chat room); a user's round
trip ends when its own message comes back. The sync twin calls
`async_to_sync(group_send)` as Channels' docs show, the async one awaits it;
the reply is computed once by the sender, so the fan-out costs the layer and
the sends, in both alike. The in-memory layer lives in one process: with
several server workers each worker is its own room (the round trip still
works, the room is smaller), which is why the scenarios run it on one worker.
Each variant has its own group, so a slice of one never receives the other's
messages.
"""

from __future__ import annotations

import hashlib
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

from bench_site import telemetry
from bench_site.responses import json_bytes

BROADCAST_LAYER = "broadcast"  # the alias in settings.CHANNEL_LAYERS
MAX_TEXT = 64 * 1024  # longer messages are refused (a reply naming the limit)


def reply_for(text: str | None) -> str:
    """The reply to one frame, identical for both twins: an echo with a
    server-computed digest, or an error naming what is accepted."""
    telemetry.add("ws_messages")
    if text is None:
        return _error("text frames only")
    if len(text) > MAX_TEXT:
        return _error(f"message longer than {MAX_TEXT} characters")
    data = text.encode()
    return json_bytes({"echo": text, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16]}).decode()


def _error(why: str) -> str:
    return json_bytes({"error": why}).decode()


# --- ws-echo ------------------------------------------------------------------


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=reply_for(text_data))


class AsyncEcho(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=reply_for(text_data))


# --- ws-broadcast -------------------------------------------------------------


class SyncBroadcast(WebsocketConsumer):
    channel_layer_alias = BROADCAST_LAYER
    groups = ("room-sync",)  # joined on connect, left on disconnect (by WebsocketConsumer)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        async_to_sync(self.channel_layer.group_send)(
            self.groups[0], {"type": "room.message", "text": reply_for(text_data)}
        )

    def room_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])


class AsyncBroadcast(AsyncWebsocketConsumer):
    channel_layer_alias = BROADCAST_LAYER
    groups = ("room-async",)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(self.groups[0], {"type": "room.message", "text": reply_for(text_data)})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class Refuse(AsyncWebsocketConsumer):
    """Any other WebSocket path: the handshake is refused (HTTP 403), never a 500."""

    async def connect(self) -> None:
        await self.close()


ECHO_CONSUMERS = {"sync": SyncEcho, "async": AsyncEcho}
BROADCAST_CONSUMERS = {"sync": SyncBroadcast, "async": AsyncBroadcast}
