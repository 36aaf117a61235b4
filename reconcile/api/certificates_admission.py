"""Admission for CertificateSigningRequests: who asked, who may approve, who may sign, and which
subjects no signer here issues (upstream's csr strategies and the CertificateApproval,
CertificateSigning and CertificateSubjectRestriction plugins).

- `Requester` (mutating, create): `spec.username`, `uid`, `groups` and `extra` are the authenticated
  requester's, whatever the body said, so an approver can trust them.
- `Subresources`: `/approval` changes only the conditions (the rest of the status is kept) and may
  not remove an Approved or Denied condition; `/status` may not add or remove them, and may set
  `status.certificate` only on an Approved request that is neither Denied nor Failed. Missing
  condition timestamps are filled in.
- `Approval` / `Signing`: writing an Approved or Denied condition needs the verb `approve`, setting
  the certificate the verb `sign`, on `signers` (group certificates.k8s.io) named after the signer
  (`example.com/name`) or its domain (`example.com/*`), as upstream's plugins ask the authorizer.
- `SubjectRestriction`: a `kubernetes.io/kube-apiserver-client` request for `O=system:masters` is
  refused at create.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from reconcile.api import admission, authz
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod

GROUP = "certificates.k8s.io"
PLURAL = "certificatesigningrequests"


def _ours(attributes: admission.Attributes) -> bool:
    return attributes.resource.group == GROUP and attributes.resource.plural == PLURAL


def _approval_types(obj: dict[str, Any] | None) -> set[str]:
    return {c.get("type", "") for c in csr_mod.conditions(obj or {}) if c.get("type") in csr_mod.APPROVAL_TYPES}


def _stamp(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Upstream's populateConditionTimestamps: a new or changed condition gets now."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {c.get("type"): c for c in csr_mod.conditions(old or {})}
    for cond in csr_mod.conditions(new):
        previous = before.get(cond.get("type"))
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            same = previous is not None and previous.get("status") == cond.get("status")
            cond["lastTransitionTime"] = previous.get("lastTransitionTime", now) if same and previous else now


class Requester(admission.Plugin):
    name = "CertificateSigningRequestRequester"

    async def mutate(self, attributes: admission.Attributes) -> None:
        if not _ours(attributes) or attributes.operation != admission.CREATE or attributes.obj is None:
            return
        spec = attributes.obj.setdefault("spec", {})
        user = attributes.user
        spec["username"] = user.name
        for key in ("uid", "groups", "extra"):
            spec.pop(key, None)
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}


class Subresources(admission.Plugin):
    name = "CertificateSigningRequestSubresources"

    async def mutate(self, attributes: admission.Attributes) -> None:
        if not _ours(attributes) or attributes.operation != admission.UPDATE or attributes.obj is None:
            return
        new, old = attributes.obj, attributes.old or {}
        if attributes.subresource == "approval":
            conditions = (new.get("status") or {}).get("conditions")
            new["status"] = copy.deepcopy(old.get("status") or {})
            if conditions is not None:
                new["status"]["conditions"] = conditions
            else:
                new["status"].pop("conditions", None)
        if attributes.subresource in ("approval", "status"):
            _stamp(new, old)

    async def validate(self, attributes: admission.Attributes) -> None:
        if not _ours(attributes) or attributes.operation != admission.UPDATE or attributes.obj is None:
            return
        new, old = attributes.obj, attributes.old or {}
        before, after = _approval_types(old), _approval_types(new)
        if attributes.subresource == "approval":
            for kind in sorted(before - after):
                raise admission.forbidden(attributes, f'updates may not remove a condition of type "{kind}"')
        elif attributes.subresource == "status":
            for kind in sorted(after - before):
                raise admission.forbidden(attributes, f'updates may not add a condition of type "{kind}"')
            for kind in sorted(before - after):
                raise admission.forbidden(attributes, f'updates may not remove a condition of type "{kind}"')
            certificate = (new.get("status") or {}).get("certificate")
            if certificate and certificate != (old.get("status") or {}).get("certificate"):
                if (csr_mod.APPROVED not in after or csr_mod.has_condition(new, csr_mod.DENIED)
                        or csr_mod.has_condition(new, csr_mod.FAILED)):
                    raise admission.forbidden(attributes, "certificate can only be set on an approved "
                                                          "CertificateSigningRequest that has not failed")


class _SignerVerb(admission.Plugin):
    """Asks the authorizer for `verb` on signers/<signerName> or signers/<domain>/*."""

    verb = ""
    subresource = ""

    def __init__(self, authorizer: authz.Authorizer) -> None:
        self.authorizer = authorizer

    def applies(self, attributes: admission.Attributes) -> bool:
        raise NotImplementedError

    async def validate(self, attributes: admission.Attributes) -> None:
        if not _ours(attributes) or attributes.operation != admission.UPDATE or attributes.subresource != self.subresource:
            return
        if not self.applies(attributes):
            return
        signer = ((attributes.old or {}).get("spec") or {}).get("signerName", "")
        for name in (signer, signer.split("/", 1)[0] + "/*"):
            decision = await self.authorizer.authorize(authz.Attributes(
                attributes.user, self.verb, True, "", GROUP, "*", "signers", "", "", name))
            if decision.allowed:
                return
        raise admission.forbidden(attributes, f'user not permitted to {self.verb} requests with signerName "{signer}"')


class Approval(_SignerVerb):
    name = "CertificateApproval"
    verb = "approve"
    subresource = "approval"

    def applies(self, attributes: admission.Attributes) -> bool:
        return _approval_types(attributes.obj) != _approval_types(attributes.old)


class Signing(_SignerVerb):
    name = "CertificateSigning"
    verb = "sign"
    subresource = "status"

    def applies(self, attributes: admission.Attributes) -> bool:
        new = ((attributes.obj or {}).get("status") or {}).get("certificate")
        return bool(new) and new != ((attributes.old or {}).get("status") or {}).get("certificate")


class SubjectRestriction(admission.Plugin):
    name = "CertificateSubjectRestriction"

    async def validate(self, attributes: admission.Attributes) -> None:
        if not _ours(attributes) or attributes.operation != admission.CREATE or attributes.obj is None:
            return
        if (attributes.obj.get("spec") or {}).get("signerName") != csr_mod.KUBE_APISERVER_CLIENT:
            return
        try:
            identity = certs.csr_info(csr_mod.request_pem(attributes.obj)).identity
        except certs.CertificateError:
            return  # validation refuses it, naming the field
        if csr_mod.MASTERS_GROUP in identity.groups:
            raise admission.forbidden(attributes, f"use of {csr_mod.KUBE_APISERVER_CLIENT} signer with "
                                                  f"{csr_mod.MASTERS_GROUP} group is not allowed")
