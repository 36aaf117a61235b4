"""The Node authorizer's decisions (upstream's node_authorizer_test cases that apply here), its place in
the chain, and the live graph's wiring to cache events (pure, in memory)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import authn, authorizers, authz, watchcache
from reconcile.api.nodeauth import authorizer as node_authorizer
from reconcile.api.nodeauth import feed, identity
from reconcile.core import selectors

NODE1 = authn.UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))


def pod(name: str, node: str, namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node, **spec}}


PODS = [
    pod("web", "n1", volumes=[{"name": "s", "secret": {"secretName": "mine"}},
                              {"name": "c", "configMap": {"name": "conf"}},
                              {"name": "d", "persistentVolumeClaim": {"claimName": "claim"}}],
        serviceAccountName="builder"),
    pod("db", "n2", volumes=[{"name": "s", "secret": {"secretName": "theirs"}}]),
]
PVS = [{"metadata": {"name": "vol"}, "spec": {"claimRef": {"namespace": "ns", "name": "claim"}}}]


def docker_pv(name: str, *nodes: str, driver: str = "reconcile.dev/docker-volume") -> dict[str, Any]:
    """A Docker-volume PV as the provisioner writes it (no claim: Released and deleted ones have none in use)."""
    return {"metadata": {"name": name}, "spec": {"csi": {"driver": driver, "volumeHandle": name}, "nodeAffinity": {
        "required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": list(nodes)}]}]}}}}


def live(pods: list[dict] | None = None, pvs: list[dict] | None = None) -> feed.LiveGraph:
    store = {"pods": list(PODS if pods is None else pods), "persistentvolumes": list(PVS if pvs is None else pvs)}
    return feed.LiveGraph(lambda plural: store[plural])


def attrs(verb: str, resource: str, name: str = "", *, namespace: str = "ns", group: str = "", sub: str = "",
          user: authn.UserInfo = NODE1, fields: str = "") -> authz.Attributes:
    selector = selectors.parse_field_terms(fields).requirements
    return authz.Attributes(user, verb, True, "/x", group, "v1", resource, sub, namespace, name, selector)


def decide(a: authz.Attributes, graph: feed.LiveGraph | None = None) -> authz.Decision:
    return node_authorizer.NodeAuthorizer(graph or live()).decide(a)


def test_node_identity_needs_both_the_name_and_the_group() -> None:
    assert identity.node_identity(NODE1) == ("n1", True)
    assert identity.node_identity(authn.UserInfo("system:node:n1")) == ("", False)
    assert identity.node_identity(authn.UserInfo("alice", groups=("system:nodes",))) == ("", False)
    assert identity.node_identity(authn.UserInfo("system:node:", groups=("system:nodes",))) == ("", True)


def test_non_nodes_get_no_opinion_and_a_nameless_node_a_reason() -> None:
    assert decide(attrs("get", "secrets", "mine", user=authn.UserInfo("alice"))) == authz.Decision(False, "")
    nameless = authn.UserInfo("system:node:", groups=("system:nodes",))
    assert decide(attrs("get", "secrets", "mine", user=nameless)).reason == 'unknown node for user "system:node:"'


@pytest.mark.parametrize(("a", "allowed", "reason"), [
    (attrs("get", "secrets", "mine"), True, ""),
    (attrs("list", "secrets", "mine"), True, ""),  # a list pinned to one name (fieldSelector metadata.name)
    (attrs("watch", "configmaps", "conf"), True, ""),
    (attrs("get", "secrets", "theirs"), False, "no relationship found between node 'n1' and this object"),
    (attrs("get", "secrets", "mine", namespace="other"), False,
     "no relationship found between node 'n1' and this object"),
    (attrs("list", "secrets"), False, "No Object name found"),
    (attrs("update", "secrets", "mine"), False, "can only read resources of this type"),
    (attrs("get", "secrets", "mine", sub="x"), False, "cannot read subresource"),
    (attrs("list", "secrets", namespace=""), False, "can only read namespaced object of this type"),
    (attrs("get", "persistentvolumeclaims", "claim"), True, ""),
    (attrs("list", "persistentvolumeclaims", "claim"), False, "can only get individual resources of this type"),
    (attrs("patch", "persistentvolumeclaims", "claim", sub="status"), True, ""),
    (attrs("get", "persistentvolumeclaims", "claim", sub="status"), False, "can only get/update/patch this type"),
    (attrs("get", "persistentvolumes", "vol", namespace=""), True, ""),
    (attrs("get", "persistentvolumes", "other", namespace=""), False,
     "no relationship found between node 'n1' and this object"),
    (attrs("create", "serviceaccounts", "builder", sub="token"), True, ""),
    (attrs("create", "serviceaccounts", "default", sub="token"), False,
     "no relationship found between node 'n1' and this object"),
    (attrs("get", "serviceaccounts", "builder"), False, "can only create tokens for individual service accounts"),
    (attrs("create", "serviceaccounts", "builder"), False, "can only create token subresource of serviceaccount"),
    (attrs("get", "pods", "web"), True, ""),
    (attrs("get", "pods", "db"), False, "no relationship found between node 'n1' and this object"),
    (attrs("list", "pods", namespace="", fields="spec.nodeName=n1"), True, ""),
    (attrs("watch", "pods", namespace="", fields="status.phase=Running,spec.nodeName==n1"), True, ""),
    (attrs("watch", "pods", namespace="", fields="spec.nodeName=n2"), False,
     "can only list/watch pods with spec.nodeName field selector"),
    (attrs("list", "pods", namespace="", fields="spec.nodeName!=n2"), False,
     "can only list/watch pods with spec.nodeName field selector"),
    (attrs("list", "pods"), False, "can only list/watch pods with spec.nodeName field selector"),
    (attrs("create", "pods"), True, ""),  # NodeRestriction decides
    (attrs("patch", "pods", "db", sub="status"), True, ""),  # NodeRestriction decides
    (attrs("create", "pods", "db", sub="eviction"), True, ""),
    (attrs("update", "pods", "web"), False, ""),
    (attrs("create", "pods", "web", sub="binding"), False, ""),
    (attrs("get", "nodes", "n1", namespace=""), True, ""),
    (attrs("get", "nodes", "n2", namespace=""), False, "node 'n1' cannot read 'n2', only its own Node object"),
    (attrs("list", "nodes", namespace=""), False, "node 'n1' cannot read all nodes, only its own Node object"),
    (attrs("patch", "nodes", "n2", namespace="", sub="status"), True, ""),  # NodeRestriction decides
    (attrs("delete", "nodes", "n1", namespace=""), False, ""),
    (attrs("get", "leases", "n1", namespace="kube-node-lease", group="coordination.k8s.io"), True, ""),
    (attrs("create", "leases", namespace="kube-node-lease", group="coordination.k8s.io"), True, ""),
    (attrs("update", "leases", "n2", namespace="kube-node-lease", group="coordination.k8s.io"), False,
     "can only access node lease with the same name as the requesting node"),
    (attrs("get", "leases", "n1", namespace="default", group="coordination.k8s.io"), False,
     'can only access leases in the "kube-node-lease" system namespace'),
    (attrs("list", "leases", namespace="kube-node-lease", group="coordination.k8s.io"), False,
     "can only get, create, update, patch, or delete a node lease"),
    (attrs("create", "events"), True, ""),
    (attrs("list", "services", namespace=""), True, ""),
    (attrs("get", "namespaces", "ns", namespace="ns"), True, ""),  # ours: the node guard reads it
    (attrs("delete", "namespaces", "ns", namespace="ns"), False, ""),
    (attrs("list", "deployments", group="apps"), False, ""),
])
def test_decisions(a: authz.Attributes, allowed: bool, reason: str) -> None:
    assert decide(a) == authz.Decision(allowed, reason)


@pytest.mark.parametrize(("a", "allowed", "reason"), [
    (attrs("get", "persistentvolumes", "home", namespace=""), True, ""),
    (attrs("patch", "persistentvolumes", "home", namespace=""), True, ""),  # NodeRestriction: the finalizer only
    (attrs("update", "persistentvolumes", "home", namespace=""), True, ""),
    (attrs("delete", "persistentvolumes", "home", namespace=""), False, "can only get individual resources of this type"),
    (attrs("list", "persistentvolumes", namespace=""), False, "can only get individual resources of this type"),
    (attrs("patch", "persistentvolumes", "home", namespace="", sub="status"), False,
     "can only get individual resources of this type"),
    (attrs("get", "persistentvolumes", "away", namespace=""), False,
     "no relationship found between node 'n1' and this object"),
    (attrs("patch", "persistentvolumes", "shared", namespace=""), False,
     "can only get individual resources of this type"),
    (attrs("get", "persistentvolumes", "hostpath", namespace=""), False,
     "no relationship found between node 'n1' and this object"),
])
def test_a_node_reads_and_marks_only_the_docker_volumes_pinned_to_it(a: authz.Attributes, allowed: bool,
                                                                      reason: str) -> None:
    pvs = [*PVS, docker_pv("home", "n1"), docker_pv("away", "n2"), docker_pv("shared", "n1", "n2"),
           docker_pv("hostpath", "n1", driver="hostpath.csi.k8s.io")]
    assert decide(a, live(pvs=pvs)) == authz.Decision(allowed, reason)


def test_rules_review_of_a_node_is_incomplete() -> None:
    authorizer = node_authorizer.NodeAuthorizer(live())
    assert authorizer.rules_for(NODE1, "ns") == ([], ["node authorizer does not support user rule resolution"])
    assert authorizer.rules_for(authn.UserInfo("alice"), "ns") == ([], [])


def test_in_the_chain_a_node_denial_says_why_and_rbac_still_gets_asked() -> None:
    class Rbac:
        asked: list[authz.Attributes] = []

        async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
            self.asked.append(attributes)
            return authz.Decision(attributes.resource == "deployments", "")

    rbac = Rbac()
    chain = authorizers.build(authorizers.parse_modes("Node,RBAC"), rbac=rbac,
                              node=node_authorizer.NodeAuthorizer(live()))
    denied = asyncio.run(chain.authorize(attrs("get", "secrets", "theirs")))
    assert denied == authz.Decision(False, "no relationship found between node 'n1' and this object")
    assert len(rbac.asked) == 1
    assert asyncio.run(chain.authorize(attrs("list", "deployments", group="apps"))).allowed
    assert chain.rules_for(NODE1, "ns").incomplete
    with pytest.raises(ValueError, match="Node mode needs the Node authorizer"):
        authorizers.build(["Node"], rbac=None)


def test_the_mode_is_known_in_upstreams_spelling() -> None:
    assert authorizers.parse_modes("Node,RBAC") == ["Node", "RBAC"]
    with pytest.raises(ValueError, match="known: AlwaysAllow, AlwaysDeny, RBAC, Node"):
        authorizers.parse_modes("node")


# --- the live graph: built from the caches once, then one event at a time ----------------------------------------


class FakeEntry:  # a stand-in for a watch-cache entry: only what the listener reads
    def __init__(self, obj: dict, decodable: bool = True) -> None:
        self.obj, self.decodable = obj, decodable


def event(kind: str, obj: dict) -> watchcache.CacheEvent:
    return watchcache.CacheEvent(kind, FakeEntry(obj), None, 1)  # type: ignore[arg-type]


def test_the_live_graph_syncs_from_the_caches_then_follows_events() -> None:
    store: dict[str, list[dict] | None] = {"pods": None, "persistentvolumes": []}
    graph = feed.LiveGraph(lambda plural: store[plural])
    assert not graph.graph().reachable("n1", "pod", "ns", "web")  # no pod cache yet: nothing, and not synced
    graph.pod_event(event(watchcache.ADDED, PODS[0]))  # before the sync: the list will hold it
    store["pods"] = [PODS[0]]
    assert graph.graph().reachable("n1", "secret", "ns", "mine") and graph.resyncs == 1
    graph.pod_event(event(watchcache.ADDED, pod("late", "n1", volumes=[{"name": "s", "secret": {"secretName": "l"}}])))
    assert graph.graph().reachable("n1", "secret", "ns", "l")
    graph.pod_event(event(watchcache.DELETED, PODS[0]))
    assert not graph.graph().reachable("n1", "secret", "ns", "mine")
    graph.pv_event(event(watchcache.ADDED, {"metadata": {"name": "v"}, "spec": {"claimRef": {
        "namespace": "ns", "name": "c"}}}))
    graph.pod_event(event(watchcache.MODIFIED, pod("late", "n1", volumes=[
        {"name": "d", "persistentVolumeClaim": {"claimName": "c"}}])))
    assert graph.graph().reachable("n1", "pv", "", "v") and not graph.graph().reachable("n1", "secret", "ns", "l")
    graph.pv_event(event(watchcache.DELETED, {"metadata": {"name": "v"}}))
    assert not graph.graph().reachable("n1", "pv", "", "v")
    assert graph.resyncs == 1  # never rescanned


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]),
       st.sampled_from(["secrets", "configmaps", "pods", "nodes", "persistentvolumeclaims", "persistentvolumes",
                        "serviceaccounts", "events", "deployments", "roles"]),
       st.sampled_from(["", "status", "token", "eviction", "log"]),
       st.sampled_from(["", "mine", "theirs", "web", "db", "n1", "n2"]))
def test_a_non_node_never_gets_an_opinion_and_nobody_is_denied_outright(verb: str, resource: str, sub: str,
                                                                        name: str) -> None:
    authorizer = node_authorizer.NodeAuthorizer(live())
    for user in (authn.UserInfo("alice", groups=("system:authenticated",)),
                 authn.UserInfo("system:node:n1"), authn.UserInfo("bob", groups=("system:nodes",))):
        assert authorizer.decide(attrs(verb, resource, name, sub=sub, user=user)) == authz.Decision(False, "")


# --- the default policy: system:node is bound to nobody, and an old binding to every node is undone -------------


def test_reconciling_the_default_policy_unbinds_every_node_from_system_node() -> None:
    import copy

    from reconcile.api.rbac import bootstrap, policy

    expected = next(b for b in policy.cluster_role_bindings() if b["metadata"]["name"] == "system:node")
    assert expected["subjects"] == [] and expected["roleRef"]["name"] == "system:node"
    admin_added = policy.user("ops")
    old = copy.deepcopy(expected)
    old["subjects"] = [policy.group(policy.NODES_GROUP), admin_added]
    assert bootstrap.reconciled_binding(old, expected)["subjects"] == [admin_added]  # type: ignore[index]
    assert bootstrap.reconciled_binding(bootstrap.reconciled_binding(old, expected), expected) is None  # type: ignore[arg-type]
    pinned = copy.deepcopy(old)
    pinned["metadata"].setdefault("annotations", {})[policy.AUTOUPDATE] = "false"
    assert bootstrap.reconciled_binding(pinned, expected) is None  # the administrator's choice stands


def test_several_listeners_follow_one_cache_in_the_order_they_were_added() -> None:
    from reconcile.api import caches

    seen: list[str] = []
    cache_set = caches.CacheSet(None)  # type: ignore[arg-type]  # listeners need no store
    cache_set.listeners[("", "pods")] = lambda e: seen.append("first")
    cache_set.add_listener(("", "pods"), lambda e: seen.append("graph"))
    cache_set.add_listener(("", "persistentvolumes"), lambda e: seen.append("pv"))
    cache_set.listeners[("", "pods")](event(watchcache.ADDED, PODS[0]))
    assert seen == ["first", "graph"]
