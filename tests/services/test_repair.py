"""The allocation repair pass and the claim keys, on a real etcd (in-process store, no API server)."""

from __future__ import annotations

import json
import time
import uuid

from reconcile.api import allocators, caches, registry, rest, servicerepair
from reconcile.store import etcd, keys


async def test_repair_frees_old_leaks_keeps_fresh_claims_and_claims_unrecorded(etcd_endpoint: str) -> None:
    async with etcd.EtcdStore([etcd_endpoint], prefix=f"/repair-{uuid.uuid4().hex[:8]}") as store:
        api = rest.Rest(store, registry.with_builtins(), caches.CacheSet(store))
        ips = allocators.ClusterIPRange(store, "10.96.0.0/24")
        ports = allocators.NodePortRange(store, "30000-30099")
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "old", "namespace": "ns", "uid": "u-1"},
               "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                        "ports": [{"port": 80, "nodePort": 30010}]}}
        await store.create(keys.object_key("", "services", "ns", "old"), json.dumps(svc).encode())
        stale = json.dumps({"namespace": "ns", "name": "gone", "uid": "u-2", "allocated": time.time() - 600}).encode()
        await store.create(allocators.IP_PREFIX + "10.96.0.30", stale)
        await store.create(allocators.PORT_PREFIX + "30020", stale)
        await ips.allocate("10.96.0.31", allocators.Owner("ns", "in-flight", "u-3"))  # a create still under way
        await store.create(allocators.IP_PREFIX + "garbage", b"not json")
        freed, made = await servicerepair.repair(api, ips, ports)
        assert (freed, made) == (3, 2)
        claimed = set(await ips.names())
        assert claimed == {"10.96.0.20", "10.96.0.31"}
        assert set(await ports.names()) == {"30010"}
        # the repaired claims are the Service's: its own release frees them, another's does not
        assert not await ips.release("10.96.0.20", allocators.Owner("ns", "old", "someone-else"))
        assert await ips.release("10.96.0.20", allocators.Owner("ns", "old", "u-1"))


async def test_exhausted_range_says_full(etcd_endpoint: str) -> None:
    async with etcd.EtcdStore([etcd_endpoint], prefix=f"/full-{uuid.uuid4().hex[:8]}") as store:
        ips = allocators.ClusterIPRange(store, "10.96.0.0/29")  # 6 usable addresses
        owner = allocators.Owner("ns", "x", "u")
        got = {await ips.allocate_next(owner) for _ in range(6)}
        assert got == {f"10.96.0.{i}" for i in range(1, 7)}
        try:
            await ips.allocate_next(owner)
        except allocators.RangeFull as exc:
            assert str(exc) == "range is full"
        else:
            raise AssertionError("a full range handed out an address")
