"""PersistentVolume binder: claims bind one to one to volumes, as kube-controller-manager's
persistentvolume-binder-controller (pkg/controller/volume/persistentvolume/pv_controller.go).

Keys: ("", name) is a volume, (namespace, name) a claim (claims always have a namespace).

Binding writes both sides in upstream's order, each idempotent:
  1. volume `spec.claimRef` (with the claim's uid) + `pv.kubernetes.io/bound-by-controller`,
  2. volume status `Bound`,
  3. claim `spec.volumeName` + `bound-by-controller` + `pv.kubernetes.io/bind-completed`,
  4. claim status `Bound` with the volume's capacity and access modes.
Step 1 is a compare-and-swap on the volume's resourceVersion, so two claims racing for one volume
(two workers, two controller-managers, or a cache that lags) cannot both win: the loser gets a
Conflict and retries against fresh state. A crash after step 1 leaves a volume whose claimRef names
the claim with its uid: the next sync's `find_matching_volume` returns exactly that volume (pre-bound
comes first), so the binding completes and nothing binds twice.

Which volume a claim gets is `core.volumes.find_matching_volume` (pure; property-tested).
Dynamic provisioning (classes whose provisioner is ours) is `pvprovision`'s; a claim of a class
with `WaitForFirstConsumer` waits for the scheduler's `volume.kubernetes.io/selected-node`.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors, volumes
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

RESYNC = 15.0  # upstream's --pvclaimbinder-sync-period: unmatched claims are looked at again
NAME = "persistentvolume-binder"


def _md(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return _md(obj).get("annotations") or {}


def _phase(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("phase") or ""


def _node_ready(node: dict[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class PersistentVolumeBinder:
    """Owns the `persistentvolume-binder` engine controller."""

    def __init__(self, ctx: context.ControllerContext, *, resync: float = RESYNC) -> None:
        self.ctx = ctx
        self.resync = resync
        self.volumes = ctx.informers.get("v1", "persistentvolumes")
        self.claims = ctx.informers.get("v1", "persistentvolumeclaims")
        self.classes = ctx.informers.get("storage.k8s.io/v1", "storageclasses")
        self.nodes = ctx.informers.get("v1", "nodes")
        # volume name -> uid of the claim this binder gave it, until the informer shows the claimRef:
        # other workers (and a cache that lags our own write) must not pick it and lose a Conflict
        # (upstream's binder stores its own writes back into its cache for the same reason)
        self._promised: dict[str, str] = {}
        # Events waiting for the one writer (`_event_later`); the writer runs only while some wait
        self._events: collections.deque[tuple[dict[str, Any], str, str]] = collections.deque()
        self._event_writer: asyncio.Task[None] | None = None
        self.controller = ctx.controller(NAME, self.reconcile, lookup=self._lookup)
        self.controller.watch(self.volumes, to_keys=self._volume_keys)
        self.controller.watch(self.claims, to_keys=self._claim_keys)

    def _lookup(self, key: controller_mod.Key) -> dict[str, Any] | None:
        return self.claims.store.get(*key) if key[0] else self.volumes.store.get(None, key[1])

    @staticmethod
    def _volume_keys(volume: dict[str, Any]) -> list[controller_mod.Key]:
        keys: list[controller_mod.Key] = [("", (volume.get("metadata") or {}).get("name") or "")]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("namespace") and ref.get("name"):
            keys.append((ref["namespace"], ref["name"]))
        return keys

    @staticmethod
    def _claim_keys(claim: dict[str, Any]) -> list[controller_mod.Key]:
        md = claim.get("metadata") or {}
        keys: list[controller_mod.Key] = [(md.get("namespace") or "", md.get("name") or "")]
        if (claim.get("spec") or {}).get("volumeName"):
            keys.append(("", claim["spec"]["volumeName"]))
        return keys

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        try:
            if key[0]:
                return await self._sync_claim(key[0], key[1])
            return await self._sync_volume(key[1])
        except errors.Conflict:
            # somebody (another claim's binding, the cache) moved first: retry on fresh state
            return controller_mod.Result(requeue_after=0.05)

    # --- claims -------------------------------------------------------------------------------

    def _storage_class(self, name: str) -> dict[str, Any] | None:
        return self.classes.store.get(None, name) if name else None

    async def _sync_claim(self, namespace: str, name: str) -> controller_mod.Result | None:
        cached = self.claims.store.get(namespace, name)
        if cached is None or _md(cached).get("deletionTimestamp") and not (cached.get("spec") or {}).get("volumeName"):
            return None
        claim = copy.deepcopy(cached)
        if _annotations(claim).get(volumes.BIND_COMPLETED):
            return await self._sync_bound_claim(claim)
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            return await self._sync_prebound_claim(claim, volume_name)
        return await self._sync_unbound_claim(claim)

    async def _sync_unbound_claim(self, claim: dict[str, Any]) -> controller_mod.Result | None:
        storage_class = self._storage_class(volumes.claim_class(claim))
        delay = bool(storage_class and storage_class.get("volumeBindingMode") == volumes.WAIT_FOR_FIRST_CONSUMER)
        found = volumes.find_matching_volume(claim, self.volumes.store.list(), delay_binding=delay,
                                             excluded=self._promised_elsewhere(_md(claim).get("uid") or ""))
        if found is not None:
            await self._bind(copy.deepcopy(found), claim)
            return None
        if delay and not _annotations(claim).get(volumes.SELECTED_NODE):
            await self.ctx.event(claim, reason="WaitForFirstConsumer",
                                 message="waiting for first consumer to be created before binding")
            return None  # the scheduler's selected-node (or a pre-bound volume) wakes the claim
        if storage_class is not None:
            provisioner = storage_class.get("provisioner") or ""
            if provisioner == volumes.DOCKER_VOLUME_DRIVER:
                return await self._provision(claim, storage_class)
            await self.ctx.event(claim, reason="ExternalProvisioning", message=(
                "Waiting for a volume to be created either by the external provisioner "
                f"'{provisioner}' or manually by the system administrator. If volume creation is delayed, "
                "please verify that the provisioner is running and correctly registered."))
            return controller_mod.Result(requeue_after=self.resync)
        await self.ctx.event(claim, reason="FailedBinding",
                             message="no persistent volumes available for this claim and no storage class is set")
        return controller_mod.Result(requeue_after=self.resync)

    # --- provisioning -------------------------------------------------------------------------

    def _pick_node(self) -> str | None:
        """For Immediate classes: a Ready, schedulable node (the fewest provisioned volumes first).
        With one such node there is nothing to weigh: counting walks every volume, per claim."""
        ready = [n for n in self.nodes.store.list() if _node_ready(n)]
        if len(ready) <= 1:
            return _md(ready[0])["name"] if ready else None
        counts: dict[str, int] = {}
        for volume in self.volumes.store.list():
            for node in volumes.affinity_nodes(volume):
                counts[node] = counts.get(node, 0) + 1
        names = sorted(_md(n)["name"] for n in ready)
        return min(names, key=lambda name: counts.get(name, 0))

    async def _provision(self, claim: dict[str, Any], storage_class: dict[str, Any]) -> controller_mod.Result | None:
        """A Docker named volume on one node: the PersistentVolume `pvc-<claim uid>`, already bound
        to the claim, with nodeAffinity to the node (`volume.kubernetes.io/selected-node`: the
        scheduler's choice under WaitForFirstConsumer, ours under Immediate). The node agent creates
        the Docker volume when the first pod mounts it, and removes it when the PV is deleted
        (`_delete_volume`, under reclaim Delete)."""
        md = _md(claim)
        name = f"pvc-{md['uid']}"
        existing = self.volumes.store.get(None, name)
        node = _annotations(claim).get(volumes.SELECTED_NODE)
        ours = not node  # Immediate: our choice, written with the binding (`_bind`'s claim update)
        if ours:
            node = self._pick_node()
            if node is None and existing is None:
                await self.ctx.event(claim, reason="ProvisioningFailed", type="Warning",
                                     message="no Ready node to provision the volume on")
                return controller_mod.Result(requeue_after=self.resync)
        if existing is None:  # created at once (AlreadyExists: made by a sync the cache has not shown yet)
            requests = (claim.get("spec") or {}).get("resources", {}).get("requests", {})
            body = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {
                "name": name, "annotations": {volumes.PROVISIONED_BY: volumes.DOCKER_VOLUME_DRIVER,
                                              volumes.BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"capacity": {"storage": requests.get("storage")},
                         "accessModes": list((claim.get("spec") or {}).get("accessModes") or []),
                         "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
                         "storageClassName": _md(storage_class)["name"], "volumeMode": "Filesystem",
                         "csi": {"driver": volumes.DOCKER_VOLUME_DRIVER, "volumeHandle": name},
                         "nodeAffinity": volumes.node_affinity(node),
                         "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": md["namespace"],
                                      "name": md["name"], "uid": md["uid"]}}}
            if storage_class.get("mountOptions"):
                body["spec"]["mountOptions"] = list(storage_class["mountOptions"])
            try:
                existing = await self.ctx.client.create("v1", "persistentvolumes", body)
            except errors.AlreadyExists:
                existing = await self._live_volume(name)
                if existing is None:
                    return controller_mod.Result(requeue_after=0.1)
            self._event_later(claim, reason="ProvisioningSucceeded",
                              message=f"Successfully provisioned volume {name} on node {node}")
        if ours:  # the node the volume is on, whoever made it (a sync the cache has not shown yet)
            md.setdefault("annotations", {})[volumes.SELECTED_NODE] = next(
                iter(volumes.affinity_nodes(existing)), node)
        await self._bind(copy.deepcopy(existing), claim)
        return None

    def _event_later(self, obj: dict[str, Any], *, reason: str, message: str) -> None:
        """Record an Event without waiting for it, as upstream's recorder does (a channel that one
        goroutine drains): provisioning a claim spent a round trip of its own on it, 1 in 5 of the
        claim's writes on the way to Bound (bench/storage.py). One writer: a burst of claims has at
        most one Event write under way, where each busy worker used to wait on one."""
        self._events.append((copy.deepcopy(obj), reason, message))
        if self._event_writer is None or self._event_writer.done():
            self._event_writer = asyncio.get_running_loop().create_task(self._write_events(), name=f"{NAME}:events")

    async def _write_events(self) -> None:
        """Drain the queued Events one at a time, then end (no task lingers while none wait)."""
        while self._events:
            obj, reason, message = self._events.popleft()
            await self.ctx.event(obj, reason=reason, message=message)

    async def _sync_prebound_claim(self, claim: dict[str, Any], volume_name: str) -> controller_mod.Result | None:
        """A claim naming its volume (by the user, or step 3 done without bind-completed)."""
        cached = self.volumes.store.get(None, volume_name)
        if cached is None:
            return controller_mod.Result(requeue_after=self.resync)  # the volume may come
        volume = copy.deepcopy(cached)
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and not volumes.claim_ref_matches(volume, claim):
            await self.ctx.event(claim, reason="FailedBinding", type="Warning",
                                 message=f'volume "{volume_name}" already bound to a different claim.')
            return controller_mod.Result(requeue_after=self.resync)
        if not ref:
            reason = volumes.mismatch_reason(volume, claim)
            if reason is not None:
                await self.ctx.event(claim, reason="VolumeMismatch", type="Warning",
                                     message=f'Cannot bind to requested volume "{volume_name}": {reason}')
                return controller_mod.Result(requeue_after=self.resync)
        await self._bind(volume, claim)
        return None

    async def _sync_bound_claim(self, claim: dict[str, Any]) -> controller_mod.Result | None:
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name:
            await self._claim_lost(claim, "ClaimLost", "Bound claim has lost reference to PersistentVolume. "
                                                      "Data on the volume is lost!")
            return None
        cached = self.volumes.store.get(None, volume_name)
        if cached is None:
            if await self._live_volume(volume_name) is None:
                await self._claim_lost(claim, "ClaimLost", "Bound claim has lost its PersistentVolume. "
                                                          "Data on the volume is lost!")
            return None
        volume = copy.deepcopy(cached)
        if not (volume.get("spec") or {}).get("claimRef"):
            await self._bind(volume, claim)  # someone cleared the volume's side: bind it again
            return None
        if not volumes.claim_ref_matches(volume, claim):
            await self._claim_lost(claim, "ClaimMisbound", "Two claims are bound to the same volume, "
                                                          "this one is bound incorrectly")
            return None
        volume = await self._expand(claim, volume)
        await self._claim_status(claim, volume)
        return None

    async def _expand(self, claim: dict[str, Any], volume: dict[str, Any]) -> dict[str, Any]:
        """A bound claim asking for more than its volume holds (admission let it: the class allows
        expansion) grows the volume's recorded capacity; the claim's status.capacity follows.
        (A Docker named volume has no size to grow: the record is the whole of it.)"""
        wanted = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        if wanted is None or volumes.requested(claim) <= volumes.capacity(volume):
            return volume
        storage_class = self._storage_class(volumes.claim_class(claim))
        if not storage_class or not storage_class.get("allowVolumeExpansion"):
            return volume
        volume.setdefault("spec", {}).setdefault("capacity", {})["storage"] = wanted
        volume = await self.ctx.client.replace("v1", "persistentvolumes", volume)
        log.info("volume %s expanded to %s for claim %s", _md(volume)["name"], wanted, volumes.claim_key(claim))
        return volume

    async def _claim_lost(self, claim: dict[str, Any], reason: str, message: str) -> None:
        if _phase(claim) != volumes.LOST:
            claim["status"] = {**(claim.get("status") or {}), "phase": volumes.LOST}
            await self._replace_claim(claim, status=True)
            await self.ctx.event(claim, reason=reason, message=message, type="Warning")

    # --- binding ------------------------------------------------------------------------------

    async def _bind(self, volume: dict[str, Any], claim: dict[str, Any]) -> None:
        """The four writes, each skipped when already done."""
        md = _md(claim)
        ref = {"kind": "PersistentVolumeClaim", "namespace": md["namespace"], "name": md["name"],
               "uid": md["uid"], "apiVersion": "v1", "resourceVersion": md.get("resourceVersion", "")}
        spec = volume.setdefault("spec", {})
        current = spec.get("claimRef") or {}
        if current.get("uid") != md["uid"] or current.get("name") != md["name"]:
            by_controller = not current  # a user's claimRef (pre-bound) keeps the volume without the mark
            spec["claimRef"] = ref
            if by_controller:
                _md(volume).setdefault("annotations", {})[volumes.BOUND_BY_CONTROLLER] = "yes"
            name = _md(volume)["name"]
            self._promised[name] = md["uid"]
            try:
                volume = await self.ctx.client.replace("v1", "persistentvolumes", volume)
            except BaseException:
                self._promised.pop(name, None)  # not ours after all: free for the next claim
                raise
            log.info("bound volume %s to claim %s", _md(volume)["name"], volumes.claim_key(claim))
        if _phase(volume) != volumes.BOUND:
            volume["status"] = {"phase": volumes.BOUND}
            volume = await self.ctx.client.replace("v1", "persistentvolumes", volume, subresource="status")
        claim_spec = claim.setdefault("spec", {})
        annotations = md.setdefault("annotations", {})
        if claim_spec.get("volumeName") != _md(volume)["name"] or annotations.get(volumes.BIND_COMPLETED) != "yes":
            if claim_spec.get("volumeName") != _md(volume)["name"]:
                claim_spec["volumeName"] = _md(volume)["name"]
                annotations[volumes.BOUND_BY_CONTROLLER] = "yes"
            annotations[volumes.BIND_COMPLETED] = "yes"
            claim = await self._replace_claim(claim)
        await self._claim_status(claim, volume)

    def _promised_elsewhere(self, claim_uid: str) -> frozenset[str]:
        """Volumes promised to other claims whose claimRef the informer does not show yet (entries
        it shows, or whose volume is gone, are dropped: the cache speaks for them again)."""
        for name in list(self._promised):
            cached = self.volumes.store.get(None, name)
            if cached is None or (cached.get("spec") or {}).get("claimRef"):
                del self._promised[name]
        return frozenset(name for name, uid in self._promised.items() if uid != claim_uid)

    async def _claim_status(self, claim: dict[str, Any], volume: dict[str, Any]) -> None:
        spec = volume.get("spec") or {}
        want = {"phase": volumes.BOUND, "accessModes": list(spec.get("accessModes") or []),
                "capacity": dict(spec.get("capacity") or {})}
        status = claim.get("status") or {}
        if all(status.get(k) == v for k, v in want.items()):
            return
        claim["status"] = {**status, **want}
        await self._replace_claim(claim, status=True)

    async def _replace_claim(self, claim: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
        return await self.ctx.client.replace("v1", "persistentvolumeclaims", claim,
                                             namespace=_md(claim)["namespace"], subresource="status" if status else None)

    # --- volumes ------------------------------------------------------------------------------

    async def _live_volume(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.ctx.client.get("v1", "persistentvolumes", name)
        except errors.NotFound:
            return None

    async def _live_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The claim from the informer, else by a live GET (a claim created a moment ago)."""
        found = self.claims.store.get(namespace, name)
        if found is not None:
            return found
        try:
            return await self.ctx.client.get("v1", "persistentvolumeclaims", name, namespace=namespace)
        except errors.NotFound:
            return None

    async def _sync_volume(self, name: str) -> controller_mod.Result | None:
        cached = self.volumes.store.get(None, name)
        if cached is None:
            return None
        volume = copy.deepcopy(cached)
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            await self._set_phase(volume, volumes.AVAILABLE)
            if not ref:
                self._wake_unbound_claims()
            return None
        claim = await self._live_claim(ref.get("namespace") or "", ref.get("name") or "")
        if claim is None or _md(claim).get("uid") != ref.get("uid"):
            return await self._released(volume)
        claim_volume = (claim.get("spec") or {}).get("volumeName")
        if not claim_volume:
            self.controller.enqueue((ref["namespace"], ref["name"]))  # binding in progress: finish it
            return None
        if claim_volume == name:
            await self._set_phase(volume, volumes.BOUND)
            return None
        # the claim is bound to another volume: give this one back
        if _annotations(volume).get(volumes.BOUND_BY_CONTROLLER):
            volume["spec"].pop("claimRef", None)
            _md(volume).get("annotations", {}).pop(volumes.BOUND_BY_CONTROLLER, None)
        else:
            volume["spec"]["claimRef"].pop("uid", None)
        await self.ctx.client.replace("v1", "persistentvolumes", volume)
        return None

    async def _released(self, volume: dict[str, Any]) -> controller_mod.Result | None:
        """The claim is gone: Released, then the reclaim policy."""
        if _phase(volume) == volumes.FAILED:
            return None
        volume = await self._set_phase(volume, volumes.RELEASED)
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return None
        if policy == "Delete":
            if (volume.get("spec") or {}).get("csi", {}).get("driver") == volumes.DOCKER_VOLUME_DRIVER:
                return await self._delete_volume(volume)
            await self._set_phase(volume, volumes.FAILED, reason="VolumeFailedDelete",
                                  message=f'error getting deleter volume plugin for volume "{_md(volume)["name"]}": '
                                          "no deletable volume plugin matched")
            await self.ctx.event(volume, reason="VolumeFailedDelete", type="Warning",
                                 message="no deletable volume plugin matched")
            return None
        await self._set_phase(volume, volumes.FAILED, reason="VolumeFailedRecycle",
                              message="Volume has unrecognized PersistentVolumeReclaimPolicy")
        return None

    async def _delete_volume(self, volume: dict[str, Any]) -> controller_mod.Result | None:
        """Reclaim Delete of a Docker volume, as upstream's external provisioner does it: the PV
        object is deleted; if a node agent made the Docker volume, its finalizer keeps the object
        until the agent has removed the volume (reconcile/node/reclaim.py)."""
        md = _md(volume)
        if md.get("deletionTimestamp"):
            return None
        try:
            await self.ctx.client.delete("v1", "persistentvolumes", md["name"],
                                         preconditions={"uid": md["uid"]})
        except (errors.NotFound, errors.Conflict):
            return None  # gone already, or a new volume of the same name: not ours to delete
        return None

    async def _set_phase(self, volume: dict[str, Any], phase: str, *, reason: str = "",
                         message: str = "") -> dict[str, Any]:
        status = volume.get("status") or {}
        if status.get("phase") == phase and status.get("reason", "") == reason:
            return volume
        volume["status"] = {"phase": phase, **({"reason": reason} if reason else {}),
                            **({"message": message} if message else {})}
        return await self.ctx.client.replace("v1", "persistentvolumes", volume, subresource="status")

    def _wake_unbound_claims(self) -> None:
        """A volume became free: every claim still waiting gets another look (upstream waits for
        its 15 s resync; this binds as soon as the volume exists)."""
        for claim in self.claims.store.list():
            if not (claim.get("spec") or {}).get("volumeName") and _phase(claim) != volumes.BOUND:
                md = claim.get("metadata") or {}
                self.controller.enqueue((md.get("namespace") or "", md.get("name") or ""))
