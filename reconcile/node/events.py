"""Pod events from the node agent (Pulling, Pulled, Created, Started, Killing, Unhealthy, BackOff, ...).

Posted in the background through the engine's aggregating `EventRecorder`, so a restart is
never slowed down by an API round trip, and a flood of identical events becomes one with a count.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from reconcile.client import aio
from reconcile.engine import events as engine_events

COMPONENT = "kubelet"


class Emitter:
    def __init__(self, client: aio.AsyncClient, *, node: str) -> None:
        self.recorder = engine_events.EventRecorder(client, component=COMPONENT)
        self.node = node
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, pod: dict[str, Any], reason: str, message: str, *, type: str = "Normal") -> None:
        metadata = pod.get("metadata") or {}
        ref = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in metadata}}
        task = asyncio.get_running_loop().create_task(self.recorder.record(ref, reason=reason, message=message,
                                                                           type=type))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let pending events go out (briefly), then drop the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
