"""csrsigning: signs approved CertificateSigningRequests of the well-known signers with the cluster
CA (upstream's `csrsigning`, `--cluster-signing-cert-file`/`--cluster-signing-key-file`).

A request that is Approved, not Denied or Failed and has no certificate yet is checked once more
against its signer's rules (the approver may have been a human):
- `kubernetes.io/kube-apiserver-client-kubelet`: a node client certificate's shape exactly;
- `kubernetes.io/kubelet-serving`: a node serving certificate's (its DNS and IP SANs are granted);
- `kubernetes.io/kube-apiserver-client`: client usages, and never `O=system:masters`.
A request that fails them gets a Failed condition (reason SignerValidationFailure) and no
certificate. Otherwise the certificate is valid for `--cluster-signing-duration`, or less when
`spec.expirationSeconds` asks for less (at least 10 minutes), and is written to `status.certificate`.
Other signers' requests are left to their own signers.
"""

from __future__ import annotations

import base64
import datetime
import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors
from reconcile.engine import controller as controller_mod
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod

log = logging.getLogger(__name__)

DEFAULT_DURATION = datetime.timedelta(days=365)  # upstream's --cluster-signing-duration default


def signing_problems(csr: dict[str, Any], info: certs.CsrInfo) -> list[str]:
    spec = csr.get("spec") or {}
    signer, usages = spec.get("signerName"), list(spec.get("usages") or [])
    if signer == csr_mod.KUBELET_CLIENT:
        return csr_mod.kubelet_client_problems(info, usages)
    if signer == csr_mod.KUBELET_SERVING:
        return csr_mod.kubelet_serving_problems(info, usages)
    problems = []
    if "client auth" not in usages or set(usages) - {"client auth", "digital signature", "key encipherment"}:
        problems.append('usages must be "client auth" (with "digital signature", "key encipherment")')
    if csr_mod.MASTERS_GROUP in info.identity.groups:
        problems.append(f"use of {csr_mod.KUBE_APISERVER_CLIENT} signer with {csr_mod.MASTERS_GROUP} group is "
                        "not allowed")
    if info.dns_names or info.ip_addresses or info.emails or info.uris:
        problems.append("subjectAltNames are not allowed")
    return problems


def lifetime(csr: dict[str, Any], maximum: datetime.timedelta) -> datetime.timedelta:
    seconds = (csr.get("spec") or {}).get("expirationSeconds")
    if isinstance(seconds, int) and seconds >= csr_mod.MIN_EXPIRATION_SECONDS:
        return min(maximum, datetime.timedelta(seconds=seconds))
    return maximum


class CsrSigningController:
    """Owns the `csrsigning` engine controller; the CA is read once at start."""

    def __init__(self, ctx: context.ControllerContext, ca: certs.Issued, *,
                 duration: datetime.timedelta = DEFAULT_DURATION) -> None:
        self.ctx = ctx
        self.ca = ca
        self.duration = duration
        self.csrs = ctx.informers.get(csr_mod.API_VERSION, csr_mod.PLURAL)
        self.controller = ctx.controller("csrsigning", self.reconcile,
                                         lookup=lambda key: self.csrs.store.get(None, key[1]))
        self.controller.watch(self.csrs)

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        csr = self.csrs.store.get(None, key[1])
        if csr is None or (csr.get("spec") or {}).get("signerName") not in csr_mod.KNOWN_SIGNERS:
            return None
        if (not csr_mod.has_condition(csr, csr_mod.APPROVED) or csr_mod.has_condition(csr, csr_mod.DENIED)
                or csr_mod.has_condition(csr, csr_mod.FAILED) or csr_mod.issued_certificate(csr)):
            return None
        try:
            pem = csr_mod.request_pem(csr)
            info = certs.csr_info(pem)
        except certs.CertificateError as exc:
            return await self._fail(csr, str(exc))
        problems = signing_problems(csr, info)
        if problems:
            return await self._fail(csr, "; ".join(problems))
        serving = csr["spec"]["signerName"] == csr_mod.KUBELET_SERVING
        try:
            certificate = certs.sign_csr(self.ca, pem, client=not serving, server=serving,
                                         lifetime=lifetime(csr, self.duration),
                                         dns_names=info.dns_names if serving else (),
                                         ip_addresses=info.ip_addresses if serving else ())
        except certs.CertificateError as exc:
            return await self._fail(csr, str(exc))
        status = {**(csr.get("status") or {}), "certificate": base64.b64encode(certificate).decode()}
        await self._write(csr, status)
        log.info("signed certificatesigningrequest %s for %s", csr["metadata"]["name"], info.identity.user)
        return None

    async def _fail(self, csr: dict[str, Any], message: str) -> controller_mod.Result | None:
        log.info("refusing to sign certificatesigningrequest %s: %s", csr["metadata"]["name"], message)
        status = {**(csr.get("status") or {}), "conditions": [
            *csr_mod.conditions(csr), csr_mod.condition(csr_mod.FAILED, "SignerValidationFailure", message)]}
        await self._write(csr, status)
        return None

    async def _write(self, csr: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            await self.ctx.client.replace(csr_mod.API_VERSION, csr_mod.PLURAL, {**csr, "status": status},
                                          subresource="status")
        except errors.NotFound:
            return
