"""The body check of a WebSocket arm: one connection, one message, its reply
compared byte for byte with its twins'.

The HTTP arms' check (asyncbench.execute.checks.check_body) requests the
endpoint once before load; a WebSocket arm gets the same treatment with the
load's own message format (locustfiles/ws.py): the handshake must succeed,
the reply must be JSON answering the message sent, and every variant on
every setup must send the same bytes.
"""

from __future__ import annotations

import json

import websocket

from asyncbench.execute.checks import References
from asyncbench.execute.plan import Planned
from asyncbench.execute.processes import LOOPBACK
from locustfiles.wsmessage import echo_marker, message_text, ws_url

CHECK_TIMEOUT_S = 30.0
# A broadcast room may deliver someone else's message first (a client of the
# previous slice still leaving): read this many frames for our own at most.
MAX_FRAMES = 50


def check_ws_reply(
    item: Planned, port: int, references: References, *, origin: str = "", prefix: str = ""
) -> str | None:
    """Open the arm's WebSocket, send one message, compare the reply with the
    reference (the first twin checked). Returns the problem, or None."""
    url = ws_url(origin or f"http://{LOOPBACK}:{port}", prefix + item.path)
    text = message_text(0, 0)
    marker = echo_marker(text)
    try:
        ws = websocket.create_connection(url, timeout=CHECK_TIMEOUT_S)
    except (OSError, websocket.WebSocketException) as exc:
        return f"WebSocket handshake with {url} failed: {exc}"
    try:
        ws.send(text)
        for _ in range(MAX_FRAMES):
            reply = ws.recv()
            if isinstance(reply, bytes):
                return f"{item.path} answered a binary frame ({len(reply)} bytes) to a text message"
            if marker in reply:
                break
        else:
            return f"{item.path} sent {MAX_FRAMES} frames, none a reply to the message sent"
    except (OSError, websocket.WebSocketException) as exc:
        return f"{item.path}: no reply to a WebSocket message: {type(exc).__name__}: {exc}"
    finally:
        ws.close(timeout=1)
    try:
        json.loads(reply)
    except ValueError:
        return f"{item.path} answered a frame that is not JSON: {reply[:120]!r}"
    body = reply.encode()
    key = (item.workload, item.params)
    ref = references.get(key)
    if ref is None:
        references[key] = (f"{item.setup} {item.variant}", "websocket", body)
        return None
    where, _, ref_body = ref
    if ref_body != body:
        return (
            f"reply of {item.path} on {item.setup} differs from its twin's ({where}): "
            f"{body[:120]!r} vs {ref_body[:120]!r}"
        )
    return None
