from __future__ import annotations

from django.apps import AppConfig


class BenchSiteConfig(AppConfig):
    name = "bench_site"
    verbose_name = "django-async-bench site"
    default_auto_field = "django.db.models.BigAutoField"
