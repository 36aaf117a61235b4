"""A rendered object's place in the cluster: its resource, identity, ownership and apply order."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

from reconcile.charting import render

MANAGED_BY = "app.kubernetes.io/managed-by"
RELEASE_NAME = "charts.reconcile.dev/release-name"
RELEASE_NAMESPACE = "charts.reconcile.dev/release-namespace"
KEEP = "charts.reconcile.dev/keep"
HOOK_WEIGHT = "charts.reconcile.dev/hook-weight"
HOOK_DELETE_POLICY = "charts.reconcile.dev/hook-delete-policy"

# Helm's InstallOrder (kinds first in this list are created first, deleted last).
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]


def kind_rank(kind: str) -> int:
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


@dataclass
class Target:
    """One document resolved against the server's discovery."""

    doc: render.Document
    resource: Any  # client.discovery.ApiResource
    namespace: str | None
    obj: dict[str, Any]  # with namespace and ownership metadata set

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def api_version(self) -> str:
        return self.resource.api_version

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.resource.group, self.obj["kind"], self.namespace or "", self.name)

    @property
    def ref(self) -> str:
        kind = self.obj["kind"]
        return f"{kind}/{self.name}" if self.namespace is None else f"{kind}/{self.namespace}/{self.name}"

    def annotation(self, key: str) -> str | None:
        return ((self.obj.get("metadata") or {}).get("annotations") or {}).get(key)


def owned(obj: dict[str, Any], release: str, namespace: str, *, resource_namespaced: bool) -> dict[str, Any]:
    """The object with its release's labels and annotations, and its namespace filled in."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    if resource_namespaced:
        meta["namespace"] = meta.get("namespace") or namespace
    else:
        meta.pop("namespace", None)
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: "reconcile"}
    meta["annotations"] = {**(meta.get("annotations") or {}), RELEASE_NAME: release, RELEASE_NAMESPACE: namespace}
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1" and isinstance(out.get("stringData"), dict):
        # the server folds stringData into data and never returns it: folded here too, so the three-way
        # merge compares like with like and a no-op upgrade does not rewrite every Secret
        folded = {k: base64.b64encode(str(v).encode()).decode() for k, v in out.pop("stringData").items()}
        out["data"] = {**(out.get("data") or {}), **folded}
    return out


def ownership_problem(live: dict[str, Any], release: str, namespace: str) -> str | None:
    """Why `live` cannot be taken over by `release` (None when it already belongs to it)."""
    meta = live.get("metadata") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    problems = []
    if labels.get(MANAGED_BY) != "reconcile":
        problems.append(f'label validation error: missing key "{MANAGED_BY}": must be set to "reconcile"'
                        if MANAGED_BY not in labels else
                        f'label validation error: key "{MANAGED_BY}" must equal "reconcile": current value is '
                        f'"{labels[MANAGED_BY]}"')
    for key, want in ((RELEASE_NAME, release), (RELEASE_NAMESPACE, namespace)):
        if key not in annotations:
            problems.append(f'annotation validation error: missing key "{key}": must be set to "{want}"')
        elif annotations[key] != want:
            problems.append(f'annotation validation error: key "{key}" must equal "{want}": current value is '
                            f'"{annotations[key]}"')
    return "; ".join(problems) or None


def hook_weight(doc: render.Document) -> int:
    raw = ((doc.obj.get("metadata") or {}).get("annotations") or {}).get(HOOK_WEIGHT, "0")
    try:
        return int(str(raw).strip())
    except ValueError:
        return 0


def hook_delete_policies(doc: render.Document) -> list[str]:
    raw = ((doc.obj.get("metadata") or {}).get("annotations") or {}).get(HOOK_DELETE_POLICY)
    if raw is None:
        return ["before-hook-creation"]  # Helm's default
    return [p.strip() for p in str(raw).split(",") if p.strip()]
