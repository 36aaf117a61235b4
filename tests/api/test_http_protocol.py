"""The API server's HTTP/1.1 framing, seen from a raw socket (reconcile/api/httpserver.py).

Fixed-length answers go out in one write (status line, headers and body together); streamed
answers (watches), HEAD answers and `100 Continue` must still go out at once, not wait for a body.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from urllib.parse import urlsplit

from tests import support

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _connect(url: str) -> socket.socket:
    """A raw connection as the admin (over TLS with the admin's certificate on a secured server)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    context = support.connection(url).ssl_context()
    if isinstance(context, ssl.SSLContext):
        return context.wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def _read_until(sock: socket.socket, marker: bytes, *, timeout: float = 10.0) -> bytes:
    """Bytes received until `marker` appears; fails if it does not within `timeout`."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{marker!r} not received within {timeout}s; got {data[:300]!r}"
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}; got {data[:300]!r}"
        data += chunk
    return data


def _read_response(sock: socket.socket, buffer: bytes = b"") -> tuple[str, dict[str, str], bytes, bytes]:
    """One fixed-length response (status, headers, body), read after `buffer`; and the bytes after it."""
    if b"\r\n\r\n" not in buffer:
        buffer += _read_until(sock, b"\r\n\r\n")
    status, headers, rest = _split(buffer)
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return status, headers, body


def _create_configmap(url: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v" * 3000}}
    with support.connection(url).http_client(timeout=10) as client:
        client.post(CONFIGMAPS, json=body).raise_for_status()


def test_a_fixed_length_answer_arrives_in_one_piece(api_server: str) -> None:
    name = f"one-piece-{uuid.uuid4().hex[:6]}"
    _create_configmap(api_server, name)
    with _connect(api_server) as sock:
        sock.sendall(f"GET {CONFIGMAPS}/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = _read_until(sock, b"\r\n\r\n")
        status, headers, body = _split(first)
        # Headers and the ~3 KB body were written together, so the first read holds all of it.
        assert status == "HTTP/1.1 200 OK"
        assert len(body) == int(headers["content-length"]), (len(body), headers)
        assert json.loads(body)["metadata"]["name"] == name
        assert "server" not in headers  # uvicorn's own Server header is off


def test_keep_alive_answers_stay_framed(api_server: str) -> None:
    names = [f"framed-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for name in names:
        _create_configmap(api_server, name)
    with _connect(api_server) as sock:
        # Pipelined: three requests in one write, three complete answers back in order.
        sock.sendall(b"".join(f"GET {CONFIGMAPS}/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in names))
        buffer = b""
        for name in names:
            status, _, body, buffer = _read_response(sock, buffer)
            assert status == "HTTP/1.1 200 OK"
            assert json.loads(body)["metadata"]["name"] == name


def test_a_watch_sends_its_headers_before_any_event(api_server: str) -> None:
    with support.connection(api_server).http_client(timeout=10) as client:
        revision = client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]
    with _connect(api_server) as sock:
        sock.sendall(f"GET {CONFIGMAPS}?watch=true&resourceVersion={revision}&labelSelector=none%3Dnone "
                     "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        # Nothing matches the selector, so no event will come: the headers must not wait for one.
        status, headers, _ = _split(_read_until(sock, b"\r\n\r\n", timeout=5))
        assert status == "HTTP/1.1 200 OK"
        assert headers.get("transfer-encoding") == "chunked"


def test_head_is_answered_without_a_body(api_server: str) -> None:
    with _connect(api_server) as sock:
        sock.sendall(b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _split(_read_until(sock, b"\r\n\r\n", timeout=5))
        assert status == "HTTP/1.1 200 OK"
        assert int(headers["content-length"]) > 0
        assert body == b""


def test_expect_100_continue_is_answered_before_the_body_is_sent(api_server: str) -> None:
    name = f"continue-{uuid.uuid4().hex[:6]}"
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()
    with _connect(api_server) as sock:
        sock.sendall(f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = _read_until(sock, b"\r\n\r\n", timeout=5)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(body)
        status, _, created, _ = _read_response(sock)
        assert status == "HTTP/1.1 201 Created"
        assert json.loads(created)["metadata"]["name"] == name
