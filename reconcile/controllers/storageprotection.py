"""Storage object in-use protection: upstream's pvc-protection-controller and pv-protection-controller
(pkg/controller/volume/pvcprotection, pvprotection).

The StorageObjectInUseProtection admission plugin puts `kubernetes.io/pvc-protection` on every new
claim and `kubernetes.io/pv-protection` on every new volume; these controllers add it to objects that
lack it and remove it from objects being deleted once they are free:
- a claim is in use while a *scheduled* pod (nodeName set) that has not terminated names it; the
  informer says "in use" cheaply, but "not in use" is confirmed by a live LIST of the namespace's
  pods (a pod created a moment ago may not be in the cache; upstream does the same);
- a volume is in use while its phase is Bound.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors, volumes
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)


def _finalizer_patch(obj: dict[str, Any], finalizer: str, *, present: bool) -> dict[str, Any] | None:
    """A merge patch that adds or removes `finalizer`, guarded by the resourceVersion (None: nothing to do)."""
    metadata = obj.get("metadata") or {}
    finalizers = list(metadata.get("finalizers") or [])
    if (finalizer in finalizers) == present:
        return None
    finalizers = [*finalizers, finalizer] if present else [f for f in finalizers if f != finalizer]
    return {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}}


def pod_uses_claim(pod: dict[str, Any], claim: str) -> bool:
    """A scheduled pod that has not terminated and names the claim (upstream's podUsesPVC)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    return claim in volumes.claim_names(pod)


class PvcProtectionController:
    """Owns the `pvc-protection` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.claims = ctx.informers.get("v1", "persistentvolumeclaims")
        self.pods = ctx.informers.get("v1", "pods")
        self.controller = ctx.controller("pvc-protection", self.reconcile)
        self.controller.watch(self.claims)
        self.controller.watch(self.pods, to_keys=self._claims_of)

    @staticmethod
    def _claims_of(pod: dict[str, Any]) -> list[controller_mod.Key]:
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        return [(namespace, name) for name in volumes.claim_names(pod)]

    async def _in_use(self, namespace: str, name: str) -> bool:
        if any(pod_uses_claim(p, name) for p in self.pods.store.by_index("namespace", namespace)):
            return True
        listed = await self.ctx.client.list("v1", "pods", namespace=namespace)
        return any(pod_uses_claim(p, name) for p in listed.get("items") or [])

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        claim = self.claims.store.get(*key)
        if claim is None:
            return None
        deleting = bool((claim.get("metadata") or {}).get("deletionTimestamp"))
        if deleting and await self._in_use(*key):
            return None  # a pod event (the pod goes or finishes) wakes the claim again
        patch = _finalizer_patch(claim, volumes.PVC_PROTECTION, present=not deleting)
        if patch is None:
            return None
        try:
            await self.ctx.client.patch("v1", "persistentvolumeclaims", key[1], patch, namespace=key[0])
        except errors.NotFound:
            return None
        except errors.Conflict:
            return controller_mod.Result(requeue_after=0.1)
        log.info("claim %s/%s: %s %s", key[0], key[1], "removed" if deleting else "added", volumes.PVC_PROTECTION)
        return None


class PvProtectionController:
    """Owns the `pv-protection` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.volumes = ctx.informers.get("v1", "persistentvolumes")
        self.controller = ctx.controller("pv-protection", self.reconcile)
        self.controller.watch(self.volumes)

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        volume = self.volumes.store.get(None, key[1])
        if volume is None:
            return None
        deleting = bool((volume.get("metadata") or {}).get("deletionTimestamp"))
        if deleting and (volume.get("status") or {}).get("phase") == volumes.BOUND:
            return None
        patch = _finalizer_patch(volume, volumes.PV_PROTECTION, present=not deleting)
        if patch is None:
            return None
        try:
            await self.ctx.client.patch("v1", "persistentvolumes", key[1], patch)
        except errors.NotFound:
            return None
        except errors.Conflict:
            return controller_mod.Result(requeue_after=0.1)
        return None
