"""The node's half of reclaim Delete for `reconcile.dev/docker-volume` PersistentVolumes.

The Docker volume behind such a PV lives on one node's engine, so only that node can remove it.
The agent puts `volume.reconcile.dev/docker-volume-cleanup` on the PV when it makes the Docker
volume (`hold`); the binder deletes the PV once it is Released under reclaim Delete; the
finalizer keeps the PV object (Terminating) until `sweep` has removed the Docker volume and then
takes the finalizer off. A PV deleted under Retain (by an administrator) loses the finalizer but
keeps its data, as upstream's Retain does. Nothing is removed for a PV this node cannot read:
during an API server restart a refusal means "not known yet", never "gone".

Known gap: if the agent dies between making the Docker volume and writing the finalizer, the PV
may go without the volume; the data then stays on the node (kept, never lost).

The node authorizer lets a node read and write only the Docker-volume PVs pinned to it, and
NodeRestriction lets it change nothing but this finalizer.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.client import aio
from reconcile.core import errors, volumes
from reconcile.node import docker

log = logging.getLogger(__name__)
VOLUME_LABEL = "reconcile.dev/persistent-volume"  # on the Docker volumes the agent makes for claims


class Reclaimer:
    def __init__(self, client: aio.AsyncClient, runtime: docker.DockerRuntime) -> None:
        self.client = client
        self.runtime = runtime

    async def hold(self, pv: dict[str, Any]) -> None:
        """The PV keeps the finalizer while the Docker volume exists (added once, with the
        resourceVersion read: a concurrent change makes the next mount try again)."""
        metadata = pv.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if volumes.DOCKER_VOLUME_FINALIZER in finalizers or metadata.get("deletionTimestamp"):
            return
        await self.client.patch("v1", "persistentvolumes", metadata["name"], {"metadata": {
            "finalizers": [*finalizers, volumes.DOCKER_VOLUME_FINALIZER],
            "resourceVersion": metadata.get("resourceVersion")}})

    async def sweep(self) -> None:
        """Each Docker volume this agent made whose PV is being deleted: removed under reclaim
        Delete (not while a container still uses it), then the PV's finalizer goes."""
        for name, pv_name in await self.runtime.labelled_volumes(VOLUME_LABEL):
            try:
                pv = await self.client.get("v1", "persistentvolumes", pv_name)
            except (errors.NotFound, errors.Forbidden):
                continue  # not ours to judge: kept
            metadata = pv.get("metadata") or {}
            if not metadata.get("deletionTimestamp") or \
                    volumes.DOCKER_VOLUME_FINALIZER not in (metadata.get("finalizers") or []):
                continue
            if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
                try:
                    await self.runtime.remove_volume(name)
                except docker.DockerError as exc:
                    log.info("persistentvolume %s: Docker volume %s not removed yet: %s", pv_name, name, exc)
                    continue
                log.info("persistentvolume %s: Docker volume %s removed (reclaim Delete)", pv_name, name)
            await self._release(pv)

    async def _release(self, pv: dict[str, Any]) -> None:
        metadata = pv["metadata"]
        kept = [f for f in metadata.get("finalizers") or [] if f != volumes.DOCKER_VOLUME_FINALIZER]
        try:
            await self.client.patch("v1", "persistentvolumes", metadata["name"], {"metadata": {
                "finalizers": kept or None, "resourceVersion": metadata.get("resourceVersion")}})
        except (errors.NotFound, errors.Conflict):
            pass  # gone, or changed: the next sweep looks again
