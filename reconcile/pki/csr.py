"""certificates.k8s.io/v1 CertificateSigningRequests: the rules the API server, the approver, the
signer and the node agent share (upstream's pkg/apis/certificates helpers).

Signers (upstream's well-known names): `kubernetes.io/kube-apiserver-client` (any client
certificate the API server accepts), `kubernetes.io/kube-apiserver-client-kubelet` (a node's client
certificate: `IsKubeletClientCSR`'s shape exactly), `kubernetes.io/kubelet-serving` (a node's
serving certificate). `kubernetes.io/legacy-unknown` may not be requested through v1.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence
from typing import Any

from reconcile.pki import certs

API_VERSION = "certificates.k8s.io/v1"
PLURAL = "certificatesigningrequests"

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
KNOWN_SIGNERS = (KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING)

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
APPROVAL_TYPES = (APPROVED, DENIED)

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
MASTERS_GROUP = "system:masters"
MIN_EXPIRATION_SECONDS = 600

USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
          "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
          "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
          "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc")
KUBELET_CLIENT_USAGES = ({"client auth", "digital signature"}, {"client auth", "digital signature", "key encipherment"})
KUBELET_SERVING_USAGES = ({"server auth", "digital signature"}, {"server auth", "digital signature", "key encipherment"})


def request_pem(csr: dict[str, Any]) -> bytes:
    """spec.request decoded (the PEM CSR); CertificateError when it is not base64."""
    raw = (csr.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        raise certs.CertificateError("spec.request is missing")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise certs.CertificateError("spec.request is not base64") from None


def kubelet_client_problems(info: certs.CsrInfo, usages: Sequence[str]) -> list[str]:
    """Why a CSR is not a node's client certificate request (empty: it is); upstream's
    `ValidateKubeletClientCSR` messages."""
    problems = []
    if list(info.identity.groups) != [NODES_GROUP]:
        problems.append("subject organization is not system:nodes")
    if not info.identity.user.startswith(NODE_USER_PREFIX) or info.identity.user == NODE_USER_PREFIX:
        problems.append("subject common name does not begin with system:node:")
    if info.dns_names:
        problems.append("dnsNames are not allowed")
    if info.emails:
        problems.append("emailAddresses are not allowed")
    if info.ip_addresses:
        problems.append("ipAddresses are not allowed")
    if info.uris:
        problems.append("uris are not allowed")
    if info.other_subject_fields:
        problems.append("subject may hold only CN and O")
    if set(usages) not in KUBELET_CLIENT_USAGES or len(set(usages)) != len(usages):
        problems.append('usages must be "client auth" and "digital signature" (and optionally "key encipherment")')
    return problems


def kubelet_serving_problems(info: certs.CsrInfo, usages: Sequence[str]) -> list[str]:
    """Why a CSR is not a node's serving certificate request (upstream's `ValidateKubeletServingCSR`)."""
    problems = []
    if list(info.identity.groups) != [NODES_GROUP]:
        problems.append("subject organization is not system:nodes")
    if not info.identity.user.startswith(NODE_USER_PREFIX):
        problems.append("subject common name does not begin with system:node:")
    if not info.dns_names and not info.ip_addresses:
        problems.append("at least one DNS or IP subjectAltName is required")
    if info.emails:
        problems.append("emailAddresses are not allowed")
    if info.uris:
        problems.append("uris are not allowed")
    if set(usages) not in KUBELET_SERVING_USAGES:
        problems.append('usages must be "server auth" and "digital signature" (and optionally "key encipherment")')
    return problems


def conditions(csr: dict[str, Any]) -> list[dict[str, Any]]:
    found = (csr.get("status") or {}).get("conditions")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def has_condition(csr: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status", "True") == "True" for c in conditions(csr))


def condition(kind: str, reason: str, message: str, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp}


def new_request(name: str, request: bytes, *, signer: str, usages: Sequence[str],
                expiration_seconds: int | None = None) -> dict[str, Any]:
    """A CertificateSigningRequest object for a PEM CSR (what a node agent creates)."""
    spec: dict[str, Any] = {"request": base64.b64encode(request).decode(), "signerName": signer,
                            "usages": list(usages)}
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    return {"apiVersion": API_VERSION, "kind": "CertificateSigningRequest", "metadata": {"name": name}, "spec": spec}


def issued_certificate(csr: dict[str, Any]) -> bytes | None:
    """status.certificate decoded, once the signer has set it."""
    raw = (csr.get("status") or {}).get("certificate")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return None
