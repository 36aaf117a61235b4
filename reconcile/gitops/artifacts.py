"""The artifact store: where fetched revisions wait for the Syncs that apply them.

The source side (GitRepository) fetches a revision, checks every path of it stays inside the
checkout, and publishes it here as a read-only tree; the sync side (Sync) renders from that
tree. The two meet only through this directory and the GitRepository's `status.artifact`
(`revision`, `digest`, `path`), as Flux's source-controller and kustomize-controller meet
through an artifact URL. A published tree is complete or absent: it is written to a
temporary folder and renamed into place, so a reader never sees half a revision.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One published revision of one source, as `status.artifact` names it."""

    revision: str  # "<branch or tag>@sha1:<commit>", or "sha1:<commit>" for a pinned commit
    digest: str  # "sha256:<hex>" over the published tree's paths and contents
    path: str  # relative to the store's root: "<kind>/<namespace>/<name>/<digest hex>"

    def to_status(self) -> dict[str, str]:
        """The `status.artifact` mapping of a GitRepository."""
        return {"revision": self.revision, "digest": self.digest, "path": self.path}

    @classmethod
    def from_status(cls, status: dict) -> Artifact | None:
        """The artifact a GitRepository's status names, or None while it has none."""
        artifact = status.get("artifact") if isinstance(status, dict) else None
        if not isinstance(artifact, dict) or not all(isinstance(artifact.get(key), str)
                                                     for key in ("revision", "digest", "path")):
            return None
        return cls(artifact["revision"], artifact["digest"], artifact["path"])


class ArtifactStore:
    """A folder of published trees, shared by the source and sync controllers of one process."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def relative_path(self, kind: str, namespace: str, name: str, digest: str) -> str:
        """Where the tree of one source's revision lives, relative to the root."""
        return "/".join((kind.lower(), namespace, name, digest.removeprefix("sha256:")))

    def publish(self, tree: Path, *, kind: str, namespace: str, name: str, revision: str,
                digest: str) -> Artifact:
        """Move `tree` (a checked, complete folder on the same filesystem) into place, atomically.

        Publishing a digest already present keeps the present tree (same digest, same content).
        """
        relative = self.relative_path(kind, namespace, name, digest)
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(tree, ignore_errors=True)
        else:
            os.replace(tree, target)
        return Artifact(revision, digest, relative)

    def staging_dir(self) -> Path:
        """A fresh empty folder inside the root (same filesystem, so `publish` can rename it)."""
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=staging))

    def directory(self, artifact: Artifact) -> Path | None:
        """The published tree of `artifact`, or None when it is not (or no longer) here."""
        target = (self.root / artifact.path).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.is_dir():
            return None
        return target

    def garbage_collect(self, kind: str, namespace: str, name: str, *, keep: set[str]) -> None:
        """Remove the trees of one source whose digests are not in `keep` (e.g. the newest two)."""
        folder = self.root / kind.lower() / namespace / name
        if not folder.is_dir():
            return
        wanted = {digest.removeprefix("sha256:") for digest in keep}
        for entry in folder.iterdir():
            if entry.name not in wanted:
                shutil.rmtree(entry, ignore_errors=True)
