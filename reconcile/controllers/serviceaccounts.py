"""ServiceAccounts controller: every namespace has a `default` ServiceAccount, made again if deleted.

Upstream's serviceaccounts-controller (pkg/controller/serviceaccount): keyed by namespace, woken by
a namespace change and by any ServiceAccount change in it (a deleted `default` is recreated);
nothing is made in a namespace being terminated (the namespace controller is emptying it). The
ServiceAccount admission plugin waits briefly for this controller when a pod arrives first.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"


def terminating(namespace: dict[str, Any]) -> bool:
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp")) or \
        (namespace.get("status") or {}).get("phase") == "Terminating"


class ServiceAccountsController:
    """Owns the `serviceaccount` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.namespaces = ctx.informers.get("v1", "namespaces")
        self.accounts = ctx.informers.get("v1", "serviceaccounts")
        self.controller = ctx.controller("serviceaccount", self.reconcile,
                                         lookup=lambda key: self.namespaces.store.get(None, key[1]))
        self.controller.watch(self.namespaces, to_keys=lambda ns: [("", (ns.get("metadata") or {}).get("name", ""))])
        self.controller.watch(self.accounts, to_keys=self._namespace_of)

    @staticmethod
    def _namespace_of(account: dict[str, Any]) -> list[controller_mod.Key]:
        metadata = account.get("metadata") or {}
        return [("", metadata.get("namespace") or "")] if metadata.get("name") == DEFAULT_NAME else []

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        name = key[1]
        namespace = self.namespaces.store.get(None, name)
        if namespace is None or terminating(namespace):
            return None
        if self.accounts.store.get(name, DEFAULT_NAME) is not None:
            return None
        account = {"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": DEFAULT_NAME, "namespace": name}}
        try:
            await self.ctx.client.create("v1", "serviceaccounts", account, namespace=name)
        except errors.AlreadyExists:
            return None  # the informer is behind; it will show the account
        except (errors.NotFound, errors.Forbidden):
            return None  # the namespace went, or is terminating (NamespaceLifecycle refused)
        log.info("namespace %s: created serviceaccount default", name)
        return None
