"""Settings of the benchmark site, read from the environment with safe defaults.

Everything a scenario may vary is an environment variable (BENCH_*), so the
runner configures a server setup without writing files. Values are read once,
at process start: a measured run never changes them underneath a server.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from bench_site.stacks import DEFAULT_STACK, MIDDLEWARE_STACKS

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected an integer") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value}: expected {minimum}..{maximum}")
    return value


def _env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value}: expected {minimum}..{maximum}")
    return value


# --- core ---------------------------------------------------------------------

# Never on in a measured run: DEBUG keeps every SQL query in memory and renders
# tracebacks, which changes both timing and memory.
DEBUG = _env_bool("BENCH_DEBUG")


def _shared_secret_key(path: Path) -> str:
    """The key kept in `path`, generated on first use.

    The session stacks sign: `seed` encodes the logged-in session and its
    auth hash with this key, and every worker of every server must decode
    them, so one key per checkout (var/ is not committed) rather than one per
    process. Created under a temporary name and linked into place, so
    processes starting at once all read the one that won.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_urlsafe(50).encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process was first: its key is the key
    finally:
        tmp.unlink()
    return path.read_text().strip()


# BENCH_SECRET_KEY, else the checkout's var/secret-key (see _shared_secret_key).
SECRET_KEY = os.environ.get("BENCH_SECRET_KEY") or _shared_secret_key(BASE_DIR / "var" / "secret-key")

# Loopback only: the load generator and the servers run on this machine
# (`testserver` is the Django test client's host).
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    # Needed for GinIndex's system check; on SQLite it only registers lookups.
    "django.contrib.postgres",
    # Django Channels: the WebSocket consumers (bench_site/workloads/ws.py).
    "channels",
    # The apps the startproject and async-native stacks need (sessions in the
    # database, users, messages). Installed in every stack, so `migrate` makes
    # one schema whichever stacks a scenario's setups use; the minimal stack
    # never touches them and pays nothing per request for them.
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "bench_site",
]

# The broadcast WebSocket workload's channel layer: in memory, so one server
# process is one room (no Redis to start; a multi-process server would split
# its clients into one room per process). Under its own alias so the echo
# consumers, which use the default alias, get no layer and pay for none.
CHANNEL_LAYERS = {"broadcast": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The middleware stack (bench_site.stacks): "minimal" by default, lean and
# realistic for an API: the security headers and common handling that a
# deployed project keeps, nothing that needs a database or a cookie. Every
# entry is async-capable, so Django puts no adapter around the chain; but each
# is a MiddlewareMixin whose sync hooks run through sync_to_async under ASGI,
# 5 thread hops per request (tests/test_middleware_hops.py counts them).
# "startproject" is Django's template's seven (13 hops), "async-native" the
# same behaviour with its hooks on the event loop (none). Each middleware is
# per-request cost in every variant alike.
BENCH_MIDDLEWARE = _env_str("BENCH_MIDDLEWARE", DEFAULT_STACK) or DEFAULT_STACK
if BENCH_MIDDLEWARE not in MIDDLEWARE_STACKS:
    raise ImproperlyConfigured(f"BENCH_MIDDLEWARE={BENCH_MIDDLEWARE!r}: expected one of {', '.join(MIDDLEWARE_STACKS)}")
MIDDLEWARE = list(MIDDLEWARE_STACKS[BENCH_MIDDLEWARE])
# Sessions live in the database (Django's default engine, stated because the
# stacks' cost depends on it): a logged-in request reads its session row and
# its user row.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# The switch that shows what one sync-only middleware costs an async stack:
# Django then adapts the chain with sync_to_async/async_to_sync around it.
BENCH_SYNC_MIDDLEWARE = _env_bool("BENCH_SYNC_MIDDLEWARE")
if BENCH_SYNC_MIDDLEWARE:
    MIDDLEWARE.append("bench_site.middleware.SyncOnlyMiddleware")

ROOT_URLCONF = "bench_site.urls"
WSGI_APPLICATION = "bench_site.wsgi.application"
TEMPLATES: list[dict[str, object]] = []

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- database -----------------------------------------------------------------

# django-async-backend warns whenever the sync pool is configured, because its
# async pool cannot work under WSGI (a new event loop per request). Here the
# sync pool is Django's own and the async one serves only async-native, which
# answers 501 under WSGI and which the scenario validator refuses there.
ASYNC_BACKEND_DISABLE_POOL_WARNING = True


def _postgres_from_url(url: str) -> dict[str, object]:
    """postgresql://user[:password]@host[:port]/dbname -> a DATABASES entry.

    Parsed with urllib rather than a URL-parsing package: the scheme is fixed and
    small, and the lock file stays as it is.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ImproperlyConfigured(f"BENCH_DATABASE_URL: scheme {parts.scheme!r} not supported; use postgresql://")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("BENCH_DATABASE_URL: no database name in the path")
    pool_min = _env_int("BENCH_DB_POOL_MIN", 2, minimum=0, maximum=1000)
    pool_max = _env_int("BENCH_DB_POOL_MAX", 20, minimum=1, maximum=1000)
    if pool_min > pool_max:
        raise ImproperlyConfigured(f"BENCH_DB_POOL_MIN={pool_min} is larger than BENCH_DB_POOL_MAX={pool_max}")
    return {
        # django-async-backend's engine: its sync DatabaseWrapper is Django's
        # PostgreSQL wrapper (a subclass adding only a warning, silenced below),
        # so the sync ORM is unchanged; its AsyncDatabaseWrapper serves the
        # async-native variant from this same entry, with an AsyncConnectionPool
        # of the same OPTIONS["pool"] sizes (bench_site/native.py).
        "ENGINE": "django_async_backend.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Measured here, opening a new PostgreSQL connection per request cost
        # ~11 ms of CPU, more than most of the workloads themselves; psycopg's
        # pool keeps them open per process. Django requires CONN_MAX_AGE=0
        # with the pool: the pool, not Django, decides a connection's lifetime.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "pool": {
                "min_size": pool_min,
                "max_size": pool_max,
                # Fail a request rather than queue forever when every
                # connection is taken: a saturated pool is a result to see.
                "timeout": _env_float("BENCH_DB_POOL_TIMEOUT_S", 10.0, minimum=0.1, maximum=600),
            },
        },
    }


def _sqlite(path: Path) -> dict[str, object]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # A file connection costs tens of microseconds to open, so Django's
        # default of one per request is kept and applies to every variant alike.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            # WAL: readers never block on a writer (e.g. `seed` running while a
            # server answers) and many worker processes read one file at once;
            # synchronous=NORMAL is durable enough in WAL mode and skips an
            # fsync per commit. Both pragmas are per-connection no-ops once set.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            # Writes (only `seed` writes) take the lock at BEGIN, so a
            # concurrent writer waits for the busy timeout instead of failing
            # with "database is locked" when upgrading a read lock.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


MYSQL_SCHEMES = frozenset({"mysql", "mariadb"})


def _mysql_from_url(url: str) -> dict[str, object]:
    """mysql://user[:password]@host[:port]/dbname (or mariadb://) -> a DATABASES entry.

    Django's mysql backend with mysqlclient (the driver Django recommends),
    for MariaDB and MySQL alike; mysqlclient is an optional install
    (requirements-mariadb.lock), so SQLite-only checkouts never build it.
    """
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("BENCH_DATABASE_URL: no database name in the path")
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Django's mysql backend has no pool, and persistent connections
        # (CONN_MAX_AGE > 0) are per thread: WSGI threads would reuse theirs,
        # but under ASGI every request's sync work (sync_to_async and the async
        # ORM API alike) runs in a thread asgiref creates for that request, so
        # an async arm would never reuse one and would leave a connection per
        # request to die with its thread. Measured here, a MariaDB connect costs
        # ~0.26 ms of CPU (0.14 client + 0.12 server) against ~0.02 ms for a
        # trivial query on an open connection: small next to a request, so
        # every variant pays it alike, as on SQLite. BENCH_DB_CONN_MAX_AGE
        # measures the persistent choice (--server-env) where it is wanted.
        "CONN_MAX_AGE": _env_int("BENCH_DB_CONN_MAX_AGE", 0, minimum=0, maximum=86_400),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # utf8mb4: MySQL's "utf8" is 3-byte utf8mb3 and cannot hold every
            # character a JSON value may carry.
            "charset": "utf8mb4",
            "connect_timeout": 5,
        },
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }


def database_from_url(url: str) -> dict[str, object]:
    """The DATABASES entry for BENCH_DATABASE_URL, by its scheme."""
    scheme = urlsplit(url).scheme
    if scheme in {"postgresql", "postgres"}:
        return _postgres_from_url(url)
    if scheme in MYSQL_SCHEMES:
        return _mysql_from_url(url)
    raise ImproperlyConfigured(
        f"BENCH_DATABASE_URL: scheme {scheme!r} not supported; allowed: postgresql://, mysql://, mariadb://"
    )


_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
if _DATABASE_URL:
    DATABASES = {"default": database_from_url(_DATABASE_URL)}
else:
    _sqlite_path = Path(os.environ.get("BENCH_SQLITE_PATH") or BASE_DIR / "var" / "bench.sqlite3").resolve()
    DATABASES = {"default": _sqlite(_sqlite_path)}

# --- workloads ----------------------------------------------------------------

# Where the fan-out views send their calls. Only from here, never from a request.
BENCH_UPSTREAM_URL = _env_str("BENCH_UPSTREAM_URL", "http://127.0.0.1:8099").rstrip("/")
BENCH_UPSTREAM_TIMEOUT_S = _env_float("BENCH_UPSTREAM_TIMEOUT_S", 5.0, minimum=0.01, maximum=600)
BENCH_FANOUT_CALLS = _env_int("BENCH_FANOUT_CALLS", 3, minimum=1, maximum=100)
# Thread pool of the sync-threads variant, shared by all request threads of a
# process: under gthread with many threads, calls queue here, as they would in
# an application that sizes its pool once.
BENCH_FANOUT_THREADS = _env_int("BENCH_FANOUT_THREADS", 32, minimum=1, maximum=1024)
# Connection limit of each HTTP client (httpx pool / aiohttp connector); large
# enough that the client never queues calls below the server's concurrency.
BENCH_HTTP_MAX_CONNECTIONS = _env_int("BENCH_HTTP_MAX_CONNECTIONS", 256, minimum=1, maximum=65536)
BENCH_ORM_ROWS = _env_int("BENCH_ORM_ROWS", 20, minimum=1, maximum=500)
BENCH_JSON_ROWS = _env_int("BENCH_JSON_ROWS", 20, minimum=1, maximum=500)
# About 1 ms of CPU on this project's reference machine (0.71 ms per 2000 rounds).
BENCH_CPU_ROUNDS = _env_int("BENCH_CPU_ROUNDS", 2800, minimum=1, maximum=1_000_000)
BENCH_WAIT_MS = _env_int("BENCH_WAIT_MS", 50, minimum=0, maximum=60_000)
BENCH_STREAM_CHUNKS = _env_int("BENCH_STREAM_CHUNKS", 16, minimum=1, maximum=10_000)

# --- fault injection (for the regression gate; off by default) ----------------

# Added to every measured view of the listed workloads (all when empty), the
# same in sync and async twins, to prove the gate catches a slowdown.
BENCH_INJECT_CPU_US = _env_int("BENCH_INJECT_CPU_US", 0, minimum=0, maximum=10_000_000)
BENCH_INJECT_DELAY_MS = _env_int("BENCH_INJECT_DELAY_MS", 0, minimum=0, maximum=60_000)
# A fixed number of pure-Python loop iterations: the same instructions every
# time, for the instruction-count gate (BENCH_INJECT_CPU_US spins on a clock,
# so its instruction count varies with the machine and under valgrind).
BENCH_INJECT_LOOPS = _env_int("BENCH_INJECT_LOOPS", 0, minimum=0, maximum=1_000_000_000)
BENCH_INJECT_WORKLOADS = tuple(
    name.strip() for name in _env_str("BENCH_INJECT_WORKLOADS", "").split(",") if name.strip()
)

# --- checks, logging ----------------------------------------------------------

# `check --deploy` findings that do not apply to a loopback benchmark:
SILENCED_SYSTEM_CHECKS = [
    # HSTS: the servers speak plain HTTP on 127.0.0.1 to a local load
    # generator; there is no TLS to pin and no browser to remember it.
    "security.W004",
    # SECURE_SSL_REDIRECT: same reason; a redirect to https:// would break
    # every measured request, and TLS cost is not what is measured.
    "security.W008",
    # CSRF middleware: every measured view answers GET/HEAD only (405
    # otherwise) and the site sets no cookies and has no sessions, so there is
    # no state-changing request to forge.
    "security.W003",
]

# No per-request logging: a log line per request would be a measured cost that
# differs by server, and disks are shared with the load generator. Errors
# (5xx tracebacks) still go to stderr, which the runner keeps with the run.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": [], "level": "ERROR", "propagate": False},
        "bench_site": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
