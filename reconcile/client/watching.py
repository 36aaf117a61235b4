"""The bookkeeping of a watch that survives disconnects and expiry, shared by sync and async.

`WatchCursor` is pure: the clients feed it watch events and list results and yield what it
returns. It decides what the consumer should see so that, whatever happens on the wire,
the consumer's picture converges on the server's: resume from the last resourceVersion
after a disconnect, and after a 410 relist and emit the difference as synthetic events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import errors

# The BOOKMARK annotation Kubernetes uses (KEP-3157) to say "the initial state is complete";
# a resilient watch emits it after every (re)list, which is how an informer knows it synced.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

# Errors that no retry can fix: the caller asked for something wrong or is not allowed.
_FATAL = (errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.Invalid, errors.MethodNotAllowed)


# 2**64 times any sane initial delay is far beyond any cap; beyond it, floats overflow (~2**1024).
_MAX_EXPONENT = 64


def retryable(exc: errors.ApiError) -> bool:
    """Whether a resilient watch should back off and try again (5xx, 429, 404 of a CRD not yet there...)."""
    return not isinstance(exc, _FATAL)


def rv_int(resource_version: str | None) -> int | None:
    """resourceVersions are opaque, but ours are etcd revisions; compare numerically when we can."""
    try:
        return int(resource_version) if resource_version else None
    except ValueError:
        return None


def rv_newer(candidate: str | None, current: str | None) -> bool:
    """True when `candidate` is strictly after `current` (unknown order counts as newer)."""
    if not candidate:
        return False
    if not current:
        return True
    a, b = rv_int(candidate), rv_int(current)
    if a is None or b is None:
        return candidate != current
    return a > b


def object_key(obj: dict[str, Any]) -> tuple[str, str]:
    """(namespace or "", name); ("", "") for an object whose metadata does not say."""
    return identity(obj) or ("", "")


def identity(obj: Any) -> tuple[str, str] | None:
    """(namespace or "", name) when the object has a usable one, else None (whatever `obj` is)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name or not isinstance(namespace, str | None):
        return None
    return namespace or "", name


def resource_version_of(obj: Any) -> str | None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) else None


@dataclass
class Backoff:
    """Capped exponential backoff with jitter, so many clients do not reconnect in lockstep."""

    initial: float = 0.1  # first delay, seconds
    cap: float = 30.0  # no delay is ever longer than this
    factor: float = 2.0
    attempt: int = 0  # failures since the last success; reset() zeroes it

    def next(self) -> float:
        # The exponent stops growing once the cap is reached, so a connection down for hours
        # (thousands of attempts) never overflows the float and ends the watch.
        delay = self.initial * (self.factor ** min(self.attempt, _MAX_EXPONENT))
        delay = min(self.cap, delay)
        self.attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class WatchCursor:
    """Where a resilient watch stands, and what its consumer has been told."""

    # The newest resourceVersion the consumer has seen (from an event, a BOOKMARK or a list).
    # Invariant: it never goes backwards; every change at or before it has been delivered.
    resource_version: str | None = None
    # Exactly the objects the consumer has been told exist (last state delivered), by
    # (namespace, name). Invariant: a relist diffs against this, so after any 410 the
    # consumer gets DELETED for what vanished, ADDED/MODIFIED for what appeared/changed.
    known: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # True until a list has given us a consistent starting point; set again by a 410.
    needs_list: bool = True
    # Events dropped because their resourceVersion was not after `resource_version`.
    dropped: int = 0
    # Events and list items dropped because their object has no usable (namespace, name): they
    # cannot be keyed, diffed or reported on; their resourceVersion still counts as seen.
    malformed: int = 0

    @classmethod
    def starting_at(cls, resource_version: str | None) -> WatchCursor:
        """RV unset or "0" means "current state first": list, then watch from the list."""
        if resource_version in (None, "", "0"):
            return cls()
        return cls(resource_version=str(resource_version), needs_list=False)

    def accept(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Record one watch event; return it if the consumer should see it, else None."""
        obj = event.get("object")
        rv = resource_version_of(obj)
        if event.get("type") == "BOOKMARK":
            if rv_newer(rv, self.resource_version):
                self.resource_version = rv
                return event
            return None
        key = identity(obj)
        if key is None or not isinstance(obj, dict):
            self.malformed += 1
            if rv_newer(rv, self.resource_version):
                self.resource_version = rv
            return None
        if self.resource_version is not None and not rv_newer(rv, self.resource_version):
            self.dropped += 1  # a replay from before our position: already delivered
            return None
        if event.get("type") == "DELETED":
            self.known.pop(key, None)
        else:
            self.known[key] = obj
        self.resource_version = rv or self.resource_version
        return event

    def expire(self) -> None:
        """The server said 410: our position is gone, relist before watching again."""
        self.needs_list = True

    def relist(self, items: list[dict[str, Any]], list_rv: str | None) -> list[dict[str, Any]]:
        """Replace our picture with a fresh list; return the synthetic events that get the consumer there.

        Raises `errors.Gone` when the list is older than what was already delivered (a lagging
        server): accepting it would move the consumer backwards in time.
        """
        if self.resource_version and list_rv and rv_newer(self.resource_version, list_rv):
            raise errors.Gone(f"list at resourceVersion {list_rv} is older than {self.resource_version}")
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for obj in items:
            key = identity(obj)
            if key is None:
                self.malformed += 1
            else:
                fresh[key] = obj
        events: list[dict[str, Any]] = []
        for key, old in list(self.known.items()):
            if key not in fresh:
                events.append({"type": "DELETED", "object": old})
        for key, obj in fresh.items():
            old = self.known.get(key)
            if old is None:
                events.append({"type": "ADDED", "object": obj})
            elif resource_version_of(old) != resource_version_of(obj):
                events.append({"type": "MODIFIED", "object": obj})
        self.known = fresh
        if list_rv:
            self.resource_version = list_rv
        self.needs_list = False
        bookmark_meta = {
            "resourceVersion": self.resource_version or "",
            "annotations": {INITIAL_EVENTS_END: "true"},
        }
        events.append({"type": "BOOKMARK", "object": {"metadata": bookmark_meta}})
        return events


def is_initial_events_end(event: dict[str, Any]) -> bool:
    if event.get("type") != "BOOKMARK":
        return False
    obj = event.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and annotations.get(INITIAL_EVENTS_END) == "true"


def complete_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """List items usually lack kind/apiVersion; fill them from the list so events look like watch events."""
    kind = str(body.get("kind") or "")
    item_kind = kind[:-4] if kind.endswith("List") else ""
    api_version = body.get("apiVersion")
    items = []
    for item in body.get("items") or []:
        if item_kind and isinstance(item, dict) and "kind" not in item:
            item = {"apiVersion": api_version, "kind": item_kind, **item}
        items.append(item)
    return items
