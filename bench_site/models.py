"""The rows the ORM and JSON workloads read.

`Item` and `ItemNoIndex` are the same table twice; only `Item` has the GIN
index (on PostgreSQL), so json vs json-noindex measures what the index buys and
nothing else. `seed` writes identical rows, with identical ids, to both.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.db import models

GIN_INDEX_NAME = "item_metadata_gin"


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
