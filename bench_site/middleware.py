"""The site's own middleware: the sync-only one that BENCH_SYNC_MIDDLEWARE=1
appends, and the async-native stack (BENCH_MIDDLEWARE=async-native).

The async-native classes are Django's seven `startproject` middleware with an
async path that runs their hooks on the event loop instead of one
sync_to_async call per hook (bench_site.stacks). Subclassing keeps every
header and cookie Django's own: only where the work runs differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import http_date


class SyncOnlyMiddleware:
    """Trivial work in a middleware that cannot run on the event loop.

    Under ASGI, Django must wrap the rest of the chain so this runs in a thread
    (sync_to_async) and the async views below it are called back through
    async_to_sync: that adaptation, not the header, is what the switch measures.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response["X-Bench-Sync-Middleware"] = "1"
        return response


# --- the async-native stack (BENCH_MIDDLEWARE=async-native) --------------------


class InlineHooksMixin(MiddlewareMixin):
    """MiddlewareMixin whose async path calls the sync hooks on the event loop.

    Django's MiddlewareMixin.__acall__ runs every process_request and
    process_response through sync_to_async, because it cannot know whether a
    hook blocks (Django ticket #37177). The hooks of the classes below are
    known not to (headers, cookies, attribute checks); where a hook would
    touch the database, the subclass does that part with Django's async API
    first. Under WSGI (sync mode) nothing changes: it is Django's own code.
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase | None = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        response = response or await self.get_response(request)  # type: ignore[misc]  # async mode: awaitable
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            response = process_response(request, response)
        assert response is not None
        return response


class AsyncSecurityMiddleware(InlineHooksMixin, SecurityMiddleware):
    """SecurityMiddleware: header checks and a possible HTTPS redirect, no I/O."""


class AsyncCommonMiddleware(InlineHooksMixin, CommonMiddleware):
    """CommonMiddleware: host/APPEND_SLASH checks (URL resolving) and Content-Length, no I/O."""


class AsyncXFrameOptionsMiddleware(InlineHooksMixin, XFrameOptionsMiddleware):
    """XFrameOptionsMiddleware: one header, no I/O."""


class AsyncAuthenticationMiddleware(InlineHooksMixin, AuthenticationMiddleware):
    """AuthenticationMiddleware: sets the lazy request.user and request.auser, no I/O.

    The user is loaded when a view asks: `await request.auser()` loads the
    session and the user through Django's async API.
    """


async def _load_session_quietly(session: SessionBase) -> None:
    """Load the session's data with the async API without marking it accessed.

    The sync hooks that follow may read or write the session; loaded, they do
    so from memory instead of querying on the event loop. `accessed` decides
    `Vary: Cookie`, so it is left as the sync path would leave it: set only
    if a hook really touches the session.
    """
    accessed = session.accessed
    await session.aget(SESSION_KEY)
    session.accessed = accessed


class AsyncSessionMiddleware(InlineHooksMixin, SessionMiddleware):
    """SessionMiddleware with the save through the async session API.

    process_request only builds the (lazy) SessionStore. process_response is
    Django's, line for line, with the expiry read and the save awaited:
    SessionStore.asave. Loading happens where the session is first read
    (`await request.session.aget(...)`, `await request.auser()`).
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]  # async mode: awaitable
        return await self.aprocess_response(request, response)

    async def aprocess_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        try:
            session = request.session
            accessed = session.accessed
            modified = session.modified
            empty = session.is_empty()
        except AttributeError:
            return response
        if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
            response.delete_cookie(
                settings.SESSION_COOKIE_NAME,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
            need_vary_cookie = True
        else:
            need_vary_cookie = accessed
            if (modified or settings.SESSION_SAVE_EVERY_REQUEST) and not empty:
                max_age: int | None
                expires: str | None
                if await session.aget_expire_at_browser_close():
                    max_age = None
                    expires = None
                else:
                    max_age = await session.aget_expiry_age()
                    expires = http_date(time.time() + max_age)
                if response.status_code < 500:
                    try:
                        await session.asave()
                    except UpdateError:
                        raise SessionInterrupted(
                            "The request's session was deleted before the request completed. The user may have "
                            "logged out in a concurrent request, for example."
                        ) from None
                    key = session.session_key
                    assert key is not None  # asave() gives a new session its key
                    response.set_cookie(
                        settings.SESSION_COOKIE_NAME,
                        key,
                        max_age=max_age,
                        expires=expires,
                        domain=settings.SESSION_COOKIE_DOMAIN,
                        path=settings.SESSION_COOKIE_PATH,
                        # Django passes `or None`; False sets the flag just as little
                        secure=bool(settings.SESSION_COOKIE_SECURE),
                        httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
                        samesite=settings.SESSION_COOKIE_SAMESITE,
                    )
                    need_vary_cookie = True
        if need_vary_cookie:
            patch_vary_headers(response, ("Cookie",))
        return response


class AsyncCsrfViewMiddleware(InlineHooksMixin, CsrfViewMiddleware):
    """CsrfViewMiddleware with process_view on the event loop.

    Django adapts every process_view to the handler's mode; a sync one costs
    a sync_to_async call per request under ASGI. In async mode this instance's
    process_view is a coroutine function calling Django's check inline: for
    the safe methods it only marks the request accepted, and for the others
    it reads request.POST, which ASGI has already buffered. With
    CSRF_USE_SESSIONS the secret lives in the session, so the session is
    loaded through the async API before the sync hooks read it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if self.async_mode:
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    async def _aprocess_view(
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        return CsrfViewMiddleware.process_view(self, request, callback, callback_args, callback_kwargs)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.CSRF_USE_SESSIONS and hasattr(request, "session"):
            await _load_session_quietly(request.session)
        return await super().__acall__(request)


class AsyncMessageMiddleware(InlineHooksMixin, MessageMiddleware):
    """MessageMiddleware; the session is loaded with the async API when the
    storage will write to it.

    Django's default storage (FallbackStorage) keeps messages in a cookie and
    only the overflow in the session; `update` writes anything only if
    messages were read or added. In that case the session is loaded first
    (quietly: `Vary: Cookie` stays as the sync path leaves it), so the sync
    `update` never queries on the event loop. The one difference from the
    sync path: that load may happen when the messages then fit in the cookie.
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]  # async mode: awaitable
        storage = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new) and hasattr(request, "session"):
            await _load_session_quietly(request.session)
        return self.process_response(request, response)  # type: ignore[arg-type]  # any response, as in Django
