"""Initial tables. Written by hand: the GIN index is added by an operation that
runs on PostgreSQL only, so the same migration applies on SQLite."""

from __future__ import annotations

import django.contrib.postgres.indexes
from django.db import migrations, models

import bench_site.migration_operations


def _item_fields() -> list[tuple[str, models.Field]]:  # type: ignore[type-arg]
    return [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("name", models.CharField(max_length=64)),
        ("category", models.CharField(max_length=32)),
        ("price_cents", models.PositiveIntegerField()),
        ("metadata", models.JSONField()),
    ]


class Migration(migrations.Migration):
    initial = True

    dependencies = ()

    operations = (
        migrations.CreateModel(name="Item", fields=_item_fields(), options={"abstract": False}),
        migrations.CreateModel(name="ItemNoIndex", fields=_item_fields(), options={"abstract": False}),
        bench_site.migration_operations.AddIndexOnPostgreSQL(
            model_name="item",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["metadata"], name="item_metadata_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
    )
