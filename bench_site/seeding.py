"""Deterministic rows for Item, ItemNoIndex and ItemKeyIndex, and loading them.

Row `i` (ids 1..N) is generated from its own `random.Random(SEED + i)`, so any
row can be regenerated without the ones before it: that is what lets `seed`
check a loaded table by sampling instead of re-reading it all. Every table gets
the same rows with the same ids, so json, json-noindex and json-keyindex return
one body, and SQLite, PostgreSQL and MariaDB hold the same data.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Max, Min

from bench_site.models import GIN_INDEX_NAME, Item, ItemBase, ItemKeyIndex, ItemNoIndex

SEED = 20_240_611
# 10 colours x 20 countries, drawn independently: the json workload's
# {"color": "red", "vendor": {"country": "SE"}} matches ~0.5 % of rows.
COLORS = ("red", "green", "blue", "black", "white", "yellow", "orange", "purple", "grey", "brown")
COUNTRIES = (
    "SE", "NO", "DK", "FI", "DE", "FR", "NL", "BE", "ES", "IT",
    "PT", "PL", "CZ", "AT", "CH", "GB", "IE", "US", "CA", "JP",
)  # fmt: skip
CATEGORIES = ("tools", "garden", "kitchen", "toys", "books", "music", "sports", "office")
TAGS = (
    "new", "sale", "eco", "gift", "bulk", "rare",
    "handmade", "imported", "local", "premium", "basic", "refurbished",
)  # fmt: skip
MODELS: tuple[type[ItemBase], ...] = (Item, ItemNoIndex, ItemKeyIndex)
# Rows compared with their generated values when a table looks complete; a
# full compare would cost about as much as reloading.
SAMPLES = 64

Progress = Callable[[str], None]


def row(index: int) -> dict[str, Any]:
    """The content of the row with id `index` (1-based), without the id."""
    rng = random.Random(SEED + index)
    return {
        "name": f"item-{index:06d}",
        "category": rng.choice(CATEGORIES),
        "price_cents": rng.randint(100, 100_000),
        "metadata": {
            "color": rng.choice(COLORS),
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "dims": {"w": rng.randint(1, 200), "h": rng.randint(1, 200)},
            "vendor": {"country": rng.choice(COUNTRIES), "name": f"vendor-{rng.randint(1, 500)}"},
        },
    }


def _sample_ids(rows: int) -> list[int]:
    if rows <= SAMPLES:
        return list(range(1, rows + 1))
    step = (rows - 1) / (SAMPLES - 1)
    return sorted({1 + round(k * step) for k in range(SAMPLES)})


def is_seeded(model: type[ItemBase], rows: int) -> bool:
    """True if the table holds exactly ids 1..rows with the generated content."""
    manager = model._default_manager
    if manager.count() != rows:
        return False
    if rows == 0:
        return True
    bounds = manager.aggregate(low=Min("id"), high=Max("id"))
    if bounds != {"low": 1, "high": rows}:
        return False
    stored = {item.pk: item.to_dict() for item in manager.filter(pk__in=_sample_ids(rows))}
    return all(stored.get(i) == {"id": i, **row(i)} for i in _sample_ids(rows))


def _batches(rows: int, batch: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    for start in range(1, rows + 1, batch):
        yield [(i, row(i)) for i in range(start, min(start + batch, rows + 1))]


def _empty(model: type[ItemBase]) -> None:
    # The backend's own flush SQL: TRUNCATE ... RESTART IDENTITY on PostgreSQL,
    # DELETE plus a sqlite_sequence reset on SQLite. On MySQL/MariaDB a plain
    # DELETE: resetting there means TRUNCATE, which commits implicitly and
    # would break both this function's atomic load and the tests' rollback;
    # every row is inserted with its explicit id, so the counter never matters.
    reset = connection.vendor != "mysql"
    statements = connection.ops.sql_flush(no_style(), [model._meta.db_table], reset_sequences=reset)
    connection.ops.execute_sql_flush(statements)


def _with_pk(item: ItemBase, pk: int) -> ItemBase:
    # Through `pk`: the abstract ItemBase declares no `id` for the type checker.
    item.pk = pk
    return item


def _load(models: list[type[ItemBase]], rows: int, batch: int, progress: Progress) -> None:
    names = ", ".join(model.__name__ for model in models)
    with transaction.atomic():
        for model in models:
            _empty(model)
        done = 0
        # Each row is generated once and written to every table being loaded.
        for rows_batch in _batches(rows, batch):
            for model in models:
                objects = [_with_pk(model(**fields), i) for i, fields in rows_batch]
                model._default_manager.bulk_create(objects, batch_size=batch)
            done += len(rows_batch)
            progress(f"  {names}: {done}/{rows}")
        # Explicit ids leave PostgreSQL's sequences behind; reset them so a
        # later insert without an id cannot collide. (SQLite tracks the max.)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)


def seed(*, rows: int = 100_000, batch: int = 5_000, progress: Progress | None = None) -> bool:
    """Make both tables hold exactly the `rows` generated rows.

    Returns True if anything was written. Tables already holding that content
    are left alone, so calling this before every run is cheap.
    """
    if rows < 0 or batch < 1:
        raise ValueError(f"rows must be >= 0 and batch >= 1, got rows={rows}, batch={batch}")
    say: Progress = progress or (lambda message: None)
    stale: list[type[ItemBase]] = []
    for model in MODELS:
        if is_seeded(model, rows):
            say(f"{model.__name__}: already holds the {rows} expected rows; left as is")
        else:
            stale.append(model)
    wrote = bool(stale)
    if stale:
        started = time.perf_counter()
        say(f"loading {rows} rows into {', '.join(m.__name__ for m in stale)} (batches of {batch})")
        _load(stale, rows, batch, say)
        say(f"loaded in {time.perf_counter() - started:.1f} s")
    if wrote and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Rows inserted into a GIN index first go to its unsorted "pending
            # list" (fastupdate). Until a vacuum merges it, every query scans
            # that list, and the planner, costing it, may prefer a seq scan.
            # Merge it now rather than leave the first measured minutes to
            # autovacuum's timing.
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [GIN_INDEX_NAME])
        say("GIN pending list merged")
    if wrote:
        analyze()
        say("ANALYZE done")
    return wrote


def analyze() -> None:
    """Fresh planner statistics for every table, on every database.

    So each planner sees the real table sizes and the selectivity of the
    generated-column index (SQLite's planner has none at all until ANALYZE
    writes sqlite_stat1), rather than guesses from an empty table.
    """
    with connection.cursor() as cursor:
        for model in MODELS:
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "mysql":
                # ANALYZE TABLE commits implicitly on MySQL/MariaDB: inside a
                # caller's transaction (a test's) it would commit that, so it
                # is left to InnoDB's own statistics recalculation there.
                if connection.in_atomic_block:
                    continue
                cursor.execute(f"ANALYZE TABLE {table}")
                cursor.fetchall()  # it answers with a status table, to be read
            else:
                cursor.execute(f"ANALYZE {table}")
