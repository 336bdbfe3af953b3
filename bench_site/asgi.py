"""ASGI entry point (uvicorn, daphne, gunicorn + uvicorn worker, ...): serves
every endpoint. Sync views run in a thread via sync_to_async."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from bench_site import telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

# Counters for the runner when BENCH_TELEMETRY_DIR is set (bench_site.telemetry);
# without it the application is Django's own, unwrapped.
telemetry.install()
application = telemetry.wrap_asgi(get_asgi_application())
