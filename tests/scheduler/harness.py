"""A scheduler on its own loop and per-test cluster objects, shared by the scheduler's integration tests.

The scheduler runs in-process on its own event loop in a thread, so tests can use the sync
client and `support.wait_for` while it works; every test uses its own namespace and node names.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from reconcile.client import aio
from reconcile.client import api as client_api
from reconcile.core import errors
from reconcile.scheduler import scheduler as scheduler_mod
from tests import support
from tests.scheduler import objects


class SchedulerThread:
    """A Scheduler on its own loop; `stop()` shuts it down gracefully (events drained)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.kwargs = kwargs
        self.scheduler: scheduler_mod.Scheduler | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> SchedulerThread:
        self._thread.start()
        assert self._ready.wait(30), "scheduler did not sync"
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced to the test by start()/stop()
            self.error = exc
            self._ready.set()

    async def _run(self) -> None:
        async with aio.AsyncClient(support.connection(self.url).client_config()) as client:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            sched = self.scheduler = scheduler_mod.Scheduler(client, **self.kwargs)
            await sched.start_informers()
            await sched.wait_synced(timeout=20)
            task = asyncio.create_task(sched.run())
            self._ready.set()
            await self._stop.wait()
            await sched.stop(timeout=10)
            await task
            await sched.stop_informers()


class Cluster:
    """Per-test names: a namespace, node names with a unique prefix, cleaned up at the end."""

    def __init__(self, client: client_api.Client) -> None:
        self.client = client
        self.tag = uuid.uuid4().hex[:6]
        self.namespace = f"sched-{self.tag}"
        self.nodes: list[str] = []
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})

    def node(self, name: str, **kwargs: Any) -> str:
        """Create a Node, then set its status (the server ignores status on create)."""
        full = f"{self.tag}-{name}"
        obj = objects.node(full, **kwargs)
        status = obj.pop("status")
        self.client.create("v1", "nodes", obj)
        self.nodes.append(full)
        self.client.patch("v1", "nodes", full, {"status": status}, subresource="status")
        return full

    def pod(self, name: str, **kwargs: Any) -> dict:
        return self.client.create("v1", "pods", objects.pod(name, namespace=self.namespace, **kwargs),
                                  namespace=self.namespace)

    def get(self, name: str) -> dict:
        return self.client.get("v1", "pods", name, namespace=self.namespace)

    def node_of(self, name: str) -> str | None:
        return (self.get(name).get("spec") or {}).get("nodeName")

    def wait_bound(self, *names: str, timeout: float = 15) -> dict[str, str]:
        return support.wait_for(
            lambda: (placed := {n: self.node_of(n) for n in names}) and all(placed.values()) and placed,
            timeout=timeout, what=f"pods {names} bound",
        )

    def condition(self, name: str) -> dict | None:
        for c in (self.get(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled":
                return c
        return None

    def wait_unschedulable(self, name: str, message: str, *, timeout: float = 15) -> dict:
        return support.wait_for(
            lambda: (c := self.condition(name)) and c.get("status") == "False" and c.get("message") == message and c,
            timeout=timeout, what=f"{name} Unschedulable with {message!r} (now {self.condition(name)})",
        )

    def events(self, name: str, reason: str) -> list[dict]:
        items = self.client.list("v1", "events", namespace=self.namespace)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]

    def cleanup(self) -> None:
        for node in self.nodes:
            try:
                self.client.delete("v1", "nodes", node)
            except errors.NotFound:
                pass
