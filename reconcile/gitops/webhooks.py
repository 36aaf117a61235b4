"""Receivers served over HTTP: `reconcile gitops controller --receiver-address` answers each Receiver's path.

`Receivers` keeps the Receivers of the cluster by webhook path (from an informer; each one's token
read from its Secret, key `token`) and writes each one's status (`webhookPath`, `Ready`) as Flux's
notification-controller does. `WebhookServer` serves `POST /hooks/gitops/<digest>`: the decision
is `receiver.handle` (signatures checked in constant time; an unknown path is 404, a bad
signature 401, and neither touches anything); an accepted one merge-patches the requestedAt
annotation onto each target GitRepository, which the source controller fetches at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from reconcile.api import httpserver
from reconcile.client import aio
from reconcile.client import informer as informer_mod
from reconcile.core import errors
from reconcile.engine import controller as controller_mod
from reconcile.gitops import receiver as receiver_mod
from reconcile.gitops import sources, syncs

log = logging.getLogger(__name__)

API_VERSION = sources.API_VERSION
PLURAL = "receivers"
TOKEN_KEY = "token"
TOKEN_RECHECK = 60.0  # seconds: a rotated token takes effect within this (Flux watches the Secret)


class Receivers:
    """The Receivers by webhook path, and their status."""

    def __init__(self, client: aio.AsyncClient, *, workers: int = 1) -> None:
        self.client = client
        self.informer = informer_mod.Informer(client, API_VERSION, PLURAL)
        self._by_path: dict[str, receiver_mod.Receiver] = {}
        self.controller = controller_mod.Controller("receiver-controller", self.reconcile, workers=workers,
                                                    lookup=lambda key: self.informer.store.get(*key))
        self.controller.watch(self.informer)
        self._task: asyncio.Task[None] | None = None

    def find(self, path: str) -> receiver_mod.Receiver | None:
        return self._by_path.get(path)

    def _forget(self, key: tuple[str, str]) -> None:
        self._by_path = {p: r for p, r in self._by_path.items() if (r.namespace, r.name) != key}

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
        self._forget((namespace, name))
        if obj is None:
            return None
        spec = obj.get("spec") or {}
        if spec.get("suspend"):
            await self._status(obj, None, "False", "Suspended", "the Receiver is suspended")
            return None
        secret_name = (spec.get("secretRef") or {}).get("name") or ""
        try:
            secret = await self.client.get("v1", "secrets", secret_name, namespace=namespace)
        except errors.NotFound:
            await self._status(obj, None, "False", "SecretNotFound", f'Secret "{secret_name}" not found')
            return controller_mod.Result(requeue_after=TOKEN_RECHECK)
        token = _token(secret)
        if not token:
            await self._status(obj, None, "False", "TokenNotFound",
                               f'Secret "{secret_name}" has no key "{TOKEN_KEY}"')
            return controller_mod.Result(requeue_after=TOKEN_RECHECK)
        found = receiver_mod.Receiver(
            namespace=namespace, name=name, type=str(spec.get("type") or ""), token=token,
            events=tuple(str(e) for e in spec.get("events") or ()),
            targets=tuple((namespace, str(r.get("name"))) for r in spec.get("resources") or ()
                          if r.get("kind") == "GitRepository" and r.get("name")))
        self._by_path[found.path] = found
        await self._status(obj, found.path, "True", "Succeeded", f"Receiver initialized for path: {found.path}")
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


def _token(secret: dict[str, Any]) -> bytes:
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    if not raw:
        return b""
    try:
        return base64.b64decode(raw, validate=True).strip()
    except (binascii.Error, ValueError):
        return b""


def app(receivers: Receivers, client: aio.AsyncClient) -> Starlette:
    """`/hooks/gitops/<digest>`: the decision of `receiver.handle`, then the annotations."""

    async def hook(request: Request) -> PlainTextResponse:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > receiver_mod.MAX_BODY_BYTES:
                break  # handle() answers 413 without reading the rest
        decision = receiver_mod.handle(request.method, dict(request.headers), bytes(body),
                                       receivers.find(request.url.path))
        if decision.trigger:
            patch = receiver_mod.request_patch(syncs.requested_at())
            for namespace, name in decision.targets:
                try:
                    await client.patch(API_VERSION, sources.PLURAL, name, patch, namespace=namespace)
                except errors.NotFound:
                    log.info("receiver: GitRepository %s/%s not found", namespace, name)
        return PlainTextResponse(decision.message, status_code=decision.status)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(routes=[Route(receiver_mod.PATH_PREFIX + "{digest}", hook, methods=methods)])


class WebhookServer:
    """uvicorn on a socket bound at construction (port 0 picks one; `port` says which)."""

    def __init__(self, application: Starlette, host: str, port: int) -> None:
        self.sock = httpserver.listening_socket(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False,
                                                    lifespan="off", timeout_graceful_shutdown=1))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))
        log.info("receivers served on port %d", self.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()
