"""Root CA publisher: every namespace has the ConfigMap `kube-root-ca.crt` with the cluster CA at
`ca.crt`, so pods verify the API server (the projected token volume mounts it).

Upstream's root-ca-cert-publisher (pkg/controller/certificates/rootcacertpublisher): the CA comes
from the controller-manager's --root-ca-file; the ConfigMap carries the annotation
`kubernetes.io/description`; one that is missing is created, one whose data or description differ
is updated (a user's edit is put back), and nothing is done in a namespace being terminated.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context
from reconcile.controllers.serviceaccounts import terminating
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

NAME = "kube-root-ca.crt"
KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class RootCACertPublisher:
    """Owns the `root-ca-cert-publisher` engine controller."""

    def __init__(self, ctx: context.ControllerContext, root_ca: str) -> None:
        self.ctx = ctx
        self.root_ca = root_ca
        self.namespaces = ctx.informers.get("v1", "namespaces")
        self.config_maps = ctx.informers.get("v1", "configmaps")
        self.controller = ctx.controller("root-ca-cert-publisher", self.reconcile,
                                         lookup=lambda key: self.namespaces.store.get(None, key[1]))
        self.controller.watch(self.namespaces, to_keys=lambda ns: [("", (ns.get("metadata") or {}).get("name", ""))])
        self.controller.watch(self.config_maps, to_keys=self._namespace_of)

    @staticmethod
    def _namespace_of(config_map: dict[str, Any]) -> list[controller_mod.Key]:
        metadata = config_map.get("metadata") or {}
        return [("", metadata.get("namespace") or "")] if metadata.get("name") == NAME else []

    def _wanted(self, namespace: str, current: dict[str, Any] | None) -> dict[str, Any]:
        metadata = dict((current or {}).get("metadata") or {"name": NAME, "namespace": namespace})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), DESCRIPTION_ANNOTATION: DESCRIPTION}
        return {**(current or {}), "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                "data": {KEY: self.root_ca}}

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        name = key[1]
        namespace = self.namespaces.store.get(None, name)
        if namespace is None or terminating(namespace):
            return None
        current = self.config_maps.store.get(name, NAME)
        wanted = self._wanted(name, current)
        try:
            if current is None:
                await self.ctx.client.create("v1", "configmaps", wanted, namespace=name)
                log.info("namespace %s: published %s", name, NAME)
            elif current.get("data") != wanted["data"] or \
                    ((current.get("metadata") or {}).get("annotations") or {}).get(DESCRIPTION_ANNOTATION) != DESCRIPTION:
                wanted.pop("binaryData", None)
                await self.ctx.client.replace("v1", "configmaps", wanted)
                log.info("namespace %s: %s put back", name, NAME)
        except errors.AlreadyExists:
            return None  # the informer is behind
        except (errors.NotFound, errors.Forbidden):
            return None  # the namespace went or is terminating
        # A Conflict (an edit raced ours) is retried with backoff.
        return None
