"""WSGI entry point (gunicorn sync/gthread, ...): serves every endpoint.

Async views run under WSGI through async_to_sync, in a new event loop per
request; that cost is part of what the sync-vs-async comparison shows.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

application = get_wsgi_application()
