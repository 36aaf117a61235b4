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
- `system:coredns` (kubeadm's CoreDNS addon role, bound to ServiceAccount kube-system/coredns, the
  user `system:serviceaccount:kube-system:coredns` that `reconcile dns` runs as): list and watch
  endpoints, services, pods, namespaces and endpointslices, nothing else;
- `system:node-proxier` (upstream's role, bound to the user `system:kube-proxy`): Services,
  Endpoints, EndpointSlices and Nodes read, Events; what every node's service proxy needs;
- `system:gitops-controller` (user of the same name, `reconcile gitops controller`: the GitRepository and Sync
  controllers of reconcile/gitops): its Lease, Syncs and GitRepositories read, their status and
  Syncs' finalizer written, Secrets `get` by name (a GitRepository's secretRef, as Flux's
  source-controller), `impersonate` on ServiceAccounts only: it applies a Sync's objects as the Sync's `spec.serviceAccountName` (Flux's multi-tenant
  lockdown), so it can create nothing itself; a cluster that wants Syncs without a service
  account binds that user a broader role (Flux's default is cluster-admin);
- `system:node`: what a node agent calls (its Node and Lease, pods bound to it and their status,
  the Secrets/ConfigMaps/claims they use). As upstream since 1.8, the role exists but is bound to
  nobody: node agents are authorized by the Node authorizer (`--authorization-mode Node,RBAC`,
  reconcile/api/nodeauth), which limits them to their own objects; NodeRestriction admission limits
  their writes. Under `RBAC` alone a node is allowed nothing until someone binds the role.

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
# Cluster DNS (`reconcile dns`): kubeadm's CoreDNS addon role, bound to its ServiceAccount's user
COREDNS_ROLE = "system:coredns"
COREDNS_NAMESPACE, COREDNS_SERVICE_ACCOUNT = "kube-system", "coredns"
GITOPS_USER = "system:gitops-controller"
GITOPS_GROUP = "gitops.reconcile.dev"
GITOPS_LEASE = "reconcile-gitops"
PROXY_USER = "system:kube-proxy"
PROXY_ROLE = "system:node-proxier"
NODES_GROUP = "system:nodes"
CONTROLLER_MANAGER_LEASE = "reconcile-controller-manager"
CERTIFICATES_GROUP = "certificates.k8s.io"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
LEGACY_SIGNER = "kubernetes.io/legacy-unknown"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
NODE_CLIENT_ROLE = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
SELF_NODE_CLIENT_ROLE = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
# upstream had this role until 1.11 (alpha serving-certificate approval); csrapproving asks for it again
SELF_NODE_SERVER_ROLE = "system:certificates.k8s.io:certificatesigningrequests:selfnodeserver"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SCHEDULER_LEASE = "reconcile-scheduler"
# The built-in controllers (reconcile/controllers/manager.py) that get a role each.
CONTROLLERS = ("replicaset-controller", "deployment-controller", "generic-garbage-collector",
               "namespace-controller", "node-controller", "clusterrole-aggregation-controller",
               "resourcequota-controller", "service-account-controller", "root-ca-cert-publisher", "token-cleaner",
               "certificate-controller", "endpoint-controller", "endpointslice-controller",
                "endpointslicemirroring-controller",
                "persistent-volume-binder", "pvc-protection-controller", "pv-protection-controller",
                "statefulset-controller", "disruption-controller", "horizontal-pod-autoscaler")


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
        "resourcequota-controller": [  # upstream's: it counts anything a quota may limit
            rule(["list", "watch"], ["*"], ["*"]),
            rule(["update"], [""], ["resourcequotas/status"]),
            *_events(),
        ],
        # upstream's: create serviceaccounts (+ Events); our informers list and watch what it reads
        "service-account-controller": [
            rule(["create"], [""], ["serviceaccounts"]),
            rule(["list", "watch"], [""], ["namespaces", "serviceaccounts"]),
            *_events(),
        ],
        # upstream's: create and update configmaps (+ Events)
        "root-ca-cert-publisher": [
            rule(["create", "update"], [""], ["configmaps"]),
            rule(["list", "watch"], [""], ["namespaces", "configmaps"]),
            *_events(),
        ],
        # csrapproving and csrsigning (upstream's certificate-controller role)
        "certificate-controller": [
            rule(["delete", "get", "list", "watch"], [CERTIFICATES_GROUP], ["certificatesigningrequests"]),
            rule(["update"], [CERTIFICATES_GROUP], ["certificatesigningrequests/approval",
                                                   "certificatesigningrequests/status"]),
            # + kubelet-serving (upstream approves none): csrapproving's node serving certificates
            rule(["approve"], [CERTIFICATES_GROUP], ["signers"],
                 names=[KUBELET_CLIENT_SIGNER, LEGACY_SIGNER, KUBELET_SERVING_SIGNER]),
            rule(["sign"], [CERTIFICATES_GROUP], ["signers"], names=[
                LEGACY_SIGNER, "kubernetes.io/kube-apiserver-client", KUBELET_CLIENT_SIGNER,
                KUBELET_SERVING_SIGNER]),
            rule(["get"], [""], ["nodes"]),  # a serving certificate's SANs are checked against its Node
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
            *_events(),
        ],
        # upstream's rules; plus watch on what it writes, which our informers read with this role
        "endpoint-controller": [
            rule(["get", "list", "watch"], [""], ["services", "pods"]),
            rule(["get", "list", "watch", "create", "update", "delete"], [""], ["endpoints"]),
            rule(["create"], [""], ["endpoints/restricted"]),
            *_events(),
        ],
        "endpointslice-controller": [
            rule(["get", "list", "watch"], [""], ["services", "pods", "nodes"]),
            rule(["update"], [""], ["services/finalizers"]),
            rule(["get", "list", "watch", "create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
            *_events(),
        ],
        "endpointslicemirroring-controller": [
            rule(["get", "list", "watch"], [""], ["services", "endpoints"]),
            rule(["update"], [""], ["services/finalizers"]),
            rule(["update"], [""], ["endpoints/finalizers"]),
            rule(["get", "list", "watch", "create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
            *_events(),
        ],
        # upstream's (the glusterfs endpoints and secrets rules of in-tree plugins left out)
        "persistent-volume-binder": [
            rule(["create", "delete", "get", "list", "update", "watch"], [""], ["persistentvolumes"]),
            rule(["update"], [""], ["persistentvolumes/status"]),
            rule(["get", "list", "update", "watch"], [""], ["persistentvolumeclaims"]),
            rule(["update"], [""], ["persistentvolumeclaims/status"]),
            rule(["get", "list", "watch"], [""], ["pods"]),
            rule(["get", "list", "watch"], [""], ["nodes"]),  # upstream: get, list (our informer watches)
            rule(["get", "list", "watch"], ["storage.k8s.io"], ["storageclasses"]),
            *_events(),
        ],
        "pvc-protection-controller": [  # upstream's
            rule(["get", "list", "watch", "update", "patch"], [""], ["persistentvolumeclaims"]),
            rule(["get", "list", "watch"], [""], ["pods"]),
            *_events(),
        ],
        "pv-protection-controller": [  # upstream's
            rule(["get", "list", "watch", "update", "patch"], [""], ["persistentvolumes"]),
            *_events(),
        ],
        # upstream's; plus patch on what it writes (our client patches) and list/watch on claims,
        # which our informers read with this role
        "statefulset-controller": [
            rule(["list", "watch"], [""], ["pods"]),
            rule(["list", "watch"], ["apps"], ["statefulsets"]),
            rule(["update", "patch"], ["apps"], ["statefulsets/status"]),
            rule(["update"], ["apps"], ["statefulsets/finalizers"]),
            rule(["get", "create", "delete", "update", "patch"], [""], ["pods"]),
            rule(["get", "create", "delete", "update", "patch", "list", "watch"], ["apps"], ["controllerrevisions"]),
            rule(["get", "create", "delete", "update", "patch", "list", "watch"], [""], ["persistentvolumeclaims"]),
            *_events(),
        ],
        # upstream's; plus patch on jobs/status (our client patches)
        "job-controller": [
            rule(["get", "list", "watch", "update", "patch"], ["batch"], ["jobs"]),
            rule(["update", "patch"], ["batch"], ["jobs/status"]),
            rule(["update", "patch"], ["batch"], ["jobs/finalizers"]),
            rule(["list", "watch", "create", "delete", "patch"], [""], ["pods"]),
            *_events(),
        ],
        # upstream's; plus patch on cronjobs/status and list/watch on pods (our client patches)
        "cronjob-controller": [
            rule(["get", "list", "watch", "create", "update", "delete", "patch"], ["batch"], ["jobs"]),
            rule(["get", "list", "watch", "update"], ["batch"], ["cronjobs"]),
            rule(["update", "patch"], ["batch"], ["cronjobs/status"]),
            rule(["update"], ["batch"], ["cronjobs/finalizers"]),
            rule(["list", "delete"], [""], ["pods"]),
            *_events(),
        ],
        # upstream's; plus pods list/watch, which our informer reads with this role
        "disruption-controller": [
            rule(["get", "list", "watch"], ["apps", "extensions"], ["deployments", "replicasets"]),
            rule(["get", "list", "watch"], [""], ["replicationcontrollers", "pods"]),
            rule(["get", "list", "watch"], ["policy"], ["poddisruptionbudgets"]),
            rule(["get", "list", "watch"], ["apps"], ["statefulsets"]),
            rule(["update"], ["policy"], ["poddisruptionbudgets/status"]),
            rule(["get"], ["*"], ["*/scale"]),
            *_events(),
        ],
        # upstream's; plus pods watch, which our informer reads with this role
        "horizontal-pod-autoscaler": [
            rule(["get", "list", "watch"], ["autoscaling"], ["horizontalpodautoscalers"]),
            rule(["update"], ["autoscaling"], ["horizontalpodautoscalers/status"]),
            rule(["get", "update"], ["*"], ["*/scale"]),
            rule(["list", "watch"], [""], ["pods"]),
            rule(["list"], ["metrics.k8s.io"], ["pods"]),
            rule(["get", "list"], ["custom.metrics.k8s.io"], ["*"]),
            rule(["get", "list"], ["external.metrics.k8s.io"], ["*"]),
            *_events(),
        ],
        # upstream's is a Role in kube-system; a ClusterRole here (the default policy has no Roles yet)
        "token-cleaner": [
            rule(["delete", "get", "list", "watch"], [""], ["secrets"]),
            *_events(),
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
        cluster_role("system:auth-delegator", [  # upstream's: delegated authentication and authorization
            rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        ]),
        cluster_role("admin", [], aggregate_from=["admin"]),
        cluster_role("edit", [], labels={AGGREGATE_TO + "admin": "true"}, aggregate_from=["edit"]),
        cluster_role("view", [], labels={AGGREGATE_TO + "edit": "true"}, aggregate_from=["view"]),
        cluster_role("system:aggregate-to-admin", _aggregate_to_admin(), labels={AGGREGATE_TO + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit(), labels={AGGREGATE_TO + "edit": "true"}),
        cluster_role("system:aggregate-to-view", _aggregate_to_view(), labels={AGGREGATE_TO + "view": "true"}),
        # metrics-server's role (its chart installs it): `kubectl top` for whoever may view
        cluster_role("system:aggregated-metrics-reader",
                     [rule(["get", "list", "watch"], ["metrics.k8s.io"], ["pods", "nodes"])],
                     labels={AGGREGATE_TO + "view": "true", AGGREGATE_TO + "edit": "true",
                             AGGREGATE_TO + "admin": "true"}),
        cluster_role(CONTROLLER_MANAGER_USER, [*_lease(CONTROLLER_MANAGER_LEASE), *_events(),
                                               rule(["get", "list", "watch"], ["apiextensions.k8s.io"],
                                                    ["customresourcedefinitions"])]),
        cluster_role(SCHEDULER_USER, [
            *_lease(SCHEDULER_LEASE), *_events(),
            rule(["get", "list", "watch"], [""], ["pods", "nodes", "namespaces"]),
            rule(["create"], [""], ["pods/binding", "bindings"]),
            rule(["patch", "update"], [""], ["pods/status"]),
            # VolumeBinding (upstream's rules): claims, volumes and classes read; selected-node written
            rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumeclaims"]),
            rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumes"]),
            rule(["get", "list", "watch"], ["storage.k8s.io"], ["storageclasses"]),
        ]),
        cluster_role(COREDNS_ROLE, [  # kubeadm's (cmd/kubeadm/app/phases/addons/dns/manifests.go)
            rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
            rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
        ]),
        cluster_role(PROXY_ROLE, [  # upstream's, word for word (the service proxy, reconcile/proxy)
            rule(["list", "watch"], [""], ["services", "endpoints"]),
            rule(["get", "list", "watch"], [""], ["nodes"]),
            *_events(),
            rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
        ]),
        cluster_role(GITOPS_USER, [
            *_lease(GITOPS_LEASE),
            rule(["get", "list", "watch"], [GITOPS_GROUP], ["syncs", "gitrepositories", "receivers"]),
            rule(["patch", "update"], [GITOPS_GROUP], ["syncs", "syncs/status"]),  # syncs: its finalizer
            # gitrepositories: a Receiver's requestedAt annotation
            rule(["patch", "update"], [GITOPS_GROUP], ["gitrepositories", "gitrepositories/status",
                                                      "receivers/status"]),
            # a GitRepository's spec.secretRef (Flux's source-controller reads Secrets cluster-wide too)
            rule(["get"], [""], ["secrets"]),
            rule(["impersonate"], [""], ["serviceaccounts"]),
            *_events(),
        ]),
        cluster_role("system:node", [
            rule(["get", "list", "watch", "create", "patch", "update"], [""], ["nodes"]),
            rule(["patch", "update"], [""], ["nodes/status"]),
            rule(["get", "list", "watch", "delete"], [""], ["pods"]),
            rule(["patch", "update"], [""], ["pods/status"]),
            rule(["get"], [""], ["secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"]),
            rule(["create"], [""], ["serviceaccounts/token"]),  # its pods' projected tokens (upstream's)
            # the node's guard (reconcile/node/guard.py) reads a pod's namespace for its Pod Security
            # level before it runs a pod that needs `privileged` (not in upstream's role: no kubelet does)
            rule(["get"], [""], ["namespaces"]),
            rule(["get", "create", "update", "patch"], ["coordination.k8s.io"], ["leases"]),
            # the agent port's Webhook authorization asks the API server about each caller (upstream's rule)
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
            # certificate rotation: the node asks for its next client certificate itself
            rule(["create", "get", "list", "watch"], [CERTIFICATES_GROUP], ["certificatesigningrequests"]),
            *_events(),
        ]),
        # node bootstrap (upstream's roles, kubeadm's bindings below)
        cluster_role("system:node-bootstrapper", [
            rule(["create", "get", "list", "watch"], [CERTIFICATES_GROUP], ["certificatesigningrequests"])]),
        cluster_role(NODE_CLIENT_ROLE, [
            rule(["create"], [CERTIFICATES_GROUP], ["certificatesigningrequests/nodeclient"])]),
        cluster_role(SELF_NODE_CLIENT_ROLE, [
            rule(["create"], [CERTIFICATES_GROUP], ["certificatesigningrequests/selfnodeclient"])]),
        cluster_role(SELF_NODE_SERVER_ROLE, [
            rule(["create"], [CERTIFICATES_GROUP], ["certificatesigningrequests/selfnodeserver"])]),
    ]
    for name, rules in _controller_rules().items():
        roles.append(cluster_role(f"system:controller:{name}", rules))
    return roles


# Subjects a default binding once had and reconciliation takes away again: before the Node authorizer,
# `system:node` was bound to every node, which would let any node read every Secret beside the
# authorizer. Upstream leaves the old subject in place on upgrade; we remove it (README: differences).
RETIRED_SUBJECTS: dict[str, list[dict[str, str]]] = {"system:node": [group(NODES_GROUP)]}


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
        cluster_role_binding(COREDNS_ROLE, COREDNS_ROLE, [{"kind": "ServiceAccount", "name": COREDNS_SERVICE_ACCOUNT,
                                                          "namespace": COREDNS_NAMESPACE}]),
        cluster_role_binding(PROXY_ROLE, PROXY_ROLE, [user(PROXY_USER)]),
        cluster_role_binding(GITOPS_USER, GITOPS_USER, [user(GITOPS_USER)]),
        # Upstream keeps this binding with no subjects since 1.8 (the Node authorizer took over).
        cluster_role_binding("system:node", "system:node", []),
        # kubeadm's (bound to every bootstrap token, not only kubeadm:default-node-token's group):
        # tokens may ask for node client certificates, which csrapproving approves; nodes may renew theirs
        cluster_role_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", [group(BOOTSTRAPPERS_GROUP)]),
        cluster_role_binding("kubeadm:node-autoapprove-bootstrap", NODE_CLIENT_ROLE, [group(BOOTSTRAPPERS_GROUP)]),
        cluster_role_binding("kubeadm:node-autoapprove-certificate-rotation", SELF_NODE_CLIENT_ROLE,
                             [group(NODES_GROUP)]),
        # ours (kubeadm has none): csrapproving approves a node's own serving certificate (README: differences)
        cluster_role_binding("reconcile:node-autoapprove-serving", SELF_NODE_SERVER_ROLE, [group(NODES_GROUP)]),
    ]
    for name in CONTROLLERS:
        bindings.append(cluster_role_binding(f"system:controller:{name}", f"system:controller:{name}",
                                             [user(CONTROLLER_MANAGER_USER)]))
    return bindings
