"""A committed version-1 run (a real `make bench` on this machine) renders
with the same verdict sentences, terminal summary, CSV and table numbers as
when it was recorded: moving code around must not change what a reader sees."""

from __future__ import annotations

import json

import pytest

from tests.v1_golden import FIXTURE, rendering


@pytest.fixture(scope="module")
def now() -> dict[str, object]:
    return rendering()


@pytest.fixture(scope="module")
def golden() -> dict[str, object]:
    return json.loads((FIXTURE / "golden.json").read_text())


@pytest.mark.parametrize("part", ["verdicts", "terminal", "csv", "tables"])
def test_v1_fixture_renders_as_recorded(now: dict[str, object], golden: dict[str, object], part: str) -> None:
    assert now[part] == golden[part]


def test_v1_fixture_reads_into_typed_records_and_writes_them_back_unchanged() -> None:
    from asyncbench.model.results import load_run, to_dict

    raw = json.loads((FIXTURE / "results.json").read_text())
    run = load_run(FIXTURE)
    assert run.environment.database.vendor == "sqlite"
    assert run.environment.cpu_count == raw["environment"]["cpu_count"]
    assert run.generator_ceiling.rps == raw["generator_ceiling"]["rps"]
    written = json.loads(json.dumps(to_dict(run)))
    assert written["environment"] == raw["environment"]
    assert written["generator_ceiling"] == raw["generator_ceiling"]
    assert run.schema_version == 1
    # a version-1 repeat is read as one block: repeats ran in interleaved rounds
    assert all(r.block == r.index for c in run.cells for r in c.repeats)
