"""Release records: one `Release` object (charts.reconcile.dev/v1) per revision, named NAME.vREVISION
in the release's namespace, with the manifest and hooks gzip-compressed.

A new revision is always a create: two clients upgrading one release at once both try to create
NAME.v(N+1) and the server lets exactly one succeed (AlreadyExists for the other), so no revision
is lost and no one overwrites another's record. Status changes are updates carrying the
resourceVersion read, so a stale writer gets a Conflict instead of clobbering.
"""

from __future__ import annotations

import base64
import datetime
import gzip
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import errors

API_VERSION = "charts.reconcile.dev/v1"
PLURAL = "releases"
NAME_LABEL = "charts.reconcile.dev/name"
OWNER_LABEL = "charts.reconcile.dev/owner"
REVISION_LABEL = "charts.reconcile.dev/revision"
STATUS_LABEL = "charts.reconcile.dev/status"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")
DEFAULT_HISTORY_MAX = 10


class OperationInProgress(Exception):
    """Another install, upgrade or rollback of this release is running (or crashed mid-way)."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pack(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode() if text else ""


def _unpack(data: str) -> str:
    return gzip.decompress(base64.b64decode(data)).decode() if data else ""


@dataclass
class Release:
    name: str
    namespace: str
    revision: int
    chart: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""
    hooks: str = ""
    notes: str = ""
    phase: str = "unknown"
    description: str = ""
    first_deployed: str = ""
    last_deployed: str = ""
    resource_version: str | None = None

    @property
    def object_name(self) -> str:
        return f"{self.name}.v{self.revision}"

    @property
    def chart_ref(self) -> str:
        return f"{self.chart.get('name', '')}-{self.chart.get('version', '')}"

    def to_object(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.object_name, "namespace": self.namespace,
            "labels": {NAME_LABEL: self.name, OWNER_LABEL: "reconcile", REVISION_LABEL: str(self.revision),
                       STATUS_LABEL: self.phase},
        }
        if self.resource_version:
            meta["resourceVersion"] = self.resource_version
        return {
            "apiVersion": API_VERSION, "kind": "Release", "metadata": meta,
            "spec": {"name": self.name, "revision": self.revision, "chart": dict(self.chart), "values": self.values,
                     "manifest": _pack(self.manifest), "hooks": _pack(self.hooks), "notes": self.notes},
            "status": {"phase": self.phase, "description": self.description,
                       **({"firstDeployed": self.first_deployed} if self.first_deployed else {}),
                       **({"lastDeployed": self.last_deployed} if self.last_deployed else {})},
        }

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Release:
        spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
        return cls(name=spec["name"], namespace=meta.get("namespace", ""), revision=int(spec["revision"]),
                   chart=dict(spec.get("chart") or {}), values=spec.get("values") or {},
                   manifest=_unpack(spec.get("manifest", "")), hooks=_unpack(spec.get("hooks", "")),
                   notes=spec.get("notes", ""), phase=status.get("phase", "unknown"),
                   description=status.get("description", ""), first_deployed=status.get("firstDeployed", ""),
                   last_deployed=status.get("lastDeployed", ""), resource_version=meta.get("resourceVersion"))


class Store:
    """Release records through an API client (the user's own credentials)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def history(self, name: str, namespace: str) -> list[Release]:
        """Every stored revision of `name`, oldest first."""
        found = self.client.list_all(API_VERSION, PLURAL, namespace=namespace, label_selector=f"{NAME_LABEL}={name}")
        records = [Release.from_object(o) for o in found.get("items") or []]
        return sorted((r for r in records if r.name == name), key=lambda r: r.revision)

    def latest(self, name: str, namespace: str) -> Release | None:
        history = self.history(name, namespace)
        return history[-1] if history else None

    def get(self, name: str, namespace: str, revision: int) -> Release:
        try:
            return Release.from_object(self.client.get(API_VERSION, PLURAL, f"{name}.v{revision}", namespace=namespace))
        except errors.NotFound:
            raise errors.NotFound(f'release: "{name}" has no revision {revision}') from None

    def list(self, namespace: str | None) -> list[Release]:
        """The latest revision of each release in `namespace` (every namespace when None)."""
        found = self.client.list_all(API_VERSION, PLURAL, namespace=namespace, label_selector=f"{OWNER_LABEL}=reconcile")
        latest: dict[tuple[str, str], Release] = {}
        for obj in found.get("items") or []:
            record = Release.from_object(obj)
            key = (record.namespace, record.name)
            if key not in latest or latest[key].revision < record.revision:
                latest[key] = record
        return sorted(latest.values(), key=lambda r: (r.namespace, r.name))

    def create(self, record: Release) -> Release:
        """Store a new revision; losing the race for its name means another operation is running."""
        record.resource_version = None
        try:
            created = self.client.create(API_VERSION, PLURAL, record.to_object(), namespace=record.namespace)
        except errors.AlreadyExists:
            raise OperationInProgress(
                f"another operation (install/upgrade/rollback) is in progress: revision {record.revision} of "
                f'release "{record.name}" was just created by someone else') from None
        record.resource_version = created["metadata"]["resourceVersion"]
        return record

    def update(self, record: Release) -> Release:
        """Write a record's new status (a Conflict if it changed since it was read)."""
        updated = self.client.replace(API_VERSION, PLURAL, record.to_object(),
                                      namespace=record.namespace)
        record.resource_version = updated["metadata"]["resourceVersion"]
        return record

    def delete(self, record: Release) -> None:
        try:
            self.client.delete(API_VERSION, PLURAL, record.object_name, namespace=record.namespace)
        except errors.NotFound:
            pass

    def prune(self, name: str, namespace: str, history_max: int) -> list[int]:
        """Delete the oldest revisions beyond `history_max` (0: keep all); the deployed one always stays."""
        if history_max <= 0:
            return []
        history = self.history(name, namespace)
        removed = []
        excess = len(history) - history_max
        for record in history:
            if excess <= 0:
                break
            if record.phase == "deployed":
                continue
            self.delete(record)
            removed.append(record.revision)
            excess -= 1
        return removed
