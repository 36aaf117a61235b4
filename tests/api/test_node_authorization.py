"""The Node authorizer and NodeRestriction on a real API server (`--authorization-mode Node,RBAC`, HTTPS,
client certificates from the test PKI): a node's identity reads only what its pods use and writes
only its own objects, with upstream's messages; SubjectAccessReviews and `kubectl auth can-i` answer
through the same chain; other users are untouched (RBAC decides)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.pki import cluster as pki_cluster
from tests import prerequisites, support
from tests.api import helpers

PATCH = {"Content-Type": "application/merge-patch+json"}
NODE_GROUP = "system:nodes"


@pytest.fixture(scope="module")
def server(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    pki = pki_cluster.ClusterPki(Path(tempfile.mkdtemp(prefix="nodeauth-pki-")) / "pki")
    pki.ensure()
    process = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True,
                                       pki=pki, extra_args=("--authorization-mode", "Node,RBAC",
                                                            "--service-account-key-file", str(pki.sa_pub),
                                                            "--service-account-signing-key-file", str(pki.sa_key)))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def conn(server: support.ApiServerProcess) -> support.Connection:
    return server.connection


@pytest.fixture(scope="module")
def admin(conn: support.Connection) -> Iterator[httpx.Client]:
    with conn.http_client() as client:
        yield client


@pytest.fixture(scope="module")
def n1(conn: support.Connection) -> Iterator[httpx.Client]:
    with conn.http_client(as_user=conn.user("system:node:n1", NODE_GROUP)) as client:
        yield client


def pod(name: str, node: str, *, secret: str, configmap: str = "", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "reconcile-hello:1.0"}
    if configmap:
        container["envFrom"] = [{"configMapRef": {"name": configmap}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [container],
                     "volumes": [{"name": "s", "secret": {"secretName": secret}}], **spec}}


@pytest.fixture(scope="module")
def world(admin: httpx.Client) -> dict[str, str]:
    """A namespace with a pod on n1 (secret `mine`, configmap `conf`) and one on n2 (secret `theirs`); nodes n1, n2."""
    ns = helpers.make_namespace(admin, "node")
    for name in ("mine", "theirs", "unused"):
        helpers.create(admin, f"/api/v1/namespaces/{ns}/secrets",
                       {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"k": "dg=="}})
    helpers.create(admin, f"/api/v1/namespaces/{ns}/configmaps", helpers.configmap("conf", {"a": "b"}))
    helpers.create(admin, f"/api/v1/namespaces/{ns}/serviceaccounts",  # no controller-manager runs here
                   {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    helpers.create(admin, f"/api/v1/namespaces/{ns}/pods", pod("web", "n1", secret="mine", configmap="conf"))
    helpers.create(admin, f"/api/v1/namespaces/{ns}/pods", pod("db", "n2", secret="theirs"))
    helpers.create(admin, "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})
    return {"ns": ns}


def forbidden(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    return str(body["message"])


def test_a_node_reads_the_secrets_and_configmaps_of_its_pods_only(n1: httpx.Client, world: dict[str, str]) -> None:
    ns = world["ns"]
    support.wait_for(lambda: n1.get(f"/api/v1/namespaces/{ns}/secrets/mine").status_code == 200,
                     what="the node's pod to reach the graph")
    assert n1.get(f"/api/v1/namespaces/{ns}/configmaps/conf").status_code == 200
    assert forbidden(n1.get(f"/api/v1/namespaces/{ns}/secrets/theirs")) == (
        f'secrets "theirs" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the '
        f"namespace \"{ns}\": no relationship found between node 'n1' and this object")
    assert "no relationship found" in forbidden(n1.get(f"/api/v1/namespaces/{ns}/secrets/unused"))
    assert forbidden(n1.get(f"/api/v1/namespaces/{ns}/secrets")).endswith(": No Object name found")
    pinned = n1.get(f"/api/v1/namespaces/{ns}/secrets", params={"fieldSelector": "metadata.name=mine"})
    assert pinned.status_code == 200 and [i["metadata"]["name"] for i in pinned.json()["items"]] == ["mine"]
    assert "no relationship found" in forbidden(n1.get(f"/api/v1/namespaces/{ns}/secrets",
                                                       params={"fieldSelector": "metadata.name=theirs"}))
    assert forbidden(n1.put(f"/api/v1/namespaces/{ns}/secrets/mine", json={})).endswith(
        ": can only read resources of this type")


def test_access_follows_the_pods_as_they_come_and_go(admin: httpx.Client, n1: httpx.Client,
                                                     world: dict[str, str]) -> None:
    ns = world["ns"]
    helpers.create(admin, f"/api/v1/namespaces/{ns}/secrets",
                   {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}})
    assert n1.get(f"/api/v1/namespaces/{ns}/secrets/later").status_code == 403
    helpers.create(admin, f"/api/v1/namespaces/{ns}/pods", pod("job", "n1", secret="later"))
    support.wait_for(lambda: n1.get(f"/api/v1/namespaces/{ns}/secrets/later").status_code == 200,
                     what="the new pod's secret to be readable")
    assert admin.delete(f"/api/v1/namespaces/{ns}/pods/job", params={"gracePeriodSeconds": "0"}).status_code == 200
    support.wait_for(lambda: n1.get(f"/api/v1/namespaces/{ns}/secrets/later").status_code == 403,
                     what="the deleted pod's secret to be refused")


def test_a_node_sees_only_its_own_pods_and_node(n1: httpx.Client, world: dict[str, str]) -> None:
    ns = world["ns"]
    mine = n1.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n1"})
    assert mine.status_code == 200 and {p["metadata"]["name"] for p in mine.json()["items"]} >= {"web"}
    assert all(p["spec"]["nodeName"] == "n1" for p in mine.json()["items"])
    assert forbidden(n1.get("/api/v1/pods")).endswith(": can only list/watch pods with spec.nodeName field selector")
    assert forbidden(n1.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n2"})).endswith(
        "can only list/watch pods with spec.nodeName field selector")
    assert n1.get(f"/api/v1/namespaces/{ns}/pods/web").status_code == 200
    assert "no relationship found" in forbidden(n1.get(f"/api/v1/namespaces/{ns}/pods/db"))
    assert forbidden(n1.get("/api/v1/nodes/n2")) == (
        'nodes "n2" is forbidden: User "system:node:n1" cannot get resource "nodes" in API group "" at the cluster '
        "scope: node 'n1' cannot read 'n2', only its own Node object")
    assert "cannot read all nodes" in forbidden(n1.get("/api/v1/nodes"))


def test_a_node_writes_its_own_node_lease_and_pod_status_only(n1: httpx.Client, world: dict[str, str]) -> None:
    ns = world["ns"]
    created = n1.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}})
    assert created.status_code == 201, created.text
    assert forbidden(n1.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node",
                                                    "metadata": {"name": "n3"}})) == \
        'nodes "n3" is forbidden: node "n1" is not allowed to modify node "n3"'
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert n1.patch("/api/v1/nodes/n1/status", json=status, headers=PATCH).status_code == 200
    assert forbidden(n1.patch("/api/v1/nodes/n2/status", json=status, headers=PATCH)) == \
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    assert forbidden(n1.delete("/api/v1/nodes/n2")) == (
        'nodes "n2" is forbidden: User "system:node:n1" cannot delete resource "nodes" in API group "" at the '
        "cluster scope")
    assert forbidden(n1.patch("/api/v1/nodes/n1", json={"metadata": {"labels": {
        "node-restriction.kubernetes.io/trusted": "yes"}}}, headers=PATCH)) == \
        'nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/trusted'
    assert forbidden(n1.patch("/api/v1/nodes/n1", json={"spec": {"taints": [
        {"key": "k", "effect": "NoSchedule"}]}}, headers=PATCH)) == \
        'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'

    pod_status = {"status": {"phase": "Running"}}
    assert n1.patch(f"/api/v1/namespaces/{ns}/pods/web/status", json=pod_status, headers=PATCH).status_code == 200
    assert forbidden(n1.patch(f"/api/v1/namespaces/{ns}/pods/db/status", json=pod_status, headers=PATCH)) == \
        'pods "db" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself'
    assert forbidden(n1.post(f"/api/v1/namespaces/{ns}/pods", json=pod("sneaky", "n1", secret="theirs"))) == (
        'pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only '
        "create mirror pods")
    assert forbidden(n1.delete(f"/api/v1/namespaces/{ns}/pods/db")) == \
        'pods "db" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'

    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"},
             "spec": {"holderIdentity": "n1"}}
    assert n1.post(leases, json=lease).status_code == 201
    assert n1.patch(f"{leases}/n1", json={"spec": {"leaseDurationSeconds": 40}}, headers=PATCH).status_code == 200
    assert forbidden(n1.post(leases, json={**lease, "metadata": {"name": "n2"}})) == \
        ('leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the '
         "requesting node")
    assert forbidden(n1.get(f"{leases}/n2")).endswith(
        ": can only access node lease with the same name as the requesting node")
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": helpers.unique("ev")},
             "involvedObject": {"kind": "Pod", "namespace": ns, "name": "web"}, "reason": "Started",
             "message": "m", "type": "Normal", "source": {"component": "kubelet", "host": "n1"}}
    assert n1.post(f"/api/v1/namespaces/{ns}/events", json=event).status_code == 201


def test_half_a_node_identity_is_no_node(conn: support.Connection, world: dict[str, str]) -> None:
    """The name without the group (or the group without the name) is an ordinary user: RBAC, which
    grants it nothing, and NodeRestriction does not apply."""
    ns = world["ns"]
    for user in (conn.user("system:node:n1"), conn.user("impostor", NODE_GROUP)):
        with conn.http_client(as_user=user) as client:
            assert forbidden(client.get(f"/api/v1/namespaces/{ns}/secrets/mine")).endswith(f'namespace "{ns}"')


def test_nodes_are_not_bound_to_the_system_node_role(admin: httpx.Client) -> None:
    binding = admin.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:node").json()
    assert not binding.get("subjects")
    assert admin.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node").status_code == 200


def review(admin: httpx.Client, ns: str, name: str, *, verb: str = "get") -> dict[str, Any]:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": "system:node:n1", "groups": [NODE_GROUP],
        "resourceAttributes": {"namespace": ns, "verb": verb, "resource": "secrets", "name": name}}}
    response = admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["status"])


def test_subject_access_reviews_answer_through_the_node_authorizer(admin: httpx.Client, world: dict[str, str]) -> None:
    ns = world["ns"]
    support.wait_for(lambda: review(admin, ns, "mine").get("allowed") is True, what="the review to allow")
    denied = review(admin, ns, "theirs")
    assert denied.get("allowed") is not True
    assert denied["reason"] == "no relationship found between node 'n1' and this object"


def test_a_review_of_a_pod_list_reads_its_field_selector(admin: httpx.Client) -> None:
    def pods(selector: dict[str, Any] | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {"verb": "list", "resource": "pods"}
        if selector is not None:
            attributes["fieldSelector"] = selector
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": "system:node:n1", "groups": [NODE_GROUP], "resourceAttributes": attributes}}
        response = admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json()["status"])

    assert pods({"rawSelector": "spec.nodeName=n1"}).get("allowed") is True
    assert pods({"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]}).get("allowed")
    for refused in (None, {"rawSelector": "spec.nodeName=n2"}, {"rawSelector": "spec.nodeName!=n2"},
                    {"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1", "n2"]}]},
                    {"rawSelector": "spec.nodeName=n1,\\"}):
        answer = pods(refused)
        assert answer.get("allowed") is not True, refused
        assert answer["reason"] == "can only list/watch pods with spec.nodeName field selector"


def _kubectl(conn: support.Connection, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = conn.write_kubeconfig(tmp_path / "kubeconfig")
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env.update(KUBECONFIG=str(kubeconfig), HOME=str(tmp_path), KUBECACHEDIR=str(tmp_path / "cache"))
    found = prerequisites.find_kubectl()
    assert found is not None
    return subprocess.run([found, *args], capture_output=True, text=True, env=env, timeout=60)


def test_kubectl_auth_can_i_as_a_node(conn: support.Connection, admin: httpx.Client, world: dict[str, str],
                                      tmp_path: Path) -> None:
    prerequisites.require_kubectl()
    ns = world["ns"]
    support.wait_for(lambda: review(admin, ns, "mine").get("allowed") is True, what="the graph to hold the pod")
    as_node = ("--as", "system:node:n1", "--as-group", NODE_GROUP, "-n", ns)
    yes = _kubectl(conn, tmp_path, "auth", "can-i", *as_node, "get", "secret/mine")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes"), yes.stderr
    no = _kubectl(conn, tmp_path, "auth", "can-i", *as_node, "get", "secret/theirs")
    # kubectl prints the reason after "no", and the Node authorizer's is upstream's
    assert (no.returncode, no.stdout.strip()) == (1, "no - no relationship found between node 'n1' and this "
                                                     "object"), no.stderr
    other = _kubectl(conn, tmp_path, "auth", "can-i", *as_node, "patch", "nodes/n2", "--subresource", "status")
    assert other.stdout.strip() == "yes"  # the authorizer allows it; NodeRestriction refuses the write itself


def test_a_node_cannot_widen_a_pinned_list(n1: httpx.Client, world: dict[str, str]) -> None:
    """The name the authorizer reads and the selector the list applies are one: a second fieldSelector,
    another namespace, or a watch of every namespace get the node nothing more than the one Secret."""
    ns = world["ns"]
    support.wait_for(lambda: n1.get(f"/api/v1/namespaces/{ns}/secrets/mine").status_code == 200, what="graph")
    # One value of a repeated parameter is read, by both (the last); whichever it is, it is the same one.
    for query, status in (("fieldSelector=&fieldSelector=metadata.name%3Dmine", 200),
                          ("fieldSelector=metadata.name%3Dmine&fieldSelector=", 403),
                          ("fieldSelector=metadata.name%3Dmine,metadata.name!%3Dx", 200)):
        answer = n1.get(f"/api/v1/namespaces/{ns}/secrets?{query}")
        assert answer.status_code == status, (query, answer.text)
        if status == 200:
            assert [i["metadata"]["name"] for i in answer.json()["items"]] == ["mine"], query
    assert forbidden(n1.get("/api/v1/secrets", params={"fieldSelector": "metadata.name=mine"})).endswith(
        ": can only read namespaced object of this type")
    with n1.stream("GET", f"/api/v1/namespaces/{ns}/secrets",
                   params={"watch": "1", "fieldSelector": "metadata.name=mine", "timeoutSeconds": "1"}) as watch:
        assert watch.status_code == 200
        names = [line for line in watch.iter_lines() if line]
    assert names and all('"name":"mine"' in line for line in names)


def test_a_node_cannot_impersonate_another_node(n1: httpx.Client, world: dict[str, str]) -> None:
    answer = n1.get(f"/api/v1/namespaces/{world['ns']}/secrets/theirs",
                    headers={"Impersonate-User": "system:node:n2", "Impersonate-Group": NODE_GROUP})
    assert answer.status_code == 403
    assert 'cannot impersonate resource "users"' in answer.json()["message"]


def _token_request(bound: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"audiences": ["https://kubernetes.default.svc.cluster.local"]}
    if bound is not None:
        spec["boundObjectRef"] = bound
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def test_a_node_mints_tokens_only_bound_to_its_own_pods(admin: httpx.Client, n1: httpx.Client,
                                                        world: dict[str, str]) -> None:
    """The Node authorizer lets a node ask for its pods' accounts' tokens; NodeRestriction (which
    TokenRequest runs through) keeps those tokens bound to its own pods, so a node never walks away
    with an unbound credential of an account."""
    ns = world["ns"]
    path = f"/api/v1/namespaces/{ns}/serviceaccounts/default/token"
    web = admin.get(f"/api/v1/namespaces/{ns}/pods/web").json()
    db = admin.get(f"/api/v1/namespaces/{ns}/pods/db").json()
    mine = {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": web["metadata"]["uid"]}
    minted = n1.post(path, json=_token_request(mine))
    assert minted.status_code == 201, minted.text
    assert minted.json()["status"]["token"].count(".") == 2
    assert forbidden(n1.post(path, json=_token_request())).endswith("node requested token not bound to a pod")
    theirs = {"apiVersion": "v1", "kind": "Pod", "name": "db", "uid": db["metadata"]["uid"]}
    assert "bound to a pod scheduled on a different node" in forbidden(n1.post(path, json=_token_request(theirs)))
    assert "without a uid" in forbidden(n1.post(path, json=_token_request({"apiVersion": "v1", "kind": "Pod",
                                                                           "name": "web"})))
