"""The synchronous API client: for the CLI, scripts and tests.

It sends the `RequestSpec`s built in `wire` and decodes answers there; the decisions of
paged lists and resilient watches are the sans-I/O flows of `listwatch`, which `_run` and
`_follow` only carry out. httpx's errors are translated into `reconcile.core.errors` here, so
callers catch one family of exceptions.
"""

from __future__ import annotations

import functools
import os
import ssl
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import httpx

from reconcile.client import config as config_mod
from reconcile.client import discovery, listwatch, verbs, watching, wire
from reconcile.client import options as options_mod
from reconcile.core import errors

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


def http_options(cfg: config_mod.ClientConfig) -> dict[str, Any]:
    """httpx constructor arguments for a config; shared with the async client."""
    headers = {"User-Agent": "reconcile-client"}
    if cfg.token:
        headers["Authorization"] = f"Bearer {cfg.token}"
    if cfg.impersonate:
        headers["Impersonate-User"] = cfg.impersonate
    options: dict[str, Any] = {
        "base_url": cfg.server,
        "headers": headers,
        "verify": tls_context(cfg),
        "timeout": httpx.Timeout(DEFAULT_TIMEOUT),
    }
    if cfg.token_file and not cfg.token:
        options["auth"] = TokenFileAuth(cfg.token_file)
    return options


class TokenFileAuth(httpx.Auth):
    """`Authorization: Bearer <the file's content>`, read again whenever the file changes: the node
    agent replaces a pod's ServiceAccount token before it expires, and a long-running client (an
    operator in a pod) must pick the new one up, as the official client does."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._version: tuple[int, int] | None = None
        self._token = ""

    def current(self) -> str:
        try:
            found = os.stat(self.path)  # follows the ..data symlink the node agent swaps
            version = (found.st_ino, found.st_mtime_ns)
            if version != self._version:
                with open(self.path, encoding="utf-8") as handle:
                    self._token = handle.read().strip()
                self._version = version
        except OSError:
            pass  # keep the last token read: the file may be mid-replacement
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def tls_context(cfg: config_mod.ClientConfig) -> ssl.SSLContext | bool:
    """The TLS settings as one `ssl.SSLContext` (httpx 0.28 deprecates a CA path or `cert=`):
    a CA bundle path or the default trust store, and the client certificate. Shared by every client
    of the same files (a context is thread-safe), and made again when one of the files changes."""
    if cfg.verify is True and cfg.cert is None:
        return True
    if cfg.verify is False and cfg.cert is None:
        return False
    files = ([cfg.verify] if isinstance(cfg.verify, str) else []) + list(cfg.cert or ())
    return _context(cfg.verify, cfg.cert, tuple(_mtime(f) for f in files))


@functools.lru_cache(maxsize=64)
def _context(verify: bool | str, cert: tuple[str, str] | None, _versions: tuple[int, ...]) -> ssl.SSLContext:
    try:
        if isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        else:
            context = httpx.create_ssl_context(verify=verify)
        if cert is not None:
            context.load_cert_chain(cert[0], cert[1])
    except (OSError, ssl.SSLError) as exc:
        raise config_mod.ConfigError(f"cannot load the TLS files of the kubeconfig: {exc}") from None
    return context


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def as_config(config: config_mod.ClientConfig | str) -> config_mod.ClientConfig:
    return config_mod.ClientConfig(server=config) if isinstance(config, str) else config


def stream_timeout(spec: wire.RequestSpec) -> httpx.Timeout:
    return httpx.Timeout(DEFAULT_TIMEOUT, read=spec.read_timeout)


class Client(verbs.Verbs):
    """One connection pool to one API server; thread-safe as httpx.Client is."""

    def __init__(self, config: config_mod.ClientConfig | str) -> None:
        self.config = as_config(config)
        self._http = httpx.Client(**http_options(self.config))
        self._resources: list[discovery.ApiResource] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------

    def request(
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
        """Any call, errors mapped; with `stream=True` the caller must close the response."""
        spec = wire.RequestSpec(
            method,
            path,
            params=params or {},
            json=json,
            content=content,
            headers=headers or {},
            stream=stream,
        )
        return self._send(spec)

    def _send(self, spec: wire.RequestSpec) -> httpx.Response:
        request = self._http.build_request(
            spec.method,
            spec.path,
            params=spec.params,
            json=spec.json,
            content=spec.content,
            headers=wire.headers_for(spec),
            timeout=stream_timeout(spec) if spec.stream else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = self._http.send(request, stream=spec.stream)
            if spec.stream and not response.is_success:
                response.read()
                response.close()
        except httpx.HTTPError as exc:
            raise wire.transport_error(exc, self.config.server) from exc
        wire.check(response)
        return response

    def _call(self, spec: wire.RequestSpec) -> Any:
        return wire.decode(self._send(spec))

    # --- more verbs (get, list, create, replace, patch, delete, delete_collection: verbs.Verbs) ---

    def list_all(
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
        return self._run(listwatch.list_pages(listwatch.Target(api_version, plural, namespace), options,
                                              page_size=page_size))

    # --- watch -------------------------------------------------------------------------------

    def watch(
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
    ) -> Iterator[dict]:
        """Events `{"type", "object"}` of one watch stream; ends when the server closes it.

        An in-stream ERROR raises its mapped error (410 -> `errors.Gone`). `idle_timeout`
        gives up (ServiceUnavailable) after that many silent seconds.
        """
        options = options_mod.ListOptions.of(
            options, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks,
        )
        spec = wire.watch_request(api_version, plural, namespace=namespace, options=options,
                                  idle_timeout=idle_timeout)
        yield from self._events(self._send(spec))

    def _events(self, response: httpx.Response) -> Iterator[dict]:
        """The parsed events of an open watch response; closes it when done (or abandoned)."""
        try:
            for line in response.iter_lines():
                event = wire.parse_watch_line(line)
                if event is not None:
                    yield event
        except httpx.HTTPError as exc:
            raise wire.transport_error(exc, self.config.server) from exc
        finally:
            response.close()

    def watch_resilient(
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
    ) -> Iterator[dict]:
        """A watch that never ends by itself: see `listwatch.resilient_watch` for what it decides.

        Without `resource_version` it lists first (synthetic ADDED events, then a BOOKMARK
        annotated `k8s.io/initial-events-end`); it resumes from the last RV after disconnects
        and relists on 410, emitting the difference. Fatal errors (400, 401, 403) propagate.
        """
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
        return self._follow(flow)

    # --- drivers of the sans-I/O flows (listwatch): this client's I/O for their actions --------

    def _run(self, flow: Generator[listwatch.Call, Any, T]) -> T:
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
                reply = self._call(action.spec)
            except errors.ApiError as exc:
                failure = exc

    def _follow(self, flow: listwatch.WatchFlow) -> Iterator[dict]:
        """Carry out a watch flow's actions, yielding what it emits; one stream open at a time."""
        stream: Generator[dict, None, None] | None = None
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
                    time.sleep(action.seconds)  # backoff between reconnects, not synchronization
                elif isinstance(action, listwatch.Call):
                    try:
                        reply = self._call(action.spec)
                    except errors.ApiError as exc:
                        failure = exc
                elif isinstance(action, listwatch.OpenWatch):
                    previous = stream, response
                    stream, response = None, None
                    self._close_stream(*previous)
                    try:
                        response = self._send(action.spec)
                    except errors.ApiError as exc:
                        failure = exc
                    else:
                        stream = self._events(response)
                elif stream is not None:  # NextEvent
                    try:
                        reply = next(stream, None)
                    except errors.ApiError as exc:
                        failure = exc
                    if reply is None:  # ended or broke: the generator has closed its response
                        stream, response = None, None
        finally:
            self._close_stream(stream, response)
            flow.close()

    def _close_stream(self, stream: Any, response: httpx.Response | None) -> None:
        """Close a watch's event generator and its response (an unstarted generator would not close it)."""
        if stream is not None:
            stream.close()
        if response is not None:
            response.close()

    # --- discovery ---------------------------------------------------------------------------

    def discover(self, *, refresh: bool = False) -> list[discovery.ApiResource]:
        """Every resource the server serves (cached; `refresh=True` or a miss in `resolve` refetches)."""
        if self._resources is None or refresh:
            flow = discovery.flow()
            response: httpx.Response | None = None
            try:
                while True:
                    spec = flow.send(response) if response is not None else next(flow)
                    response = self._send_unchecked(spec)
            except StopIteration as done:
                self._resources = done.value
        return list(self._resources or [])

    def _send_unchecked(self, spec: wire.RequestSpec) -> httpx.Response:
        """For flows that decode (and map errors) themselves."""
        try:
            return self._http.request(
                spec.method, spec.path, params=spec.params, headers=wire.headers_for(spec)
            )
        except httpx.HTTPError as exc:
            raise wire.transport_error(exc, self.config.server) from exc

    def resolve(self, name: str) -> discovery.ApiResource:
        """`po`, `pods`, `pod`, `Pod`, `deployments.apps`...; refreshes discovery once on a miss (new CRDs)."""
        try:
            return discovery.resolve(self.discover(), name)
        except errors.NotFound:
            return discovery.resolve(self.discover(refresh=True), name)

    def resource_for(self, api_version: str, kind: str) -> discovery.ApiResource:
        try:
            return discovery.for_kind(self.discover(), api_version, kind)
        except errors.NotFound:
            return discovery.for_kind(self.discover(refresh=True), api_version, kind)


def retry_on_conflict(
    fn: Callable[[], T], *, attempts: int = 10, backoff: watching.Backoff | None = None
) -> T:
    """Run a read-modify-write `fn` again when its write lost a race (409 Conflict).

    `fn` must re-read the object each time; after `attempts` tries the last Conflict propagates.
    """
    backoff = backoff or watching.Backoff(initial=0.005, cap=0.5)
    for attempt in range(attempts):
        try:
            return fn()
        except errors.Conflict:
            if attempt == attempts - 1:
                raise
            time.sleep(backoff.next())
    raise AssertionError("unreachable")
