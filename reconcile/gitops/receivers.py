"""The Receivers' status: where each one's webhook is and whether it can be used.

Flux's notification-controller both serves the hooks and writes this status; here the API server
serves `POST /hooks/gitops/<digest>` (`api/gitopshooks`, so a push reaches the one address a
cluster already exposes), and this controller writes each Receiver's `status.webhookPath` and its
`Ready` condition (the token read from its Secret, key `token`; a missing Secret or key is
Ready=False and is looked at again every `TOKEN_RECHECK` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from reconcile.client import aio
from reconcile.client import informer as informer_mod
from reconcile.core import errors, webhookreceiver
from reconcile.engine import controller as controller_mod
from reconcile.gitops import sources, syncs

log = logging.getLogger(__name__)

API_VERSION = sources.API_VERSION
PLURAL = "receivers"
TOKEN_RECHECK = 60.0  # seconds: a rotated token takes effect within this (Flux watches the Secret)


class Receivers:
    """The Receivers' status, from an informer of them."""

    def __init__(self, client: aio.AsyncClient, *, workers: int = 1) -> None:
        self.client = client
        self.informer = informer_mod.Informer(client, API_VERSION, PLURAL)
        self.controller = controller_mod.Controller("receiver-controller", self.reconcile, workers=workers,
                                                    lookup=lambda key: self.informer.store.get(*key))
        self.controller.watch(self.informer)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.informer.start()
        await self.informer.wait_synced(timeout=30)
        self._task = asyncio.get_running_loop().create_task(self.controller.run(), name="receiver-controller")

    async def stop(self) -> None:
        await self.controller.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.informer.stop()

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        namespace, name = key
        obj = self.informer.store.get(namespace, name)
        if obj is None:
            return None
        spec = obj.get("spec") or {}
        if spec.get("suspend"):
            await self._status(obj, None, "False", "Suspended", "the Receiver is suspended")
            return None
        secret_name = webhookreceiver.secret_name(obj)
        try:
            secret = await self.client.get("v1", "secrets", secret_name, namespace=namespace)
        except errors.NotFound:
            await self._status(obj, None, "False", "SecretNotFound", f'Secret "{secret_name}" not found')
            return controller_mod.Result(requeue_after=TOKEN_RECHECK)
        token = webhookreceiver.token(secret)
        if not token:
            await self._status(obj, None, "False", "TokenNotFound",
                               f'Secret "{secret_name}" has no key "{webhookreceiver.TOKEN_KEY}"')
            return controller_mod.Result(requeue_after=TOKEN_RECHECK)
        path = webhookreceiver.webhook_path(token, name, namespace)
        await self._status(obj, path, "True", "Succeeded", f"Receiver initialized for path: {path}")
        return controller_mod.Result(requeue_after=TOKEN_RECHECK)

    async def _status(self, obj: dict[str, Any], path: str | None, status: str, reason: str, message: str) -> None:
        md = obj.get("metadata") or {}
        current = obj.get("status") or {}
        ready = next((c for c in current.get("conditions") or [] if c.get("type") == "Ready"), {})
        generation = md.get("generation")
        if (current.get("webhookPath") == path and current.get("observedGeneration") == generation
                and (ready.get("status"), ready.get("reason"), ready.get("message")) == (status, reason, message)):
            return
        condition = {"type": "Ready", "status": status, "reason": reason, "message": message,
                     "observedGeneration": generation,
                     "lastTransitionTime": ready.get("lastTransitionTime") if ready.get("status") == status else syncs.now()}
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.patch(API_VERSION, PLURAL, md["name"], {"status": {
                "webhookPath": path, "observedGeneration": generation, "conditions": [condition]}},
                namespace=md.get("namespace"), subresource="status")
