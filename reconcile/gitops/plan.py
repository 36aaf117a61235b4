"""What one Sync does with one render: the apply order, the prune set, conflicts and health.

Pure functions over plain objects, so the controller's decisions are unit- and property-tested
without a server. The plan is idempotent: planning the same render against the inventory it
produced yields no prunes, which is why a Sync killed mid-apply and restarted converges.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

GROUP = "gitops.reconcile.dev"
SYNC_WAVE = f"{GROUP}/sync-wave"
PRUNE = f"{GROUP}/prune"
OWNER_NAME = f"{GROUP}/name"
OWNER_NAMESPACE = f"{GROUP}/namespace"
CHART_RELEASE = "charts.reconcile.dev/release-name"
FIRST_KINDS = ("Namespace", "CustomResourceDefinition")


@dataclass(frozen=True, order=True)
class Entry:
    """One inventory entry: an object this Sync applied."""

    group: str
    kind: str
    namespace: str
    name: str
    version: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.group, self.kind, self.namespace, self.name)

    def to_status(self) -> dict[str, str]:
        return {"group": self.group, "version": self.version, "kind": self.kind,
                "namespace": self.namespace, "name": self.name}

    @classmethod
    def from_status(cls, raw: Any) -> Entry | None:
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k, ""), str) for k in
                                                ("group", "kind", "namespace", "name", "version")):
            return None
        if not raw.get("kind") or not raw.get("name"):
            return None
        return cls(raw.get("group", ""), raw["kind"], raw.get("namespace", ""), raw["name"], raw.get("version", ""))

    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def entry_of(obj: dict[str, Any]) -> Entry:
    group, version = split_api_version(str(obj.get("apiVersion") or ""))
    meta = obj.get("metadata") or {}
    return Entry(group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                 version)


def inventory_of(status: Any) -> list[Entry]:
    entries = ((status or {}).get("inventory") or {}).get("entries") if isinstance(status, dict) else None
    found = [Entry.from_status(raw) for raw in entries or []]
    return [e for e in found if e is not None]


def _annotation(obj: dict[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def wave(obj: dict[str, Any]) -> int:
    """The object's sync wave (0 when unset or not an integer)."""
    try:
        return int(_annotation(obj, SYNC_WAVE) or 0)
    except ValueError:
        return 0


def apply_order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces, then CRDs, then by sync wave (ascending); ties keep the render's order."""
    indexed = list(enumerate(objects))

    def rank(item: tuple[int, dict[str, Any]]) -> tuple[int, int, int]:
        index, obj = item
        kind = obj.get("kind")
        first = FIRST_KINDS.index(kind) if kind in FIRST_KINDS else len(FIRST_KINDS)
        return (first, wave(obj) if first == len(FIRST_KINDS) else 0, index)

    return [obj for _, obj in sorted(indexed, key=rank)]


def same_kind_runs(items: Sequence[T], obj: Callable[[T], dict[str, Any]]) -> list[list[T]]:
    """`items` (in apply order) cut into runs of neighbours of one kind (apiVersion and kind).

    The Sync applies one run concurrently: objects of one kind do not need each other to exist,
    while a kind may need one listed before it (a ServiceAccount before its Deployment). Runs keep
    their order, so every pair of objects of different kinds is applied in the render's order."""
    runs: list[list[T]] = []
    last: tuple[Any, Any] | None = None
    for item in items:
        kind = (obj(item).get("apiVersion"), obj(item).get("kind"))
        if runs and kind == last:
            runs[-1].append(item)
        else:
            runs.append([item])
        last = kind
    return runs


def with_defaults(obj: dict[str, Any], *, target_namespace: str | None, namespaced: bool, sync: tuple[str, str]
                  ) -> dict[str, Any]:
    """The object as it is applied: namespace defaulted (targetNamespace overrides a namespaced
    object's own, as Flux does), owner labels set."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    if namespaced:
        if target_namespace:
            meta["namespace"] = target_namespace
        else:
            meta["namespace"] = meta.get("namespace") or sync[0]
    else:
        meta.pop("namespace", None)
    meta["labels"] = {**(meta.get("labels") or {}), OWNER_NAME: sync[1], OWNER_NAMESPACE: sync[0]}
    return out


def prune_set(old: Iterable[Entry], new: Iterable[Entry], live: dict[tuple[str, str, str, str], dict[str, Any]]
              | None = None) -> list[Entry]:
    """Entries of the old inventory missing from the new, in reverse apply order (later first),
    without those whose live object says `prune: disabled`. Nothing outside `old` is ever named."""
    new_keys = {e.key for e in new}
    old_list = list(dict.fromkeys(old))
    gone = [e for e in old_list if e.key not in new_keys]
    kept = []
    for entry in gone:
        obj = (live or {}).get(entry.key)
        if obj is not None and _annotation(obj, PRUNE) == "disabled":
            continue
        kept.append(entry)

    def rank(entry: Entry) -> int:
        return FIRST_KINDS.index(entry.kind) if entry.kind in FIRST_KINDS else len(FIRST_KINDS)

    return sorted(reversed(kept), key=lambda e: -rank(e))


def conflict(live: dict[str, Any] | None, sync: tuple[str, str]) -> str | None:
    """Why `live` may not be applied by this Sync (owned by another Sync or a chart release)."""
    if not live:
        return None
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    owner = (labels.get(OWNER_NAMESPACE), labels.get(OWNER_NAME))
    if owner[1] and owner != sync:
        return f"owned by Sync {owner[0]}/{owner[1]}"
    release = (meta.get("annotations") or {}).get(CHART_RELEASE)
    if release:
        release_ns = (meta.get("annotations") or {}).get("charts.reconcile.dev/release-namespace", "")
        return f"owned by chart release {release_ns}/{release}"
    return None


def _without_write_times(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with each managedFields entry's `time` left out (a no-op apply may restamp it)."""
    meta = obj.get("metadata") or {}
    managed = meta.get("managedFields")
    if not isinstance(managed, list):
        return obj
    entries = [{k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e for e in managed]
    return {**obj, "metadata": {**meta, "managedFields": entries}}


def apply_is_noop(live: dict[str, Any] | None, dry_run: Any) -> bool:
    """Whether the server-side dry run of an apply proves the apply itself would change nothing.

    It does when the dry run's answer is the live object itself: computed on that very object (the
    same resourceVersion, so no write came between the read and the dry run) and equal to it in
    every field, field ownership (managedFields) included, only their timestamps aside. Then the
    apply would store nothing, and skipping it changes nothing either; an answer that differs in
    anything (a hand edit to revert, a field another manager holds) is applied as before.
    """
    if not isinstance(live, dict) or not isinstance(dry_run, dict):
        return False
    version = (live.get("metadata") or {}).get("resourceVersion")
    if not version or version != (dry_run.get("metadata") or {}).get("resourceVersion"):
        return False
    return _without_write_times(live) == _without_write_times(dry_run)


# --- health (kstatus-style) ------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ready_condition(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """("Current" | "InProgress" | "Failed", why) for one live object."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    generation = _int(meta.get("generation"))
    if "observedGeneration" in status and _int(status.get("observedGeneration")) < generation:
        return "InProgress", "observedGeneration has not caught up"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        if kind != "ReplicaSet" and _int(status.get("observedGeneration")) < generation:
            return "InProgress", "observedGeneration has not caught up"
        want = spec.get("replicas", 1)
        want = _int(want)
        updated = _int(status.get("updatedReplicas" if kind != "ReplicaSet" else "replicas"))
        ready = _int(status.get("readyReplicas"))
        available = _int(status.get("availableReplicas"))
        if kind != "ReplicaSet" and updated < want:
            return "InProgress", f"{updated} of {want} replicas updated"
        if ready < want:
            return "InProgress", f"{ready} of {want} replicas ready"
        if kind == "Deployment" and available < want:
            return "InProgress", f"{available} of {want} replicas available"
        return "Current", f"{want} replicas ready"
    if kind == "Pod":
        phase = status.get("phase")
        if phase == "Failed":
            return "Failed", "pod failed"
        if phase == "Succeeded":
            return "Current", "pod succeeded"
        for cond in status.get("conditions") or []:
            if isinstance(cond, dict) and cond.get("type") == "Ready" and cond.get("status") == "True":
                return "Current", "pod ready"
        return "InProgress", f"pod {phase or 'Pending'}"
    if kind == "PersistentVolumeClaim":
        return ("Current", "bound") if status.get("phase") == "Bound" else ("InProgress", "not bound")
    ready = _ready_condition(status)
    if ready == "True":
        return "Current", "Ready"
    if ready == "False":
        return "InProgress", "Ready=False"
    return "Current", "no health to check"
