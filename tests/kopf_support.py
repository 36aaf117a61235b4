"""What the kopf tests share (tests/compat/test_kopf.py against a server, tests/node/test_kopf_in_pod.py
in a pod): the operator's file, the CRDs it serves, the RBAC it needs, and reading back what it did."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reconcile.client import api as client_api
from reconcile.core import errors

OPERATOR = Path(__file__).parent / "compat" / "kopf_operator.py"
GROUP, VERSION, PLURAL = "compat.example.com", "v1", "gadgets"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"
RBAC = "rbac.authorization.k8s.io/v1"
# kopf's own log lines of trouble (its full format: "[time] logger [LEVEL   ] message")
TROUBLE = re.compile(r"\[(WARNING|ERROR|CRITICAL)\s*\]|Traceback|APIError|APIClientError|APIServerError")

GADGETS = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"{PLURAL}.{GROUP}"},
           "spec": {"group": GROUP, "scope": "Namespaced",
                    "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                    "versions": [{"name": VERSION, "served": True, "storage": True,
                                  "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {
                                          "message": {"type": "string"}, "size": {"type": "integer"}}},
                                      "status": {"type": "object",
                                                 "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
# kopf's peering resource (as kopf's documentation defines it): no status subresource, any status
PEERINGS = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "kopfpeerings.kopf.dev"},
            "spec": {"group": "kopf.dev", "scope": "Namespaced",
                     "names": {"plural": "kopfpeerings", "singular": "kopfpeering", "kind": "KopfPeering"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "status": {"type": "object",
                                                  "x-kubernetes-preserve-unknown-fields": True}}}}}]}}

# What kopf needs to serve Gadgets in one namespace, standalone: watch and patch them (finalizer,
# annotations) and their status, post Events; and, cluster-wide, watch CRDs and namespaces to notice
# new resources and namespaces (without, it warns and goes on with what it found at start).
LEAST_ROLE = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
SCANNING_CLUSTER_ROLE = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


def served(client: client_api.Client, api_version: str, plural: str) -> bool:
    """Whether a CRD's resource is served yet (a list answers)."""
    try:
        client.list(api_version, plural, namespace="default")
        return True
    except errors.ApiError:
        return False


def gadget(name: str, message: str, size: int) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Gadget", "metadata": {"name": name},
            "spec": {"message": message, "size": size}}


def events_of(admin: client_api.Client, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """The Events about Gadget `name`, by reason."""
    items = admin.list("v1", "events", namespace=namespace)["items"]
    return {e["reason"]: e for e in items
            if e["involvedObject"].get("kind") == "Gadget" and e["involvedObject"].get("name") == name}


def current(admin: client_api.Client, namespace: str, name: str) -> dict[str, Any]:
    return admin.get(API_VERSION, PLURAL, name, namespace=namespace)


def gone(admin: client_api.Client, namespace: str, name: str) -> bool:
    try:
        current(admin, namespace, name)
        return False
    except errors.ApiError as exc:
        if exc.code == 404:
            return True
        raise


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def service_account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "namespace": namespace, "name": name}


def grant(admin: client_api.Client, namespace: str, subject: dict[str, str], rules: list[dict[str, Any]]) -> None:
    """`rules` to `subject` in `namespace` (a Role and its RoleBinding, named after the subject), and
    kopf's scanning cluster-wide (SCANNING_CLUSTER_ROLE)."""
    user = subject["name"]
    name = f"{namespace}-{user}"
    subjects = [subject]
    admin.create(RBAC, "clusterroles", {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name},
                                        "rules": SCANNING_CLUSTER_ROLE})
    admin.create(RBAC, "clusterrolebindings", {
        "apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
    admin.create(RBAC, "roles", {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": user}, "rules": rules},
                 namespace=namespace)
    admin.create(RBAC, "rolebindings", {
        "apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": user}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user}}, namespace=namespace)


def trouble(log: str) -> list[str]:
    """The lines of a kopf log (its full format) that tell of a warning, an error or a failed request."""
    return [line for line in log.splitlines() if TROUBLE.search(line)]
