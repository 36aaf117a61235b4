"""The default RBAC policy: upstream's bootstrap roles and bindings, and a role per component of ours.

Upstream's (plugin/pkg/auth/authorizer/rbac/bootstrappolicy): `cluster-admin` (bound to
`system:masters`), the aggregated user-facing `admin`, `edit`, `view` with the
`system:aggregate-to-*` roles that feed them, `system:discovery` and `system:basic-user` (bound to
`system:authenticated`), `system:public-info-viewer` (also bound to `system:unauthenticated`),
`system:monitoring` (bound to the group of that name: `/metrics` and the health paths).

Ours, from what each component calls (read off its code; least privilege):
- `system:kube-controller-manager` (user of the same name) holds leader election and Events, and
  one `system:controller:<name>` role per built-in controller, all bound to that user today (one
  binding per controller, so per-controller identities later only change the subjects);
- `system:kube-scheduler` (user of the same name): pods, nodes, namespaces read; bindings, pod
  status, Events, its Lease;
- `system:node`: what a node agent calls (its Node and Lease, pods bound to it and their status,
  the Secrets/ConfigMaps/claims they use). A placeholder bound to the group `system:nodes` until the
  node authorizer and NodeRestriction narrow it to the node's own objects.

Every object carries upstream's `kubernetes.io/bootstrapping: rbac-defaults` label and the
`rbac.authorization.kubernetes.io/autoupdate: "true"` annotation; `bootstrap.reconcile` restores
what is missing at every API server start unless that annotation says "false".
"""

from __future__ import annotations

from typing import Any

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]

# Upstream's system:monitoring role (bound to the group of that name): health and metrics.
MONITORING_URLS = ["/healthz", "/healthz/*", "/livez", "/livez/*", "/readyz", "/readyz/*", "/metrics", "/metrics/slis"]
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
NODES_GROUP = "system:nodes"
CONTROLLER_MANAGER_LEASE = "reconcile-controller-manager"
SCHEDULER_LEASE = "reconcile-scheduler"
# The built-in controllers (reconcile/controllers/manager.py) that get a role each.
CONTROLLERS = ("replicaset-controller", "deployment-controller", "generic-garbage-collector",
               "namespace-controller", "node-controller", "clusterrole-aggregation-controller")


def rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None, *,
         names: list[str] | None = None, urls: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": list(verbs)}
    if groups is not None:
        out["apiGroups"] = list(groups)
    if resources is not None:
        out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    if urls:
        out["nonResourceURLs"] = list(urls)
    return out


def _metadata(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}


def cluster_role(name: str, rules: list[dict[str, Any]], *, labels: dict[str, str] | None = None,
                 aggregate_from: list[str] | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _metadata(name, labels)}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + t: "true"}}
                                                            for t in aggregate_from]}
        role["rules"] = []
    else:
        role["rules"] = rules
    return role


def cluster_role_binding(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _metadata(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": GROUP, "name": name}


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": GROUP, "name": name}


DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                  "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _aggregate_to_view() -> list[dict[str, Any]]:
    return [
        rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                          "services", "services/status", "endpoints", "persistentvolumeclaims",
                          "persistentvolumeclaims/status", "configmaps"]),
        rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                          "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"]),
        rule(READ, [""], ["namespaces"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/scale", "statefulsets/status",
                              "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                              "deployments/status", "replicasets", "replicasets/scale", "replicasets/status"]),
        rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
        rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                    "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                    "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                    "networkpolicies"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"]),
    ]


def _aggregate_to_edit() -> list[dict[str, Any]]:
    return [
        rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(["create"], [""], ["pods/eviction"]),
        rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                           "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
        rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                               "deployments/rollback", "replicasets", "replicasets/scale"]),
        rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
        rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                     "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                                     "networkpolicies"]),
        rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
        rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
    ]


def _aggregate_to_admin() -> list[dict[str, Any]]:
    return [
        rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        rule(READ_WRITE, [GROUP], ["roles", "rolebindings"]),
    ]


def _events() -> list[dict[str, Any]]:
    return [rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"])]


def _lease(name: str) -> list[dict[str, Any]]:
    """Leader election on one Lease (created by name, so `create` cannot carry resourceNames)."""
    return [rule(["create"], ["coordination.k8s.io"], ["leases"]),
            rule(["get", "update"], ["coordination.k8s.io"], ["leases"], names=[name])]


def _controller_rules() -> dict[str, list[dict[str, Any]]]:
    """What each built-in controller calls (reconcile/controllers/*.py)."""
    return {
        "replicaset-controller": [
            rule(["get", "list", "watch", "update", "patch"], ["apps"], ["replicasets"]),
            rule(["update", "patch"], ["apps"], ["replicasets/status"]),
            rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]),
            *_events(),
        ],
        "deployment-controller": [
            rule(["get", "list", "watch", "update", "patch"], ["apps"], ["deployments"]),
            rule(["update", "patch"], ["apps"], ["deployments/status"]),
            rule(["get", "list", "watch", "create", "update", "patch", "delete"], ["apps"], ["replicasets"]),
            *_events(),
        ],
        "generic-garbage-collector": [
            rule(["get", "list", "watch", "patch", "update", "delete"], ["*"], ["*"]),
            *_events(),
        ],
        "namespace-controller": [
            rule(["get", "list", "watch", "delete"], [""], ["namespaces"]),
            rule(["get", "list", "delete", "deletecollection"], ["*"], ["*"]),
        ],
        "node-controller": [
            rule(["get", "list", "watch", "update", "patch", "delete"], [""], ["nodes"]),
            rule(["patch", "update"], [""], ["nodes/status"]),
            rule(["list", "watch", "delete"], [""], ["pods"]),
            rule(["patch", "update"], [""], ["pods/status"]),
            rule(["list", "watch"], ["coordination.k8s.io"], ["leases"]),
            *_events(),
        ],
        "clusterrole-aggregation-controller": [
            rule(["escalate", "get", "list", "patch", "update", "watch"], [GROUP], ["clusterroles"]),
        ],
    }


def cluster_roles() -> list[dict[str, Any]]:
    roles = [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])]),
        cluster_role("system:discovery", [rule(["get"], urls=DISCOVERY_URLS)]),
        cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        cluster_role("system:public-info-viewer", [rule(["get"], urls=PUBLIC_INFO_URLS)]),
        cluster_role("system:monitoring", [rule(["get"], urls=MONITORING_URLS)]),
        cluster_role("admin", [], aggregate_from=["admin"]),
        cluster_role("edit", [], labels={AGGREGATE_TO + "admin": "true"}, aggregate_from=["edit"]),
        cluster_role("view", [], labels={AGGREGATE_TO + "edit": "true"}, aggregate_from=["view"]),
        cluster_role("system:aggregate-to-admin", _aggregate_to_admin(), labels={AGGREGATE_TO + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit(), labels={AGGREGATE_TO + "edit": "true"}),
        cluster_role("system:aggregate-to-view", _aggregate_to_view(), labels={AGGREGATE_TO + "view": "true"}),
        cluster_role(CONTROLLER_MANAGER_USER, [*_lease(CONTROLLER_MANAGER_LEASE), *_events(),
                                               rule(["get", "list", "watch"], ["apiextensions.k8s.io"],
                                                    ["customresourcedefinitions"])]),
        cluster_role(SCHEDULER_USER, [
            *_lease(SCHEDULER_LEASE), *_events(),
            rule(["get", "list", "watch"], [""], ["pods", "nodes", "namespaces"]),
            rule(["create"], [""], ["pods/binding", "bindings"]),
            rule(["patch", "update"], [""], ["pods/status"]),
        ]),
        cluster_role("system:node", [
            rule(["get", "list", "watch", "create", "patch", "update"], [""], ["nodes"]),
            rule(["patch", "update"], [""], ["nodes/status"]),
            rule(["get", "list", "watch", "delete"], [""], ["pods"]),
            rule(["patch", "update"], [""], ["pods/status"]),
            rule(["get"], [""], ["secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"]),
            # the node's guard (reconcile/node/guard.py) reads a pod's namespace for its Pod Security
            # level before it runs a pod that needs `privileged` (not in upstream's role: no kubelet does)
            rule(["get"], [""], ["namespaces"]),
            rule(["get", "create", "update", "patch"], ["coordination.k8s.io"], ["leases"]),
            *_events(),
        ]),
    ]
    for name, rules in _controller_rules().items():
        roles.append(cluster_role(f"system:controller:{name}", rules))
    return roles


def cluster_role_bindings() -> list[dict[str, Any]]:
    bindings = [
        cluster_role_binding("cluster-admin", "cluster-admin", [group("system:masters")]),
        cluster_role_binding("system:discovery", "system:discovery", [group("system:authenticated")]),
        cluster_role_binding("system:basic-user", "system:basic-user", [group("system:authenticated")]),
        cluster_role_binding("system:public-info-viewer", "system:public-info-viewer",
                             [group("system:authenticated"), group("system:unauthenticated")]),
        cluster_role_binding("system:monitoring", "system:monitoring", [group("system:monitoring")]),
        cluster_role_binding(CONTROLLER_MANAGER_USER, CONTROLLER_MANAGER_USER, [user(CONTROLLER_MANAGER_USER)]),
        cluster_role_binding(SCHEDULER_USER, SCHEDULER_USER, [user(SCHEDULER_USER)]),
        cluster_role_binding("system:node", "system:node", [group(NODES_GROUP)]),
    ]
    for name in CONTROLLERS:
        bindings.append(cluster_role_binding(f"system:controller:{name}", f"system:controller:{name}",
                                             [user(CONTROLLER_MANAGER_USER)]))
    return bindings
