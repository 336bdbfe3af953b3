"""What a WebSocket workload's client sends and how it knows its reply.

Pure functions and the standard library only (no locust import, which
monkey-patches the process with gevent): the locust user (locustfiles/ws.py),
the runner's body check (asyncbench.execute.wscheck) and the tests share them.
The server side is bench_site.workloads.ws.reply_for.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit


def ws_url(host: str, path: str) -> str:
    """http://h:p + /path/ -> ws://h:p/path/ (https -> wss)."""
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


def echo_marker(text: str) -> str:
    """What the server's reply to `text` contains: `"echo":<text as JSON>,`
    (reply_for sorts its keys, so `sha256` follows): how a client finds its
    own message among a broadcast room's without parsing every frame."""
    return '"echo":' + json.dumps(text, ensure_ascii=False) + ","


def message_text(user: int, seq: int) -> str:
    """A small chat-like message, unique per user and message."""
    return f'{{"seq":{seq},"text":"hello from a benchmark client","user":{user}}}'
