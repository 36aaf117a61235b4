"""The tokencleaner: deletes bootstrap token Secrets once they expire (upstream's `tokencleaner`).

Each `bootstrap.kubernetes.io/token` Secret in kube-system is looked at when it changes and again
at its expiration (a requeue for the time left), and deleted when its `expiration` is past, with its
resourceVersion as precondition so a token renewed meanwhile survives. The API server refuses an
expired token on its own (the authenticator reads the expiration); this only tidies up.
"""

from __future__ import annotations

import logging

from reconcile.controllers import context
from reconcile.core import bootstraptoken, errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)


class TokenCleaner:
    """Owns the `tokencleaner` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.secrets = ctx.informers.get("v1", "secrets")
        self.controller = ctx.controller("tokencleaner", self.reconcile,
                                         lookup=lambda key: self.secrets.store.get(key[0], key[1]))
        self.controller.watch(self.secrets, to_keys=self._keys)

    @staticmethod
    def _keys(secret: dict) -> list[controller_mod.Key]:
        metadata = secret.get("metadata") or {}
        if metadata.get("namespace") != bootstraptoken.NAMESPACE or secret.get("type") != bootstraptoken.SECRET_TYPE:
            return []
        return [(bootstraptoken.NAMESPACE, metadata.get("name", ""))]

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        secret = self.secrets.store.get(key[0], key[1])
        if secret is None or secret.get("type") != bootstraptoken.SECRET_TYPE:
            return None
        ends = bootstraptoken.expiration(secret)
        if ends is None:
            return None
        left = (ends - self.ctx.clock.wall()).total_seconds()
        if left > 0:
            return controller_mod.Result(requeue_after=left)
        metadata = secret["metadata"]
        try:
            await self.ctx.client.delete("v1", "secrets", metadata["name"], namespace=key[0],
                                         preconditions={"uid": metadata.get("uid", ""),
                                                        "resourceVersion": metadata.get("resourceVersion", "")})
        except (errors.NotFound, errors.Conflict):  # gone, or changed since: the informer brings it back
            return None
        log.info("deleted expired bootstrap token secret %s/%s", key[0], metadata["name"])
        return None
