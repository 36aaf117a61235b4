"""A ReplicaSet scaled to a huge number creates its pods in bounded, slow-start batches (real API server).

The ReplicaSet controller runs in-process on a real client that notes every pod create as it goes
out: creates that overlap in time are one batch. One sync must send 1, 2, 4, ... creates, never
more than the burst in total, and the next sync must wait until the informer has seen them all.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from reconcile.client import aio
from reconcile.controllers import batching, context, replicaset
from reconcile.controllers import informers as informers_mod
from reconcile.core import meta
from reconcile.engine import clock, events
from tests import support
from tests.controllers import helpers

BURST = 50


class CountingClient(aio.AsyncClient):
    """The real async client; pod creates that overlap in time are counted as one batch."""

    def __init__(self, url: str) -> None:
        super().__init__(support.connection(url).client_config())
        self.in_flight = 0
        self.batches: list[int] = []
        self.seen_at_batch_start: list[int] = []  # pods of the ReplicaSet in the informer when a batch began
        self.seen: Any = lambda: 0

    async def create(self, api_version: str, plural: str, obj: dict, **kwargs: Any) -> Any:  # type: ignore[override]
        if plural != "pods":
            return await super().create(api_version, plural, obj, **kwargs)
        if self.in_flight == 0:
            self.batches.append(0)
            self.seen_at_batch_start.append(self.seen())
        self.batches[-1] += 1
        self.in_flight += 1
        try:
            return await super().create(api_version, plural, obj, **kwargs)
        finally:
            self.in_flight -= 1


async def test_a_huge_replicaset_creates_pods_in_slow_start_batches_capped_per_sync(api_server: str) -> None:
    ns = f"burst-{uuid.uuid4().hex[:8]}"
    async with CountingClient(api_server) as client:
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        informers = informers_mod.SharedInformers(client)
        ctx = context.ControllerContext(client=client, informers=informers, clock=clock.RealClock(),
                                        recorder=events.EventRecorder(client, component="burst-test"),
                                        workers=2, burst_replicas=BURST)
        controller = replicaset.ReplicaSetController(ctx)
        await informers.start()
        await informers.wait_synced(timeout=20)
        running = asyncio.create_task(controller.controller.run())
        try:
            labels = {"app": "huge"}
            rs = await client.create("apps/v1", "replicasets", {
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "huge"},
                "spec": {"replicas": 1_000_000, "selector": {"matchLabels": labels},
                         "template": helpers.pod_template(labels)}}, namespace=ns)
            uid = rs["metadata"]["uid"]

            def owned() -> int:
                return sum(1 for p in controller.pods.store.by_index("namespace", ns)
                           if (meta.controller_owner(p) or {}).get("uid") == uid)

            client.seen = owned
            await support.eventually(lambda: owned() >= 3 * BURST, timeout=60, what="three syncs of pods")
            await client.patch("apps/v1", "replicasets", "huge", {"spec": {"replicas": 0}}, namespace=ns)
            # scaled back to 0: a sync under way when the patch came finished all its batches first
            await support.eventually(lambda: owned() == 0 and client.in_flight == 0, timeout=60, what="back to 0")

            one_sync = list(batching.batch_sizes(BURST))
            assert one_sync == [1, 2, 4, 8, 16, 19]
            syncs = len(client.batches) // len(one_sync)
            assert syncs >= 3 and client.batches == one_sync * syncs  # slow start, every sync
            assert max(client.batches) <= BURST and sum(client.batches) == syncs * BURST  # capped per sync
            starts = client.seen_at_batch_start[:: len(one_sync)]
            # a sync starts only once the informer has seen every pod of the previous one (expectations)
            assert starts == [BURST * i for i in range(syncs)], starts
        finally:
            await controller.controller.stop(timeout=10)
            running.cancel()
            await informers.stop()
            await client.delete("v1", "namespaces", ns)
