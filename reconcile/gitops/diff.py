"""What the next sync of a folder would change (`reconcile gitops diff`, as `flux diff kustomization`).

The folder (a local checkout, or a chart in it) is rendered and prepared exactly as `sync_once`
does (`syncs.build`: target namespace, owner labels, apply order), each object is applied as a
server-side dry run with the Sync's field manager, and the answer is compared with the live object,
fields the server keeps for itself left out. Inventory entries the render no longer has are what
the sync would prune. Nothing is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.core import errors
from reconcile.gitops import plan, render, syncs

# metadata the server sets on every write: a diff of them says nothing about the repository
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


@dataclass
class Change:
    ref: str  # "Kind/namespace/name"
    live: dict[str, Any] | None  # None: it would be created
    after: dict[str, Any] | None  # None: it would be pruned


def comparable(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    found = copy.deepcopy(obj)
    metadata = found.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        metadata.pop(key, None)
    found.pop("status", None)
    return found


async def changes(client: Any, folder: Path, sync: dict[str, Any], *,
                  renderer: render.ChartRenderer | None = None) -> list[Change]:
    """Each object the sync would create, change or prune; [] when it would change nothing.
    Raises syncs.SyncFailed (file, document and field named) for a folder that would not sync."""
    settings = syncs.Settings.of(sync)
    targets = await syncs.build(client, folder, settings, renderer=renderer, sync=sync)
    found: list[Change] = []
    rendered: set[tuple[str, str, str, str]] = set()
    for target in targets:
        rendered.add(target.entry.key)
        meta = target.obj["metadata"]
        if target.resource is None:  # a kind this very render defines: it would be created with its CRD
            found.append(Change(target.ref, None, target.obj))
            continue
        try:
            live = await client.get(target.resource.api_version, target.resource.plural, meta["name"],
                                    namespace=meta.get("namespace"))
        except errors.NotFound:
            live = None
        try:
            after = await client.patch(target.resource.api_version, target.resource.plural, meta["name"], target.obj,
                                       namespace=meta.get("namespace"), patch_type="apply",
                                       field_manager=syncs.FIELD_MANAGER, force=True, dry_run=True)
        except errors.ApiError as exc:
            raise syncs.SyncFailed(syncs.RECONCILIATION_FAILED,
                                   f"{target.where}: {target.ref} dry-run failed: {exc.message}") from None
        before, later = comparable(live), comparable(after)
        if before != later:
            found.append(Change(target.ref, before, later))
    inventory = ((sync.get("status") or {}).get("inventory") or {}).get("entries") or []
    if settings.prune:
        for entry in (plan.Entry.from_status(raw) for raw in inventory):
            if entry is not None and entry.key not in rendered:
                found.append(Change(entry.ref(), {"kind": entry.kind, "metadata": {"name": entry.name}}, None))
    return found
