"""One etcd head-revision read shared by every caller that arrived before it was sent.

A consistent read from the watch cache needs etcd's head revision as of some moment after the
read arrived (then it waits until the cache has caught up with it). Every GET without a
resourceVersion asks, so under load the server sent one head read per event-loop turn with new
requests, each a full HTTP request to etcd (over TLS in a secured cluster): a tenth of a busy
server's time. Here callers share reads: a read is sent at the next loop turn when none is in
flight, else once the newest read in flight has been out for `patience` seconds (or as soon as
every read in flight has answered, if that is sooner); every caller arriving before a read is sent
waits for that read. So each caller gets a revision read by a request *sent after it arrived*
(linearizable, as if it had asked alone), reads are bounded by about one per round trip and
one per `patience`, and a slow read (etcd busy with writes) delays a later batch by at most
`patience`, never by the whole slow read.

Invariant: `_next` is the future of the read not yet sent; every caller waiting on it arrived
before it is sent, because `_send` detaches it (`_next = None`) before the read starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

PATIENCE = 0.002  # seconds a batch may wait behind a read in flight before its own read is sent


class SharedRead:
    """`read()` shared as described above; `read` is the store's linearizable head-revision read."""

    def __init__(self, read: Callable[[], Awaitable[int]], *, patience: float = PATIENCE) -> None:
        self._read = read
        self.patience = patience
        self._next: asyncio.Future[int] | None = None
        self._timer: asyncio.Handle | None = None  # when `_next` will be sent
        self._in_flight = 0
        self._newest = 0.0  # loop time the newest read in flight was sent
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0  # reads sent (for tests and metrics)

    async def __call__(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._plan()
        # Shielded: one caller giving up must not cancel the answer the others wait for.
        return await asyncio.shield(self._next)

    def _plan(self) -> None:
        if self._next is None or self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        if self._in_flight == 0:
            self._timer = loop.call_soon(self._send)  # the next turn: callers of this turn share it
        else:
            self._timer = loop.call_at(self._newest + self.patience, self._send)

    def _send(self) -> None:
        self._timer = None
        future, self._next = self._next, None  # arrivals from here on need a later read
        if future is None:
            return
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        self._newest = loop.time()
        self.sent += 1
        task = loop.create_task(self._one(future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, future: asyncio.Future[int]) -> None:
        try:
            revision = await self._read()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # every waiter gets the error its own call would have raised
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when every waiter left
        else:
            future.set_result(revision)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._timer is not None:  # nothing to wait behind: send it now
                self._timer.cancel()
                self._timer = None
            self._plan()
