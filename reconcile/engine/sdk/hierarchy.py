"""`rc.adopt(child, owner)`: make an object a controlled child (kopf's adopt).

The owner reference makes the garbage collector delete the child with its owner, and
`blockOwnerDeletion` lets foreground deletion wait for it.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any


def owner_reference(owner: MutableMapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def adopt(
    objs: MutableMapping[str, Any] | Iterable[MutableMapping[str, Any]],
    owner: MutableMapping[str, Any],
    *,
    labels: bool = True,
    namespace: bool = True,
    naming: bool = True,
) -> Any:
    """Set the controller ownerReference, the owner's namespace and labels (without overriding
    the child's own), and a generateName from the owner's name if the child has no name. In place;
    returns its argument."""
    children = [objs] if isinstance(objs, MutableMapping) else list(objs)
    owner_meta = owner.get("metadata") or {}
    ref = owner_reference(owner)
    for child in children:
        meta = child.setdefault("metadata", {})
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
        if any(r.get("controller") for r in refs):
            raise ValueError(f"{meta.get('name')!r} already has a controller owner")
        meta["ownerReferences"] = [*refs, ref]
        if namespace and owner_meta.get("namespace") and not meta.get("namespace"):
            meta["namespace"] = owner_meta["namespace"]
        if labels and owner_meta.get("labels"):
            meta["labels"] = {**owner_meta["labels"], **(meta.get("labels") or {})}
        if naming and not meta.get("name") and not meta.get("generateName"):
            meta["generateName"] = f"{owner_meta['name']}-"
    return objs
