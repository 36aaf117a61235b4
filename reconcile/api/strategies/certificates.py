"""CertificateSigningRequests (certificates.k8s.io/v1): upstream's csrStrategy and its validation.

- Create: `spec.request` must be a PEM CSR whose signature verifies, `signerName` a qualified name
  (not `kubernetes.io/legacy-unknown`), `usages` known and not repeated, `expirationSeconds` at least
  600. The requester's identity (`spec.username`, `uid`, `groups`, `extra`) is the server's to set:
  `certificates_admission.Requester` writes it from the authenticated user, whatever was sent.
- Update: `spec` never changes (the old one is kept, as upstream's PrepareForUpdate does); status
  conditions are Approved, Denied, Failed or custom types, each at most once; Approved and Denied
  exclude each other and are always status True; `status.certificate` is PEM certificates and, once
  set, immutable. Which subresource may add which condition is admission's
  (`certificates_admission.Subresources`).
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod

_QUALIFIED = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[-A-Za-z0-9_.]+$")


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> base.Cause:
    return errors.cause(field, message, reason)


class CertificateSigningRequestStrategy(base.BuiltinStrategy):
    def prepare_for_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        new["spec"] = copy.deepcopy(old.get("spec"))

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec") or {}
        causes: list[base.Cause] = []
        try:
            certs.csr_info(csr_mod.request_pem(obj))
        except certs.CertificateError as exc:
            causes.append(_cause("spec.request", f"Invalid value: {exc}"))
        signer = spec.get("signerName")
        if not signer:
            causes.append(_cause("spec.signerName", "Required value", "FieldValueRequired"))
        elif signer == csr_mod.LEGACY_UNKNOWN:
            causes.append(_cause("spec.signerName", f'Invalid value: "{signer}": the legacy signerName is not '
                                                    "allowed via this API version"))
        elif not _QUALIFIED.match(signer) or len(signer) > 571:
            causes.append(_cause("spec.signerName", f'Invalid value: "{signer}": must be a fully qualified domain '
                                                    "and path of the form 'example.com/signer-name'"))
        usages = spec.get("usages")
        if not usages:
            causes.append(_cause("spec.usages", "Required value", "FieldValueRequired"))
        else:
            seen: set[str] = set()
            for i, usage in enumerate(usages):
                if usage not in csr_mod.USAGES:
                    supported = ", ".join(f'"{u}"' for u in csr_mod.USAGES)
                    causes.append(_cause(f"spec.usages[{i}]", f'Unsupported value: "{usage}": supported values: '
                                                              f"{supported}", "FieldValueNotSupported"))
                elif usage in seen:
                    causes.append(_cause(f"spec.usages[{i}]", f'Duplicate value: "{usage}"', "FieldValueDuplicate"))
                seen.add(usage)
        seconds = spec.get("expirationSeconds")
        if seconds is not None and seconds < csr_mod.MIN_EXPIRATION_SECONDS:
            causes.append(_cause("spec.expirationSeconds", f"Invalid value: {seconds}: may not specify a duration "
                                                           "less than 600 seconds (10 minutes)"))
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = _conditions_causes(new)
        certificate = (new.get("status") or {}).get("certificate")
        before = (old.get("status") or {}).get("certificate")
        if before and certificate != before:
            causes.append(_cause("status.certificate", "Invalid value: updates may not modify existing certificate"))
        elif certificate:
            try:
                certs.split_bundle(base64.b64decode(certificate, validate=True))
            except (ValueError, certs.CertificateError):
                causes.append(_cause("status.certificate", "Invalid value: must contain at least one CERTIFICATE "
                                                           "PEM block"))
        return causes


def _conditions_causes(obj: dict[str, Any]) -> list[base.Cause]:
    causes: list[base.Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(csr_mod.conditions(obj)):
        kind, status = cond.get("type"), cond.get("status")
        field = f"status.conditions[{i}]"
        if not kind:
            causes.append(_cause(f"{field}.type", "Required value", "FieldValueRequired"))
            continue
        if kind in seen:
            causes.append(_cause(f"{field}.type", f'Duplicate value: "{kind}"', "FieldValueDuplicate"))
        seen.add(kind)
        if kind in (csr_mod.APPROVED, csr_mod.DENIED, csr_mod.FAILED):
            if status != "True":
                causes.append(_cause(f"{field}.status", f'Unsupported value: "{status}": supported values: "True"',
                                     "FieldValueNotSupported"))
        elif status not in ("True", "False", "Unknown"):
            causes.append(_cause(f"{field}.status", f'Unsupported value: "{status}": supported values: "False", '
                                                    '"True", "Unknown"', "FieldValueNotSupported"))
    if csr_mod.APPROVED in seen and csr_mod.DENIED in seen:
        causes.append(_cause("status.conditions", 'Invalid value: Approved and Denied conditions are mutually '
                                                  "exclusive"))
    return causes
