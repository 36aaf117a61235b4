"""The node authorizer's graph and reference visitors (pure), checked against a brute-force oracle."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api.nodeauth import graph as graph_mod
from reconcile.api.nodeauth import references
from reconcile.api.nodeauth.references import CONFIGMAP, POD, PV, PVC, SECRET, SERVICEACCOUNT

NAMESPACES = ("a", "b")
NAMES = ("x", "y", "z")
NODES = ("n1", "n2", "")


def pod(name: str, namespace: str = "a", node: str = "n1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}], **spec}
    if node:
        body["nodeName"] = node
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


def pv(name: str, claim: tuple[str, str] | None, secret: str = "", secret_namespace: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    if secret:
        ref = {"name": secret, **({"namespace": secret_namespace} if secret_namespace else {})}
        spec["csi"] = {"driver": "d", "volumeHandle": "h", "nodePublishSecretRef": ref}
    return {"metadata": {"name": name}, "spec": spec}


# --- references ----------------------------------------------------------------------------------------------------


def test_every_place_a_pod_names_a_secret_or_configmap_is_found() -> None:
    p = pod(
        "web", imagePullSecrets=[{"name": "pull"}],
        initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
        containers=[{"name": "c", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
            {"name": "C", "value": "plain"}],
            "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
        ephemeralContainers=[{"name": "e", "envFrom": [{"secretRef": {"name": "debug"}}]}],
        volumes=[{"name": "s", "secret": {"secretName": "vol-secret"}},
                 {"name": "c", "configMap": {"name": "vol-cm"}},
                 {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                         {"configMap": {"name": "proj-cm"}},
                                                         {"serviceAccountToken": {"path": "t"}}]}},
                 {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
                 {"name": "rbd", "rbd": {"secretRef": {"name": "rbd-secret"}}},
                 {"name": "az", "azureFile": {"secretName": "az-secret", "shareName": "s"}},
                 {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                 {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}],
        serviceAccountName="builder")
    assert references.secret_names(p) == {"pull", "init-env", "env-secret", "debug", "vol-secret", "proj-secret",
                                          "csi-secret", "rbd-secret", "az-secret"}
    assert references.configmap_names(p) == {"env-cm", "from-cm", "vol-cm", "proj-cm"}
    assert references.claim_names(p) == {"data", "web-scratch"}  # an ephemeral volume's claim is <pod>-<volume>
    refs = references.pod_references(p)
    assert (SERVICEACCOUNT, "a", "builder") in refs and (PVC, "a", "data") in refs


def test_malformed_pods_have_no_references_rather_than_errors() -> None:
    for spec in (None, "x", {"volumes": "nope"}, {"volumes": [None, 3, {"secret": "s"}]},
                 {"containers": [{"env": [{"valueFrom": None}, "x"]}]}, {"imagePullSecrets": [{"name": 5}]}):
        assert references.pod_references({"metadata": {"name": "p", "namespace": "a"}, "spec": spec}) == frozenset()


def test_a_pv_without_a_claim_has_no_edges() -> None:
    assert references.pv_references(pv("v", None, secret="s")) == (None, frozenset())
    assert references.pv_references(pv("v", ("a", "c"), secret="s")) == (("a", "c"), frozenset({(SECRET, "a", "s")}))
    assert references.pv_references(pv("v", ("a", "c"), secret="s", secret_namespace="b"))[1] == {(SECRET, "b", "s")}


# --- the graph -----------------------------------------------------------------------------------------------------


def test_a_node_reaches_what_its_pods_reference_and_nothing_else() -> None:
    g = graph_mod.Graph()
    g.set_pod(pod("web", volumes=[{"name": "s", "secret": {"secretName": "tls"}},
                                  {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    g.set_pod(pod("other", node="n2", volumes=[{"name": "s", "secret": {"secretName": "db"}}]))
    g.set_pv(pv("vol", ("a", "data"), secret="mount-creds"))
    assert g.reachable("n1", SECRET, "a", "tls")
    assert not g.reachable("n1", SECRET, "a", "db") and g.reachable("n2", SECRET, "a", "db")
    assert not g.reachable("n1", SECRET, "b", "tls")  # same name, other namespace
    assert g.reachable("n1", PVC, "a", "data") and g.reachable("n1", PV, "", "vol")
    assert g.reachable("n1", SECRET, "a", "mount-creds") and not g.reachable("n2", SECRET, "a", "mount-creds")
    assert g.reachable("n1", POD, "a", "web") and not g.reachable("n1", POD, "a", "other")
    g.remove_pod("a", "web")
    assert not g.reachable("n1", SECRET, "a", "tls") and not g.reachable("n1", PV, "", "vol")


def test_unbound_pods_grant_nothing_and_a_status_update_changes_nothing() -> None:
    g = graph_mod.Graph()
    unbound = pod("p", node="", volumes=[{"name": "s", "secret": {"secretName": "s"}}])
    g.set_pod(unbound)
    assert len(g) == 0 and not g.reachable("n1", SECRET, "a", "s")
    bound = {**unbound, "spec": {**unbound["spec"], "nodeName": "n1"}}
    g.set_pod(bound)
    g.set_pod({**bound, "status": {"phase": "Running"}})
    assert g.reachable("n1", SECRET, "a", "s")
    assert not g.reachable("", SECRET, "a", "s")


def test_two_pods_sharing_a_secret_keep_it_reachable_until_both_are_gone() -> None:
    g = graph_mod.Graph()
    vol = [{"name": "s", "secret": {"secretName": "shared"}}]
    g.set_pod(pod("one", volumes=vol))
    g.set_pod(pod("two", volumes=vol))
    g.remove_pod("a", "one")
    assert g.reachable("n1", SECRET, "a", "shared")
    g.set_pod(pod("two"))  # its volume removed (ephemeral containers etc. can change what a pod names)
    assert not g.reachable("n1", SECRET, "a", "shared")


# --- property: the incremental graph agrees with a brute force over the final state --------------------------------

names = st.sampled_from(NAMES)
namespaces = st.sampled_from(NAMESPACES)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    volumes = []
    for i, kind in enumerate(draw(st.lists(st.sampled_from(["secret", "configMap", "pvc", "projected"]),
                                           max_size=3))):
        ref = draw(names)
        if kind == "secret":
            volumes.append({"name": f"v{i}", "secret": {"secretName": ref}})
        elif kind == "configMap":
            volumes.append({"name": f"v{i}", "configMap": {"name": ref}})
        elif kind == "pvc":
            volumes.append({"name": f"v{i}", "persistentVolumeClaim": {"claimName": ref}})
        else:
            volumes.append({"name": f"v{i}", "projected": {"sources": [{"secret": {"name": ref}}]}})
    env = [{"name": f"E{i}", "valueFrom": {"secretKeyRef": {"name": n, "key": "k"}}}
           for i, n in enumerate(draw(st.lists(names, max_size=2)))]
    spec: dict[str, Any] = {"volumes": volumes, "containers": [{"name": "c", "env": env}]}
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(names)
    return pod(draw(names), draw(namespaces), draw(st.sampled_from(NODES)), **spec)


@st.composite
def pvs(draw: st.DrawFn) -> dict[str, Any]:
    claim = (draw(namespaces), draw(names)) if draw(st.booleans()) else None
    return pv(draw(names), claim, secret=draw(st.sampled_from(("", *NAMES))),
              secret_namespace=draw(st.sampled_from(("", *NAMESPACES))))


operations = st.one_of(
    st.tuples(st.just("set_pod"), pods()),
    st.tuples(st.just("remove_pod"), st.tuples(namespaces, names)),
    st.tuples(st.just("set_pv"), pvs()),
    st.tuples(st.just("remove_pv"), names),
)


def oracle(final_pods: dict[tuple[str, str], dict], final_pvs: dict[str, dict], node: str, kind: str,
           namespace: str, name: str) -> bool:
    """What upstream's graph walk answers, by brute force over every stored object."""
    if not node:
        return False
    on_node = [p for p in final_pods.values() if p["spec"].get("nodeName") == node]

    def used(ref_kind: str, ns: str, ref: str) -> bool:
        return any((ref_kind, ns, ref) in references.pod_references(p) for p in on_node)

    def pv_ok(v: dict) -> bool:
        claim = (v["spec"].get("claimRef") or {})
        return bool(claim) and used(PVC, claim["namespace"], claim["name"])

    if kind == POD:
        return (namespace, name) in {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in on_node}
    if kind == PV:
        return name in final_pvs and pv_ok(final_pvs[name])
    if used(kind, namespace, name):
        return True
    if kind == SECRET:
        return any(pv_ok(v) and (SECRET, namespace, name) in references.pv_references(v)[1]
                   for v in final_pvs.values())
    return False


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=25))
def test_the_graph_answers_as_a_brute_force_over_the_objects_stored(ops: list) -> None:
    g = graph_mod.Graph()
    final_pods: dict[tuple[str, str], dict] = {}
    final_pvs: dict[str, dict] = {}
    for op, arg in ops:
        if op == "set_pod":
            g.set_pod(arg)
            final_pods[(arg["metadata"]["namespace"], arg["metadata"]["name"])] = arg
        elif op == "remove_pod":
            g.remove_pod(*arg)
            final_pods.pop(arg, None)
        elif op == "set_pv":
            g.set_pv(arg)
            final_pvs[arg["metadata"]["name"]] = arg
        else:
            g.remove_pv(arg)
            final_pvs.pop(arg, None)
    rebuilt = graph_mod.Graph()
    rebuilt.reset(final_pods.values(), final_pvs.values())
    for node in NODES:
        for kind in (POD, SECRET, CONFIGMAP, PVC, PV, SERVICEACCOUNT):
            for namespace in ("", *NAMESPACES) if kind == PV else NAMESPACES:
                for name in NAMES:
                    expected = oracle(final_pods, final_pvs, node, kind, namespace if kind != PV else "", name)
                    assert g.reachable(node, kind, namespace, name) == expected, (node, kind, namespace, name)
                    assert rebuilt.reachable(node, kind, namespace, name) == expected
    # The indexes hold nothing for objects nobody references any more (no leak across updates).
    assert g._holders == rebuilt._holders and g._pvs_by_secret == rebuilt._pvs_by_secret
