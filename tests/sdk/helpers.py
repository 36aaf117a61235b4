"""Shared pieces of the SDK tests: a test CRD, a namespace per test, and async polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from reconcile.client import api

T = TypeVar("T")

GROUP = "sdk.reconcile.dev"
API_VERSION = f"{GROUP}/v1"
PLURAL = "widgets"


def crd(*, plural: str = PLURAL, kind: str = "Widget", status: bool = True) -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": open_object, "status": open_object}}},
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [version],
        },
    }


def install_crd(client: api.Client, definition: dict[str, Any]) -> None:
    from reconcile.core import errors

    try:
        client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", definition)
    except errors.AlreadyExists:
        pass
    plural = definition["spec"]["names"]["plural"]
    wait_until(lambda: any(r.plural == plural for r in client.discover(refresh=True)), what=f"{plural} served")


def new_namespace(client: api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def widget(name: str, *, spec: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
           kind: str = "Widget") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec or {"size": 1}}


def wait_until(condition: Callable[[], T], *, timeout: float = 15.0, what: str = "") -> T:
    """Poll a sync condition (thin wrapper so tests need not import tests.support everywhere)."""
    from tests import support

    return support.wait_for(condition, timeout=timeout, what=what)


async def eventually(condition: Callable[[], Any | Awaitable[Any]], *, timeout: float = 15.0, what: str = "") -> Any:
    """Poll a (sync or async) condition on the running loop until truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        await asyncio.sleep(0.02)  # polling interval, not synchronization
    raise AssertionError(f"timed out waiting for {what or condition}; last error {last!r}")
