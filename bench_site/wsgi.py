"""WSGI entry point (gunicorn sync/gthread, ...): serves every endpoint.

Async views run under WSGI through async_to_sync, in a new event loop per
request; that cost is part of what the sync-vs-async comparison shows.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from bench_site import gcpolicy, telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

# Counters for the runner when BENCH_TELEMETRY_DIR is set (bench_site.telemetry);
# without it the application is Django's own, unwrapped.
telemetry.install()
application = telemetry.wrap_wsgi(get_wsgi_application())

# Last: every object alive now is the application's (BENCH_GC=freeze freezes them).
gcpolicy.apply()
