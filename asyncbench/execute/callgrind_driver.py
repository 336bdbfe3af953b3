"""Drive requests through Django's handlers in process, for callgrind to count.

Run by the instruction-count gate (asyncbench.gate.instructions) under
`valgrind --tool=callgrind --instr-atstart=no`, as a script of the tree it
measures: `python -P callgrind_driver.py SPEC OUT` with PYTHONPATH set to that
tree. It therefore imports nothing from asyncbench (the base revision's tree
may not have this module); only the standard library, Django and the site.

No sockets and no server: a WSGI request is `WSGIHandler()(environ,
start_response)` with a minimal environ, an ASGI request is `await
ASGIHandler()(scope, receive, send)` on one asyncio loop kept for the whole
process. Per phase (one path under one handler):

1. `warmup` requests (imports, caches and connections settle);
2. a full garbage collection and `gc.freeze()`, so the collector starts every
   measured phase from the same state and its cost in the phase does not
   depend on what ran before;
3. instrumentation on, counters zeroed, `requests` requests, a dump labelled
   `phase-<index>`, instrumentation off.

The counting is switched by callgrind's client requests (callgrind.h's
CALLGRIND_START_INSTRUMENTATION, ZERO_STATS, DUMP_STATS_AT, STOP_INSTRUMENTATION),
issued without a compiler: the request is valgrind's "special instruction"
sequence, a few bytes of x86-64 machine code placed in an executable page and
called through ctypes. valgrind runs with `--instr-atstart=no`, so start-up and
warm-up run uninstrumented (several times faster) and are never counted; each
phase's dump holds exactly its measured requests and is labelled with the
phase's index. Natively the sequence is a no-op that returns 0, which is how
the driver knows it is not under valgrind.

SPEC (JSON): {"phases": [{"path": "/sync/noio/", "handler": "wsgi"}, ...],
"warmup": 20, "requests": 200}. OUT (JSON, written at the end): per phase the
distinct status codes, whether every body equalled the first, and the first
body (latin-1 text).
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import platform
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any


class ClientRequests:
    """valgrind client requests from Python, without a compiler (x86-64 only).

    The code is `long request(unsigned long args[6])`: %rax = args, %rdx = 0
    (the value returned when not under valgrind), the four `rol` of %rdi that
    valgrind recognises as the preamble (3+13+61+51 = 128 bits: %rdi
    unchanged), `xchg %rbx,%rbx` (the request), return %rdx. These are the
    bytes valgrind.h's VALGRIND_DO_CLIENT_REQUEST_EXPR compiles to on amd64.
    """

    CODE = bytes.fromhex(
        "4889f8"  # mov %rdi,%rax
        "31d2"  # xor %edx,%edx
        "48c1c703"  # rol $3,%rdi
        "48c1c70d"  # rol $13,%rdi
        "48c1c73d"  # rol $61,%rdi
        "48c1c733"  # rol $51,%rdi
        "4887db"  # xchg %rbx,%rbx
        "4889d0"  # mov %rdx,%rax
        "c3"  # ret
    )
    RUNNING_ON_VALGRIND = 0x1001
    _CT = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C','T')
    DUMP_STATS, ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT, START_INSTRUMENTATION, STOP_INSTRUMENTATION = range(
        _CT, _CT + 6
    )

    def __init__(self) -> None:
        import ctypes
        import mmap

        if platform.machine() not in ("x86_64", "AMD64"):
            raise RuntimeError(f"callgrind client requests are implemented for x86-64 only, not {platform.machine()}")
        self._ctypes = ctypes
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(self.CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(address)
        self._labels: dict[str, Any] = {}

    def request(self, code: int, arg1: int = 0) -> int:
        args = (self._ctypes.c_ulong * 6)(code, arg1, 0, 0, 0, 0)
        return int(self._call(self._ctypes.addressof(args)))

    def running_on_valgrind(self) -> bool:
        return self.request(self.RUNNING_ON_VALGRIND) > 0

    def label(self, text: str) -> int:
        """The address of a NUL-terminated copy of `text`, kept alive."""
        buf = self._labels.setdefault(text, self._ctypes.create_string_buffer(text.encode()))
        return int(self._ctypes.addressof(buf))

    def begin(self) -> None:
        """Count from here: instrumentation on, counters zeroed."""
        self.request(self.START_INSTRUMENTATION)
        self.request(self.ZERO_STATS)

    def end(self, label: str) -> None:
        """Dump the counters since `begin` (the dump's trigger names `label`), stop counting."""
        self.request(self.DUMP_STATS_AT, self.label(label))
        self.request(self.STOP_INSTRUMENTATION)


Message = dict[str, Any]


def wsgi_environ(url: str) -> dict[str, Any]:
    path, _, query = url.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def asgi_scope(url: str) -> Message:
    path, _, query = url.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def wsgi_request(app: Callable[..., Iterable[bytes]], path: str) -> tuple[int, bytes]:
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        status.append(s)

    result = app(wsgi_environ(path), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()  # request_finished: Django closes its database connections here
    return int(status[0].split(" ", 1)[0]), body


async def asgi_request(app: Callable[..., Awaitable[None]], path: str) -> tuple[int, bytes]:
    sent: list[Message] = []
    request_sent = False
    never = asyncio.get_running_loop().create_future()

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Django listens for a disconnect while the view runs and cancels the
        # listener once the response is sent: the client never disconnects.
        await never
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(asgi_scope(path), receive, send)
    never.cancel()
    status = next(int(m["status"]) for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def _settle() -> None:
    gc.collect()
    gc.freeze()


def _summary(results: list[tuple[int, bytes]]) -> dict[str, Any]:
    first = results[0][1]
    return {
        "statuses": sorted({s for s, _ in results}),
        "same_body": all(b == first for _, b in results),
        "body": first.decode("latin-1"),
    }


def run_wsgi(
    app: Callable[..., Iterable[bytes]], path: str, *, warmup: int, requests: int, label: str, cr: ClientRequests
) -> dict[str, Any]:
    for _ in range(warmup):
        wsgi_request(app, path)
    results: list[tuple[int, bytes]] = []
    _settle()
    cr.begin()
    for _ in range(requests):
        results.append(wsgi_request(app, path))
    cr.end(label)
    return _summary(results)


async def run_asgi(
    app: Callable[..., Awaitable[None]], path: str, *, warmup: int, requests: int, label: str, cr: ClientRequests
) -> dict[str, Any]:
    for _ in range(warmup):
        await asgi_request(app, path)
    results: list[tuple[int, bytes]] = []
    _settle()
    cr.begin()
    for _ in range(requests):
        results.append(await asgi_request(app, path))
    cr.end(label)
    return _summary(results)


def main(argv: list[str]) -> int:
    with open(argv[0]) as fh:
        spec = json.load(fh)
    out_path = argv[1]
    cr = ClientRequests()
    # Natively the requests are no-ops: allowed only when asked (to check the
    # views' answers without valgrind), never silently.
    if not cr.running_on_valgrind() and not spec.get("native"):
        print("callgrind_driver: not running under valgrind", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")
    import django

    django.setup(set_prefix=False)
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    wsgi_app = WSGIHandler()
    asgi_app = ASGIHandler()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    out: list[dict[str, Any]] = []
    warmup, requests = int(spec["warmup"]), int(spec["requests"])
    try:
        for index, phase in enumerate(spec["phases"]):
            path, handler, label = phase["path"], phase["handler"], f"phase-{index}"
            if handler == "wsgi":
                summary = run_wsgi(wsgi_app, path, warmup=warmup, requests=requests, label=label, cr=cr)
            elif handler == "asgi":
                summary = loop.run_until_complete(
                    run_asgi(asgi_app, path, warmup=warmup, requests=requests, label=label, cr=cr)
                )
            else:
                raise ValueError(f"unknown handler {handler!r}")
            out.append({"path": path, "handler": handler, "label": label, **summary})
    finally:
        loop.close()
    with open(out_path, "w") as fh:
        json.dump({"phases": out}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
