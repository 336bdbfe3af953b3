"""Integer query parameters of the measured views: names, bounds, defaults.

Strict on purpose: an unknown parameter is rejected rather than ignored, so a
typo in a scenario (`?row=100`) fails loudly instead of measuring the default,
and no parameter can smuggle in an upstream address (`?url=`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse, QueryDict

from bench_site.registry import WORKLOADS
from bench_site.responses import error_response

# ASCII digits only: int() would also take "1_000", " 5" and non-ASCII digits.
_INTEGER = re.compile(r"-?[0-9]{1,12}")


@dataclass(frozen=True)
class IntParam:
    name: str
    minimum: int
    maximum: int
    # The setting holding the default, else a fixed default; with neither the
    # parameter is optional (absent -> None).
    default_setting: str | None = None
    fixed_default: int | None = None

    def default(self) -> int | None:
        if self.default_setting is None:
            return self.fixed_default
        value: int = getattr(settings, self.default_setting)
        return value

    def allowed(self) -> dict[str, int]:
        return {"min": self.minimum, "max": self.maximum}


# Per workload, in registry order. A test checks these names against the
# registry's `params`, so the two cannot drift apart.
WORKLOAD_PARAMS: dict[str, tuple[IntParam, ...]] = {
    "noio": (),
    "fanout": (
        IntParam("calls", 1, 100, "BENCH_FANOUT_CALLS"),
        # Optional: absent means the upstream's own default delay applies.
        IntParam("delay_ms", 0, 10_000),
    ),
    "orm": (
        IntParam("rows", 1, 500, "BENCH_ORM_ROWS"),
        IntParam("page", 1, 1_000_000, fixed_default=1),
    ),
    "json": (IntParam("rows", 1, 500, "BENCH_JSON_ROWS"),),
    "json-noindex": (IntParam("rows", 1, 500, "BENCH_JSON_ROWS"),),
    "cpu": (IntParam("rounds", 1, 1_000_000, "BENCH_CPU_ROUNDS"),),
    "wait": (IntParam("ms", 0, 10_000, "BENCH_WAIT_MS"),),
    "stream": (IntParam("chunks", 1, 10_000, "BENCH_STREAM_CHUNKS"),),
}

if set(WORKLOAD_PARAMS) != set(WORKLOADS):
    raise RuntimeError("bench_site.params.WORKLOAD_PARAMS does not cover the registry's workloads")


class BadParam(Exception):
    def __init__(self, param: str, message: str, allowed: object) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.allowed = allowed

    def response(self) -> HttpResponse:
        return error_response(400, self.message, param=self.param, allowed=self.allowed)


def parse_params(query: QueryDict, specs: tuple[IntParam, ...]) -> dict[str, int | None]:
    by_name: Mapping[str, IntParam] = {spec.name: spec for spec in specs}
    for name in query:
        if name not in by_name:
            raise BadParam(name, f"unknown query parameter {name!r}", sorted(by_name))
    values: dict[str, int | None] = {}
    for spec in specs:
        raw_values = query.getlist(spec.name)
        if not raw_values:
            values[spec.name] = spec.default()
            continue
        if len(raw_values) > 1:
            raise BadParam(spec.name, f"{spec.name} given more than once", spec.allowed())
        raw = raw_values[0]
        if not _INTEGER.fullmatch(raw):
            raise BadParam(spec.name, f"{spec.name} must be an integer", spec.allowed())
        value = int(raw)
        if not spec.minimum <= value <= spec.maximum:
            raise BadParam(
                spec.name,
                f"{spec.name} must be in {spec.minimum}..{spec.maximum}",
                spec.allowed(),
            )
        values[spec.name] = value
    return values
