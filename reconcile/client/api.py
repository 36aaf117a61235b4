"""The synchronous API client: for the CLI, scripts and tests.

It sends the `RequestSpec`s built in `wire` and decodes answers there; httpx's errors are
translated into `reconcile.core.errors` here, so callers catch one family of exceptions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from reconcile.client import config as config_mod
from reconcile.client import discovery, verbs, watching, wire
from reconcile.core import errors

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


def http_options(cfg: config_mod.ClientConfig) -> dict[str, Any]:
    """httpx constructor arguments for a config; shared with the async client."""
    headers = {"User-Agent": "reconcile-client"}
    if cfg.token:
        headers["Authorization"] = f"Bearer {cfg.token}"
    return {
        "base_url": cfg.server,
        "headers": headers,
        "verify": cfg.verify,
        "cert": cfg.cert,
        "timeout": httpx.Timeout(DEFAULT_TIMEOUT),
    }


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
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> dict:
        """Every page of a list, merged into one list body (one snapshot: the first page's RV)."""
        body = self.list(
            api_version,
            plural,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=page_size,
        )
        items = list(body.get("items") or [])
        while (body.get("metadata") or {}).get("continue"):
            body = self.list(
                api_version,
                plural,
                namespace=namespace,
                limit=page_size,
                label_selector=label_selector,
                field_selector=field_selector,
                continue_=body["metadata"]["continue"],
            )
            items.extend(body.get("items") or [])
        return {**body, "items": items, "metadata": {**(body.get("metadata") or {}), "continue": ""}}

    # --- watch -------------------------------------------------------------------------------

    def watch(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        idle_timeout: float | None = None,
    ) -> Iterator[dict]:
        """Events `{"type", "object"}` of one watch stream; ends when the server closes it.

        An in-stream ERROR raises its mapped error (410 -> `errors.Gone`). `idle_timeout`
        gives up (ServiceUnavailable) after that many silent seconds.
        """
        spec = wire.watch_request(
            api_version,
            plural,
            namespace=namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=timeout_seconds,
            allow_bookmarks=allow_bookmarks,
            idle_timeout=idle_timeout,
        )
        response = self._send(spec)
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
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        cursor: watching.WatchCursor | None = None,
        backoff: watching.Backoff | None = None,
    ) -> Iterator[dict]:
        """A watch that never ends by itself: see `watching.WatchCursor` for what it guarantees.

        Without `resource_version` it lists first (synthetic ADDED events, then a BOOKMARK
        annotated `k8s.io/initial-events-end`); it resumes from the last RV after disconnects
        and relists on 410, emitting the difference. Fatal errors (400, 401, 403) propagate.
        """
        cursor = cursor or watching.WatchCursor.starting_at(resource_version)
        backoff = backoff or watching.Backoff()
        while True:
            progressed = False
            try:
                if cursor.needs_list:
                    body = self.list_all(
                        api_version,
                        plural,
                        namespace=namespace,
                        label_selector=label_selector,
                        field_selector=field_selector,
                        page_size=page_size,
                    )
                    rv = (body.get("metadata") or {}).get("resourceVersion")
                    yield from cursor.relist(watching.complete_items(body), rv)
                with contextlib.closing(
                    self.watch(
                        api_version,
                        plural,
                        namespace=namespace,
                        resource_version=cursor.resource_version,
                        label_selector=label_selector,
                        field_selector=field_selector,
                        idle_timeout=wire.WATCH_IDLE_TIMEOUT,
                    )
                ) as stream:
                    for event in stream:
                        accepted = cursor.accept(event)
                        if accepted is not None:
                            progressed = True
                            backoff.reset()
                            yield accepted
            except errors.Gone:
                cursor.expire()
            except errors.ApiError as exc:
                if not watching.retryable(exc):
                    raise
            if not progressed:
                time.sleep(backoff.next())  # backoff between reconnects, not synchronization

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
