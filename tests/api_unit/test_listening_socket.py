"""Sockets our own servers listen on (`httpserver.listening_socket`, used by the node agent and the
GitOps receivers) and the TLS context the API server's WebSocket client reuses.

Regression: the agent bound its socket as `socket.socket(AF_INET, SOCK_STREAM)` (protocol 0), and
asyncio turns on TCP_NODELAY only for sockets whose protocol says TCP. Every small answer of the
agent then waited for the peer's delayed ACK: 45 ms per request, paid by each exec, log and
port-forward connection the API server made to it.
"""

from __future__ import annotations

import asyncio
import socket

from reconcile.api import httpserver
from reconcile.client import config as client_config
from reconcile.client import websocket


async def _accepted_nodelay(host: str) -> int:
    sock = httpserver.listening_socket(host, 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            raw = transport.get_extra_info("socket")
            accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection(host, sock.getsockname()[1])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_accepted_connections_have_nagle_off() -> None:
    assert asyncio.run(_accepted_nodelay("127.0.0.1")) != 0


def test_ipv6_loopback_too() -> None:
    assert asyncio.run(_accepted_nodelay("::1")) != 0


def test_port_zero_picks_a_free_port_and_a_taken_port_is_refused_without_leaking() -> None:
    first = httpserver.listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        assert port > 0
        try:
            httpserver.listening_socket("127.0.0.1", port).close()
        except OSError:
            pass  # refused, as expected while `first` listens
        else:
            raise AssertionError(f"a second socket could listen on port {port}")
    finally:
        first.close()


def test_the_websocket_client_reuses_one_tls_context_per_set_of_files() -> None:
    # Building a context that trusts the system store reads the whole store (~20 ms): once, not
    # per exec.
    for verify in (False, True):
        config = client_config.ClientConfig(server="https://127.0.0.1:1", verify=verify)
        assert websocket.ssl_context(config) is websocket.ssl_context(config)
    unverified = websocket.ssl_context(client_config.ClientConfig(server="https://127.0.0.1:1", verify=False))
    assert unverified.check_hostname is False
