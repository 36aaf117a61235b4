"""Pod volumes as directories under the agent's state dir, bind-mounted into containers.

Layout: `<state>/pods/<uid>/volumes/<kind>/<name>/`. ConfigMap and Secret volumes (keys, or
`items` with their paths and modes; secrets base64-decoded), projected volumes (`projected`:
ServiceAccount tokens, the cluster CA, the namespace) and downwardAPI volumes are written
atomically (`atomicdir`, the kubelet's `..data` swap) before a container is created, and again by
`refresh` while the pod runs (every CONTENT_PERIOD, and when a token is due), so a changed object
shows in running containers and a token is replaced before it expires. emptyDir lives as long as
the pod (`emptydir`: a tmpfs for `medium: Memory`, sizeLimit measured for eviction); hostPath is
the host's own path. The directory of a pod goes when the pod's containers are removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from reconcile.core import errors
from reconcile.core import volumes as pv_helpers
from reconcile.node import atomicdir, emptydir, environment, projected, reclaim, safepath

log = logging.getLogger(__name__)
CONTENT_PERIOD = 10.0  # seconds between rewrites of a running pod's ConfigMap/Secret/projected volumes


class VolumeError(Exception):
    """A volume cannot be set up (missing object, unsupported kind, bad path)."""


class Volumes:
    """Prepares the volumes of pods on this node."""

    def __init__(self, root: Path, fetch: environment.Fetch, *, tokens: projected.Tokens | None = None,
                 node_name: str = "", runtime: Any = None, reclaimer: reclaim.Reclaimer | None = None) -> None:
        self.root = root
        self.fetch = fetch
        self.tokens = tokens or projected.Tokens(None)
        self.node_name = node_name  # claims whose volume lives on another node are refused
        self.runtime = runtime  # docker.DockerRuntime: the named volumes of `reconcile.dev/docker-volume`
        self.reclaimer = reclaimer  # marks the PV of each Docker volume made, for reclaim Delete
        self._refreshed: dict[str, float] = {}  # pod uid -> when its volumes' contents were last written

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    def empty_dir(self, uid: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / "empty-dir" / name

    def over_size_limit(self, pod: dict[str, Any]) -> str | None:
        """The eviction message when a disk-backed emptyDir holds more than its sizeLimit."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        return emptydir.exceeded(pod, lambda name: self.empty_dir(uid, name))

    async def prepare(self, pod: dict[str, Any]) -> dict[str, str]:
        """Volume name -> host path, with every file in place."""
        metadata = pod.get("metadata") or {}
        uid, namespace = metadata["uid"], metadata.get("namespace") or "default"
        found: dict[str, str] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume["name"]
            base = self.pod_dir(uid) / "volumes"
            if "emptyDir" in volume:
                path = self.empty_dir(uid, name)
                try:
                    emptydir.prepare(path, pod, volume)
                except emptydir.EmptyDirError as exc:
                    raise VolumeError(str(exc)) from None
            elif "configMap" in volume:
                path = await self._projected(base / "configmap" / name, "configmaps", namespace, volume["configMap"])
            elif "secret" in volume:
                source = dict(volume["secret"])
                source.setdefault("name", source.get("secretName"))
                path = await self._projected(base / "secret" / name, "secrets", namespace, source)
            elif "projected" in volume or "downwardAPI" in volume:
                path = await self._atomic(pod, volume, base)
            elif "persistentVolumeClaim" in volume:
                path = Path(await self._claim(namespace, volume))
            elif "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                    path.mkdir(parents=True, exist_ok=True)
                elif volume["hostPath"].get("type") == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise VolumeError(f"volume {name}: unsupported volume type {', '.join(kinds)}")
            found[name] = str(path)
        return found

    async def _claim(self, namespace: str, volume: dict[str, Any]) -> str:
        """The host directory behind a persistentVolumeClaim volume: the claim must be Bound and not
        being deleted, its volume must live on this node; a Docker volume is created on first use."""
        name, claim_name = volume["name"], (volume["persistentVolumeClaim"] or {}).get("claimName") or ""
        claim = await self.fetch("persistentvolumeclaims", namespace, claim_name)
        if claim is None:
            raise VolumeError(f'volume {name}: persistentvolumeclaim "{claim_name}" not found')
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            raise VolumeError(f'volume {name}: persistentvolumeclaim "{claim_name}" is being deleted')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name or (claim.get("status") or {}).get("phase") != pv_helpers.BOUND:
            raise VolumeError(f'volume {name}: persistentvolumeclaim "{claim_name}" is not bound')
        pv = await self.fetch("persistentvolumes", "", volume_name)
        if pv is None:
            raise VolumeError(f'volume {name}: persistentvolume "{volume_name}" not found')
        nodes = pv_helpers.affinity_nodes(pv)
        if nodes and self.node_name and self.node_name not in nodes:
            raise VolumeError(f'volume {name}: persistentvolume "{volume_name}" of claim "{claim_name}" lives on '
                              f"node {', '.join(nodes)}, not on this node ({self.node_name})")
        spec = pv.get("spec") or {}
        if spec.get("hostPath") or spec.get("local"):
            source = spec.get("hostPath") or spec.get("local")
            path = Path(source["path"])
            if (spec.get("hostPath") or {}).get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                raise VolumeError(f'volume {name}: path "{path}" of persistentvolume "{volume_name}" does not exist')
            return str(path)
        csi = spec.get("csi") or {}
        if csi.get("driver") == pv_helpers.DOCKER_VOLUME_DRIVER and self.runtime is not None:
            if self.reclaimer is not None:  # the finalizer before the volume: see reclaim
                try:
                    await self.reclaimer.hold(pv)
                except errors.ApiError as exc:
                    raise VolumeError(f'volume {name}: cannot mark persistentvolume "{volume_name}" as held by '
                                      f"this node: {exc}") from None
            return await self.runtime.ensure_volume(csi["volumeHandle"], labels={reclaim.VOLUME_LABEL: volume_name})
        raise VolumeError(f'volume {name}: persistentvolume "{volume_name}" has no source this node can mount')

    async def _atomic(self, pod: dict[str, Any], volume: dict[str, Any], base: Path) -> Path:
        kind = "projected" if "projected" in volume else "downward-api"
        path = base / kind / volume["name"]
        try:
            if kind == "projected":
                files = await projected.projected_files(pod, volume, self.fetch, self.tokens)
            else:
                source = volume["downwardAPI"] or {}
                files = projected.downward_files(pod, source.get("items") or [],
                                                 int(source.get("defaultMode", projected.DEFAULT_MODE)))
            atomicdir.write(path, files)
        except (projected.SourceError, atomicdir.PathError) as exc:
            raise VolumeError(f"volume {volume['name']}: {exc}") from None
        return path

    async def refresh(self, pod: dict[str, Any]) -> float | None:
        """Write the ConfigMap, Secret, projected and downwardAPI volumes of a running pod again, at
        most every CONTENT_PERIOD seconds (the kubelet's periodic sync: a changed object shows in
        the running containers, atomically) and whenever a token is due; the wall-clock time of
        the next token refresh, or None."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        now = self.tokens.clock()
        due = self.tokens.due(uid)
        token_due = due is not None and due <= now
        if token_due or now - self._refreshed.get(uid, 0.0) >= CONTENT_PERIOD:
            self._refreshed[uid] = now
            base = self.pod_dir(uid) / "volumes"
            namespace = (pod.get("metadata") or {}).get("namespace") or "default"
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if "projected" in volume or "downwardAPI" in volume:
                    await self._atomic(pod, volume, base)
                elif "configMap" in volume:
                    await self._projected(base / "configmap" / volume["name"], "configmaps", namespace,
                                          volume["configMap"])
                elif "secret" in volume:
                    source = dict(volume["secret"])
                    source.setdefault("name", source.get("secretName"))
                    await self._projected(base / "secret" / volume["name"], "secrets", namespace, source)
            due = self.tokens.due(uid)
        return due

    async def _projected(self, path: Path, plural: str, namespace: str, source: dict[str, Any]) -> Path:
        """A ConfigMap or Secret volume, written atomically (`atomicdir`: the kubelet's `..data`
        swap), so `refresh` can update it under running containers without a torn read."""
        obj = await self.fetch(plural, namespace, source.get("name") or "")
        kind = "configmap" if plural == "configmaps" else "secret"
        if obj is None and not source.get("optional"):
            raise VolumeError(f'{kind} "{source.get("name")}" not found')
        data = environment.decoded_data(obj, plural) if obj is not None else {}
        mode = int(source.get("defaultMode", 0o644))
        files: atomicdir.Files = {}
        if source.get("items"):
            for item in source["items"]:
                if item["key"] not in data:
                    if source.get("optional"):
                        continue
                    raise VolumeError(f"configmap or secret {source.get('name')}: no key {item['key']}")
                files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
        else:
            files = {key: (value, mode) for key, value in data.items()}
        try:
            atomicdir.write(path, files)
        except atomicdir.PathError as exc:
            raise VolumeError(f"{kind} {source.get('name')}: {exc}") from None
        return path

    def mounts(self, container: dict[str, Any], host_paths: dict[str, str], *, pod: dict[str, Any] | None = None,
               env: list[dict[str, str]] | None = None) -> list[str]:
        """Docker bind specs `host:container:mode` for the container's volumeMounts. A `subPath`
        (or `subPathExpr`, expanded from the container's environment) is opened safely inside the
        volume and bind-mounted under the pod's directory (safepath); read-only claims mount ro."""
        binds = []
        read_only = _read_only_claims(pod)
        for position, mount in enumerate(container.get("volumeMounts") or []):
            host = host_paths.get(mount["name"])
            if host is None:
                raise VolumeError(f'volumeMount "{mount["name"]}" names no volume of the pod')
            sub_path = mount.get("subPath") or ""
            if mount.get("subPathExpr"):
                if sub_path:
                    raise VolumeError(f'volumeMount "{mount["name"]}": subPath and subPathExpr are mutually exclusive')
                sub_path = _expand(mount["subPathExpr"], env or [])
            if sub_path:
                sub_path = _through_current_version(host, sub_path)
                uid = ((pod or {}).get("metadata") or {}).get("uid") or "unknown"
                container_name = str(container.get("name") or "")
                target = self.pod_dir(uid) / "volume-subpaths" / mount["name"] / container_name / str(position)
                try:
                    host = safepath.prepare(host, sub_path, target)
                except safepath.SubPathError as exc:
                    raise VolumeError(f'failed to prepare subPath for volumeMount "{mount["name"]}" of container '
                                      f'"{container_name}": {exc}') from None
            mode = "ro" if mount.get("readOnly") or mount["name"] in read_only else "rw"
            binds.append(f"{host}:{mount['mountPath']}:{mode}")
        return binds

    def remove(self, uid: str) -> None:
        """The pod's directory goes, after every subPath mount in it is gone: deleting through a live
        bind mount would delete the volume's data."""
        if not safepath.unmount_all(self.pod_dir(uid)):
            log.warning("pod %s: subPath mounts remain under %s; its directory is kept", uid, self.pod_dir(uid))
            return
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)
        self.tokens.forget(uid)
        self._refreshed.pop(uid, None)

    def known_uids(self) -> list[str]:
        pods = self.root / "pods"
        return [p.name for p in pods.iterdir()] if pods.is_dir() else []

    async def remove_orphans(self, holding: Callable[[], Awaitable[set[str]]],
                             live: Callable[[], set[str]]) -> list[str]:
        """Remove the directories of pods that neither exist (`live`: the pods bound here now) nor
        have containers (`holding`, which asks the engine and may take seconds); the uids removed.

        The order of the three reads is what makes this safe against pods starting meanwhile: the
        directories are listed first, so one made during the engine's answer is never judged, and
        the live pods are read last, so a pod that arrived during it counts as live. Read the other
        way round, a pod synced in that window lost its directory between its resolv.conf being
        written and its container being created, and Docker then made the missing bind source a
        directory, which failed every later sync of the pod."""
        candidates = self.known_uids()
        with_containers = await holding()
        alive = live()
        orphans = [uid for uid in candidates if uid not in alive and uid not in with_containers]
        for uid in orphans:
            self.remove(uid)
        return orphans


def _through_current_version(host: str, sub_path: str) -> str:
    """A subPath of an atomically written volume names a file through `..data`, a symlink the safe
    open refuses: it goes through the version directory `..data` points at instead (as upstream,
    which resolves links inside the volume), so such a subPath mount keeps the content it was
    mounted with, as upstream's does (only whole-volume mounts see updates)."""
    data = Path(host) / atomicdir.DATA
    if not data.is_symlink():
        return sub_path
    version = os.readlink(data)
    if "/" in version or not version.startswith(".."):
        return sub_path  # not a link atomicdir made: left to the safe open to judge
    return f"{version}/{sub_path}"


def _read_only_claims(pod: dict[str, Any] | None) -> set[str]:
    return {v["name"] for v in ((pod or {}).get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("readOnly")}


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(expression: str, env: list[dict[str, str]]) -> str:
    """subPathExpr: `$(VAR)` from the container's resolved environment (unknown names stay as written)."""
    values = {e.get("name"): e.get("value", "") for e in env}
    return _REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), expression)

