"""The upstream service, as a real process on a free port (port 0)."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx
import pytest
from conftest import StartUpstream, stop_process

from upstream.__main__ import parse_args
from upstream.server import item_value


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one HTTP/1.1 response (Content-Length framed) from `sock`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("ascii").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    length = int(headers["content-length"])
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buffer += chunk
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(head[0].split(" ")[1]), headers, body


def is_closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    return sock.recv(1) == b""


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def test_health_and_item(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with httpx.Client(base_url=up.url, timeout=5) as client:
        health = client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        item = client.get("/item/42")
        assert item.headers["content-type"] == "application/json"
        assert item.json() == {"item": 42, "name": "item-42", "value": item_value(42)}
        assert client.get("/item/42").content == item.content  # deterministic
        for path in ("/", "/item/", "/item/-1", "/item/abc", "/items/1", "/health/x"):
            assert client.get(path).status_code == 404, path
        assert client.post("/item/1").status_code == 405
        assert client.get("/item/1?delay_ms=abc").status_code == 400


def test_delay_override(start_upstream: StartUpstream) -> None:
    # A default delay far beyond the client timeout: only the per-request
    # override can make the request succeed. No duration is asserted.
    up = start_upstream("--delay-ms", "60000")
    with httpx.Client(base_url=up.url, timeout=5) as client:
        assert client.get("/item/1?delay_ms=0").status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.get("/item/1", timeout=0.3)
        assert client.get("/health").status_code == 200  # health is never delayed


def _statuses(url: str, n: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=5) as client:
        return [client.get(f"/item/{i}").status_code for i in range(n)]


def test_error_rate_is_seeded(start_upstream: StartUpstream) -> None:
    first = _statuses(start_upstream("--delay-ms", "0", "--error-rate", "0.5", "--seed", "7").url, 40)
    again = _statuses(start_upstream("--delay-ms", "0", "--error-rate", "0.5", "--seed", "7").url, 40)
    other = _statuses(start_upstream("--delay-ms", "0", "--error-rate", "0.5", "--seed", "8").url, 40)
    assert first == again
    assert first != other
    assert set(first) == {200, 500}
    assert set(_statuses(start_upstream("--delay-ms", "0", "--error-rate", "1").url, 5)) == {500}
    assert set(_statuses(start_upstream("--delay-ms", "0", "--error-rate", "0").url, 5)) == {200}


def test_keep_alive_two_requests_on_one_connection(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        buffer = bytearray()
        for index in (1, 2):
            sock.sendall(f"GET /item/{index} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = read_response(sock, buffer)
            assert (status, headers["connection"]) == (200, "keep-alive")
            assert json.loads(body)["item"] == index


def test_pipelined_requests_answered_in_order(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        # The first is delayed, the second is not: order must still hold.
        sock.sendall(
            b"GET /item/1?delay_ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /item/2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        buffer = bytearray()
        first = read_response(sock, buffer)
        second = read_response(sock, buffer)
        third = read_response(sock, buffer)
        assert [json.loads(first[2])["item"], json.loads(second[2])["item"]] == [1, 2]
        assert (third[0], third[1]["connection"]) == (200, "close")
        assert is_closed(sock)


def test_request_split_across_reads(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"GET /item/9 HTTP/1.1\r\nHost: x\r\nX-Pad: yes\r\n\r\n":
            sock.sendall(bytes([byte]))
        status, _, body = read_response(sock, bytearray())
        assert (status, json.loads(body)["item"]) == (200, 9)


def test_request_body_is_skipped(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        sock.sendall(b"GET /item/3 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /item/4 HTTP/1.1\r\n\r\n")
        buffer = bytearray()
        assert json.loads(read_response(sock, buffer)[2])["item"] == 3
        assert json.loads(read_response(sock, buffer)[2])["item"] == 4


def test_connection_close_and_http10(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        sock.sendall(b"GET /item/1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert read_response(sock, bytearray())[1]["connection"] == "close"
        assert is_closed(sock)
    with connect(up.port) as sock:
        sock.sendall(b"GET /item/1 HTTP/1.0\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 200
        assert is_closed(sock)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /item/1 HTTP/2.0\r\n\r\n", 400),
        (b"GET /item/1 HTTP/1.1\r\nbroken header\r\n\r\n", 400),
        (b"GET /item/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET /item/1 HTTP/1.1\r\nX: " + b"a" * 20_000, 431),
    ],
)
def test_malformed_requests_rejected_and_closed(
    start_upstream: StartUpstream, request_bytes: bytes, status: int
) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as sock:
        sock.sendall(request_bytes)
        assert read_response(sock, bytearray())[0] == status
        assert is_closed(sock)
    # The server is still fine afterwards.
    assert httpx.get(f"{up.url}/health", timeout=5).status_code == 200


def test_sigterm_exits_cleanly_with_open_connections(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "0")
    with connect(up.port) as idle, connect(up.port) as waiting:
        idle.sendall(b"GET /item/1 HTTP/1.1\r\n\r\n")
        read_response(idle, bytearray())
        waiting.sendall(b"GET /item/1?delay_ms=60000 HTTP/1.1\r\n\r\n")
        up.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while up.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling with a deadline
        assert stop_process(up.proc, timeout=1) == 0


def test_cli_defaults_and_validation() -> None:
    config, loop = parse_args([])
    assert (config.host, config.port, config.delay_ms, config.jitter_ms, config.error_rate, config.seed) == (
        "127.0.0.1",
        8099,
        50.0,
        0.0,
        0.0,
        1,
    )
    assert loop == "auto"
    for bad in (["--error-rate", "1.5"], ["--delay-ms", "-1"], ["--port", "70000"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_jitter_keeps_items_correct(start_upstream: StartUpstream) -> None:
    up = start_upstream("--delay-ms", "1", "--jitter-ms", "1", "--loop", "asyncio")
    with httpx.Client(base_url=up.url, timeout=5) as client:
        assert [client.get(f"/item/{i}").json()["item"] for i in range(5)] == list(range(5))
