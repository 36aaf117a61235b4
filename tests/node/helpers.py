"""Small builders and waits shared by the node agent tests."""

from __future__ import annotations

from typing import Any

from reconcile.client import api as client_api
from reconcile.node import images
from tests import docker_support, support

HELLO = images.HELLO_IMAGE
PAUSE = images.PAUSE_IMAGE


def pod(name: str, node: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A pod bound to `node` directly (no scheduler involved)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2, "containers": list(containers), **spec}}


def container(name: str = "app", image: str = HELLO, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def get_pod(client: client_api.Client, namespace: str, name: str) -> dict[str, Any]:
    return client.get("v1", "pods", name, namespace=namespace)


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status")
    return None


def container_status(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for s in (obj.get("status") or {}).get("containerStatuses") or []:
        if s.get("name") == name:
            return s
    return {}


def wait_pod(client: client_api.Client, namespace: str, name: str, check: Any, *, timeout: float = 30,
             what: str = "") -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = get_pod(client, namespace, name)
        return obj if check(obj) else None

    return support.wait_for(done, timeout=timeout, interval=0.05, what=what or f"pod {name}")


def running_ready(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") == "Running" and condition(obj, "Ready") == "True"


def pod_containers(daemon: docker_support.DockerDaemon, uid: str, *, all: bool = True) -> list[dict[str, Any]]:
    """Inspect dicts of the pod's containers on the daemon (infra included)."""
    return [daemon.inspect(i) for i in daemon.container_ids(f"label=reconcile.pod.uid={uid}", all=all)]


def app_containers(daemon: docker_support.DockerDaemon, uid: str, name: str, *, running: bool = True) -> list[dict]:
    found = daemon.container_ids(f"label=reconcile.pod.uid={uid}", f"label=reconcile.container.name={name}",
                                 all=not running)
    return [daemon.inspect(i) for i in found]
