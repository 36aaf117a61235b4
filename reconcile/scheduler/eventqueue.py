"""Events at a lower priority than bindings, as upstream's asynchronous event broadcaster.

Recording an Event costs the API server as much as a binding. During a burst the scheduler
posts them only when no binding is waiting, or once one has waited `max_delay` seconds, so
events never slow placement down and are never starved for long. Like upstream's broadcaster,
the backlog is bounded: past `backlog` entries the oldest is dropped (and logged).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from reconcile.engine import events

log = logging.getLogger(__name__)

MAX_DELAY = 5.0
BACKLOG = 4096
WORKERS = 2


class EventQueue:
    def __init__(
        self,
        recorder: events.EventRecorder,
        *,
        busy: Callable[[], bool],
        workers: int = WORKERS,
        max_delay: float = MAX_DELAY,
        backlog: int = BACKLOG,
    ) -> None:
        self.recorder = recorder
        self.busy = busy
        self.workers = workers
        self.max_delay = max_delay
        # Invariant: oldest first; (monotonic time queued, object, reason, message, type).
        self._backlog: collections.deque[tuple[float, dict[str, Any], str, str, str]] = collections.deque()
        self.max_backlog = backlog
        self.dropped = 0
        self.posted = 0
        self._wakeup = asyncio.Event()  # set on every post() and notify(): the workers look again
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._drained = asyncio.Event()  # set whenever the backlog is empty and nothing is being posted

    def post(self, obj: dict[str, Any], reason: str, message: str, type: str) -> None:
        if len(self._backlog) >= self.max_backlog:
            self._backlog.popleft()
            self.dropped += 1
            log.warning("event backlog full: dropped the oldest event (%d dropped so far)", self.dropped)
        self._backlog.append((time.monotonic(), obj, reason, message, type))
        self._drained.clear()
        self._wakeup.set()

    def notify(self) -> None:
        """The scheduler's load changed (a binding finished): waiting events may go now."""
        if self._backlog:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._backlog) + self._in_flight

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._work(), name="scheduler-events") for _ in range(self.workers)]

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Post what is left (ignoring the load) within `timeout`, then stop the workers."""
        self.busy = lambda: False
        self._wakeup.set()
        if (self._backlog or self._in_flight) and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout=timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        while True:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            age = time.monotonic() - self._backlog[0][0]
            if self.busy() and age < self.max_delay:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.max_delay - age)
                continue
            _queued, obj, reason, message, type = self._backlog.popleft()
            self._in_flight += 1
            try:
                await self.recorder.record(obj, reason=reason, message=message, type=type)
                self.posted += 1
            finally:
                self._in_flight -= 1
                if not self._backlog and not self._in_flight:
                    self._drained.set()
