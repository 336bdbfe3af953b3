"""What one request of a cell is: method, path, headers, body and the status
that counts as an answer.

Built-in workloads are plain GETs answered 2xx; a scenario's own endpoints
(`[endpoints.<name>]`) may POST a body with headers and expect, say, 201.
Pure data and the standard library only: the load driver, the open model, the
body check and the locust CLI (`locust -f locustfiles/endpoint.py`, where only
this folder is on sys.path) all read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Methods that carry no body in this harness.
BODYLESS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class RequestSpec:
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # The status an answer must have; None: any 2xx (the built-in workloads).
    status: int | None = None

    @property
    def plain(self) -> bool:
        """A bare GET that any 2xx answers: what the built-in workloads send."""
        return self == RequestSpec()

    def accepts(self, status: int) -> bool:
        return status == self.status if self.status is not None else 200 <= status < 300

    def expected(self) -> str:
        return str(self.status) if self.status is not None else "2xx"

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the load driver's protocol); the body as UTF-8 text."""
        return {
            "method": self.method,
            "headers": [list(h) for h in self.headers],
            "body": self.body.decode("utf-8"),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RequestSpec:
        if not d:
            return cls()
        return cls(
            method=str(d.get("method") or "GET").upper(),
            headers=tuple((str(k), str(v)) for k, v in d.get("headers") or ()),
            body=str(d.get("body") or "").encode("utf-8"),
            status=int(d["status"]) if d.get("status") is not None else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RequestSpec:
        """For the locust CLI: BENCH_METHOD, BENCH_HEADERS (a JSON object),
        BENCH_BODY (text) and BENCH_STATUS (the expected status)."""
        env = os.environ if env is None else env
        headers = json.loads(env.get("BENCH_HEADERS") or "{}")
        return cls(
            method=(env.get("BENCH_METHOD") or "GET").upper(),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
            body=(env.get("BENCH_BODY") or "").encode("utf-8"),
            status=int(env["BENCH_STATUS"]) if env.get("BENCH_STATUS") else None,
        )
