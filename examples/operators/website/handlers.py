"""The Website operator: each Website becomes a ConfigMap (the page), a Deployment (httpd
serving it) and a Service, rendered from the jinja2 templates in ./templates.

Run it:  reconcile operator run examples/operators/website/handlers.py -n default
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import reconcile as rc

GROUP, VERSION, PLURAL = "examples.reconcile.dev", "v1", "websites"
API_VERSION = f"{GROUP}/{VERSION}"
LABEL = "examples.reconcile.dev/website"  # on every child: which Website it belongs to
MANAGER = "website-operator"  # field manager of our server-side applies
KINDS = {"ConfigMap": ("v1", "configmaps"), "Deployment": ("apps/v1", "deployments"), "Service": ("v1", "services")}


def desired_children(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The three objects a Website stands for, owned by it (so they go when it goes)."""
    spec, name = body["spec"], body["metadata"]["name"]
    values = {
        "name": name,
        "label": LABEL,
        "content": spec["content"],
        "content_hash": hashlib.sha256(spec["content"].encode()).hexdigest()[:16],
        "image": spec.get("image", "busybox:1.36"),
        "replicas": spec.get("replicas", 1),
        "port": spec.get("port", 80),
    }
    children = [doc for template in ("configmap.yaml", "deployment.yaml", "service.yaml")
                for doc in rc.render(template, **values)]
    for child in children:
        rc.adopt(child, body)
        child["metadata"].setdefault("labels", {})[LABEL] = name
    return children


def condition(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": "True" if status else "False", "reason": reason, "message": message}


async def set_conditions(client: rc.AsyncClient, namespace: str, name: str, *new: dict[str, Any],
                         **fields: Any) -> None:
    """Read-modify-write of status.conditions with the resourceVersion check of a PUT, retried on
    conflict: two writers (the handlers and the Deployment watcher) never lose each other's condition."""

    async def attempt() -> None:
        site = await client.get(API_VERSION, PLURAL, name, namespace=namespace)
        status = site.setdefault("status", {})
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for cond in new:
            old = conditions.get(cond["type"])
            same = old is not None and old.get("status") == cond["status"]
            conditions[cond["type"]] = {**cond, "lastTransitionTime": old["lastTransitionTime"] if same else now,
                                        "observedGeneration": site["metadata"].get("generation")}
        updated = {**status, **fields, "conditions": sorted(conditions.values(), key=lambda c: c["type"])}
        if updated != status:
            site["status"] = updated
            await client.replace(API_VERSION, PLURAL, site, namespace=namespace, subresource="status")

    try:
        await rc.retry_on_conflict(attempt)
    except rc.errors.NotFound:
        pass  # the Website is gone: nothing to report on


@rc.on.create(GROUP, VERSION, PLURAL)
@rc.on.update(GROUP, VERSION, PLURAL)
async def render(body: dict, name: str, namespace: str, client: rc.AsyncClient, logger: Any, **_: Any) -> dict:
    """Apply the children (server-side apply: create or update in one call, idempotent)."""
    children = desired_children(body)
    for child in children:
        api_version, plural = KINDS[child["kind"]]
        await client.patch(api_version, plural, child["metadata"]["name"], child, namespace=namespace,
                           patch_type="apply", field_manager=MANAGER, force=True)
    refs = [f"{c['kind']}/{c['metadata']['name']}" for c in children]
    logger.info("applied %s", ", ".join(refs))
    await set_conditions(client, namespace, name, condition("Rendered", True, "ChildrenApplied", f"applied {len(refs)} objects"))
    rc.event(body, "Rendered", f"applied {', '.join(refs)}")
    return {"children": refs}


@rc.on.event("apps", "v1", "deployments", labels={LABEL: rc.PRESENT})
async def deployment_changed(body: dict, type: str, namespace: str, labels: dict, client: rc.AsyncClient,
                             **_: Any) -> None:
    """Ready follows the Deployment: True once all its replicas are ready."""
    if type == "DELETED":
        return
    want = body.get("spec", {}).get("replicas", 1)
    ready = body.get("status", {}).get("readyReplicas") or 0
    ok = ready >= want
    message = f"{ready}/{want} replicas ready"
    await set_conditions(client, namespace, labels[LABEL],
                         condition("Ready", ok, "ReplicasReady" if ok else "ReplicasNotReady", message),
                         readyReplicas=ready)


@rc.on.delete(GROUP, VERSION, PLURAL)
async def cleanup(body: dict, name: str, namespace: str, client: rc.AsyncClient, **_: Any) -> None:
    """Delete the children now (the garbage collector would too, later), then release the Website."""
    for api_version, plural in KINDS.values():
        await client.delete_collection(api_version, plural, namespace=namespace, label_selector=f"{LABEL}={name}")
    rc.event(body, "Deleted", f"removed the objects of website {name}")
