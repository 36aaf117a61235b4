"""The node's half of reclaim Delete for `reconcile.dev/docker-volume` PersistentVolumes.

The Docker volume behind such a PV lives on one node's engine, so only that node can remove it.
Before it makes the Docker volume, the agent writes a note naming the PV in its state dir and
puts `volume.reconcile.dev/docker-volume-cleanup` on the PV (`hold`), in that order; the binder
deletes the PV once it is Released under reclaim Delete; the finalizer keeps the PV object
(Terminating) until `sweep` has removed the Docker volume and then takes the finalizer off. A PV
deleted under Retain (by an administrator) loses the finalizer but keeps its data, as upstream's
Retain does. Nothing is removed for a PV this node cannot read: during an API server restart a
refusal means "not known yet", never "gone".

Finalizer first, volume second, so an agent killed in between never leaves a volume its PV does not
hold: the worst it leaves is a finalizer without a volume. The sweep finds those through the notes
(a node may only get the PVs pinned to it, not list them) and releases them, there being nothing to
remove. A note whose PV the node has not been able to read for NOTE_GRACE seconds, with no Docker
volume made for it, is dropped: a PV that still carried our finalizer would still exist, and the
node authorizer lets a node read its pinned PVs once the API server has caught up.

The node authorizer lets a node read and write only the Docker-volume PVs pinned to it, and
NodeRestriction lets it change nothing but this finalizer.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from reconcile.client import aio
from reconcile.core import errors, names, volumes
from reconcile.node import docker

log = logging.getLogger(__name__)
VOLUME_LABEL = "reconcile.dev/persistent-volume"  # on the Docker volumes the agent makes for claims


NOTE_GRACE = 600.0  # seconds a note may go unread (refused, not found) before it is dropped


class Reclaimer:
    def __init__(self, client: aio.AsyncClient, runtime: docker.DockerRuntime, notes: Path) -> None:
        self.client = client
        self.runtime = runtime
        self.notes = notes  # one empty file per PV this node held (named after the PV)

    async def hold(self, pv: dict[str, Any]) -> None:
        """The PV keeps the finalizer while the Docker volume exists (added once, with the
        resourceVersion read: a concurrent change makes the next mount try again). Called before
        the volume is made; the note comes first so a kill after the finalizer is still found."""
        metadata = pv.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if volumes.DOCKER_VOLUME_FINALIZER in finalizers or metadata.get("deletionTimestamp"):
            return
        self._note(metadata["name"])
        await self.client.patch("v1", "persistentvolumes", metadata["name"], {"metadata": {
            "finalizers": [*finalizers, volumes.DOCKER_VOLUME_FINALIZER],
            "resourceVersion": metadata.get("resourceVersion")}})

    async def sweep(self) -> None:
        """Each Docker volume this agent made whose PV is being deleted: removed under reclaim
        Delete (not while a container still uses it), then the PV's finalizer goes. Then each
        noted PV without a volume: released when being deleted, the note dropped once moot."""
        made = await self.runtime.labelled_volumes(VOLUME_LABEL)
        for name, pv_name in made:
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
        with_volume = {pv_name for _, pv_name in made}
        for pv_name in self._noted():
            if pv_name not in with_volume:
                await self._settle_note(pv_name)

    async def _settle_note(self, pv_name: str) -> None:
        """A noted PV with no Docker volume (the agent stopped between finalizer and volume, or the
        volume is long gone): nothing to remove, so a PV being deleted just loses our finalizer."""
        try:
            pv = await self.client.get("v1", "persistentvolumes", pv_name)
        except (errors.NotFound, errors.Forbidden):
            if self._note_age(pv_name) > NOTE_GRACE:
                self._drop_note(pv_name)
            return
        metadata = pv.get("metadata") or {}
        if volumes.DOCKER_VOLUME_FINALIZER not in (metadata.get("finalizers") or []):
            self._drop_note(pv_name)  # never held (stopped before the finalizer), or released
        elif metadata.get("deletionTimestamp"):
            await self._release(pv)
        # else held and not deleted: the next mount makes the volume

    async def _release(self, pv: dict[str, Any]) -> None:
        metadata = pv["metadata"]
        kept = [f for f in metadata.get("finalizers") or [] if f != volumes.DOCKER_VOLUME_FINALIZER]
        try:
            await self.client.patch("v1", "persistentvolumes", metadata["name"], {"metadata": {
                "finalizers": kept or None, "resourceVersion": metadata.get("resourceVersion")}})
        except (errors.NotFound, errors.Conflict):
            return  # gone, or changed: the next sweep looks again
        self._drop_note(metadata["name"])

    # --- notes: the PVs this node has held, so a kill between finalizer and volume is found ----------

    def _note(self, pv_name: str) -> None:
        if names.dns1123_subdomain_errors(pv_name):  # the API refuses such names; a note must not escape
            raise errors.BadRequest(f'persistentvolume name "{pv_name}" is not a DNS subdomain')
        self.notes.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.notes / pv_name
        with open(path, "ab") as note:
            os.fsync(note.fileno())
        os.utime(path)

    def _noted(self) -> list[str]:
        try:
            return sorted(p.name for p in self.notes.iterdir() if p.is_file() and not p.is_symlink())
        except FileNotFoundError:
            return []

    def _note_age(self, pv_name: str) -> float:
        try:
            return time.time() - (self.notes / pv_name).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _drop_note(self, pv_name: str) -> None:
        (self.notes / pv_name).unlink(missing_ok=True)
