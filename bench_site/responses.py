"""JSON responses with one deterministic encoding.

Twins must return byte-identical bodies, and the same data must give the same
body on SQLite and PostgreSQL: jsonb reorders object keys, so keys are sorted
here, and separators are fixed, whatever the view or backend.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

JSON_CONTENT_TYPE = "application/json"


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(data: Any, *, status: int = 200) -> HttpResponse:
    return HttpResponse(json_bytes(data), status=status, content_type=JSON_CONTENT_TYPE)


def error_response(status: int, error: str, **extra: Any) -> HttpResponse:
    return json_response({"error": error, **extra}, status=status)
