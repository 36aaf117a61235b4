"""Key layout in etcd: `<group>/<plural>/[<namespace>/]<name>`, relative to the store's prefix.

One place decides the layout so the API server, the watch cache and the tests agree on it.
The core group ("") is spelled "core" so every key has the same number of segments.
"""

from __future__ import annotations


def _group(group: str) -> str:
    return group or "core"


def resource_prefix(group: str, plural: str) -> str:
    """`apps/deployments/`: every object of one resource, all namespaces."""
    return f"{_group(group)}/{plural}/"


def namespace_prefix(group: str, plural: str, namespace: str) -> str:
    """`apps/deployments/default/`: the objects of one resource in one namespace."""
    return f"{resource_prefix(group, plural)}{namespace}/"


def object_key(group: str, plural: str, namespace: str | None, name: str) -> str:
    """The key of one object; cluster-scoped objects (no namespace) have no namespace segment."""
    if namespace:
        return f"{namespace_prefix(group, plural, namespace)}{name}"
    return f"{resource_prefix(group, plural)}{name}"


def resource_of(key: str) -> tuple[str, str]:
    """(group, plural) of an object key, the inverse of `object_key` (the core group is "")."""
    group, _, rest = key.partition("/")
    return ("" if group == "core" else group), rest.partition("/")[0]


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix` (etcd's `range_end`)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key
