"""Parsing the integer query parameters of the measured views.

The names, bounds and defaults are the registry's (`Workload.params`); this
module applies them to a request.

Strict on purpose: an unknown parameter is rejected rather than ignored, so a
typo in a scenario (`?row=100`) fails loudly instead of measuring the default,
and no parameter can smuggle in an upstream address (`?url=`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.conf import settings
from django.http import HttpResponse, QueryDict

from bench_site.registry import Param
from bench_site.responses import error_response

# ASCII digits only: int() would also take "1_000", " 5" and non-ASCII digits.
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def default(spec: Param) -> int | None:
    """The value an absent parameter takes: read from settings at request time,
    so a test's settings override applies."""
    if spec.default_setting is None:
        return spec.fixed_default
    value: int = getattr(settings, spec.default_setting)
    return value


class BadParam(Exception):
    def __init__(self, param: str, message: str, allowed: object) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.allowed = allowed

    def response(self) -> HttpResponse:
        return error_response(400, self.message, param=self.param, allowed=self.allowed)


def parse_params(query: QueryDict, specs: tuple[Param, ...]) -> dict[str, int | None]:
    by_name: Mapping[str, Param] = {spec.name: spec for spec in specs}
    for name in query:
        if name not in by_name:
            raise BadParam(name, f"unknown query parameter {name!r}", sorted(by_name))
    values: dict[str, int | None] = {}
    for spec in specs:
        raw_values = query.getlist(spec.name)
        if not raw_values:
            values[spec.name] = default(spec)
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
