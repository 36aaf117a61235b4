"""Namespaces: Active on create; a delete of a namespace with content leaves it Terminating
until the namespace controller has emptied it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base


class NamespaceStrategy(base.BuiltinStrategy):
    def __init__(self, has_content: Callable[[str], Awaitable[bool]]) -> None:
        self._has_content = has_content  # namespace name -> whether any namespaced object is in it

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Active"}

    async def deletion_pending(self, obj: dict[str, Any]) -> bool:
        return await self._has_content(obj["metadata"]["name"])

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"
