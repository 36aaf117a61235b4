"""csrapproving: auto-approves node client certificate requests, by upstream's rules (the
`csrapproving` controller's sarApprover).

Only `kubernetes.io/kube-apiserver-client-kubelet` requests that are still undecided, and only when
the request is exactly a node client certificate's (`csr.kubelet_client_problems` is empty:
`CN=system:node:<name>`, `O=system:nodes` and nothing else, no SANs, usages client auth and digital
signature). Then, as upstream, the requester (spec.username, groups, ...) is checked with a
SubjectAccessReview:
- a renewal, CN equal to the requester's own name: `create certificatesigningrequests/selfnodeclient`
  (kubeadm grants it to `system:nodes`);
- any node name: `create certificatesigningrequests/nodeclient` (kubeadm grants it to the bootstrap
  tokens' group).
Allowed: an Approved condition (reason AutoApproved) through /approval. Anything else stays pending
for a human (`kubectl certificate approve`): a request for `system:masters`, for another node's name
by a node, by a user without either permission.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors
from reconcile.engine import controller as controller_mod
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod

log = logging.getLogger(__name__)


def recognized(csr: dict[str, Any]) -> list[tuple[str, str]]:
    """The (subresource, approval message) permissions that would approve `csr`, most specific first;
    empty when it is not a node client certificate request."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csr_mod.KUBELET_CLIENT:
        return []
    try:
        info = certs.csr_info(csr_mod.request_pem(csr))
    except certs.CertificateError:
        return []
    if csr_mod.kubelet_client_problems(info, spec.get("usages") or []):
        return []
    found = []
    if info.identity.user == spec.get("username"):
        found.append(("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."))
    found.append(("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."))
    return found


class CsrApprovingController:
    """Owns the `csrapproving` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.csrs = ctx.informers.get(csr_mod.API_VERSION, csr_mod.PLURAL)
        self.controller = ctx.controller("csrapproving", self.reconcile,
                                         lookup=lambda key: self.csrs.store.get(None, key[1]))
        self.controller.watch(self.csrs)

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        csr = self.csrs.store.get(None, key[1])
        if csr is None or any(csr_mod.has_condition(csr, t) for t in (*csr_mod.APPROVAL_TYPES, csr_mod.FAILED)):
            return None
        for subresource, message in recognized(csr):
            if await self._allowed(csr, subresource):
                await self._approve(csr, message)
                return None
        return None

    async def _allowed(self, csr: dict[str, Any], subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": spec.get("username", ""), "uid": spec.get("uid", ""), "groups": spec.get("groups") or [],
            "extra": spec.get("extra") or {},
            "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                   "verb": "create", "subresource": subresource}}}
        answer = await self.ctx.client.create("authorization.k8s.io/v1", "subjectaccessreviews", review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def _approve(self, csr: dict[str, Any], message: str) -> None:
        updated = {**csr, "status": {**(csr.get("status") or {}), "conditions": [
            *csr_mod.conditions(csr), csr_mod.condition(csr_mod.APPROVED, "AutoApproved", message)]}}
        try:
            await self.ctx.client.replace(csr_mod.API_VERSION, csr_mod.PLURAL, updated, subresource="approval")
        except errors.NotFound:
            return
        log.info("approved certificatesigningrequest %s of %s", csr["metadata"]["name"],
                 (csr.get("spec") or {}).get("username"))
