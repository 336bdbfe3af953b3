"""The middleware stacks a setup may choose (`middleware = ...`, BENCH_MIDDLEWARE).

Pure data, like bench_site.registry: settings build MIDDLEWARE from it and the
scenario parser validates names against it without loading Django.

- ``minimal``: the security headers and common handling a deployed API keeps;
  no cookie, no database. What every measurement used before the option.
- ``startproject``: the seven of Django's ``startproject`` template, in its
  order. Each is a MiddlewareMixin: async-capable, but under ASGI its sync
  hooks (process_request / process_view / process_response) each run through
  sync_to_async, one thread hop per hook per request (Django ticket #37177).
- ``async-native``: the same seven behaviours (bench_site.middleware), whose
  hooks run on the event loop; only their database I/O goes through Django's
  async API (which, in Django 6.1, is sync_to_async inside the ORM).

``startproject`` and ``async-native`` carry a logged-in session: the load
sends the seeded session's cookie (bench_site.sessions) and every view loads
request.user (bench_site.dispatch), as a real project's view usually does.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_STACK = "minimal"

MIDDLEWARE_STACKS: Mapping[str, tuple[str, ...]] = {
    "minimal": (
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ),
    "startproject": (
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ),
    "async-native": (
        "bench_site.middleware.AsyncSecurityMiddleware",
        "bench_site.middleware.AsyncSessionMiddleware",
        "bench_site.middleware.AsyncCommonMiddleware",
        "bench_site.middleware.AsyncCsrfViewMiddleware",
        "bench_site.middleware.AsyncAuthenticationMiddleware",
        "bench_site.middleware.AsyncMessageMiddleware",
        "bench_site.middleware.AsyncXFrameOptionsMiddleware",
    ),
}

# The stacks whose requests carry the seeded session cookie.
SESSION_STACKS = frozenset({"startproject", "async-native"})
