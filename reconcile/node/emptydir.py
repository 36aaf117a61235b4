"""emptyDir volumes: `medium: Memory` as a tmpfs, and `sizeLimit` enforced as the kubelet does.

- `medium: Memory`: the pod's directory for the volume is a tmpfs mounted on the host (so every
  container of the pod shares it, as a bind mount of it), sized as upstream's
  SizeMemoryBackedVolumes does: the smaller of `sizeLimit` and the sum of the containers' memory
  limits (when every container has one); with neither, the kernel's default (half the RAM). The
  kernel enforces the size: a write past it fails with ENOSPC.
- `sizeLimit` on a disk-backed emptyDir: the kubelet's eviction manager measures the volume every
  housekeeping interval and evicts the pod when it holds more; `exceeded` is that measurement
  (bounded: it stops counting once past the limit) and names the volume in upstream's words.
- `medium: HugePages*` is refused: no node here has huge pages to offer.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconcile.core import quantities

MOUNT = "/bin/mount"
HOUSEKEEPING_INTERVAL = 10.0  # seconds: the kubelet's eviction-manager default (--housekeeping-interval)
EVICTED = "Evicted"


class EmptyDirError(Exception):
    """The emptyDir cannot be set up as asked; the message names the volume."""


def _limit(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return quantities.parse_bytes(value)
    except quantities.InvalidQuantity:
        return None  # the API server validated it; a stored oddity means no limit, not a crash


def memory_size(pod: dict[str, Any], volume: dict[str, Any]) -> int | None:
    """The tmpfs size for a memory-backed emptyDir in bytes, or None for the kernel's default."""
    candidates = []
    size_limit = _limit((volume.get("emptyDir") or {}).get("sizeLimit"))
    if size_limit:
        candidates.append(size_limit)
    limits = [_limit(((c.get("resources") or {}).get("limits") or {}).get("memory"))
              for c in (pod.get("spec") or {}).get("containers") or []]
    if limits and all(limits):
        candidates.append(sum(limit for limit in limits if limit))
    return min(candidates) if candidates else None


def prepare(path: Path, pod: dict[str, Any], volume: dict[str, Any]) -> None:
    """The volume's directory, world-writable as the kubelet makes it; a tmpfs for `Memory`."""
    medium = (volume.get("emptyDir") or {}).get("medium") or ""
    if medium not in ("", "Memory"):
        raise EmptyDirError(f'volume {volume["name"]}: emptyDir medium "{medium}" is not supported on this node')
    path.mkdir(parents=True, exist_ok=True)
    if medium == "Memory" and not os.path.ismount(path):
        size = memory_size(pod, volume)
        options = "mode=1777" + (f",size={size}" if size else "")
        result = subprocess.run([MOUNT, "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise EmptyDirError(f'volume {volume["name"]}: cannot mount a tmpfs: {result.stderr.strip()}')
    path.chmod(0o777 if medium == "" else 0o1777)


def limited(pod: dict[str, Any]) -> list[tuple[str, int]]:
    """(name, bytes) of the pod's disk-backed emptyDir volumes that have a sizeLimit."""
    found = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if isinstance(source, dict) and (source.get("medium") or "") == "":
            limit = _limit(source.get("sizeLimit"))
            if limit is not None:
                found.append((volume["name"], limit))
    return found


def usage_over(path: Path, limit: int) -> bool:
    """Whether the files under `path` take more than `limit` bytes (allocated blocks, as `du`);
    stops as soon as they do, and never follows a symlink out of the volume."""
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in (*files, *dirs):
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # removed while we looked
            if total > limit:
                return True
    return False


def exceeded(pod: dict[str, Any], directory_of: Callable[[str], Path]) -> str | None:
    """The eviction message for the first disk-backed emptyDir over its sizeLimit, or None.
    `directory_of(name)` is the volume's host directory."""
    for name, limit in limited(pod):
        if usage_over(directory_of(name), limit):
            source = next(v["emptyDir"] for v in pod["spec"]["volumes"] if v["name"] == name)
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{source["sizeLimit"]}". '
    return None
