"""Kubernetes REST paths to a `RequestInfo` (group, version, resource, namespace, name, subresource)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from reconcile.core import errors

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    group: str
    version: str
    plural: str | None  # None: the group-version discovery document
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@functools.lru_cache(maxsize=4096)  # pure, and clients repeat their paths (collections above all)
def parse(path: str) -> RequestInfo:
    """Parse `/api/v1/...` or `/apis/{group}/{version}/...`; raises NotFound for other shapes."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise errors.no_such_resource()
    if not rest:
        return RequestInfo(group, version, None)
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    if len(rest) > 3:
        raise errors.no_such_resource()
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return RequestInfo(group, version, plural, namespace, name, subresource)
