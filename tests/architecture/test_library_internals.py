"""The private parts of libraries we lean on still have the shape we rely on.

pyproject.toml pins etcd3-py and uvicorn to the releases these were checked against; when a
release moves the bound, these tests say at once (and precisely) what changed, instead of the store
or the API server failing in some stranger way later. Each test names the private part it guards.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from typing import Any

import pytest
import semantic_version
from etcd3 import baseclient
from etcd3.aio_client import AioClient
from uvicorn.protocols.http import httptools_impl

from reconcile.api import httpserver
from reconcile.store import etcd
from tests import support

# --- etcd3-py (reconcile/store/etcd.py: _GatewayClient) ------------------------------------------


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_etcd3py_base_client_takes_the_arguments_we_pass() -> None:
    parameters = _parameters(baseclient.BaseClient.__init__)
    for name in ("host", "port", "protocol", "server_version", "cluster_version"):
        assert name in parameters, f"BaseClient.__init__ lost {name!r}: {parameters}"


def test_etcd3py_private_hooks_exist_with_our_signatures() -> None:
    assert _parameters(baseclient.BaseClient._retrieve_version) == ["self"]
    assert _parameters(baseclient.BaseClient._url) == ["self", "method", "prefix"]
    assert _parameters(AioClient.call_rpc)[:6] == ["self", "method", "data", "stream", "encode", "raw"]


def _gateway(version: str, session: Any = None) -> etcd._GatewayClient:
    # Nothing listens on this port: were etcd3-py's own blocking probe to run, it would warn
    # ("cannot detect etcd server version"), which the caller turns into an error.
    url = f"http://127.0.0.1:{support.free_port()}"
    return etcd._GatewayClient(url, session=session, version=etcd.ServerVersion(version, version), ssl_context=None)


@pytest.mark.parametrize(("version", "prefix"), [("3.5.17", "/v3"), ("3.4.0", "/v3"), ("3.3.9", "/v3beta")])
def test_etcd3py_takes_the_version_we_read_and_picks_the_prefix_from_it(version: str, prefix: str) -> None:
    """`BaseClient.__init__` still calls `_retrieve_version` (ours: no HTTP) and derives
    `api_prefix` from the version it was given."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = _gateway(version)
    assert client.server_version_sem == semantic_version.Version(version)
    assert client.api_prefix == prefix


def test_etcd3py_accepts_an_undecided_cluster_version() -> None:
    url = f"http://127.0.0.1:{support.free_port()}"
    client = etcd._GatewayClient(url, session=None, version=etcd.ServerVersion("3.5.17", "not_decided"),  # type: ignore[arg-type]
                                 ssl_context=None)
    assert client.cluster_version == "not_decided"
    assert client.api_prefix == "/v3"


async def test_etcd3py_raw_calls_go_through_our_url_and_session(etcd_endpoint: str) -> None:
    """`call_rpc(raw=True)` still builds its URL with `_url` (memoized by us) and posts through
    `self.session` (ours; `AioClient.__init__` is skipped): a real range against the session etcd."""
    async with etcd.EtcdStore([etcd_endpoint]) as store:
        await store.current_revision()
        client = store._endpoints[0].rpc
        assert client is not None
        assert client.session is store._endpoints[0].rpc_session
        assert ("/kv/range", True) in client._urls
        async with client.call_rpc("/kv/range", b'{"key":"AA=="}', encode=False, raw=True,
                                   headers={"Content-Type": "application/json"}) as response:
            assert response.status == 200
            assert "header" in await response.json()


# --- uvicorn (reconcile/api/httpserver.py: ApiHttpProtocol) --------------------------------------


def test_uvicorn_protocol_hook_exists() -> None:
    assert issubclass(httpserver.ApiHttpProtocol, httptools_impl.HttpToolsProtocol)
    assert _parameters(httptools_impl.HttpToolsProtocol.on_headers_complete) == ["self"]
    cycle_parameters = _parameters(httptools_impl.RequestResponseCycle.__init__)
    assert "scope" in cycle_parameters and "transport" in cycle_parameters, cycle_parameters


def test_uvicorn_websocket_hook_exists() -> None:
    """ApiWebSocketProtocol adds the TLS extension to the scope `handle_connect` built, before the
    ASGI task it schedules runs: the scope must be built first and the app only scheduled."""
    import inspect

    from uvicorn.protocols.websockets import websockets_sansio_impl as sansio

    assert issubclass(httpserver.ApiWebSocketProtocol, sansio.WebSocketsSansIOProtocol)
    source = inspect.getsource(sansio.WebSocketsSansIOProtocol.handle_connect)
    assert source.index("self.scope") < source.index("create_task(self.run_asgi())")
    assert '"extensions": {"websocket.http.response": {}}' in source  # denial responses are offered
    assert _parameters(sansio.WebSocketsSansIOProtocol.connection_made) == ["self", "transport"]


async def test_uvicorn_cycle_writes_through_the_transport_we_wrap() -> None:
    """A real uvicorn server with our protocol: `on_headers_complete` still makes `self.cycle`
    (with `scope` and `transport`), our wrapper replaces its transport, and the response it writes
    through the wrapper arrives whole and in order."""
    import uvicorn

    wrapped: list[type] = []

    class Recording(httpserver.ApiHttpProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            wrapped.append(type(self.cycle.transport))

    body = b'{"kind":"Status"}' * 200

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    port = support.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=Recording, loop="asyncio",
                                           lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await support.eventually(lambda: server.started or serving.done(), what="uvicorn to start")
        assert not serving.done(), serving
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        answer = await asyncio.wait_for(reader.readexactly(len(body)), 10)
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await serving
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-length: {len(body)}".encode() in head
    assert answer == body
    assert wrapped == [httpserver._HeadWithBody]


async def test_uvicorn_hands_a_spdy_upgrade_to_the_application() -> None:
    """`Upgrade: SPDY/3.1` (kubectl's fallback): uvicorn still runs the request as an HTTP cycle
    (its parser stops at the upgrade), sends the 101 head the application gives through ASGI
    without chunked framing, and, once the application takes the connection, our
    `data_received` and `connection_lost` overrides hand it the bytes that follow and their end."""
    import uvicorn

    seen: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = scope["extensions"][httpserver.RAW_UPGRADE]
        await send({"type": "http.response.start", "status": 101, "headers": [
            (b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1"), (b"content-length", b"0")]})
        raw.take()
        while data := await raw.read():
            seen.append(data)
            await raw.write(data.upper())
        seen.append(b"<eof>")
        raw.close()
        await send({"type": "http.response.body", "body": b""})

    port = support.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=httpserver.ApiHttpProtocol,
                                           loop="asyncio", lifespan="off", log_level="error"))
    serving = asyncio.create_task(server.serve())
    try:
        await support.eventually(lambda: server.started or serving.done(), what="uvicorn to start")
        assert not serving.done(), serving
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: Upgrade\r\n"
                     b"Upgrade: SPDY/3.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(b"\x80\x03\x00\x06frames")
        echoed = await asyncio.wait_for(reader.readexactly(10), 10)
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        server.should_exit = True
        await serving
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"transfer-encoding" not in head, head
    assert echoed == b"\x80\x03\x00\x06FRAMES" and rest == b""
    assert seen == [b"\x80\x03\x00\x06frames", b"<eof>"]
