"""What a plugin declared: handlers per resource and per kind, in declaration order.

Decorators add to the *current* registry: the process-wide default, or a fresh one that the
plugin loader installs while it imports a plugin (so two plugins, or two tests, never share
handlers by accident).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile.engine.sdk import filters

# Kinds of per-object handlers; "field" is an update-style handler scoped to one field.
CHANGE_KINDS = ("create", "update", "field", "resume", "delete")
OBJECT_KINDS = (*CHANGE_KINDS, "event", "timer", "daemon", "index")
OPERATOR_KINDS = ("startup", "cleanup")


@dataclass(frozen=True)
class ResourceRef:
    """A resource as the plugin named it; resolved through discovery when the operator starts.

    Forms (as kopf): `("plural" | "Kind" | "plural.group")`, `("group/version", "plural" | "Kind")`,
    `("group", "version", "plural" | "Kind")`.
    """

    group: str | None
    version: str | None
    name: str

    @classmethod
    def parse(cls, *args: str) -> ResourceRef:
        if len(args) == 1:
            return cls(None, None, args[0])
        if len(args) == 2:
            group_version, name = args
            group, _, version = group_version.rpartition("/")
            return cls(group, version or None, name)
        if len(args) == 3:
            return cls(args[0], args[1], args[2])
        raise TypeError(f"a resource is 1 to 3 strings (group, version, plural), got {args!r}")

    def __str__(self) -> str:
        if self.group is None:
            return self.name
        return f"{self.group}/{self.version}/{self.name}" if self.group else f"{self.version}/{self.name}"


@dataclass
class Handler:
    """One decorated function and its options (fields unused by a kind keep their defaults)."""

    fn: Callable[..., Any]
    id: str
    kind: str
    resource: ResourceRef | None = None
    labels: filters.Filter | None = None
    annotations: filters.Filter | None = None
    when: Callable[..., bool] | None = None
    field: tuple[str, ...] | None = None  # the watched field path (on.field, or field= on update)
    retries: int | None = None
    timeout: float | None = None
    backoff: float = 1.0  # first retry delay for unexpected errors; doubles per retry, capped at 60 s
    optional: bool = False  # delete handlers, timers, daemons: do not add a finalizer
    interval: float | None = None  # timers
    initial_delay: float = 0.0  # timers and daemons
    idle: float | None = None  # timers: run only after the object is unchanged this long
    cancellation_timeout: float = 5.0  # daemons: grace after `stopped` is set before cancelling
    param: Any = None

    @property
    def requires_finalizer(self) -> bool:
        return self.kind in ("delete", "timer", "daemon") and not self.optional


@dataclass
class Registry:
    """Handlers of one operator, in declaration order."""

    handlers: list[Handler] = field(default_factory=list)
    # Folders `rc.render` searches (the plugin's own folder first); filled by the loader.
    template_dirs: list[Path] = field(default_factory=list)

    def add(self, handler: Handler) -> Handler:
        for other in self.handlers:
            if other.kind == handler.kind and other.resource == handler.resource and other.id == handler.id:
                raise ValueError(f"duplicate {handler.kind} handler id {handler.id!r} for {handler.resource}; pass id=")
        self.handlers.append(handler)
        return handler

    def resources(self) -> list[ResourceRef]:
        seen: dict[ResourceRef, None] = {}
        for handler in self.handlers:
            if handler.resource is not None:
                seen.setdefault(handler.resource, None)
        return list(seen)

    def for_resource(self, resource: ResourceRef, *kinds: str) -> list[Handler]:
        return [h for h in self.handlers if h.resource == resource and h.kind in kinds]

    def operator_handlers(self, kind: str) -> list[Handler]:
        return [h for h in self.handlers if h.kind == kind]


_default = Registry()
_current: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("reconcile_registry", default=None)


def current() -> Registry:
    """The registry decorators add to right now."""
    return _current.get() or _default


def default() -> Registry:
    return _default


def activate(registry: Registry) -> contextvars.Token:
    """Make `registry` current in this context (the operator does it for its handlers)."""
    return _current.set(registry)


@contextlib.contextmanager
def collecting(registry: Registry) -> Iterator[Registry]:
    """Make `registry` current while a plugin is imported."""
    token = _current.set(registry)
    try:
        yield registry
    finally:
        _current.reset(token)
