"""The list and watch decisions, written once for the sync and the async client (sans-I/O).

Paging with continue tokens, what a 410 means (mid-list: one full list; mid-watch: relist and
diff), resuming from the last resourceVersion, bookmarks, the idle timeout that unmasks a dead
connection, and the backoff between reconnects all live here, as generators that do no I/O:
a flow yields an *action*, the client carries it out and sends the outcome back (or throws the
`errors.ApiError` it raised into the flow). `api.Client` and `aio.AsyncClient` are then only
the loops that move bytes (compare `discovery.flow()` and `wire` for single requests), and the
flows are unit-tested by driving them with scripted outcomes.

Actions and what the client sends back:
- `Call(spec)`: send a unary request; reply with the decoded JSON body.
- `OpenWatch(spec)`: open a watch stream (closing any open one); reply None.
- `NextEvent()`: reply with the next event of the open stream (parsed by `wire.parse_watch_line`),
  or None once the server ended it. A stream that broke or an in-stream ERROR is thrown instead.
- `Sleep(seconds)`: wait (backoff between reconnects); reply None.
- `Emit(event)`: hand the event to the consumer; reply None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from reconcile.client import options as options_mod
from reconcile.client import watching, wire
from reconcile.core import errors

# Idle watches get a BOOKMARK at least once a minute; silence much longer than that means a
# dead connection (half-open TCP), so resilient watches give up and resume from their RV.
WATCH_IDLE_TIMEOUT = 90.0
DEFAULT_PAGE_SIZE = 500  # client-go's pager default


@dataclass(frozen=True)
class Call:
    spec: wire.RequestSpec


@dataclass(frozen=True)
class OpenWatch:
    spec: wire.RequestSpec


@dataclass(frozen=True)
class NextEvent:
    pass


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    event: dict[str, Any]


Action = Call | OpenWatch | NextEvent | Sleep | Emit
ListFlow = Generator[Call, Any, dict[str, Any]]
WatchFlow = Generator[Action, Any, None]


@dataclass(frozen=True)
class Target:
    """What is listed or watched: one resource, in one namespace or all of them."""

    api_version: str
    plural: str
    namespace: str | None = None


# --- lists -------------------------------------------------------------------------------------


def _items(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise errors.InternalError(f"a list answer must be an object, got {type(body).__name__}")
    items = body.get("items")
    return list(items) if isinstance(items, list) else []


def _continue_token(body: dict[str, Any]) -> str:
    metadata = body.get("metadata")
    token = metadata.get("continue") if isinstance(metadata, dict) else None
    return token if isinstance(token, str) else ""


def list_pages(target: Target, options: options_mod.ListOptions | None = None, *,
               page_size: int = DEFAULT_PAGE_SIZE) -> ListFlow:
    """Every page of a list, merged into one list body at the first page's snapshot.

    Pages of `options.limit` (else `page_size`) items follow the continue tokens. When a later
    page answers 410 (the snapshot the token pinned was compacted), the pages so far are
    dropped and one full list without a limit is made instead, as client-go's pager does
    (`FullListIfExpired`): slower, but still one consistent snapshot.
    """
    options = options or options_mod.ListOptions()
    paged = dataclasses.replace(options, limit=options.limit or page_size, continue_=None)
    body = yield Call(wire.list_request(target.api_version, target.plural, namespace=target.namespace,
                                        options=paged))
    items = _items(body)
    while token := _continue_token(body):
        try:
            body = yield Call(wire.list_request(target.api_version, target.plural, namespace=target.namespace,
                                                options=dataclasses.replace(paged, continue_=token)))
        except errors.Gone:
            full = dataclasses.replace(options, limit=None, continue_=None)
            body = yield Call(wire.list_request(target.api_version, target.plural, namespace=target.namespace,
                                                options=full))
            items = _items(body)
            break
        items.extend(_items(body))
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {**body, "items": items, "metadata": {**metadata, "continue": ""}}


def list_resource_version(body: dict[str, Any]) -> str | None:
    metadata = body.get("metadata")
    rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return rv if isinstance(rv, str) and rv else None


# --- watches -----------------------------------------------------------------------------------


def watch_options(options: options_mod.ListOptions, resource_version: str | None) -> options_mod.ListOptions:
    """The options of one watch request of a resilient watch: same selection, from our position."""
    return dataclasses.replace(options, resource_version=resource_version, limit=None, continue_=None,
                               resource_version_match=None, allow_bookmarks=True)


def resilient_watch(
    target: Target,
    options: options_mod.ListOptions | None = None,
    *,
    cursor: watching.WatchCursor,
    backoff: watching.Backoff,
    page_size: int = DEFAULT_PAGE_SIZE,
    idle_timeout: float = WATCH_IDLE_TIMEOUT,
) -> WatchFlow:
    """A watch that never ends by itself; `watching.WatchCursor` says what it guarantees.

    While the cursor needs a starting point (unset RV, or after a 410) it lists (every page,
    selection only) and emits the difference to what the consumer was told, then a BOOKMARK
    annotated `k8s.io/initial-events-end`. It then watches from the cursor's resourceVersion
    with bookmarks and an idle timeout, emitting each event the cursor accepts. A stream that
    ends or breaks is resumed from the last resourceVersion; a 410 relists; other retryable
    errors back off (capped, jittered; reset by every delivered event). Fatal errors (400, 401,
    403, 422, 405) propagate: no retry can fix them.
    """
    options = options or options_mod.ListOptions()
    while True:
        progressed = False
        try:
            if cursor.needs_list:
                body = yield from list_pages(target, options.selection(), page_size=page_size)
                for event in cursor.relist(watching.complete_items(body), list_resource_version(body)):
                    yield Emit(event)
            yield OpenWatch(wire.watch_request(target.api_version, target.plural, namespace=target.namespace,
                                               options=watch_options(options, cursor.resource_version),
                                               idle_timeout=idle_timeout))
            while (event := (yield NextEvent())) is not None:
                accepted = cursor.accept(event)
                if accepted is not None:
                    progressed = True
                    backoff.reset()
                    yield Emit(accepted)
        except errors.Gone:
            cursor.expire()
        except errors.ApiError as exc:
            if not watching.retryable(exc):
                raise
        if not progressed:
            yield Sleep(backoff.next())
