"""Pod volumes as directories under the agent's state dir, bind-mounted into containers.

Layout: `<state>/pods/<uid>/volumes/<kind>/<name>/`. ConfigMap and Secret volumes are written
fresh each time a container is about to be created (keys, or `items` with their paths and
modes; secrets base64-decoded); emptyDir lives as long as the pod; hostPath is the host's own
path. Projected and downwardAPI volumes (`projected`: ServiceAccount tokens, the cluster CA, the
namespace) are written atomically (`atomicdir`), and again by `refresh` while the pod runs, so a
token is replaced before it expires. The directory of a pod goes when the pod's containers are removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from reconcile.node import atomicdir, environment, projected


class VolumeError(Exception):
    """A volume cannot be set up (missing object, unsupported kind, bad path)."""


class Volumes:
    """Prepares the volumes of pods on this node."""

    def __init__(self, root: Path, fetch: environment.Fetch, *, tokens: projected.Tokens | None = None) -> None:
        self.root = root
        self.fetch = fetch
        self.tokens = tokens or projected.Tokens(None)

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    async def prepare(self, pod: dict[str, Any]) -> dict[str, str]:
        """Volume name -> host path, with every file in place."""
        metadata = pod.get("metadata") or {}
        uid, namespace = metadata["uid"], metadata.get("namespace") or "default"
        found: dict[str, str] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume["name"]
            base = self.pod_dir(uid) / "volumes"
            if "emptyDir" in volume:
                path = base / "empty-dir" / name
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(0o777)
            elif "configMap" in volume:
                path = await self._projected(base / "configmap" / name, "configmaps", namespace, volume["configMap"])
            elif "secret" in volume:
                source = dict(volume["secret"])
                source.setdefault("name", source.get("secretName"))
                path = await self._projected(base / "secret" / name, "secrets", namespace, source)
            elif "projected" in volume or "downwardAPI" in volume:
                path = await self._atomic(pod, volume, base)
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
        """Write the projected volumes of a running pod again when a token is due (a changed ConfigMap
        or Secret in them is picked up then too); the wall-clock time of the next refresh, or None."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        due = self.tokens.due(uid)
        if due is not None and due <= self.tokens.clock():
            base = self.pod_dir(uid) / "volumes"
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if "projected" in volume:
                    await self._atomic(pod, volume, base)
            due = self.tokens.due(uid)
        return due

    async def _projected(self, path: Path, plural: str, namespace: str, source: dict[str, Any]) -> Path:
        obj = await self.fetch(plural, namespace, source.get("name") or "")
        kind = "configmap" if plural == "configmaps" else "secret"
        if obj is None and not source.get("optional"):
            raise VolumeError(f'{kind} "{source.get("name")}" not found')
        data = environment.decoded_data(obj, plural) if obj is not None else {}
        mode = int(source.get("defaultMode", 0o644))
        if source.get("items"):
            files = []
            for item in source["items"]:
                if item["key"] not in data:
                    if source.get("optional"):
                        continue
                    raise VolumeError(f"configmap or secret {source.get('name')}: no key {item['key']}")
                files.append((item["path"], data[item["key"]], int(item.get("mode", mode))))
        else:
            files = [(key, value, mode) for key, value in data.items()]
        path.mkdir(parents=True, exist_ok=True)  # kept, not recreated: running containers bind this inode
        wanted = {_inside(path, relative) for relative, _, _ in files}
        for old in sorted(path.rglob("*"), reverse=True):  # keys removed from the object disappear
            if old.is_file() and old not in wanted:
                old.unlink()
        for relative, content, file_mode in files:
            target = _inside(path, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            os.chmod(target, file_mode)
        return path

    def mounts(self, container: dict[str, Any], host_paths: dict[str, str]) -> list[str]:
        """Docker bind specs `host:container:mode` for the container's volumeMounts."""
        binds = []
        for mount in container.get("volumeMounts") or []:
            host = host_paths.get(mount["name"])
            if host is None:
                raise VolumeError(f'volumeMount "{mount["name"]}" names no volume of the pod')
            if mount.get("subPath"):
                host = str(_inside(Path(host), mount["subPath"]))
            mode = "ro" if mount.get("readOnly") else "rw"
            binds.append(f"{host}:{mount['mountPath']}:{mode}")
        return binds

    def remove(self, uid: str) -> None:
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)
        self.tokens.forget(uid)

    def known_uids(self) -> list[str]:
        pods = self.root / "pods"
        return [p.name for p in pods.iterdir()] if pods.is_dir() else []


def _inside(base: Path, relative: str) -> Path:
    """`base/relative`, refusing absolute paths and `..` (a key or subPath must not escape the volume)."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise VolumeError(f"invalid path {relative!r}: must be relative and must not contain '..'")
    return base.joinpath(*parts)
