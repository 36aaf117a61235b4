"""Calling a handler: its keyword arguments, and sync functions on a thread pool.

Handlers declare the kwargs they want and take `**kwargs` for the rest, so every kwarg is
always passed; the body handed over is a copy, because the informer cache must never change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import datetime
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any


class Patch(dict):
    """A merge patch the handler fills in; applied after it returns (`patch.status["x"] = 1`)."""

    def _section(self, name: str) -> dict[str, Any]:
        return self.setdefault(name, {})

    @property
    def status(self) -> dict[str, Any]:
        return self._section("status")

    @property
    def spec(self) -> dict[str, Any]:
        return self._section("spec")

    @property
    def metadata(self) -> dict[str, Any]:
        return self._section("metadata")

    meta = metadata


class Memo(dict):
    """A dict with attribute access: free-form state an operator keeps per object or globally."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class ObjectLogger(logging.LoggerAdapter):
    """Prefixes lines with the object's namespace/name."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['object']}] {msg}", kwargs


def object_logger(name: str, body: Mapping[str, Any]) -> logging.LoggerAdapter:
    meta = body.get("metadata") or {}
    ref = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
    return ObjectLogger(logging.getLogger(name), {"object": ref})


def object_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body and its parts, as a private copy for one handler call."""
    body = copy.deepcopy(dict(body))
    meta = body.setdefault("metadata", {})
    return {
        "body": body,
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
        "meta": meta,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "resource": None,
    }


def runtime_kwargs(*, started: datetime.datetime | None, now: datetime.datetime, retry: int) -> dict[str, Any]:
    started = started or now
    return {"retry": retry, "started": started, "runtime": now - started}


async def call(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    executor: concurrent.futures.Executor | None,
    timeout: float | None = None,
) -> Any:
    """Await an async handler, or run a sync one on `executor` (with the caller's context vars)."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004
        coro = fn(**kwargs)
        return await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future = loop.run_in_executor(executor, functools.partial(context.run, fn, **kwargs))
    result = await (asyncio.wait_for(future, timeout) if timeout is not None else future)
    if inspect.isawaitable(result):
        result = await result
    return result


def matches_when(when: Callable[..., bool] | None, kwargs: dict[str, Any]) -> bool:
    return True if when is None else bool(when(**kwargs))
