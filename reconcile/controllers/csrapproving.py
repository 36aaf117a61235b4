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

Node serving certificates (`kubernetes.io/kubelet-serving`, what a joined agent asks for: the
kubelet's serverTLSBootstrap) are approved too, which upstream stopped doing in 1.11 (its alpha
`selfnodeserver` approval was removed; clusters run an external approver or approve by hand): only
when the request has the serving shape (`csr.kubelet_serving_problems`), its CN is the requester's
own name (a node asking for itself, in group system:nodes), every DNS SAN is a Hostname/InternalDNS/
ExternalDNS and every IP SAN an InternalIP/ExternalIP address of that node's Node object as the API
server has it now, and a SubjectAccessReview allows the requester `create
certificatesigningrequests/selfnodeserver` (bound to system:nodes by default: delete the
`reconcile:node-autoapprove-serving` binding to approve serving certificates by hand). A node can
write its own addresses, so this trusts a node about where it is, not more: it cannot get a
certificate for another node's name or for a name no Node of its own publishes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors
from reconcile.engine import controller as controller_mod
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod

log = logging.getLogger(__name__)


SERVING_MESSAGE = "Auto approving self kubelet serving certificate after SubjectAccessReview and Node address check."
DNS_ADDRESS_TYPES = frozenset({"Hostname", "InternalDNS", "ExternalDNS"})
IP_ADDRESS_TYPES = frozenset({"InternalIP", "ExternalIP"})


def _info(csr: dict[str, Any]) -> certs.CsrInfo | None:
    try:
        return certs.csr_info(csr_mod.request_pem(csr))
    except certs.CertificateError:
        return None


def self_serving(csr: dict[str, Any]) -> certs.CsrInfo | None:
    """The CSR's contents when it is a node's serving certificate request for itself, else None."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csr_mod.KUBELET_SERVING:
        return None
    info = _info(csr)
    if info is None or csr_mod.kubelet_serving_problems(info, spec.get("usages") or []):
        return None
    if (info.identity.user != spec.get("username") or info.identity.user == csr_mod.NODE_USER_PREFIX
            or csr_mod.NODES_GROUP not in (spec.get("groups") or [])):
        return None
    return info


def san_problems(info: certs.CsrInfo, node: dict[str, Any] | None) -> list[str]:
    """Why the SANs asked for are not all the node's own addresses (empty: they are)."""
    if node is None:
        return [f"no Node {info.identity.user.removeprefix(csr_mod.NODE_USER_PREFIX)}"]
    addresses = [a for a in (node.get("status") or {}).get("addresses") or [] if isinstance(a, dict)]
    dns = {a.get("address") for a in addresses if a.get("type") in DNS_ADDRESS_TYPES}
    ips = set()
    for a in addresses:
        if a.get("type") in IP_ADDRESS_TYPES:
            with contextlib.suppress(ValueError, TypeError):
                ips.add(ipaddress.ip_address(a.get("address")))
    problems = [f"DNS name {d} is not an address of the Node" for d in info.dns_names if d not in dns]
    problems += [f"IP address {ip} is not an address of the Node" for ip in info.ip_addresses
                 if ipaddress.ip_address(ip) not in ips]
    return problems


def recognized(csr: dict[str, Any]) -> list[tuple[str, str]]:
    """The (subresource, approval message) permissions that would approve `csr`, most specific first;
    empty when it is not a node client certificate request (serving ones: `self_serving`)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csr_mod.KUBELET_CLIENT:
        return []
    info = _info(csr)
    if info is None:
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
        serving = self_serving(csr)
        if serving is not None:
            await self._serving(csr, serving)
        return None

    async def _serving(self, csr: dict[str, Any], info: certs.CsrInfo) -> None:
        """A node's own serving certificate: its SANs checked against its Node as stored now."""
        name = info.identity.user.removeprefix(csr_mod.NODE_USER_PREFIX)
        try:
            node: dict[str, Any] | None = await self.ctx.client.get("v1", "nodes", name)
        except errors.NotFound:
            node = None
        problems = san_problems(info, node)
        if problems:
            log.info("leaving certificatesigningrequest %s pending: %s", csr["metadata"]["name"], "; ".join(problems))
            return
        if not await self._allowed(csr, "selfnodeserver"):
            log.info("leaving certificatesigningrequest %s pending: %s may not create "
                     "certificatesigningrequests/selfnodeserver", csr["metadata"]["name"], info.identity.user)
            return
        await self._approve(csr, SERVING_MESSAGE)

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
