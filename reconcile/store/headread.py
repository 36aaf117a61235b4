"""One etcd head-revision read shared by every caller that arrived before it was sent.

A consistent read from the watch cache needs etcd's head revision as of some moment after the
read arrived (then it waits until the cache has caught up with it). Every GET without a
resourceVersion asks, so under load the server sent one head read per request batch per resource
type, each a full HTTP request to etcd (over TLS in a secured cluster): a tenth of a busy server's
time. Here at most one head read is in flight; callers that arrive while it is in flight wait for
the next one, which is sent as soon as the current one answers. So each caller gets a revision
read by a request *sent after it arrived* (linearizable, as if it had asked alone), and the number
of reads is bounded by one per round trip, however many requests arrive.

Invariant: `_next` is the future of the read not yet sent; every caller waiting on it arrived
before it is sent, because it is detached (`_next = None`) just before the read is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class SharedRead:
    """`read()` shared as described above; `read` is the store's linearizable head-revision read."""

    def __init__(self, read: Callable[[], Awaitable[int]]) -> None:
        self._read = read
        self._next: asyncio.Future[int] | None = None
        self._task: asyncio.Task[None] | None = None  # the sender, while there is something to send
        self.sent = 0  # reads sent (for tests and metrics)

    async def __call__(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._task is None:
                self._task = asyncio.ensure_future(self._run())
        # Shielded: one caller giving up must not cancel the answer the others wait for.
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                future, self._next = self._next, None  # arrivals from here on need a later read
                self.sent += 1
                try:
                    revision = await self._read()
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as exc:  # every waiter gets the error its own call would have raised
                    future.set_exception(exc)
                    future.exception()  # retrieved: no "never retrieved" warning when every waiter left
                    continue
                future.set_result(revision)
        finally:
            self._task = None
            if self._next is not None:  # stopped by cancellation with callers waiting: they stop too
                self._next.cancel()
                self._next = None
