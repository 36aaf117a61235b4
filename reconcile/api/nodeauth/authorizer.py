"""The Node authorizer (`--authorization-mode Node,RBAC`): what a node agent may read and write.

Upstream's plugin/pkg/auth/authorizer/node, with AuthorizeNodeWithSelectors on (1.32's default):
for a user `system:node:<name>` in `system:nodes`,
- Secrets and ConfigMaps: get/list/watch of one named object (a list or watch names it with
  `fieldSelector=metadata.name=`) that a pod bound to the node references;
- PersistentVolumeClaims (get; update/patch of `status`), PersistentVolumes (get): those reachable
  from the node's pods (`graph`); ours besides: a `reconcile.dev/docker-volume` PV pinned to the
  node may be read and updated/patched by it (its agent's reclaim finalizer; NodeRestriction allows
  nothing else), since that node's Docker engine holds the volume (upstream has no node-local
  provisioner in the kubelet);
- ServiceAccounts: only `create serviceaccounts/token` for the account of a pod bound to the node;
- Pods: get a pod bound to the node; list/watch with `fieldSelector=spec.nodeName=<node>` (or of one
  named pod bound to it); create/delete (mirror pods), status update/patch and eviction, which
  NodeRestriction then narrows to the node's own pods;
- Nodes: get/list/watch its own Node only; create/update/patch any Node and its status, which
  NodeRestriction narrows to its own;
- Leases: get/create/update/patch/delete in `kube-node-lease`, its own name (create is checked by
  NodeRestriction, which sees the name);
- everything else: upstream's static node rules (`NODE_RULES`: Events, Services, reviews, ...).

The authorizer only allows or has no opinion: what it does not allow goes on to RBAC, and the
reason it gives (upstream's wording) ends the 403 message when nothing allows.
"""

from __future__ import annotations

from reconcile.api import authn, authz
from reconcile.api.nodeauth import feed, identity
from reconcile.api.nodeauth.references import CONFIGMAP, POD, PV, PVC, SECRET, SERVICEACCOUNT
from reconcile.api.rbac import rules as rules_mod

NODE_LEASE_NAMESPACE = "kube-node-lease"
READ = ["get", "list", "watch"]


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> dict[str, list[str]]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


# Upstream's bootstrappolicy.NodeRules() as far as this server serves the resources (the ones it
# answers through the graph or by name above are never matched against these), plus one rule of
# ours: `get namespaces`, for the node agent's second-line Pod Security check (reconcile/node/guard),
# which reads the pod's namespace labels. Upstream's kubelet reads no namespace.
NODE_RULES = rules_mod.parse_rules([
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]),
    _rule(READ, [""], ["services"]),
    _rule(["create", "update", "patch"], [""], ["events"]),
    _rule(["get"], [""], ["endpoints"]),
    _rule(["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]),
    _rule(["get", "watch", "list"], ["storage.k8s.io"], ["csidrivers"]),
    _rule(["get", "watch", "list"], ["node.k8s.io"], ["runtimeclasses"]),
    _rule(["get"], [""], ["namespaces"]),  # ours: the node guard (see above)
])

NO_OPINION = authz.Decision(False)
ALLOW = authz.Decision(True)


def _deny(reason: str) -> authz.Decision:
    return authz.Decision(False, reason)


class NodeAuthorizer:
    def __init__(self, graph: feed.LiveGraph, *, rules: tuple[rules_mod.PolicyRule, ...] = NODE_RULES) -> None:
        self.live = graph
        self.rules = rules

    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        return self.decide(attributes)

    def decide(self, a: authz.Attributes) -> authz.Decision:
        node, is_node = identity.node_identity(a.user)
        if not is_node:
            return NO_OPINION
        if not node:
            return _deny(f'unknown node for user "{a.user.name}"')
        if a.resource_request:
            group, resource = a.api_group, a.resource
            if group == "":
                if resource == "secrets":
                    return self._read_namespaced(node, SECRET, a)
                if resource == "configmaps":
                    return self._read_namespaced(node, CONFIGMAP, a)
                if resource == "persistentvolumeclaims":
                    if a.subresource == "status":
                        return self._status_update(node, PVC, a)
                    return self._get(node, PVC, a)
                if resource == "persistentvolumes":
                    return self._persistent_volume(node, a)
                if resource == "serviceaccounts":
                    return self._create_token(node, a)
                if resource == "nodes":
                    return self._node(node, a)
                if resource == "pods":
                    return self._pod(node, a)
            elif group == "coordination.k8s.io" and resource == "leases":
                return self._lease(node, a)
        if rules_mod.any_allows(self.rules, _request(a)):
            return ALLOW
        return NO_OPINION

    def rules_for(self, user: authn.UserInfo, namespace: str) -> tuple[list[rules_mod.PolicyRule], list[str]]:
        """Upstream's RulesFor: a node's permissions depend on the graph, so they are not listed."""
        if identity.node_identity(user)[1]:
            return [], ["node authorizer does not support user rule resolution"]
        return [], []

    # --- upstream's authorize* helpers, one each ---

    def _status_update(self, node: str, kind: str, a: authz.Attributes) -> authz.Decision:
        if a.verb not in ("update", "patch"):
            return _deny("can only get/update/patch this type")
        if a.subresource != "status":
            return _deny("can only update status subresource")
        return self._related(node, kind, a)

    def _get(self, node: str, kind: str, a: authz.Attributes) -> authz.Decision:
        if a.verb != "get":
            return _deny("can only get individual resources of this type")
        if a.subresource:
            return _deny("cannot get subresource")
        return self._related(node, kind, a)

    def _persistent_volume(self, node: str, a: authz.Attributes) -> authz.Decision:
        home = self.live.graph().pv_home(a.name) if a.name and not a.subresource else None
        if home == node and a.verb in ("get", "update", "patch"):
            return ALLOW
        return self._get(node, PV, a)

    def _read_namespaced(self, node: str, kind: str, a: authz.Attributes) -> authz.Decision:
        if a.verb not in ("get", "list", "watch"):
            return _deny("can only read resources of this type")
        if a.subresource:
            return _deny("cannot read subresource")
        if not a.namespace:
            return _deny("can only read namespaced object of this type")
        return self._related(node, kind, a)

    def _related(self, node: str, kind: str, a: authz.Attributes) -> authz.Decision:
        if not a.name:
            return _deny("No Object name found")
        if self.live.graph().reachable(node, kind, a.namespace, a.name):
            return ALLOW
        return _deny(f"no relationship found between node '{node}' and this object")

    def _create_token(self, node: str, a: authz.Attributes) -> authz.Decision:
        if a.verb != "create" or not a.name:
            return _deny("can only create tokens for individual service accounts")
        if a.subresource != "token":
            return _deny("can only create token subresource of serviceaccount")
        if self.live.graph().reachable(node, SERVICEACCOUNT, a.namespace, a.name):
            return ALLOW
        return _deny(f"no relationship found between node '{node}' and this object")

    def _lease(self, node: str, a: authz.Attributes) -> authz.Decision:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return _deny("can only get, create, update, patch, or delete a node lease")
        if a.namespace != NODE_LEASE_NAMESPACE:
            return _deny(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        # On create the name is in the body, which NodeRestriction checks.
        if a.verb != "create" and a.name != node:
            return _deny("can only access node lease with the same name as the requesting node")
        return ALLOW

    def _node(self, node: str, a: authz.Attributes) -> authz.Decision:
        if a.subresource == "":
            if a.verb in ("create", "update", "patch"):
                return ALLOW  # NodeRestriction limits it to its own Node
            if a.verb in ("get", "list", "watch"):
                # By name, not through the graph: a node reads its Node before it exists.
                if a.name == node:
                    return ALLOW
                if not a.name:
                    return _deny(f"node '{node}' cannot read all nodes, only its own Node object")
                return _deny(f"node '{node}' cannot read '{a.name}', only its own Node object")
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return ALLOW  # NodeRestriction limits it to its own Node's status
        return NO_OPINION

    def _pod(self, node: str, a: authz.Attributes) -> authz.Decision:
        if a.subresource == "":
            if a.verb == "get":
                return self._get(node, POD, a)
            if a.verb in ("list", "watch"):
                for req in a.field_selector:
                    if req.field == "spec.nodeName" and req.op == "=" and req.value == node:
                        return ALLOW
                if a.name:
                    return self._related(node, POD, a)
                return _deny("can only list/watch pods with spec.nodeName field selector")
            if a.verb in ("create", "delete"):
                return ALLOW  # mirror pods; NodeRestriction decides
        elif a.subresource == "status":
            if a.verb in ("update", "patch"):
                return ALLOW  # NodeRestriction: only pods bound to the node
        elif a.subresource == "eviction":
            if a.verb == "create":
                return ALLOW  # NodeRestriction: only pods bound to the node
        return NO_OPINION


def _request(a: authz.Attributes) -> rules_mod.Request:
    return rules_mod.Request(a.verb, a.resource_request, a.path, a.api_group, a.resource, a.subresource, a.name)
