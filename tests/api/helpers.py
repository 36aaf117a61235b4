"""Shared helpers for the API server integration tests: sample objects, CRDs, watch readers."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from tests import support

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
DISCOVERY_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- paths ---


def cm_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def deploy_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


def pod_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/pods"
    return f"{base}/{name}" if name else base


# --- objects ---


def configmap(name: str, data: dict[str, str] | None = None, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data or {}}


def deployment(name: str, *, replicas: int = 1, image: str = "nginx:1.25", app: str | None = None) -> dict[str, Any]:
    app = app or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": image, "env": [{"name": "A", "value": "1"}]},
                        {"name": "side", "image": "busybox:1.36"},
                    ]
                },
            },
        },
    }


def pod(name: str, *, node: str | None = None, phase: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    if node:
        obj["spec"]["nodeName"] = node
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def widget_crd(group: str, *, plural: str = "widgets", kind: str = "Widget") -> dict[str, Any]:
    """A namespaced CRD with status + scale subresources and printer columns, in its own group."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"},
                    },
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "default": 1},
                                        "color": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                    "required": ["color"],
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def widget(name: str, group: str, *, color: str = "red", size: int = 1) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"color": color, "size": size}}


def widget_path(group: str, namespace: str, name: str | None = None, *, plural: str = "widgets") -> str:
    base = f"/apis/{group}/v1/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


# --- actions ---


def create(client: httpx.Client, path: str, obj: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = client.post(path, json=obj, params=params)
    assert response.status_code == 201, response.text
    return response.json()


def make_namespace(client: httpx.Client, prefix: str = "ns") -> str:
    name = unique(prefix)
    create(client, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def install_crd(client: httpx.Client, crd: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """Create a CRD and wait until its group/version lists the resource (served without a restart)."""
    created = create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    group = crd["spec"]["group"]
    version = crd["spec"]["versions"][0]["name"]
    plural = crd["spec"]["names"]["plural"]

    def served() -> bool:
        response = client.get(f"/apis/{group}/{version}")
        return response.status_code == 200 and any(r["name"] == plural for r in response.json()["resources"])

    support.wait_for(served, timeout=timeout, what=f"CRD {plural}.{group} served")
    return created


def assert_status(response: httpx.Response, code: int, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    """The response is a metav1.Status failure with this code (and reason/message when given)."""
    assert response.status_code == code, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    status = response.json()
    assert status["kind"] == "Status" and status["apiVersion"] == "v1", status
    assert status["status"] == "Failure" and status["code"] == code, status
    if reason is not None:
        assert status["reason"] == reason, status
    if message is not None:
        assert status["message"] == message, status
    return status


def names(listing: dict[str, Any]) -> list[str]:
    return sorted(item["metadata"]["name"] for item in listing["items"])


# --- watches ---


class WatchReader:
    """A watch stream read by an asyncio task on a background thread; events collected in order.

    Closing cancels the task, which drops the connection at once (a blocked sync read would not).
    """

    def __init__(self, base_url: str, path: str, params: dict[str, Any], *, headers: dict[str, str] | None = None,
                 read_timeout: float = 60.0) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = threading.Event()
        self.started = threading.Event()
        self.status_code: int | None = None
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        args = (base_url, path, dict(params, watch="true"), headers or {}, read_timeout)
        self._thread = threading.Thread(target=self._run, args=args, daemon=True)
        self._thread.start()
        assert self.started.wait(10), "watch did not start"

    def _run(self, *args: Any) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._read(*args))
        try:
            self._loop.run_until_complete(self._task)
        except BaseException as exc:  # noqa: BLE001 - cancellation on close ends up here
            if not isinstance(exc, asyncio.CancelledError):
                self.error = exc
        finally:
            self.started.set()
            self.closed.set()
            self._loop.close()

    async def _read(self, base_url: str, path: str, params: dict[str, Any], headers: dict[str, str],
                    read_timeout: float) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(5.0, read=read_timeout),
                                     verify=support.connection(base_url).ssl_context()) as client:
            async with client.stream("GET", path, params=params, headers=headers) as response:
                self.status_code = response.status_code
                self.started.set()
                async for line in response.aiter_lines():
                    if line.strip():
                        self.events.append(json.loads(line))

    def wait_events(self, count: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
        support.wait_for(lambda: len(self.events) >= count, timeout=timeout,
                         what=f"{count} watch events (have {len(self.events)}: {self.summary()})")
        return self.events

    def wait_for(self, predicate: Any, *, timeout: float = 10.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in list(self.events) if predicate(e)), None)
        return support.wait_for(found, timeout=timeout, what=f"a matching watch event (have {self.summary()})")

    def summary(self) -> list[tuple[str, str]]:
        return [(e["type"], (e["object"].get("metadata") or {}).get("name", "")) for e in self.events]

    def close(self) -> None:
        if not self.closed.is_set() and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)
        assert not self._thread.is_alive(), "watch reader did not stop"

    def __enter__(self) -> WatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch_lines(client: httpx.Client, path: str, params: dict[str, Any], *, headers: dict[str, str] | None = None,
                deadline: float = 10.0) -> Iterator[dict[str, Any]]:
    """Events of a watch until it closes by itself (use with timeoutSeconds) or the deadline passes."""
    end = time.monotonic() + deadline
    with client.stream("GET", path, params=dict(params, watch="true"), headers=headers or {},
                       timeout=httpx.Timeout(5.0, read=deadline)) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)
            if time.monotonic() > end:
                raise AssertionError("watch did not close before the deadline")


def deep(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)
