"""ASGI entry point (uvicorn, daphne, gunicorn + uvicorn worker, ...): serves
every endpoint. Sync views run in a thread via sync_to_async.

HTTP goes to Django's ASGI handler; WebSocket connections to the Channels
consumers of the websocket workloads (bench_site.routing). Other scope types
(lifespan) are refused, as Django's handler alone refused them.
"""

from __future__ import annotations

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

from bench_site import gcpolicy, telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

# Counters for the runner when BENCH_TELEMETRY_DIR is set (bench_site.telemetry);
# without it the application is Django's own, unwrapped.
telemetry.install()
http_application = telemetry.wrap_asgi(get_asgi_application())

# After get_asgi_application(): it sets Django up, and the consumers import Django.
from bench_site.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": http_application, "websocket": websocket_application})

# Last: every object alive now is the application's (BENCH_GC=freeze freezes them).
gcpolicy.apply()
