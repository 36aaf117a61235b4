"""First start and CRD life cycle: store the built-in definitions and namespaces; keep the
registry in step with the CRD objects in etcd (created through the API or by another server)."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from typing import Any

from reconcile.api import caches, objectmeta, registry, rest, watchcache
from reconcile.api.strategies import crds as crd_strategy
from reconcile.core import errors, priorities

log = logging.getLogger(__name__)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-node-lease", "kube-public")


class CrdSync:
    """Keeps `registry` and the watch caches matching the stored CRDs."""

    def __init__(self, api: rest.Rest) -> None:
        self.api = api
        self.registry = api.registry
        self.caches: caches.CacheSet = api.caches
        self._served: dict[str, str] = {}  # crd name -> resourceVersion registered

    async def stored(self, crd: dict[str, Any]) -> None:
        """A CRD was created or changed: (re)register its resources."""
        name = crd["metadata"]["name"]
        version = crd["metadata"].get("resourceVersion", "")
        if self._served.get(name) == version:
            return
        try:
            added = self.registry.add_crd(crd)  # replaces an earlier version of the same CRD
        except errors.ApiError as exc:
            log.warning("CRD %s cannot be served: %s", name, exc)
            return
        self._served[name] = version
        for resource in added:
            await self.caches.ensure(resource)

    async def removed(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        if name not in self._served:
            return
        self._served.pop(name, None)
        for resource in self.registry.remove_crd(name):
            if not any(r.group == resource.group and r.plural == resource.plural for r in self.registry.resources()):
                await self.caches.drop(resource.group, resource.plural)

    def on_cache_event(self, event: watchcache.CacheEvent) -> None:
        """CRD changes seen on the watch (e.g. from another API server)."""
        if event.type == watchcache.DELETED:
            asyncio.get_running_loop().create_task(self.removed(event.entry.obj))
        else:
            asyncio.get_running_loop().create_task(self.stored(event.entry.obj))


async def install_builtins(api: rest.Rest, sync: CrdSync) -> None:
    """Store the shipped CRDs (create, or update when the shipped spec changed), then serve every stored CRD."""
    crd_resource = None
    for doc in registry.builtin_crds():
        if doc["metadata"]["name"] == "customresourcedefinitions.apiextensions.k8s.io":
            crd_resource = sync.registry.add_crd(doc)[0]
            sync._served[doc["metadata"]["name"]] = ""
    if crd_resource is None:
        raise RuntimeError("crds/ lacks the CustomResourceDefinition definition")
    for doc in registry.builtin_crds():
        await _store_builtin(api, crd_resource, doc)
    listed = await api.store.list(api.prefix(crd_resource, None))
    for kv in listed.items:
        await sync.stored(rest.decode(kv))


async def _store_builtin(api: rest.Rest, crd_resource: registry.Resource, doc: dict[str, Any]) -> None:
    name = doc["metadata"]["name"]
    key = api.key(crd_resource, None, name)
    kv, _ = await api.store.get(key)
    if kv is None:
        obj = copy.deepcopy(doc)
        obj.setdefault("apiVersion", "apiextensions.k8s.io/v1")
        obj.setdefault("kind", "CustomResourceDefinition")
        objectmeta.assign_create_fields(obj)
        obj["status"] = crd_strategy.established_status(obj)
        try:
            await api.store.create(key, rest.encode(obj))
        except errors.KeyExists:
            pass  # another API server got there first
        return
    stored = rest.decode(kv)
    if stored.get("spec") != doc.get("spec"):
        stored["spec"] = copy.deepcopy(doc["spec"])
        stored["status"] = crd_strategy.established_status(stored)
        try:
            await api.store.update(key, rest.encode(stored), expected_revision=kv.mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            pass


# Pod Security labels for the initial namespaces when the server is asked to set them
# (`--initial-namespaces-pod-security`): workloads in `default` run at baseline, the system's own
# (kube-system) may be privileged. Namespaces that already exist are left as their owners made them.
POD_SECURITY_LABELS: dict[str, dict[str, str]] = {
    "default": {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "latest"},
    "kube-system": {"pod-security.kubernetes.io/enforce": "privileged"},
}


async def ensure_namespaces(api: rest.Rest, *, labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Create the initial namespaces that do not exist yet (with `labels[name]`, if given)."""
    namespaces = api.registry.get("", "v1", "namespaces")
    assert namespaces is not None
    for name in INITIAL_NAMESPACES:
        metadata: dict[str, Any] = {"name": name}
        if labels and labels.get(name):
            metadata["labels"] = dict(labels[name])
        try:
            await api.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        except errors.AlreadyExists:
            pass


DEFAULT_STORAGE_CLASS = "local"


def default_storage_class() -> dict[str, Any]:
    """The class `reconcile up` clusters start with: Docker named volumes on the node the pod is
    scheduled to (WaitForFirstConsumer, as kind's `standard` class), deleted with their claim."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": DEFAULT_STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "reconcile.dev/docker-volume", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}


async def ensure_storage_class(api: rest.Rest) -> None:
    """Create the default StorageClass when it does not exist (the addon manager's EnsureExists:
    an administrator's changes to it are kept; deleted, it comes back at the next start)."""
    resource = api.registry.get("storage.k8s.io", "v1", "storageclasses")
    if resource is None:
        return
    try:
        await api.create(resource, None, default_storage_class())
    except errors.AlreadyExists:
        pass


async def ensure_priority_classes(api: rest.Rest) -> None:
    """Create the two system PriorityClasses that do not exist (upstream's
    `scheduling/bootstrap-system-priority-classes` post-start hook). They cannot be deleted or
    changed, so one that exists is as it was made."""
    resource = api.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
    if resource is None:
        return
    for name in priorities.SYSTEM_CLASSES:
        try:
            await api.create(resource, None, priorities.system_class(name))
        except errors.AlreadyExists:
            pass
