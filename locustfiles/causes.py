"""How a failed request is named: its failure kind, counted per window.

Pure functions (no locust import, so tests and the runner can use them):
`response_failure` is what the locust user reports for a non-2xx answer, and
`failure_kind` is how the load driver files any failure. A view that could not
reach a service it needs answers e.g. 503 {"error": "database unreachable"};
that cause stays in the kind ("HTTP 503: database unreachable"), so the flag
rules (asyncbench.execute.checks) can name the outage instead of reporting
only failures or too few requests.
"""

from __future__ import annotations

import json

MAX_TEXT = 60


def response_failure(status: int, body: bytes | None, expected: int | None = None) -> str:
    """'HTTP <status>' plus the `error` a JSON body names, if any, and the
    status that was `expected` when an endpoint names one."""
    error = None
    if body:
        try:
            data = json.loads(body[:2000])
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            error = data["error"].strip().splitlines()[0][:MAX_TEXT] if data["error"].strip() else None
    return f"HTTP {status}" + (f": {error}" if error else "") + (f" (expected {expected})" if expected else "")


def failure_kind(exc: BaseException) -> str:
    """A short, low-cardinality name for one failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if name == "CatchResponseError" and text.startswith("HTTP "):
        # our own response_failure() text, the cause included
        return text[: MAX_TEXT + 20]
    if text.startswith("HTTP ") or "status" in text.lower():
        return f"{name}: {text[:MAX_TEXT]}"
    return name + (f": {text[:MAX_TEXT]}" if text else "")
