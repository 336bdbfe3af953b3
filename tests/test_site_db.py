"""Migrations, the PostgreSQL-only GIN index, the query plans, and `seed`."""

from __future__ import annotations

import io

import pytest
from conftest import SEED_ROWS
from django.core.management import call_command
from django.db import connection

from bench_site.models import GIN_INDEX_NAME, Item, ItemNoIndex
from bench_site.seeding import is_seeded, row, seed
from bench_site.workloads.jsonq import matching


def _indexes(model: type[Item] | type[ItemNoIndex]) -> dict[str, dict[str, object]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: info for name, info in constraints.items() if info["index"] and not info["primary_key"]}


def test_models_match_migrations(db: None) -> None:
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_sqlite_migrations_have_no_gin_index(db: None) -> None:
    # Runs in the SQLite pass only (no `postgres` mark).
    assert connection.vendor == "sqlite"
    assert GIN_INDEX_NAME not in _indexes(Item)
    assert _indexes(ItemNoIndex) == {}


@pytest.mark.postgres
def test_postgres_has_gin_jsonb_path_ops_on_item_only(db: None) -> None:
    indexes = _indexes(Item)
    assert indexes[GIN_INDEX_NAME]["type"] == "gin"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [GIN_INDEX_NAME])
        (definition,) = cursor.fetchone()
    assert "jsonb_path_ops" in definition
    assert _indexes(ItemNoIndex) == {}


@pytest.mark.postgres
def test_postgres_plans_use_the_index_only_where_it_exists(db: None) -> None:
    """Over 30,000 analysed rows the planner picks the GIN index for the json
    workload's count on its own (no enable_seqscan tricks); the control table
    has nothing to pick but a sequential scan. Loaded inside the test's
    transaction, so the session's small dataset comes back afterwards."""
    seed(rows=30_000, batch=5_000)
    indexed = matching(Item).explain()
    control = matching(ItemNoIndex).explain()
    assert f"Bitmap Index Scan on {GIN_INDEX_NAME}" in indexed, indexed
    assert "Seq Scan on bench_site_itemnoindex" in control, control
    assert GIN_INDEX_NAME not in control
    # Same answer either way.
    assert matching(Item).count() == matching(ItemNoIndex).count() > 0


def test_json_query_selectivity(backend: str) -> None:
    # ~0.5 % of rows: 0.1-1 % keeps the page full and the count meaningful.
    count = matching(Item).count()
    assert 0.001 * SEED_ROWS <= count <= 0.01 * SEED_ROWS


def test_seed_rows_are_pinned() -> None:
    # The generator defines the data every stored baseline was measured on:
    # changing it must be a deliberate, visible change here.
    assert row(1) == {
        "name": "item-000001",
        "category": "office",
        "price_cents": 31802,
        "metadata": {
            "color": "yellow",
            "tags": ["new", "gift"],
            "dims": {"w": 38, "h": 98},
            "vendor": {"country": "PL", "name": "vendor-238"},
        },
    }
    assert row(100_000)["metadata"] == {
        "color": "white",
        "tags": ["handmade"],
        "dims": {"w": 98, "h": 123},
        "vendor": {"country": "FR", "name": "vendor-390"},
    }


def test_seed_is_idempotent_and_repairs(backend: str) -> None:
    assert is_seeded(Item, SEED_ROWS) and is_seeded(ItemNoIndex, SEED_ROWS)
    out: list[str] = []
    assert seed(rows=SEED_ROWS, progress=out.append) is False
    assert all("left as is" in line for line in out)
    # A changed row in the sample, or a different count, triggers a rebuild.
    Item.objects.filter(id=1).update(name="tampered")
    assert not is_seeded(Item, SEED_ROWS)
    ItemNoIndex.objects.filter(id=SEED_ROWS).delete()
    assert seed(rows=SEED_ROWS, batch=700) is True
    assert is_seeded(Item, SEED_ROWS) and is_seeded(ItemNoIndex, SEED_ROWS)
    assert Item.objects.get(id=1).name == "item-000001"


def test_seed_command(backend: str) -> None:
    out = io.StringIO()
    call_command("seed", "--rows", str(SEED_ROWS), stdout=out)
    assert "already seeded" in out.getvalue()
    out = io.StringIO()
    call_command("seed", "--rows", "50", "--batch", "20", stdout=out)
    assert "seeded: 50 rows per table" in out.getvalue()
    assert Item.objects.count() == ItemNoIndex.objects.count() == 50
