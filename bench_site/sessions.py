"""The logged-in session the startproject and async-native stacks are loaded with.

A browser of a logged-in user sends its session cookie with every request;
so does the load generator for those stacks (asyncbench.execute.groups). The
session is a real row in Django's session table, bound to a real user, so
SessionMiddleware and AuthenticationMiddleware do their whole work: one query
for the session, one for the user, the session's auth hash checked.

Its key is fixed (derived from a constant, 32 characters like Django's own)
so the runner knows the cookie without asking the database; `seed` writes the
row again on every run, encoded with the current SECRET_KEY. The user has an
unusable password: nobody can log in as it, the cookie is the only way in,
and it opens nothing but a benchmark's read-only views on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

SESSION_KEY = hashlib.sha256(b"django-async-bench logged-in session").hexdigest()[:32]
USERNAME = "bench-user"
COOKIE_NAME = "sessionid"  # Django's SESSION_COOKIE_NAME default, which settings keep
# Far beyond any run; `seed` renews it.
LIFETIME = timedelta(days=365)


def cookie_header() -> tuple[str, str]:
    """The request header a logged-in browser sends."""
    return ("Cookie", f"{COOKIE_NAME}={SESSION_KEY}")


def seed_session() -> None:
    """Create (or renew) the bench user and its logged-in session row.

    The session holds what django.contrib.auth.login() stores: the user's id,
    its backend and its session auth hash (an HMAC of the password hash with
    SECRET_KEY), so get_user() / aget_user() accept it without flushing it.
    """
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY
    from django.contrib.auth import SESSION_KEY as USER_ID_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    user = User.objects.filter(username=USERNAME).first()
    if user is None:
        user = User(username=USERNAME)
        user.set_unusable_password()
        user.save()
    data = {
        USER_ID_KEY: user._meta.pk.value_to_string(user),  # as login() stores it
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    Session.objects.update_or_create(
        session_key=SESSION_KEY,
        defaults={"session_data": SessionStore().encode(data), "expire_date": timezone.now() + LIFETIME},
    )
