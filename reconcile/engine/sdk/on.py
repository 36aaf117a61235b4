"""The decorators: `rc.on.create(...)`, `rc.on.update`, ..., `rc.timer`, `rc.daemon`, `rc.index`.

Each returns the function unchanged after adding a `registry.Handler` to the given or current
registry, so decorated functions stay plain callables that tests can call directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reconcile.engine.sdk import filters
from reconcile.engine.sdk import registry as registry_mod

F = TypeVar("F", bound=Callable[..., Any])


def _field_path(field: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    if field is None:
        return None
    return tuple(field.split(".")) if isinstance(field, str) else tuple(field)


def _decorator(kind: str, resource: tuple[str, ...], options: dict[str, Any]) -> Callable[[F], F]:
    reg: registry_mod.Registry | None = options.pop("registry", None)
    explicit_id: str | None = options.pop("id", None)
    field = _field_path(options.pop("field", None))
    options = {k: v for k, v in options.items() if v is not None}

    def decorate(fn: F) -> F:
        handler_id = explicit_id or getattr(fn, "__name__", "handler")
        if field is not None and explicit_id is None:
            handler_id = f"{handler_id}/{'.'.join(field)}"
        target = reg or registry_mod.current()
        ref = registry_mod.ResourceRef.parse(*resource) if resource else None
        target.add(registry_mod.Handler(fn=fn, id=handler_id, kind=kind, resource=ref, field=field, **options))
        return fn

    return decorate


def _resource_handler(kind: str, resource: tuple[str, ...], **options: Any) -> Callable[[F], F]:
    if not resource:
        raise TypeError(f"on.{kind} needs a resource: ('group', 'version', 'plural'), ('plural',) or ('Kind',)")
    return _decorator(kind, resource, options)


def create(
    *resource: str,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run once when an object is first seen (no last-handled configuration yet)."""
    return _resource_handler("create", resource, id=id, labels=labels, annotations=annotations, when=when,
                             retries=retries, timeout=timeout, backoff=backoff, param=param, registry=registry)


def update(
    *resource: str,
    field: str | None = None,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run when the object's essence (spec, labels, annotations, ...; not status) changed."""
    return _resource_handler("update", resource, field=field, id=id, labels=labels, annotations=annotations,
                             when=when, retries=retries, timeout=timeout, backoff=backoff, param=param,
                             registry=registry)


def delete(
    *resource: str,
    optional: bool = False,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run when the object is being deleted; holds a finalizer until it succeeds (unless optional)."""
    return _resource_handler("delete", resource, optional=optional, id=id, labels=labels, annotations=annotations,
                             when=when, retries=retries, timeout=timeout, backoff=backoff, param=param,
                             registry=registry)


def resume(
    *resource: str,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run once per operator lifetime for each object that was already handled before."""
    return _resource_handler("resume", resource, id=id, labels=labels, annotations=annotations, when=when,
                             retries=retries, timeout=timeout, backoff=backoff, param=param, registry=registry)


def field(
    *resource: str,
    field: str,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run when one field (dotted path) appears or changes; `old`/`new`/`diff` are scoped to it."""
    return _resource_handler("field", resource, field=field, id=id, labels=labels, annotations=annotations,
                             when=when, retries=retries, timeout=timeout, backoff=backoff, param=param,
                             registry=registry)


def event(
    *resource: str,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run for every raw watch event (kwarg `event` = {"type", "object"}); no progress, no retries."""
    return _resource_handler("event", resource, id=id, labels=labels, annotations=annotations, when=when,
                             param=param, registry=registry)


def timer(
    *resource: str,
    interval: float,
    initial_delay: float | None = None,
    idle: float | None = None,
    optional: bool = False,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Run every `interval` seconds per object; never overlaps with itself."""
    return _resource_handler("timer", resource, interval=interval, initial_delay=initial_delay, idle=idle,
                             optional=optional, id=id, labels=labels, annotations=annotations, when=when,
                             backoff=backoff, param=param, registry=registry)


def daemon(
    *resource: str,
    initial_delay: float | None = None,
    cancellation_timeout: float | None = None,
    optional: bool = False,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    backoff: float | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """One long-running task (or thread, if sync) per object; told to stop through `stopped`."""
    return _resource_handler("daemon", resource, initial_delay=initial_delay,
                             cancellation_timeout=cancellation_timeout, optional=optional, id=id, labels=labels,
                             annotations=annotations, when=when, backoff=backoff, param=param, registry=registry)


def index(
    *resource: str,
    id: str | None = None,
    labels: filters.Filter | None = None,
    annotations: filters.Filter | None = None,
    when: Callable[..., bool] | None = None,
    param: Any = None,
    registry: registry_mod.Registry | None = None,
) -> Callable[[F], F]:
    """Keep an in-memory index: the function maps an object to `{key: value}` (or a value)."""
    return _resource_handler("index", resource, id=id, labels=labels, annotations=annotations, when=when,
                             param=param, registry=registry)


def startup(*, id: str | None = None, registry: registry_mod.Registry | None = None) -> Callable[[F], F]:
    """Run once when the operator starts, before any resource is watched (gets `memo`, `logger`)."""
    return _decorator("startup", (), {"id": id, "registry": registry})


def cleanup(*, id: str | None = None, registry: registry_mod.Registry | None = None) -> Callable[[F], F]:
    """Run once when the operator stops."""
    return _decorator("cleanup", (), {"id": id, "registry": registry})
