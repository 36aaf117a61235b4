"""The asyncio API client: for controllers, informers and anything that watches.

Same methods as `api.Client` (awaitable here); requests are built and decoded by `wire` and
lists and watches decided by `listwatch`, so the two clients differ only in how bytes move.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from typing import Any, TypeVar

import httpx

from reconcile.client import api, discovery, listwatch, verbs, watching, wire
from reconcile.client import config as config_mod
from reconcile.client import options as options_mod
from reconcile.core import errors

T = TypeVar("T")

# httpcore scans every pooled connection (a readability syscall per idle one) on each request
# start and end, and closes idle connections once the pool (watch streams included) holds more
# than max_keepalive_connections. 32 concurrent requests on the defaults therefore cost ~2 ms of
# client CPU each, half of it churning connections. A few requests in flight keep one API server
# busy; more only lengthen the scan. So: unary requests pass a gate of MAX_IN_FLIGHT, idle
# connections are kept (until just before uvicorn's 5 s keep-alive timeout would close them), and
# watch streams (a controller-manager holds dozens) live in a pool of their own, out of that scan.
MAX_IN_FLIGHT = 8
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0)


class AsyncClient(verbs.Verbs):
    """One connection pool to one API server, for one event loop."""

    def __init__(self, config: config_mod.ClientConfig | str, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.config = api.as_config(config)
        self._http = httpx.AsyncClient(**{**api.http_options(self.config), "limits": POOL_LIMITS})
        self._streams = httpx.AsyncClient(**api.http_options(self.config))  # watches: long-lived, never gated
        self._gate = asyncio.Semaphore(max_in_flight)  # unary requests only: watches hold their connection
        self._resources: list[discovery.ApiResource] | None = None

    async def close(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def reconnect(self) -> None:
        """Drop every connection (watches too: their informers reconnect) and make new ones with the
        TLS files as they are now. A renewed client certificate is only presented by new
        connections, and one kept alive with the old certificate would fail once it expires (the
        kubelet closes its connections after a rotation for the same reason)."""
        old = (self._http, self._streams)
        self._http = httpx.AsyncClient(**{**api.http_options(self.config), "limits": POOL_LIMITS})
        self._streams = httpx.AsyncClient(**api.http_options(self.config))
        for client in old:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transport ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Any call, errors mapped; with `stream=True` the caller must `aclose()` the response."""
        spec = wire.RequestSpec(
            method,
            path,
            params=params or {},
            json=json,
            content=content,
            headers=headers or {},
            stream=stream,
        )
        return await self._send(spec)

    async def _send(self, spec: wire.RequestSpec) -> httpx.Response:
        request = self._http.build_request(
            spec.method,
            spec.path,
            params=spec.params,
            json=spec.json,
            content=spec.content,
            headers=wire.headers_for(spec),
            timeout=api.stream_timeout(spec) if spec.stream else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            if spec.stream:
                response = await self._streams.send(request, stream=True)
                if not response.is_success:
                    await response.aread()
                    await response.aclose()
            else:
                async with self._gate:
                    response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise wire.transport_error(exc, self.config.server) from exc
        wire.check(response)
        return response

    async def _call(self, spec: wire.RequestSpec) -> Any:
        return wire.decode(await self._send(spec))

    # --- more verbs (get, list, create, replace, patch, delete, delete_collection: verbs.Verbs) ---

    async def list_all(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = listwatch.DEFAULT_PAGE_SIZE,
    ) -> dict:
        """Every page of a list, merged into one list body (one snapshot); see `listwatch.list_pages`."""
        options = options_mod.ListOptions.of(options, label_selector=label_selector, field_selector=field_selector)
        return await self._run(listwatch.list_pages(listwatch.Target(api_version, plural, namespace), options,
                                                    page_size=page_size))

    # --- watch -------------------------------------------------------------------------------

    async def watch(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool | None = None,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[dict]:
        """Events of one watch stream; see `api.Client.watch`. Close it with `aclose()` (or `aclosing`)."""
        options = options_mod.ListOptions.of(
            options, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks,
        )
        spec = wire.watch_request(api_version, plural, namespace=namespace, options=options,
                                  idle_timeout=idle_timeout)
        stream = self._events(await self._send(spec))
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    async def _events(self, response: httpx.Response) -> AsyncGenerator[dict, None]:
        """The parsed events of an open watch response; closes it when done (or abandoned)."""
        try:
            async for line in response.aiter_lines():
                event = wire.parse_watch_line(line)
                if event is not None:
                    yield event
        except httpx.HTTPError as exc:
            raise wire.transport_error(exc, self.config.server) from exc
        finally:
            await response.aclose()

    async def watch_resilient(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = listwatch.DEFAULT_PAGE_SIZE,
        cursor: watching.WatchCursor | None = None,
        backoff: watching.Backoff | None = None,
    ) -> AsyncIterator[dict]:
        """A watch that never ends by itself; see `api.Client.watch_resilient` and `listwatch.resilient_watch`."""
        options = options_mod.ListOptions.of(
            options, resource_version=resource_version, label_selector=label_selector, field_selector=field_selector
        )
        flow = listwatch.resilient_watch(
            listwatch.Target(api_version, plural, namespace),
            options,
            cursor=cursor or watching.WatchCursor.starting_at(options.resource_version),
            backoff=backoff or watching.Backoff(),
            page_size=page_size,
        )
        stream = self._follow(flow)
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    # --- drivers of the sans-I/O flows (listwatch): this client's I/O for their actions --------

    async def _run(self, flow: Generator[listwatch.Call, Any, T]) -> T:
        """Carry out a flow of unary calls; returns what the flow returns."""
        reply: Any = None
        failure: errors.ApiError | None = None
        while True:
            try:
                action = flow.throw(failure) if failure is not None else flow.send(reply)
            except StopIteration as done:
                return done.value
            reply, failure = None, None
            try:
                reply = await self._call(action.spec)
            except errors.ApiError as exc:
                failure = exc

    async def _follow(self, flow: listwatch.WatchFlow) -> AsyncGenerator[dict, None]:
        """Carry out a watch flow's actions, yielding what it emits; one stream open at a time."""
        stream: AsyncGenerator[dict, None] | None = None
        response: httpx.Response | None = None
        reply: Any = None
        failure: errors.ApiError | None = None
        try:
            while True:
                action = flow.throw(failure) if failure is not None else flow.send(reply)
                reply, failure = None, None
                if isinstance(action, listwatch.Emit):
                    yield action.event
                elif isinstance(action, listwatch.Sleep):
                    await asyncio.sleep(action.seconds)  # backoff between reconnects, not synchronization
                elif isinstance(action, listwatch.Call):
                    try:
                        reply = await self._call(action.spec)
                    except errors.ApiError as exc:
                        failure = exc
                elif isinstance(action, listwatch.OpenWatch):
                    previous = stream, response
                    stream, response = None, None
                    await self._close_stream(*previous)
                    try:
                        response = await self._send(action.spec)
                    except errors.ApiError as exc:
                        failure = exc
                    else:
                        stream = self._events(response)
                elif stream is not None:  # NextEvent
                    try:
                        reply = await anext(stream, None)
                    except errors.ApiError as exc:
                        failure = exc
                    if reply is None:  # ended or broke: the generator has closed its response
                        stream, response = None, None
        finally:
            await self._close_stream(stream, response)
            flow.close()

    async def _close_stream(self, stream: Any, response: httpx.Response | None) -> None:
        """Close a watch's event generator and its response (an unstarted generator would not close it)."""
        if stream is not None:
            await stream.aclose()
        if response is not None:
            await response.aclose()

    # --- discovery ---------------------------------------------------------------------------

    async def discover(self, *, refresh: bool = False) -> list[discovery.ApiResource]:
        """Every resource the server serves (cached; `refresh=True` or a miss in `resolve` refetches)."""
        if self._resources is None or refresh:
            flow = discovery.flow()
            response: httpx.Response | None = None
            try:
                while True:
                    spec = flow.send(response) if response is not None else next(flow)
                    try:
                        response = await self._http.request(
                            spec.method, spec.path, params=spec.params, headers=wire.headers_for(spec)
                        )
                    except httpx.HTTPError as exc:
                        raise wire.transport_error(exc, self.config.server) from exc
            except StopIteration as done:
                self._resources = done.value
        return list(self._resources or [])

    async def resolve(self, name: str) -> discovery.ApiResource:
        try:
            return discovery.resolve(await self.discover(), name)
        except errors.NotFound:
            return discovery.resolve(await self.discover(refresh=True), name)

    async def resource_for(self, api_version: str, kind: str) -> discovery.ApiResource:
        try:
            return discovery.for_kind(await self.discover(), api_version, kind)
        except errors.NotFound:
            return discovery.for_kind(await self.discover(refresh=True), api_version, kind)


async def retry_on_conflict(
    fn: Callable[[], Awaitable[T]], *, attempts: int = 10, backoff: watching.Backoff | None = None
) -> T:
    """Await a read-modify-write `fn` again when its write lost a race (409 Conflict); see `api.retry_on_conflict`."""
    backoff = backoff or watching.Backoff(initial=0.005, cap=0.5)
    for attempt in range(attempts):
        try:
            return await fn()
        except errors.Conflict:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff.next())
    raise AssertionError("unreachable")
