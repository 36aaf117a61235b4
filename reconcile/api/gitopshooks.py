"""GitOps Receivers' webhooks on the API server: `POST /hooks/gitops/<digest>` asks for a fetch now.

A push from GitHub, GitLab or any CI carries no cluster credentials, so the pipeline answers this
path to anyone (`pipeline.PUBLIC_PREFIXES`): what proves the sender is the path itself (a digest
of the Receiver's secret token, its name and its namespace, so it cannot be guessed) and the
body's signature under that token, both checked by `webhookreceiver.handle` in constant time. An
unknown path is 404, a bad or missing signature 401, and neither writes anything.

Served here rather than on a port of the GitOps controller's own (as Flux's notification-controller
does) because the API server is the one address a cluster already exposes and secures; the GitOps
controller still writes each Receiver's `status.webhookPath`. The Receivers and their Secrets are
read from the watch caches, each brought current first (a Receiver made a moment ago is found);
an accepted push merge-patches the requestedAt annotation onto each target GitRepository in the
Receiver's namespace as `system:gitops-receiver`, which the source controller fetches at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reconcile.api import authn, listing, registry, rest
from reconcile.core import errors, webhookreceiver

log = logging.getLogger(__name__)

ROUTE = webhookreceiver.PATH_PREFIX + "{digest}"
USER = authn.UserInfo("system:gitops-receiver", groups=("system:authenticated",))
FIELD_MANAGER = "gitops-receiver"
_REFUSALS: dict[int, type[errors.ApiError]] = {
    400: errors.BadRequest, 401: errors.Unauthorized, 404: errors.NotFound,
    405: errors.MethodNotAllowed, 413: errors.RequestEntityTooLarge,
}


class Hooks:
    """Finds the Receiver a hook's path names and acts on its decision."""

    def __init__(self, api: rest.Rest) -> None:
        self.api = api

    def _resource(self, group: str, plural: str) -> registry.Resource | None:
        return self.api.registry.get(group, "v1", plural)

    async def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The Status to send for one request (a refusal is raised as its ApiError)."""
        decision = webhookreceiver.handle(method, headers, body, await self.find(path))
        if decision.status != 200:
            raise _REFUSALS.get(decision.status, errors.BadRequest)(decision.message)
        if decision.trigger:
            await self.request_fetch(decision.targets)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "message": decision.message, "code": 200}

    async def find(self, path: str) -> webhookreceiver.Receiver | None:
        """The unsuspended Receiver whose token, name and namespace digest to `path`, if any."""
        receivers = self._resource(webhookreceiver.GROUP, "receivers")
        secrets = self._resource("", "secrets")
        if receivers is None or secrets is None or not path.startswith(webhookreceiver.PATH_PREFIX):
            return None
        listed = await self.api.list(receivers, rest.Selection(), listing.ListOptions())
        await self.api.cache(secrets)  # current, so each Secret below is read as of now
        for entry in listed.entries:
            obj: dict[str, Any] = entry.obj
            if (obj.get("spec") or {}).get("suspend"):
                continue
            namespace = str((obj.get("metadata") or {}).get("namespace") or "")
            try:
                secret = await self.api.get(secrets, namespace, webhookreceiver.secret_name(obj), resource_version="0")
            except errors.NotFound:
                continue
            token = webhookreceiver.token(secret.obj)
            if not token:
                continue
            candidate = webhookreceiver.from_object(obj, token)
            if candidate.path == path:
                return candidate
        return None

    async def request_fetch(self, targets: tuple[tuple[str, str], ...]) -> None:
        repositories = self._resource(webhookreceiver.GROUP, "gitrepositories")
        if repositories is None:
            return
        patch = webhookreceiver.request_patch(webhookreceiver.requested_at())
        for namespace, name in targets:
            try:
                await self.api.patch(repositories, namespace, name, "merge", patch, user=USER,
                                     field_manager=FIELD_MANAGER)
            except errors.NotFound:
                log.info("gitops hook: GitRepository %s/%s not found", namespace, name)
            except errors.ApiError as exc:  # one target refused never keeps the others from fetching
                log.warning("gitops hook: GitRepository %s/%s: %s", namespace, name, exc.message)

