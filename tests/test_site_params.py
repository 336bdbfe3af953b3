"""Query parameters: integers within bounds, everything else a JSON 400."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from bench_site.registry import WORKLOADS, endpoints

BAD_VALUES = ["abc", "", "1.5", "1e3", "1_0", " 5", "٣", "0x10", "9" * 40]


def get(path: str) -> tuple[int, str, dict[str, object]]:
    response = async_to_sync(AsyncClient().get)(path) if path.startswith("/async") else Client().get(path)
    return response.status_code, response["Content-Type"], json.loads(response.content)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for ep in endpoints():
        for spec in WORKLOADS[ep.workload].params:
            for value in [*BAD_VALUES, str(spec.minimum - 1), str(spec.maximum + 1)]:
                cases.append((ep.path, spec.name, value))
    return cases


@pytest.mark.parametrize(("path", "param", "value"), _cases())
def test_bad_values_are_400_json(path: str, param: str, value: str) -> None:
    from urllib.parse import quote

    status, content_type, body = get(f"{path}?{param}={quote(value)}")
    assert (status, content_type) == (400, "application/json")
    assert body["param"] == param
    spec = next(s for s in WORKLOADS[path.split("/")[2]].params if s.name == param)
    assert body["allowed"] == {"min": spec.minimum, "max": spec.maximum}
    assert isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize("path", [ep.path for ep in endpoints()])
def test_unknown_parameter_is_400_listing_the_allowed_ones(path: str) -> None:
    status, _, body = get(f"{path}?bogus=1")
    assert status == 400
    assert body["param"] == "bogus"
    assert body["allowed"] == sorted(s.name for s in WORKLOADS[path.split("/")[2]].params)


def test_repeated_parameter_is_400() -> None:
    status, _, body = get("/sync/cpu/?rounds=1&rounds=2")
    assert (status, body["param"]) == (400, "rounds")


def test_bounds_are_inclusive(db: None) -> None:
    assert get("/sync/orm/?rows=500&page=1")[0] == 200
    assert get("/sync/orm/?rows=1&page=1000000")[0] == 200
    assert get("/sync/wait/?ms=0")[0] == 200
    assert get("/sync/cpu/?rounds=1")[0] == 200


def test_defaults_come_from_settings(settings: Settings, db: None) -> None:
    settings.BENCH_ORM_ROWS = 3
    settings.BENCH_CPU_ROUNDS = 5
    status, _, body = get("/async/orm/")
    assert (status, body["rows"], len(body["items"])) == (200, 3, 3)  # type: ignore[arg-type]
    assert get("/sync/cpu/")[2]["rounds"] == 5
