"""Migrations, the PostgreSQL-only GIN index, the generated-column key index,
the query plans on each database, and `seed`."""

from __future__ import annotations

import io
from typing import Any

import pytest
from conftest import SEED_ROWS
from django.core.management import call_command
from django.db import connection
from django.db.models import QuerySet

from bench_site.models import GIN_INDEX_NAME, KEY_INDEX_NAME, Item, ItemBase, ItemKeyIndex, ItemNoIndex
from bench_site.seeding import analyze, is_seeded, row, seed
from bench_site.workloads.jsonq import matching


def _indexes(model: type[ItemBase]) -> dict[str, dict[str, object]]:
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


def _plan(qs: QuerySet[Any]) -> list[dict[str, Any]]:
    """The database's own plan of `qs`, one dict per row of its EXPLAIN output.

    The SQL Django would send, under each database's EXPLAIN: SQLite's
    EXPLAIN QUERY PLAN (a `detail` per step), MariaDB's EXPLAIN (the `key` and
    `type` columns), PostgreSQL's text plan (a `QUERY PLAN` per line).
    """
    sql, params = qs.query.sql_with_params()
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]


def _json_queries(model: type[ItemBase]) -> list[QuerySet[Any]]:
    # the count's WHERE and the page (first 20 matches by id), as the views send them
    return [matching(model), matching(model).order_by("id")[:20]]


def test_key_index_on_every_database(backend: str) -> None:
    """The generated columns hold the JSON values, the B-tree index covers
    them with id last, and the keyed query finds what the JSON query finds."""
    assert list(_indexes(ItemKeyIndex)[KEY_INDEX_NAME]["columns"]) == ["color", "vendor_country", "id"]
    first = ItemKeyIndex.objects.get(id=1)
    assert (first.color, first.vendor_country) == ("yellow", "PL")  # row(1)'s metadata
    keyed = list(matching(ItemKeyIndex).order_by("id").values_list("id", flat=True))
    assert keyed == list(matching(ItemNoIndex).order_by("id").values_list("id", flat=True))
    assert len(keyed) > 0


def test_sqlite_plans_key_index_and_full_scan(db: None) -> None:
    # Runs in the SQLite pass only (no database mark).
    assert connection.vendor == "sqlite"
    analyze()
    for qs in _json_queries(ItemKeyIndex):
        details = " | ".join(str(r["detail"]) for r in _plan(qs))
        assert f"SEARCH bench_site_itemkeyindex USING INDEX {KEY_INDEX_NAME} (color=? AND vendor_country=?)" in (
            details
        ), details
        assert "TEMP B-TREE" not in details, details  # id order comes from the index: no sort
    for qs in _json_queries(ItemNoIndex):
        details = " | ".join(str(r["detail"]) for r in _plan(qs))
        assert details == "SCAN bench_site_itemnoindex", details


@pytest.mark.mariadb
def test_mariadb_plans_key_index_and_full_scan(db: None) -> None:
    """EXPLAIN's `key` column names the index (a `ref` lookup on both keys);
    the control is read whole, as a table scan or in primary-key order."""
    # ANALYZE TABLE would commit the test's transaction; the session's seed ran it.
    for qs in _json_queries(ItemKeyIndex):
        (step,) = _plan(qs)
        assert (step["key"], step["type"], step["ref"]) == (KEY_INDEX_NAME, "ref", "const,const"), step
        assert "filesort" not in str(step["Extra"]), step
    count_step, page_step = (_plan(qs)[0] for qs in _json_queries(ItemNoIndex))
    assert (count_step["type"], count_step["key"]) == ("ALL", None), count_step
    assert (page_step["type"], page_step["key"]) in {("ALL", None), ("index", "PRIMARY")}, page_step
    assert page_step["possible_keys"] is None, page_step


@pytest.mark.postgres
def test_postgres_plans_key_index_and_full_scan(db: None) -> None:
    analyze()
    for qs in _json_queries(ItemKeyIndex):
        text = "\n".join(str(r["QUERY PLAN"]) for r in _plan(qs))
        assert any(
            f"{scan} {KEY_INDEX_NAME}" in text
            for scan in ("Index Scan using", "Index Only Scan using", "Bitmap Index Scan on")
        ), text
        assert "Seq Scan" not in text, text
    for qs in _json_queries(ItemNoIndex):
        text = "\n".join(str(r["QUERY PLAN"]) for r in _plan(qs))
        assert "Seq Scan on bench_site_itemnoindex" in text, text
        assert "Index" not in text, text


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
    assert is_seeded(Item, SEED_ROWS) and is_seeded(ItemNoIndex, SEED_ROWS) and is_seeded(ItemKeyIndex, SEED_ROWS)
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
    assert Item.objects.count() == ItemNoIndex.objects.count() == ItemKeyIndex.objects.count() == 50


def test_database_urls_pick_the_backend() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from bench_site.settings import database_from_url

    for scheme in ("mysql", "mariadb"):
        entry = database_from_url(f"{scheme}://bench:p%40ss@127.0.0.1:3307/bench")
        assert entry["ENGINE"] == "django.db.backends.mysql"
        assert (entry["NAME"], entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"]) == (
            "bench",
            "bench",
            "p@ss",
            "127.0.0.1",
            "3307",
        )
        assert entry["OPTIONS"] == {"charset": "utf8mb4", "connect_timeout": 5}
        assert entry["CONN_MAX_AGE"] == 0
    assert str(database_from_url("postgresql://postgres@127.0.0.1/x")["ENGINE"]).endswith("backends.postgresql")
    with pytest.raises(ImproperlyConfigured, match="'oracle' not supported; allowed: postgresql://, mysql://"):
        database_from_url("oracle://x@h/db")
    with pytest.raises(ImproperlyConfigured, match="no database name"):
        database_from_url("mysql://root@127.0.0.1:3306/")
