"""Small builders shared by the client's integration tests."""

from __future__ import annotations

import base64
from typing import Any

import httpx


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
