"""Helpers for the Sync tests: a GitRepository whose status.artifact names a tree the test publishes
straight into an ArtifactStore (the source side's fetching is not involved), and small readers."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from reconcile.core import errors
from reconcile.gitops import artifacts, syncs


def publish(store: artifacts.ArtifactStore, namespace: str, name: str, files: dict[str, str],
            *, branch: str = "main") -> artifacts.Artifact:
    """Publish `files` (relative path -> text) as one revision of GitRepository namespace/name."""
    tree = store.staging_dir()
    digest = hashlib.sha256()
    for relative, text in sorted(files.items()):
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
    commit = hashlib.sha1(digest.digest() + uuid.uuid4().bytes).hexdigest()
    return store.publish(Path(tree), kind="GitRepository", namespace=namespace, name=name,
                         revision=f"{branch}@sha1:{commit}", digest=f"sha256:{digest.hexdigest()}")


async def namespace(client: Any, prefix: str = "gs") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def git_repository(client: Any, namespace: str, name: str, artifact: artifacts.Artifact | None) -> None:
    """Create (or update the artifact of) a GitRepository."""
    body = {"apiVersion": syncs.API_VERSION, "kind": "GitRepository", "metadata": {"name": name},
            "spec": {"url": f"file:///repos/{name}", "interval": "1m"}}
    try:
        await client.create(syncs.API_VERSION, syncs.GIT_REPOSITORIES, body, namespace=namespace)
    except errors.AlreadyExists:  # already there: only the artifact changes
        pass
    if artifact is not None:
        await client.patch(syncs.API_VERSION, syncs.GIT_REPOSITORIES, name, {"status": {"artifact": artifact.to_status()}},
                           namespace=namespace, subresource="status")


async def sync(client: Any, namespace: str, name: str, source: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": syncs.API_VERSION, "kind": "Sync", "metadata": {"name": name},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": source}, **spec}}
    return await client.create(syncs.API_VERSION, syncs.SYNCS, body, namespace=namespace)


async def get_sync(client: Any, namespace: str, name: str) -> dict[str, Any]:
    return await client.get(syncs.API_VERSION, syncs.SYNCS, name, namespace=namespace)


async def update_spec(client: Any, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return await client.patch(syncs.API_VERSION, syncs.SYNCS, name, {"spec": spec}, namespace=namespace)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def configmap(name: str, data: dict[str, str], *, namespace: str | None = None, annotations: dict | None = None
              ) -> str:
    meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    if annotations:
        meta += "  annotations:\n" + "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    body = "".join(f"  {k}: \"{v}\"\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n{meta}data:\n{body}"


def inventory(obj: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["kind"], e.get("namespace", ""), e["name"])
            for e in ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []}
