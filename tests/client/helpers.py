"""Small builders shared by the client's integration tests."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx

from tests import support


def cm(
    name: str, *, data: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def etcd_compact(endpoint: str) -> int:
    """Compact the test etcd at its current revision (through its JSON gateway), so older RVs expire."""
    key = base64.b64encode(b"/reconcile-client-tests/compact").decode()
    header = httpx.post(f"{endpoint}/v3/kv/put", json={"key": key, "value": key}, timeout=10).json()["header"]
    revision = int(header["revision"])
    httpx.post(
        f"{endpoint}/v3/kv/compaction", json={"revision": str(revision), "physical": True}, timeout=10
    ).raise_for_status()
    return revision


# --- objects written straight into etcd, past the API server's validation --------------------


def malformed_pod(namespace: str, name: str, **metadata: Any) -> dict[str, Any]:
    """A pod the API server would never store: `ownerReferences: ["str"]` (plus `metadata` overrides)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "creationTimestamp": "2026-01-01T00:00:00Z", "ownerReferences": ["str"], **metadata},
        "spec": {"containers": [{"name": "main", "image": "nginx:1"}]},
    }


async def aput_raw(etcd_endpoint: str, server: support.ApiServerProcess, group: str, plural: str,
                   obj: dict[str, Any]) -> int:
    """Store `obj` as the API server stores objects (JSON, no resourceVersion) without asking it; its revision."""
    from reconcile.core import errors
    from reconcile.store import etcd, keys  # tests may use the store; production code outside api may not

    md = obj["metadata"]
    key = keys.object_key(group, plural, md.get("namespace"), md["name"])
    body = json.dumps({**obj, "metadata": {k: v for k, v in md.items() if k != "resourceVersion"}}).encode()
    async with etcd.EtcdStore([etcd_endpoint], prefix=server.prefix) as store:
        try:
            return await store.create(key, body)
        except errors.KeyExists:  # already there: overwrite it
            return await store.update(key, body, expected_revision=None)


def put_raw(etcd_endpoint: str, server: support.ApiServerProcess, group: str, plural: str,
            obj: dict[str, Any]) -> int:
    """`aput_raw` for sync tests (not from inside a running event loop)."""
    return asyncio.run(aput_raw(etcd_endpoint, server, group, plural, obj))
