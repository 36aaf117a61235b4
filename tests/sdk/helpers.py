"""Shared pieces of the SDK tests: a test CRD, a namespace per test, and async polling."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from reconcile.client import api
from tests import support

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


async def eventually(condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    """tests.support.eventually with this suite's default deadline."""
    return await support.eventually(condition, timeout=timeout, interval=0.02, what=what)
