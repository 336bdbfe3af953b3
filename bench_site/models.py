"""The rows the ORM and JSON workloads read.

`Item` and `ItemNoIndex` are the same table twice; only `Item` has the GIN
index (on PostgreSQL), so json vs json-noindex measures what the index buys and
nothing else. `ItemKeyIndex` is the same table a third time plus two generated
columns extracted from the JSON keys the json query asks about, with a B-tree
index on them: the index every database has (json-keyindex). `seed` writes
identical rows, with identical ids, to all three.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.fields.json import KT

GIN_INDEX_NAME = "item_metadata_gin"
KEY_INDEX_NAME = "item_key_color_country"


class ItemBase(models.Model):
    name = models.CharField(max_length=64)
    category = models.CharField(max_length=32)
    # Integer cents rather than DecimalField: SQLite has no decimal type, and a
    # Decimal would serialize differently per backend; the body must not.
    price_cents = models.PositiveIntegerField()
    # {"color": str, "tags": [str], "dims": {"w": int, "h": int},
    #  "vendor": {"country": str, "name": str}}; integers only, no floats, so
    # jsonb and SQLite's JSON text round-trip to the same values.
    metadata = models.JSONField()

    class Meta:
        abstract = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "name": self.name,
            "category": self.category,
            "price_cents": self.price_cents,
            "metadata": self.metadata,
        }


class Item(ItemBase):
    class Meta:
        # jsonb_path_ops rather than the default jsonb_ops: it indexes hashes of
        # whole paths to values, so the index is several times smaller and a
        # containment (@>) probe is faster; it cannot serve the key-existence
        # operators (?, ?|, ?&), and @> is the only operator the json workload
        # uses. The migration creates it on PostgreSQL only (see
        # migrations/0001_initial.py); on SQLite there is no GIN.
        indexes = (GinIndex(fields=["metadata"], opclasses=["jsonb_path_ops"], name=GIN_INDEX_NAME),)


class ItemNoIndex(ItemBase):
    """The control for `Item`: same columns, same rows, no index on metadata."""


class ItemKeyIndex(ItemBase):
    """`Item`'s rows with the queried JSON keys as generated columns, indexed.

    The article's advice for databases without GIN: "consider generated
    columns for frequently queried JSON keys". `color` and `vendor_country`
    are computed by the database from `metadata` (never written by Django),
    and one B-tree index serves the json query on SQLite, MariaDB/MySQL and
    PostgreSQL alike.

    STORED (db_persist=True) everywhere: PostgreSQL (before 18) has only
    stored generated columns, and SQLite and MariaDB index either kind, so one
    migration gives all three databases the same table; the extra bytes per
    row are a few characters.

    The index is composite, (color, vendor_country, id): the query is an
    equality on both keys, so every index entry it visits is a match (one key
    alone would visit ten times as many and filter); the count reads only the
    index where the database can (SQLite, InnoDB); and with id last, the
    matches come out in id order, so the page (first `rows` by id) is the
    first `rows` entries, no sort, on every database. (InnoDB appends the
    primary key to a secondary index anyway; naming it makes PostgreSQL's
    index ordered the same way.)
    """

    color = models.GeneratedField(
        expression=KT("metadata__color"), output_field=models.CharField(max_length=16), db_persist=True
    )
    vendor_country = models.GeneratedField(
        expression=KT("metadata__vendor__country"), output_field=models.CharField(max_length=16), db_persist=True
    )

    class Meta:
        indexes = (models.Index(fields=["color", "vendor_country", "id"], name=KEY_INDEX_NAME),)
