"""Timers and daemons: per-object tasks that live while the object exists and matches.

A timer is one task looping "wait, call, wait", so it never overlaps with itself. A daemon is
one task (or one thread, if the function is sync) told to stop through its `stopped` flag and
cancelled if it does not stop within `cancellation_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reconcile.core import errors
from reconcile.engine.sdk import errors as sdk_errors
from reconcile.engine.sdk import filters, invocation
from reconcile.engine.sdk import registry as registry_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]


class StopFlag:
    """The `stopped` kwarg of a daemon: truthy once the daemon should exit.

    For async daemons `await stopped.wait(timeout)`; for sync ones `stopped.wait(timeout)`
    blocks the daemon's own thread.
    """

    def __init__(self, *, asynchronous: bool) -> None:
        self._asynchronous = asynchronous
        self._thread_event = threading.Event()
        self._async_event = asyncio.Event()
        self.reason: str | None = None

    def set(self, reason: str = "stopped") -> None:
        self.reason = reason
        self._thread_event.set()
        self._async_event.set()

    def is_set(self) -> bool:
        return self._thread_event.is_set()

    def __bool__(self) -> bool:
        return self.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._asynchronous:
            return self._thread_event.wait(timeout)
        return self._wait_async(timeout)

    async def _wait_async(self, timeout: float | None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._async_event.wait(), timeout)
        return self.is_set()


@dataclass
class _Running:
    task: asyncio.Task[None] | None
    stopped: StopFlag | None = None
    thread_done: asyncio.Future[None] | None = None


@dataclass
class Host:
    """What the background tasks need from the resource worker."""

    get: Callable[[Key], dict[str, Any] | None]  # the cached object
    changed_at: Callable[[Key], float]  # clock.now() of the object's last change
    write_status: Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]
    context: Callable[[dict[str, Any]], invocation.Invocation]


def wanted(handler: registry_mod.Handler, body: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    meta = body.get("metadata") or {}
    return (
        filters.matches(meta.get("labels"), handler.labels)
        and filters.matches(meta.get("annotations"), handler.annotations)
        and invocation.matches_when(handler.when, kwargs)
    )


class Background:
    """Starts and stops timers and daemons of one resource, per object."""

    def __init__(self, host: Host, handlers: list[registry_mod.Handler]) -> None:
        self.host = host
        self.handlers = handlers
        # Invariant: tasks[key][handler id] is the one running task for that pair; entries are
        # removed when the task is stopped, so a second start is never a duplicate.
        self.tasks: dict[Key, dict[str, _Running]] = {}

    def sync(self, key: Key, body: dict[str, Any]) -> list[Awaitable[None]]:
        """Start what should run for `body`; return the stops of what should no longer run."""
        running = self.tasks.setdefault(key, {})
        ctx = self.host.context(body)
        kwargs = {**invocation.object_kwargs(body), **ctx.kwargs}
        stops: list[Awaitable[None]] = []
        for handler in self.handlers:
            should = wanted(handler, body, {**kwargs, "param": handler.param})
            if should and handler.id not in running:
                running[handler.id] = self._start(key, handler, body)
            elif not should and handler.id in running:
                stops.append(self._stop(running.pop(handler.id), handler))
        return stops

    def has_running(self, key: Key) -> bool:
        return bool(self.tasks.get(key))

    async def stop_object(self, key: Key) -> None:
        running = self.tasks.pop(key, {})
        by_id = {h.id: h for h in self.handlers}
        await asyncio.gather(*(self._stop(r, by_id[i]) for i, r in running.items()))

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop_object(key) for key in list(self.tasks)))

    def _start(self, key: Key, handler: registry_mod.Handler, body: dict[str, Any]) -> _Running:
        uid = (body.get("metadata") or {}).get("uid")
        loop = asyncio.get_running_loop()
        if handler.kind == "timer":
            task = loop.create_task(self._timer(key, uid, handler), name=f"timer:{handler.id}:{key[0]}/{key[1]}")
            return _Running(task)
        is_async = inspect.iscoroutinefunction(handler.fn)
        stopped = StopFlag(asynchronous=is_async)
        running = _Running(None, stopped)
        running.task = loop.create_task(
            self._daemon(key, uid, handler, running), name=f"daemon:{handler.id}:{key[0]}/{key[1]}"
        )
        return running

    async def _stop(self, running: _Running, handler: registry_mod.Handler) -> None:
        assert running.task is not None
        if running.stopped is None:  # a timer: nothing to finish
            running.task.cancel()
        else:
            running.stopped.set()
            await asyncio.wait({running.task}, timeout=handler.cancellation_timeout)
            if not running.task.done():
                log.warning("daemon %r did not stop within %ss; cancelling it", handler.id, handler.cancellation_timeout)
                running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running.task

    def _current(self, key: Key, uid: str | None) -> dict[str, Any] | None:
        body = self.host.get(key)
        if body is None or (body.get("metadata") or {}).get("uid") != uid:
            return None
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        return body

    async def _call(self, handler: registry_mod.Handler, body: dict[str, Any], extra: dict[str, Any]) -> Any:
        ctx = self.host.context(body)
        now = ctx.clock.wall()
        kwargs = {
            **invocation.object_kwargs(body),
            **ctx.kwargs,
            **invocation.runtime_kwargs(started=None, now=now, retry=extra.pop("retry", 0)),
            "patch": invocation.Patch(),
            "param": handler.param,
            "logger": invocation.object_logger(ctx.logger_name, body),
            **extra,
        }
        result = await invocation.call(handler.fn, kwargs, executor=ctx.executor)
        status = dict(kwargs["patch"].get("status") or {})
        if result is not None:
            status[handler.id] = result
        main = {k: v for k, v in kwargs["patch"].items() if k != "status"}
        if status or main:
            with contextlib.suppress(errors.NotFound):
                await self.host.write_status(body, {**main, **({"status": status} if status else {})})
        return result

    async def _timer(self, key: Key, uid: str | None, handler: registry_mod.Handler) -> None:
        clock = self.host.context({}).clock
        if handler.initial_delay:
            await clock.sleep(handler.initial_delay)
        retry = 0
        while True:
            body = self._current(key, uid)
            if body is None:
                return
            if handler.idle:
                wait = handler.idle - (clock.now() - self.host.changed_at(key))
                if wait > 0:
                    await clock.sleep(wait)
                    continue
            delay = handler.interval or 0.0
            try:
                await self._call(handler, body, {"retry": retry})
                retry = 0
            except asyncio.CancelledError:
                raise
            except sdk_errors.TemporaryError as exc:
                retry, delay = retry + 1, exc.delay
            except Exception:
                retry += 1
                log.exception("timer %r failed for %s/%s", handler.id, *key)
            await clock.sleep(delay)

    async def _daemon(self, key: Key, uid: str | None, handler: registry_mod.Handler, running: _Running) -> None:
        clock = self.host.context({}).clock
        stopped = running.stopped
        assert stopped is not None
        if handler.initial_delay:
            await clock.sleep(handler.initial_delay)
        retry = 0
        while not stopped:
            body = self._current(key, uid)
            if body is None:
                return
            try:
                if inspect.iscoroutinefunction(handler.fn):
                    await self._call(handler, body, {"stopped": stopped, "retry": retry})
                else:
                    await self._in_thread(handler, body, {"stopped": stopped, "retry": retry})
                return  # a daemon that returns is done for this object (kopf's behaviour)
            except asyncio.CancelledError:
                raise
            except sdk_errors.PermanentError:
                log.error("daemon %r failed permanently for %s/%s", handler.id, *key)
                return
            except sdk_errors.TemporaryError as exc:
                retry, delay = retry + 1, exc.delay
            except Exception:
                retry += 1
                delay = min(handler.backoff * 2 ** (retry - 1), 60.0)
                log.exception("daemon %r failed for %s/%s; restarting in %ss", handler.id, *key, delay)
            await clock.sleep(delay)

    async def _in_thread(self, handler: registry_mod.Handler, body: dict[str, Any], extra: dict[str, Any]) -> Any:
        """A sync daemon gets its own thread: it may block for its whole life."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        ctx = self.host.context(body)
        kwargs = {
            **invocation.object_kwargs(body),
            **ctx.kwargs,
            **invocation.runtime_kwargs(started=None, now=ctx.clock.wall(), retry=extra.pop("retry", 0)),
            "patch": invocation.Patch(),
            "param": handler.param,
            "logger": invocation.object_logger(ctx.logger_name, body),
            **extra,
        }

        def target() -> None:
            def settle(result: Any = None, error: BaseException | None = None) -> None:
                if done.done():
                    return
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)

            try:
                result = handler.fn(**kwargs)
            except BaseException as exc:  # handed to the loop, raised there
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result)

        threading.Thread(target=target, name=f"daemon:{handler.id}", daemon=True).start()
        return await done
