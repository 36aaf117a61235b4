"""The agent's own HTTP server (the kubelet's port): container logs, exec, healthz.

The API server proxies `pods/{name}/log` and `pods/{name}/exec` here. Errors found before any
output are answered as Kubernetes `Status` objects so the proxy (and the client behind it) map
them like any API error.

`POST /exec/{namespace}/{pod}/{container}` with `{"command": [...]}` answers an exec stream
(`reconcile.core.execstream`: stdout and stderr frames as the command writes them, then a status
frame with its exit code) for as long as the command runs: there is no time limit. When the
caller goes before the command ends, the command is killed in the container.

The port serves HTTPS (`reconcile.node.tls`). With a client CA, each request is authenticated by
its client certificate and authorized by the API server (`reconcile.node.authz`: the kubelet's
Webhook mode, `nodes/proxy` for exec and logs) before any route runs; a refusal is a 401 or 403
Status. `/healthz` and `/readyz` are also served on a plain-HTTP loopback port of their own
(`health_app`, the kubelet's `--healthz-port`), for supervisors without a client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from reconcile.api import httpserver
from reconcile.core import errors, execstream, outputorder, remotecommand
from reconcile.core import portforward_channels as channel_protocol
from reconcile.node import containers, docker, portforward, portforward_channels

# (namespace, pod, container, previous) -> the container instance to read, or raise errors.*
Lookup = Callable[[str, str, str, bool], Awaitable[containers.Instance]]
# (namespace, pod) -> (the pod's IP, its uid) for port-forward, or raise errors.*
PodAddress = Callable[[str, str], Awaitable[tuple[str, str]]]
# (method, path, the connection's client certificate PEM or None) -> None, or raise errors.* (401/403)
Gate = Callable[[str, str, str | None], Awaitable[None]]


def _status(error: errors.ApiError) -> JSONResponse:
    return JSONResponse(error.to_status(), status_code=error.code)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"{name}: invalid integer {value!r}") from None


def _time(request: Request, name: str) -> float | None:
    """An RFC 3339 query parameter (`sinceTime`) as epoch seconds."""
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise errors.BadRequest(f'{name}: invalid time {value!r}: expected RFC 3339, e.g. "2026-12-01T10:00:00Z"') \
            from None


def _peer_pem(request: HTTPConnection) -> str | None:
    chain = ((request.scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    return chain[0] if chain else None


def create_app(runtime: docker.DockerRuntime, lookup: Lookup, *,
               readiness: Callable[[], list[str]] = list, liveness: Callable[[], list[str]] = list,
               gate: Gate | None = None, stats: Callable[[], dict[str, Any]] | None = None,
               pod_address: PodAddress | None = None) -> Starlette:
    """The agent's routes. `readiness`/`liveness` list what is wrong now (a stopped informer, ...):
    empty means healthy; `/readyz` answers the first, `/healthz` the second. `gate` (when given)
    authenticates and authorizes every request first. `stats` answers `/stats/summary` (the
    kubelet's Summary API, authorized as `nodes/stats`), which the API server's metrics read."""
    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if gate is not None:
                    await gate(request.method, request.url.path, _peer_pem(request))
                return await endpoint(request)
            except errors.ApiError as exc:
                return _status(exc)
            except docker.DockerError as exc:
                return _status(errors.InternalError(str(exc)))

        return run

    def health(problems: list[str]) -> Response:
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ok")

    async def healthz(request: Request) -> Response:
        return health(liveness())

    async def readyz(request: Request) -> Response:
        return health(readiness())

    async def container_logs(request: Request) -> Response:
        p = request.path_params
        inst = await lookup(p["namespace"], p["pod"], p["container"], _flag(request, "previous"))
        since = _int(request, "sinceSeconds")
        since_time = _time(request, "sinceTime")
        if since is not None and since_time is not None:
            raise errors.BadRequest("at most one of sinceTime or sinceSeconds may be specified")
        tail = _int(request, "tailLines")
        limit = _int(request, "limitBytes")
        stream = runtime.logs(inst.id, follow=_flag(request, "follow") and inst.running, tail=tail,
                              since=(time.time() - since) if since else since_time,
                              timestamps=_flag(request, "timestamps"))
        return StreamingResponse(_limited(stream, limit), media_type="text/plain")

    async def exec_command(request: Request) -> Response:
        p = request.path_params
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise errors.BadRequest("exec: the body must be JSON {\"command\": [...]}") from None
        command = body.get("command") if isinstance(body, dict) else None
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise errors.BadRequest("exec: command must be a non-empty list of strings")
        inst = await lookup(p["namespace"], p["pod"], p["container"], False)
        if not inst.running:
            raise errors.BadRequest(f"container {p['container']} is not running")
        session = await runtime.exec_stream(inst.id, command)
        return StreamingResponse(_exec_frames(session), media_type=execstream.MEDIA_TYPE)

    async def stats_summary(request: Request) -> Response:
        if stats is None:
            raise errors.NotFound("this agent samples no stats")
        return JSONResponse(stats())

    async def stream(websocket: WebSocket) -> None:
        """`/exec/...` and `/attach/...` as WebSockets (the channel protocol, `remotecommand`)."""
        p = websocket.path_params
        kind = websocket.url.path.split("/")[1]
        try:
            if gate is not None:  # authorized as `create`, whatever the method (exec runs code)
                await gate("POST", websocket.url.path, _peer_pem(websocket))
            protocol = remotecommand.negotiate(websocket.scope.get("subprotocols") or [])
            if protocol is None:
                raise errors.BadRequest(f"the subprotocols offered are not supported: use {remotecommand.V5}")
            try:
                options = remotecommand.Options.parse(websocket.query_params, exec=kind == "exec")
            except ValueError as exc:
                raise errors.BadRequest(str(exc)) from None
            inst = await lookup(p["namespace"], p["pod"], p["container"], False)
            if not inst.running:
                raise errors.BadRequest(f'container not found ("{p["container"]}")')
            if kind == "exec":
                session = await runtime.exec_raw(inst.id, list(options.command), stdin=options.stdin,
                                                 stdout=options.stdout, stderr=options.stderr, tty=options.tty)
            else:
                session = await runtime.attach_raw(inst.id, stdin=options.stdin, stdout=options.stdout,
                                                   stderr=options.stderr)
        except errors.ApiError as exc:
            await websocket.send_denial_response(_status(exc))
            return
        except docker.DockerError as exc:
            await websocket.send_denial_response(_status(errors.InternalError(f"{kind}: {exc}")))
            return
        try:
            await websocket.accept(subprotocol=protocol)
            await _pump(websocket, session, options)
        finally:
            session.abort()

    async def port_forward(websocket: WebSocket) -> None:
        """`/portForward/{namespace}/{pod}`: kubectl's SPDY/3.1 port-forward streams tunnelled in a
        WebSocket (`portforward`; the binary messages are slices of the SPDY byte stream), or the
        channel protocol with the ports in `?port=` (`portforward_channels`, the Python client's)."""
        p = websocket.path_params
        offered = websocket.scope.get("subprotocols") or []
        ports: list[int] = []
        try:
            if gate is not None:
                await gate("POST", websocket.url.path, _peer_pem(websocket))
            protocol = next((p for p in offered if p in (portforward.SUBPROTOCOL, portforward.AGENT_SUBPROTOCOL)), None)
            spdy = protocol is not None
            if not spdy:
                protocol = channel_protocol.negotiate(offered)
                if protocol is None:
                    raise errors.BadRequest(channel_protocol.unsupported(offered))
                try:
                    ports = channel_protocol.agent_ports(websocket.query_params.getlist(channel_protocol.AGENT_PARAMETER))
                except ValueError as exc:
                    raise errors.BadRequest(str(exc)) from None
            if pod_address is None:
                raise errors.ServiceUnavailable("this agent does not forward ports")
            ip, uid = await pod_address(p["namespace"], p["pod"])
        except errors.ApiError as exc:
            await websocket.send_denial_response(_status(exc))
            return
        await websocket.accept(subprotocol=protocol or None)
        if spdy:
            await _forward_spdy(websocket, portforward.Session(websocket.send_bytes, pod_ip=ip, pod_name=p["pod"],
                                                               uid=uid))
        else:
            await _forward_channels(websocket, portforward_channels.ChannelSession(
                websocket.send_bytes, ports, pod_ip=ip, pod_name=p["pod"], uid=uid))

    routes = [
        WebSocketRoute("/portForward/{namespace}/{pod}", port_forward),
        WebSocketRoute("/exec/{namespace}/{pod}/{container}", stream),
        WebSocketRoute("/attach/{namespace}/{pod}/{container}", stream),
        Route("/healthz", guarded(healthz)),
        Route("/stats/summary", guarded(stats_summary)),
        Route("/readyz", guarded(readyz)),
        Route("/containerLogs/{namespace}/{pod}/{container}", guarded(container_logs)),
        Route("/exec/{namespace}/{pod}/{container}", guarded(exec_command), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def health_app(*, readiness: Callable[[], list[str]] = list, liveness: Callable[[], list[str]] = list) -> Starlette:
    """`/healthz` and `/readyz` alone, for the plain loopback health port."""
    def health(problems: list[str]) -> Response:
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ok")

    async def healthz(request: Request) -> Response:
        return health(liveness())

    async def readyz(request: Request) -> Response:
        return health(readiness())

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


async def _limited(stream: AsyncIterator[bytes], limit: int | None) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in stream:
            if limit is not None:
                chunk = chunk[: max(0, limit - sent)]
            if chunk:
                sent += len(chunk)
                yield chunk
            if limit is not None and sent >= limit:
                return
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


async def _exec_frames(session: docker.ExecSession) -> AsyncIterator[bytes]:
    """The exec stream of one command: its output frame by frame, then its exit status.

    Starlette cancels this generator when the caller disconnects; `abort` (which never awaits, so
    cancellation cannot cut it short) then kills the command, which would otherwise run on.
    """
    try:
        async with contextlib.aclosing(session.output()) as output:
            async for channel, data in output:
                yield execstream.frame(channel, data)
        yield execstream.status_frame(execstream.exit_status(await session.exit_code()))
    except docker.DockerError as exc:
        yield execstream.error_frame(errors.InternalError(f"exec: {exc}"))
    finally:
        session.abort()


# How long stdout may wait for stderr written before it (`outputorder`): Docker's two copies of
# one command's pipes were measured at most 10 ms apart on an idle machine.
STDOUT_HOLD_SECONDS = 0.05

# What Docker writes on an exec's stream when the runtime could not start the command (a missing
# executable, a bad working directory): not the command's output.
START_FAILED = b"OCI runtime exec failed"


async def _pump(websocket: WebSocket, session: docker.RawSession, options: remotecommand.Options) -> None:
    """Bytes both ways until the command's output ends (then its exit status and Close 1000) or the
    caller goes (then `abort` kills the command)."""
    async def inbound() -> None:
        resizes = remotecommand.ResizeDecoder()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            data = message.get("bytes")
            parts = remotecommand.split(data if data is not None else message.get("text") or b"")
            if parts is None:
                continue
            channel, payload = parts
            if channel == remotecommand.STDIN and options.stdin and payload:
                await session.write(payload)
            elif channel == remotecommand.RESIZE and options.tty:
                for width, height in resizes.feed(payload):
                    await session.resize(width, height)
            elif channel == remotecommand.CLOSE and payload[:1] == bytes([remotecommand.STDIN]):
                session.close_stdin()

    async def send(frames: list[tuple[int, bytes]]) -> None:
        for channel, payload in frames:
            await websocket.send_bytes(remotecommand.message(channel, payload))

    # With both output streams, stderr goes ahead of held-back stdout (`outputorder`: Docker may
    # deliver a command's last stdout before stderr it wrote earlier, and kubectl cp exits on it)
    order = outputorder.StderrFirst() if options.stdout and options.stderr and not session.tty else None

    async def read() -> bytes:
        """The next bytes from Docker. While stdout is held: after each quiet spell, released if
        the command still runs (its output is due), else held to the end (Docker closes the
        stream only after the last bytes of both pipes)."""
        reading = asyncio.ensure_future(session.read())
        try:
            ended = False
            while order is not None and order.holding and not ended:
                done, _ = await asyncio.wait({reading}, timeout=STDOUT_HOLD_SECONDS)
                if done:
                    break
                if await session.running():
                    await send(order.release())
                else:
                    ended = True
            return await reading
        finally:
            reading.cancel()  # a no-op once done; else this task is being cancelled

    async def outbound() -> None:
        demux = None if session.tty else remotecommand.DockerDemuxer()
        first = remotecommand.STDOUT if options.stdout else remotecommand.STDERR if options.stderr else \
            remotecommand.ERROR
        await websocket.send_bytes(remotecommand.message(first))  # ready, as kube-apiserver's translator says
        held: bytes | None = None  # Docker's own "cannot start" message, held until the exit code says so
        started = False
        while data := await read():
            chunks = [(remotecommand.STDOUT, data)] if demux is None else demux.feed(data)
            frames: list[tuple[int, bytes]] = []
            for channel, payload in chunks:
                if not started and held is None and payload.startswith(START_FAILED):
                    held = payload
                    continue
                started = True
                if held is not None:
                    frames.append((remotecommand.STDOUT, held))
                    held = None
                frames.append((channel, payload))
            await send(order.feed(frames) if order is not None else frames)
        if order is not None:
            await send(order.release())
        code = await session.exit_code()
        if held is not None and code in (126, 127):
            # The command never ran: an error of the runtime, as containerd's kubelet reports it
            status = errors.InternalError("Internal error occurred: error executing command in container: "
                                          f"failed to exec in container: {held.decode('utf-8', 'replace').strip()}"
                                          ).to_status()
        elif held is not None:
            await websocket.send_bytes(remotecommand.message(remotecommand.STDOUT, held))
            status = remotecommand.exit_status(code or 0)
        else:
            status = remotecommand.exit_status(code) if code is not None else {"metadata": {}, "status": "Success"}
        await websocket.send_bytes(remotecommand.status_message(status))
        await websocket.close(remotecommand.NORMAL_CLOSURE)

    reader = asyncio.ensure_future(inbound())
    writer = asyncio.ensure_future(outbound())
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if writer in done:
            writer.result()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the caller went: the session's abort ends the command
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(BaseException):
                await task


async def _forward_spdy(websocket: WebSocket, session: portforward.Session) -> None:
    """The SPDY session until the client's GOAWAY or the WebSocket's end."""
    try:
        while not session.ended:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data:
                await session.feed(data)
    except (ValueError, OSError, RuntimeError, WebSocketDisconnect) as exc:  # spdy.ProtocolError is a ValueError
        logging.getLogger(__name__).info("port-forward (SPDY) ended: %s", exc)
    finally:
        await session.close()
        with contextlib.suppress(Exception):
            await websocket.close(remotecommand.NORMAL_CLOSURE)


async def _forward_channels(websocket: WebSocket, session: portforward_channels.ChannelSession) -> None:
    """The channel session until every port is done (then Close 1000, as the kubelet closes) or
    the client goes (then the pod connections are closed)."""
    async def inbound() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await session.feed(data if data is not None else (message.get("text") or "").encode())

    reader: asyncio.Future[None] | None = None
    try:
        await session.start()
        reader = asyncio.ensure_future(inbound())
        finished = asyncio.ensure_future(session.wait())
        done, _ = await asyncio.wait({reader, finished}, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        if finished in done:
            with contextlib.suppress(Exception):
                await websocket.close(remotecommand.NORMAL_CLOSURE)
    except (OSError, RuntimeError, WebSocketDisconnect) as exc:
        logging.getLogger(__name__).info("port-forward (channels) ended: %s", exc)
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        await session.close()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the node agent's event loop until `main` ends: uvloop's, as uvicorn gives the API
    server. Every byte of exec, cp, attach, logs and port-forward crosses the agent's TLS and socket
    transports, which are compiled there and Python in asyncio's own loop (measured: `kubectl cp`
    of 100 MB into a pod took the agent 0.37 s of CPU on asyncio's loop)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


class AgentServer:
    """uvicorn on a socket bound up front, so port 0 picks a free port we can publish on the Node.
    With `ssl_context`, HTTPS only, and each request's scope carries the client certificate
    (the API server's protocol, `reconcile.api.httpserver`, which fills the ASGI TLS extension)."""

    def __init__(self, app: Starlette, *, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.sock = httpserver.listening_socket(host, port)
        self.port = int(self.sock.getsockname()[1])
        tls: dict[str, Any] = {}
        if ssl_context is not None:
            tls = {"ssl_context_factory": lambda _config, _default: ssl_context, "http": httpserver.ApiHttpProtocol,
                   "ws": httpserver.ApiWebSocketProtocol}
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, **tls)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()
