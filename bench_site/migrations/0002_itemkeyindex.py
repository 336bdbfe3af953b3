"""ItemKeyIndex: the json table with its two queried JSON keys as STORED
generated columns and a B-tree index on them (json-keyindex). Plain Django
operations: generated columns and B-tree indexes exist on SQLite, MariaDB/MySQL
and PostgreSQL alike, so unlike the GIN index nothing here is backend-specific."""

from __future__ import annotations

from django.db import migrations, models
from django.db.models.fields.json import KT


class Migration(migrations.Migration):
    dependencies = (("bench_site", "0001_initial"),)

    operations = (
        migrations.CreateModel(
            name="ItemKeyIndex",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=64)),
                ("category", models.CharField(max_length=32)),
                ("price_cents", models.PositiveIntegerField()),
                ("metadata", models.JSONField()),
                (
                    "color",
                    models.GeneratedField(
                        db_persist=True, expression=KT("metadata__color"), output_field=models.CharField(max_length=16)
                    ),
                ),
                (
                    "vendor_country",
                    models.GeneratedField(
                        db_persist=True,
                        expression=KT("metadata__vendor__country"),
                        output_field=models.CharField(max_length=16),
                    ),
                ),
            ],
            options={
                "abstract": False,
                "indexes": [models.Index(fields=["color", "vendor_country", "id"], name="item_key_color_country")],
            },
        ),
    )
