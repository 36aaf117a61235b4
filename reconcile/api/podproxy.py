"""`pods/{name}/log` and `pods/{name}/exec`: proxied to the node agent that runs the pod.

The agent is found as the kubelet is upstream: the pod's `spec.nodeName`, that Node's
InternalIP address and `status.daemonEndpoints.kubeletEndpoint.Port`, over HTTPS. As
kube-apiserver, the server presents `--kubelet-client-certificate`/`--kubelet-client-key` (the
agent accepts only clients of the cluster CA and authorizes them by SubjectAccessReview) and
verifies the agent's serving certificate with `--kubelet-certificate-authority` when given
(without it, as upstream, the agent's certificate is not verified). Logs stream through
chunk by chunk (so `follow` works); the agent's errors come back as Status objects and are
passed on unchanged. The HTTP client is `reconcile.client`'s (httpx stays behind that seam).

Exec (`POST` with `{"command": [...], "container": name}`) runs as long as the command does:
- A client that accepts `application/vnd.reconcile.exec-stream.v1` gets the agent's exec stream
  relayed frame by frame as the command writes (format: `reconcile.core.execstream`); a broken
  agent connection ends it with a Failure status frame.
- Any other client gets `{"exitCode": N, "output": "stdout and stderr as written"}` once the
  command has ended (the answer from before streaming, for curl and simple scripts).
Either way a client that disconnects first ends the agent's connection, and the agent then
kills the command in the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from reconcile.api import http, nodeagents, registry, rest, routing, spdyexec, spdyforward
from reconcile.client import aio, websocket
from reconcile.client import config as client_config
from reconcile.core import errors, execstream, portforward_channels, remotecommand

SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward"})
UPGRADES = frozenset({"exec", "attach", "portforward"})  # served as WebSockets (`upgrade`)
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"  # kubectl 1.31+: SPDY tunnelled in a WebSocket
AGENT_PORT_FORWARD_PROTOCOL = "portforward.k8s.io"  # the same to the agent, as a token websockets accepts


@dataclass(frozen=True, slots=True)
class KubeletClientConfig:
    """kube-apiserver's `--kubelet-client-certificate`, `--kubelet-client-key`, `--kubelet-certificate-authority`."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None

    def client_config(self, base: str) -> client_config.ClientConfig:
        cert = (self.cert_file, self.key_file or self.cert_file) if self.cert_file else None
        return client_config.ClientConfig(server=base, verify=self.ca_file or False, cert=cert)


LOG_PARAMS = ("follow", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "previous", "limitBytes")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def handles(resource: registry.Resource, info: routing.RequestInfo) -> bool:
    return resource.group == "" and resource.plural == "pods" and info.subresource in SUBRESOURCES


async def handle(api: rest.Rest, request: Request, info: routing.RequestInfo, *,
                 kubelet: KubeletClientConfig | None = None) -> Response:
    kubelet = kubelet or KubeletClientConfig()
    assert info.name is not None and info.namespace is not None
    pods = api.registry.get("", "v1", "pods")
    assert pods is not None
    pod = (await api.get(pods, info.namespace, info.name)).obj
    if info.subresource == "log" and request.method == "GET":
        return await _log(api, request, pod, kubelet)
    if info.subresource in UPGRADES and request.headers.get("upgrade", "").lower().startswith("spdy/"):
        # kubectl's fallback after a refused WebSocket upgrade (or with KUBECTL_*_WEBSOCKETS=false):
        # served when the HTTP layer hands over the connection (httpserver.ApiHttpProtocol), refused
        # with the same checks' error otherwise
        if info.subresource == "portforward":
            _forward_target(pod)
            raw = spdyforward.raw_upgrade(request.scope)
            if raw is not None:
                return await _spdy_forward(api, request, pod, raw, kubelet)
        else:
            container, options = _stream_target(pod, info.subresource, request.query_params)
            raw = spdyforward.raw_upgrade(request.scope)
            if raw is not None:
                return await _spdy_exec(api, request, pod, raw, kubelet, info.subresource, container, options)
        await _agent_url(api, pod)
        raise errors.BadRequest(f"{info.subresource} over SPDY is not supported by this server: use WebSockets "
                                f"({remotecommand.V5}; kubectl 1.30 or later does by default)")
    if info.subresource == "exec" and request.method == "POST":
        return await _exec(api, request, pod, kubelet)
    if info.subresource in UPGRADES:
        raise errors.BadRequest("Upgrade request required")
    raise errors.MethodNotAllowed(
        f"the server does not allow this method on the requested resource ({request.method} pods/{info.subresource})")


def handles_upgrade(resource: registry.Resource, info: routing.RequestInfo) -> bool:
    return resource.group == "" and resource.plural == "pods" and info.subresource in UPGRADES


def _stream_target(pod: dict[str, Any], kind: str, query: Any) -> tuple[str, remotecommand.Options]:
    """The container and options of an exec or attach, checked as kube-apiserver does."""
    container = _container(pod, query.get("container"))
    try:
        options = remotecommand.Options.parse(query, exec=kind == "exec")
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.BadRequest(f"cannot {kind} into a container in a completed pod; current phase is {phase}")
    return container, options


async def upgrade(api: rest.Rest, scope: Any, receive: Any, send: Any, info: routing.RequestInfo, *,
                  kubelet: KubeletClientConfig | None = None) -> None:
    """`pods/{name}/exec`, `/attach` and `/portforward` as WebSockets: checked here, then relayed
    message by message to the node agent's endpoint of the same protocol (exec and attach:
    `reconcile.core.remotecommand`; port-forward: kubectl's SPDY tunnel, or the Python client's
    channel protocol, `reconcile.core.portforward_channels`, whose `ports` go on as `port`), so output
    flows as it is written and stdin as it is typed; nothing is buffered whole. Errors before the
    handshake are HTTP Status answers (kubectl then tries plain SPDY, which `handle` serves and
    where the same checks refuse it the same way); after it, a Failure on the error channel and Close 1000."""
    kubelet = kubelet or KubeletClientConfig()
    client = WebSocket(scope, receive, send)
    assert info.name is not None and info.namespace is not None and info.subresource is not None
    # Until the handshake, errors are raised: the pipeline answers them as HTTP Status responses.
    pods = api.registry.get("", "v1", "pods")
    assert pods is not None
    pod = (await api.get(pods, info.namespace, info.name)).obj
    offered = scope.get("subprotocols") or []
    if info.subresource == "portforward":
        _forward_target(pod)
        # kubectl's name, else its RFC 7230 token spelling (`reconcile port-forward`, whose WebSocket
        # library can offer tokens only); the bytes are the same SPDY stream either way
        protocol = next((p for p in (PORT_FORWARD_PROTOCOL, AGENT_PORT_FORWARD_PROTOCOL) if p in offered), None)
        agent_protocol = AGENT_PORT_FORWARD_PROTOCOL
        metadata = pod["metadata"]
        path = "/".join(["", "portForward", *(quote(v, safe="") for v in (metadata["namespace"], metadata["name"]))])
        if protocol is None:  # the Python client's channel protocol, the ports in the query
            protocol, agent_protocol, query = _channel_forward(offered, client.query_params)
            path += "?" + query
    else:
        container, options = _stream_target(pod, info.subresource, client.query_params)
        negotiated = remotecommand.negotiate(offered, remotecommand.API_SUPPORTED)
        if negotiated is None:
            raise errors.BadRequest(f"unable to upgrade connection: none of the offered subprotocols is "
                                    f"supported (this server speaks {', '.join(remotecommand.API_SUPPORTED)})")
        protocol, agent_protocol = negotiated, remotecommand.V5
        path = _path(info.subresource, pod, container) + "?" + \
            "&".join(f"{k}={quote(v, safe='')}" for k, v in options.query())
    base = await _agent_url(api, pod)
    try:
        agent = await websocket.connect("wss" + base[len("https"):] + path, kubelet.client_config(base),
                                        subprotocols=[agent_protocol])
    except errors.ApiError as exc:
        raise _from_agent(exc, pod, base) from None
    node = (pod.get("spec") or {}).get("nodeName") or ""
    try:
        await client.accept(subprotocol=protocol or None)
        await _relay_websockets(client, agent, node=node,
                                channels=protocol if info.subresource != "portforward" else None)
    finally:
        await _close_detached(agent.close)


def _channel_forward(offered: list[str], query: Any) -> tuple[str, str, str]:
    """The subprotocol to answer, the agent's and its query for a channel-protocol port-forward:
    `ports` converted as kube-apiserver converts it and passed on as the kubelet's `port`, whose
    checks (a port is required, and > 0) are made here so the refusal comes before the handshake."""
    protocol = portforward_channels.negotiate(offered)
    if protocol is None:
        raise errors.BadRequest(portforward_channels.unsupported(offered))
    try:
        ports = portforward_channels.api_ports(query.getlist(portforward_channels.API_PARAMETER))
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    joined = ",".join(str(p) for p in ports)
    try:
        portforward_channels.agent_ports([joined] if ports else [])
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    return protocol, portforward_channels.V4, f"{portforward_channels.AGENT_PARAMETER}={quote(joined, safe='')}"


async def _spdy_forward(api: rest.Rest, request: Request, pod: dict[str, Any], raw: Any,
                        kubelet: KubeletClientConfig) -> Response:
    """kubectl's plain SPDY port-forward, relayed to the agent's SPDY-in-WebSocket endpoint."""
    spdyforward.negotiate(request.headers.getlist(spdyforward.VERSION_HEADER))
    base = await _agent_url(api, pod)
    metadata = pod["metadata"]
    path = "/".join(["", "portForward", *(quote(v, safe="") for v in (metadata["namespace"], metadata["name"]))])
    try:
        agent = await websocket.connect("wss" + base[len("https"):] + path, kubelet.client_config(base),
                                        subprotocols=[AGENT_PORT_FORWARD_PROTOCOL])
    except errors.ApiError as exc:
        raise _from_agent(exc, pod, base) from None
    return Upgraded(spdyforward.SpdyRelay(raw, agent))


async def _spdy_exec(api: rest.Rest, request: Request, pod: dict[str, Any], raw: Any, kubelet: KubeletClientConfig,
                     kind: str, container: str, options: remotecommand.Options) -> Response:
    """kubectl's plain SPDY exec or attach, translated to the agent's channel protocol."""
    spdyexec.negotiate(request.headers.getlist(spdyforward.VERSION_HEADER))
    base = await _agent_url(api, pod)
    path = _path(kind, pod, container) + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in options.query())
    try:
        agent = await websocket.connect("wss" + base[len("https"):] + path, kubelet.client_config(base),
                                        subprotocols=[remotecommand.V5])
    except errors.ApiError as exc:
        raise _from_agent(exc, pod, base) from None
    return Upgraded(spdyexec.SpdyExec(raw, agent, options, node=(pod.get("spec") or {}).get("nodeName") or ""))


class Upgraded(Response):
    """A 101 after which `serve` owns the connection (the SPDY upgrades, `spdyforward`, `spdyexec`):
    a Response so the pipeline audits it as any answer; its headers (Audit-Id) go on the 101."""

    def __init__(self, serve: Callable[[list[tuple[bytes, bytes]], Any], Awaitable[None]]) -> None:
        super().__init__(status_code=101)
        self.serve = serve

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.serve(self.raw_headers, send)


def _forward_target(pod: dict[str, Any]) -> None:
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise errors.BadRequest(f"unable to forward port because pod is not running. Current status={phase}")


async def _relay_websockets(client: WebSocket, agent: websocket.Connection, *, node: str,
                            channels: str | None) -> None:
    """Messages both ways until one side closes. `channels` is the exec or attach subprotocol the
    client chose (None for port-forward, whose messages are slices of a SPDY byte stream, passed on
    unchanged). Binary protocols pass as they are, except that the Python client's text writes
    go on as bytes (kubectl accepts binary messages only); the base64 ones are re-framed both ways
    (`remotecommand.from_client`, `to_client`). When the agent goes without its status, the client
    gets a Failure status; it always gets Close 1000 (kubectl reports any other code as an error)."""
    async def send(raw: bytes) -> None:
        framed = raw if channels is None else remotecommand.to_client(channels, raw)
        if isinstance(framed, str):
            await client.send_text(framed)
        elif framed is not None:
            await client.send_bytes(framed)

    async def inbound() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            if channels is not None:
                try:
                    data = remotecommand.from_client(channels, data)
                except ValueError:
                    continue  # a malformed base64 message: dropped, as the kubelet's wsstream drops it
                if data is None:
                    continue
            await agent.send(data)

    async def outbound() -> None:
        ended = False
        try:
            while True:
                data = await agent.recv()
                raw = data.encode() if isinstance(data, str) else data
                ended = ended or (channels is not None and raw[:1] == bytes([remotecommand.ERROR]))
                await send(raw)
        except websocket.Closed as closed:
            if channels is not None and not ended and closed.code != remotecommand.NORMAL_CLOSURE:
                await send(remotecommand.status_message(errors.ServiceUnavailable(
                    f"lost the node agent of node {node} (close code {closed.code})").to_status()))
        await client.close(remotecommand.NORMAL_CLOSURE)

    reader = asyncio.ensure_future(inbound())
    writer = asyncio.ensure_future(outbound())
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(BaseException):
                await task


def _container(pod: dict[str, Any], requested: str | None) -> str:
    """The container asked for, else the default one (annotation, or the only one)."""
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names:
            raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    default = ((pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION))
    if default in names:
        return default
    if len(names) == 1:
        return names[0]
    raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")


async def _agent_url(api: rest.Rest, pod: dict[str, Any]) -> str:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned")
    nodes = api.registry.get("", "v1", "nodes")
    assert nodes is not None
    try:
        node = (await api.get(nodes, None, node_name)).obj
    except errors.NotFound:
        raise errors.NotFound(f'nodes "{node_name}" not found') from None
    url = nodeagents.agent_url(node)
    if url is None:
        raise errors.ServiceUnavailable(f"node {node_name} does not publish its agent's address and port")
    return url


def _path(kind: str, pod: dict[str, Any], container: str) -> str:
    metadata = pod["metadata"]
    return "/".join(["", kind, *(quote(p, safe="") for p in (metadata["namespace"], metadata["name"], container))])


async def _log(api: rest.Rest, request: Request, pod: dict[str, Any], kubelet: KubeletClientConfig) -> Response:
    container = _container(pod, request.query_params.get("container"))
    base = await _agent_url(api, pod)
    params = {k: request.query_params[k] for k in LOG_PARAMS if k in request.query_params}
    agent = aio.AsyncClient(kubelet.client_config(base))
    try:
        upstream = await agent.request("GET", _path("containerLogs", pod, container), params=params, stream=True)
    except errors.ApiError as exc:
        await agent.close()
        raise _from_agent(exc, pod, base) from None

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await agent.close()

    return StreamingResponse(relay(), media_type="text/plain")


async def _exec(api: rest.Rest, request: Request, pod: dict[str, Any], kubelet: KubeletClientConfig) -> Response:
    body = http.decode_object(await http.read_body(request), http.media_type(request), what="exec request")
    if not isinstance(body, dict):
        raise errors.BadRequest('exec: the body must be {"container": name, "command": [...]}')
    container = _container(pod, body.get("container") or request.query_params.get("container"))
    command = body.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise errors.BadRequest("exec: command must be a non-empty list of strings")
    base = await _agent_url(api, pod)
    agent = aio.AsyncClient(kubelet.client_config(base))
    try:
        upstream = await agent.request("POST", _path("exec", pod, container), json={"command": command},
                                       headers={"Accept": execstream.ACCEPT}, stream=True)
    except errors.ApiError as exc:
        await agent.close()
        raise _from_agent(exc, pod, base) from None

    async def close() -> None:
        await upstream.aclose()
        await agent.close()

    frames = _relay(upstream.aiter_raw(), close, node=(pod.get("spec") or {}).get("nodeName") or "")
    if execstream.MEDIA_TYPE in request.headers.get("accept", ""):
        return StreamingResponse(frames, media_type=execstream.MEDIA_TYPE)
    return CollectedExec(frames)


async def _relay(chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]], *,
                 node: str) -> AsyncIterator[bytes]:
    """The agent's exec stream as whole frames, always ending with a status frame.

    Cancelled when the client disconnects: the cancellation reaches the read from the agent, and
    httpcore then closes that connection (shielded), which is what tells the agent to kill.
    """
    decoder = execstream.Decoder()
    ended = False
    try:
        async for chunk in chunks:
            frames = decoder.feed(chunk)
            if frames:
                ended = ended or any(channel == execstream.STATUS for channel, _ in frames)
                yield b"".join(execstream.frame(channel, payload) for channel, payload in frames)
        if not ended:
            yield execstream.error_frame(errors.ServiceUnavailable(
                f"the exec stream from the node agent of node {node} ended before the command did"))
    except Exception as exc:  # a broken read (httpx's errors stay behind reconcile.client) or bytes not frames
        yield execstream.error_frame(errors.ServiceUnavailable(
            f"lost the node agent of node {node}: {type(exc).__name__}: {exc}"))
    finally:
        await _close_detached(close)


_closing: set[asyncio.Task[None]] = set()  # closes under way, referenced until done


async def _close_detached(close: Callable[[], Awaitable[None]]) -> None:
    """Run `close` to its end even when this task is being cancelled (the client left): a close
    cut short could leave the agent's connection open, and the command running with it."""
    task = asyncio.ensure_future(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)


class CollectedExec(Response):
    """The buffered exec answer `{"exitCode", "output"}`, sent once the command has ended.

    Nothing is sent before the end, so the status code can still say how it ended (a 503 when the
    agent was lost). Meanwhile the client is watched: if it disconnects, reading from the agent is
    cancelled, which closes that connection and so ends the command.
    """

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        super().__init__(media_type=http.JSON)
        self.frames = frames

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        collect = asyncio.ensure_future(_collect(self.frames))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not collect.done():
                collect.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collect  # its cleanup closes the agent's connection
        if collect.cancelled():
            return
        try:
            answer = http.json_response(collect.result())
        except errors.ApiError as exc:
            answer = http.status_response(exc)
        await answer(scope, receive, send)


async def _collect(frames: AsyncIterator[bytes]) -> dict[str, Any]:
    decoder = execstream.Decoder()
    output = bytearray()
    status: dict[str, Any] = {}
    async with contextlib.aclosing(frames):  # type: ignore[type-var]
        async for chunk in frames:
            for channel, payload in decoder.feed(chunk):
                if channel == execstream.STATUS:
                    status = json.loads(payload)
                else:
                    output += payload
    return {"exitCode": execstream.exit_code(status), "output": output.decode("utf-8", "replace")}


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _from_agent(exc: errors.ApiError, pod: dict[str, Any], base: str) -> errors.ApiError:
    if isinstance(exc, errors.ServiceUnavailable) and exc.message.startswith("cannot reach"):
        node = (pod.get("spec") or {}).get("nodeName")
        return errors.ServiceUnavailable(f"cannot reach the node agent of node {node} at {base}")
    return exc
