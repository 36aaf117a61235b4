"""Admission: the plugins every write passes after it was authorized and before it is validated and stored.

`rest` builds one `Attributes` per write attempt and runs the chain: every plugin's `mutate` first
(they may change `attributes.obj`), then every plugin's `validate` (which may only refuse, with an
ApiError). Plugins are built into the server and trusted to leave objects valid; schema and strategy
validation run after them. Later issues add PodSecurity, ResourceQuota, LimitRange, ServiceAccount and
NodeRestriction here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reconcile.api import authn, registry
from reconcile.core import errors

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"


@dataclass(slots=True)
class Attributes:
    operation: str
    resource: registry.Resource
    subresource: str | None
    namespace: str | None
    name: str
    obj: dict[str, Any] | None  # the object as it would be stored (None for DELETE)
    old: dict[str, Any] | None  # the stored object (None for CREATE)
    user: authn.UserInfo
    dry_run: bool


class Plugin:
    """An admission plugin; override one or both stages."""

    name = "plugin"

    async def mutate(self, attributes: Attributes) -> None:
        """Change `attributes.obj` in place (defaults, injected fields)."""

    async def validate(self, attributes: Attributes) -> None:
        """Raise an ApiError to refuse the write."""


class Chain:
    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = list(plugins)

    async def admit(self, attributes: Attributes) -> None:
        for plugin in self.plugins:
            await plugin.mutate(attributes)
        for plugin in self.plugins:
            await plugin.validate(attributes)


class NamespaceLifecycle(Plugin):
    """Upstream's NamespaceLifecycle: nothing is created in a namespace that does not exist or is
    being terminated."""

    name = "NamespaceLifecycle"

    def __init__(self, lookup: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._lookup = lookup  # namespace name -> the Namespace object, or None

    async def validate(self, attributes: Attributes) -> None:
        if attributes.operation != CREATE or not attributes.resource.namespaced or attributes.subresource:
            return
        namespace = attributes.namespace or ""
        found = await self._lookup(namespace)
        if found is None:
            raise errors.NotFound.for_resource("namespaces", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": "namespaces",
                         "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                     "message": f"namespace {namespace} is being terminated"}]},
            )
