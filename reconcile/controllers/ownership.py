"""Controller ownerReferences: claiming, adopting and releasing objects (upstream ControllerRefManager).

Writes carry the resourceVersion the decision was made on, so an adoption based on a stale
cache fails with 409 instead of overwriting someone else's claim; the caller just retries.
Any other error (e.g. 422) propagates, so the owner's reconcile backs off instead of spinning.
"""

from __future__ import annotations

from typing import Any

from reconcile.client import aio
from reconcile.core import errors, meta, selectors


def controller_ref(owner: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference a controller puts on what it manages (blocks foreground deletion)."""
    md = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": md["name"],
        "uid": md["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    ref = meta.controller_owner(obj)
    return ref is not None and ref.get("uid") == uid


async def adopt(client: aio.AsyncClient, api_version: str, plural: str, obj: dict[str, Any],
                owner: dict[str, Any]) -> dict[str, Any] | None:
    """Add `owner` as controller of `obj`; None if `obj` changed or vanished meanwhile."""
    md = obj["metadata"]
    refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != owner["metadata"]["uid"]]
    refs.append(controller_ref(owner))
    patch = {"metadata": {"ownerReferences": refs, "resourceVersion": md["resourceVersion"]}}
    try:
        return await client.patch(api_version, plural, md["name"], patch, namespace=md.get("namespace"))
    except (errors.Conflict, errors.NotFound):
        return None


async def release(client: aio.AsyncClient, api_version: str, plural: str, obj: dict[str, Any],
                  owner_uid: str) -> dict[str, Any] | None:
    """Drop the ownerReference to `owner_uid` from `obj`; None if it changed or vanished meanwhile."""
    md = obj["metadata"]
    refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != owner_uid]
    patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": md["resourceVersion"]}}
    try:
        return await client.patch(api_version, plural, md["name"], patch, namespace=md.get("namespace"))
    except (errors.Conflict, errors.NotFound):
        return None


async def claim(client: aio.AsyncClient, api_version: str, plural: str, owner: dict[str, Any],
                selector: selectors.LabelSelector, candidates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Objects `owner` controls after adopting matching orphans and releasing non-matching ones.

    Returns (claimed, changed): `changed` says some adopt/release lost a race (retry later).
    An owner being deleted adopts nothing and releases nothing.
    """
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    claimed: list[dict[str, Any]] = []
    raced = False
    for obj in candidates:
        ref = meta.controller_owner(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        matches = selector.matches(labels)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches or deleting:
                claimed.append(obj)
                continue
            if await release(client, api_version, plural, obj, uid) is None:
                raced = True
            continue
        if not matches or deleting or (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        adopted = await adopt(client, api_version, plural, obj, owner)
        if adopted is None:
            raced = True
        else:
            claimed.append(adopted)
    return claimed, raced
