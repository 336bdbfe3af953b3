"""ASGI entry point (uvicorn, daphne, gunicorn + uvicorn worker, ...): serves
every endpoint. Sync views run in a thread via sync_to_async."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

application = get_asgi_application()
