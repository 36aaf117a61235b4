"""`rc.event(obj, reason, message, type)`: post a core/v1 Event from any handler, sync or async.

The running operator registers itself here; a call from a handler's thread is handed to the
operator's loop and not waited for, so a slow API never slows the handler (events are best effort).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
from typing import Any

from reconcile.engine import events

log = logging.getLogger(__name__)


class Poster:
    """The recorder of one running operator, and the loop it runs on."""

    def __init__(self, recorder: events.EventRecorder, loop: asyncio.AbstractEventLoop) -> None:
        self.recorder = recorder
        self.loop = loop
        self.pending: set[Any] = set()

    def post(self, obj: dict[str, Any], *, reason: str, message: str, type: str) -> None:
        coro = self.recorder.record(obj, reason=reason, message=message, type=type)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            future: Any = self.loop.create_task(coro)
        else:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)

    async def drain(self, *, timeout: float = 5.0) -> None:
        """Wait for events still being posted (at shutdown)."""
        tasks = [asyncio.wrap_future(f) if isinstance(f, concurrent.futures.Future) else f for f in self.pending]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


_current: contextvars.ContextVar[Poster | None] = contextvars.ContextVar("reconcile_poster", default=None)
_fallback: list[Poster] = []  # the most recently started operator, for calls from foreign threads


def install(poster: Poster) -> contextvars.Token:
    _fallback.append(poster)
    return _current.set(poster)


def uninstall(poster: Poster, token: contextvars.Token | None = None) -> None:
    if poster in _fallback:
        _fallback.remove(poster)
    if token is not None:
        try:
            _current.reset(token)
        except ValueError:  # reset from another context: the var dies with that context anyway
            pass


def event(obj: dict[str, Any], reason: str, message: str, type: str = "Normal") -> None:
    """Post an Event about `obj` through the running operator (no-op with a warning if none runs)."""
    poster = _current.get() or (_fallback[-1] if _fallback else None)
    if poster is None:
        log.warning("rc.event(%s) called outside a running operator; not posted", reason)
        return
    poster.post(obj, reason=reason, message=message, type=type)


def info(obj: dict[str, Any], *, reason: str, message: str) -> None:
    event(obj, reason, message, "Normal")


def warn(obj: dict[str, Any], *, reason: str, message: str) -> None:
    event(obj, reason, message, "Warning")
