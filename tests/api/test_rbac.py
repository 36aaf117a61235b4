"""RBAC against a real API server (`--authorization-mode RBAC --token-auth-file`), with a real
controller-manager running as `system:kube-controller-manager` (so the default roles get aggregated
under RBAC, with only the permissions the default policy gives it). Requests are httpx with
`Authorization: Bearer <token>`; the official Python client is checked at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconcile.client import config as config_mod
from tests import support
from tests.api import helpers

RBAC = "/apis/rbac.authorization.k8s.io/v1"
G = "rbac.authorization.k8s.io"
TOKENS = {
    "admin": ("admin-token", "alice-admin", '"system:masters"'),
    "vera": ("vera-token", "vera", ""),  # view, cluster-wide
    "eddie": ("eddie-token", "eddie", '"developers"'),  # edit in namespace A only
    "nora": ("nora-token", "nora", ""),  # hand-made roles: resourceNames, subresources, URLs
    "bill": ("bill-token", "bill", ""),  # may create rolebindings in namespace A
    "ivan": ("ivan-token", "ivan", ""),  # impersonation
    "nobody": ("nobody-token", "nobody", ""),  # authenticated, nothing bound
    "rita": ("rita-token", "rita", ""),  # a role changed and a binding revoked under cached decisions
    "prom": ("prom-token", "prometheus", '"system:monitoring"'),  # scrapes /metrics
    "cm": ("controller-manager-token", "system:kube-controller-manager", ""),
}
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


def token_file(path: Path) -> None:
    lines = []
    for index, (token, name, groups) in enumerate(TOKENS.values()):
        lines.append(f"{token},{name},uid-{index}" + (f",{groups}" if groups else ""))
    path.write_text("\n".join(lines) + "\n")


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who][0]}"}


class Cluster:
    def __init__(self, url: str, manager_log: Path) -> None:
        self.url = url
        self.manager_log = manager_log
        self.http = support.connection(url).http_client(anonymous=True)  # tokens say who calls
        self.ns_a = helpers.unique("team-a")
        self.ns_b = helpers.unique("team-b")

    def req(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if who is not None:
            headers.update(auth(who))
        return self.http.request(method, path, headers=headers, **kwargs)

    def admin(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201)) -> dict:
        response = self.req("admin", method, path, json=body)
        assert response.status_code in ok, response.text
        return response.json()

    def bind(self, name: str, role_kind: str, role: str, subjects: list[dict], namespace: str | None = None) -> None:
        body = {"apiVersion": f"{G}/v1", "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
                "metadata": {"name": name}, "roleRef": {"apiGroup": G, "kind": role_kind, "name": role},
                "subjects": subjects}
        path = f"{RBAC}/namespaces/{namespace}/rolebindings" if namespace else f"{RBAC}/clusterrolebindings"
        self.admin("POST", path, body)

    def role(self, name: str, rules: list[dict], namespace: str | None = None, **extra: Any) -> None:
        body = {"apiVersion": f"{G}/v1", "kind": "Role" if namespace else "ClusterRole", "metadata": {"name": name},
                "rules": rules, **extra}
        self.admin("POST", f"{RBAC}/namespaces/{namespace}/roles" if namespace else f"{RBAC}/clusterroles", body)


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": G, "name": name}


def can_i(cluster: Cluster, who: str, verb: str, resource: str, *, namespace: str = "", group: str = "",
          name: str = "", subresource: str = "", headers: dict | None = None) -> bool:
    attributes = {"verb": verb, "resource": resource, "group": group, "namespace": namespace, "name": name,
                  "subresource": subresource}
    response = cluster.req(who, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", headers=headers,
                           json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                 "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}}})
    assert response.status_code == 201, response.text
    return response.json()["status"]["allowed"]


@pytest.fixture(scope="module")
def cluster(etcd_endpoint: str) -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="rbac-"))
    token_file(workdir / "tokens.csv")
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", extra_args=(
        "--authorization-mode", "Node,RBAC", "--token-auth-file", str(workdir / "tokens.csv")))
    server.start()
    config_mod.write_kubeconfig(workdir / "kubeconfig", server.url, token=TOKENS["cm"][0],
                                ca_data=server.pki.ca.cert.read_bytes() if server.pki else None)
    env = {k: v for k, v in os.environ.items() if k != "RECONCILE_SERVER"}
    manager_log = open(workdir / "controller-manager.log", "w")  # noqa: SIM115 - closed below
    manager = subprocess.Popen([sys.executable, "-m", "reconcile", "controller-manager", "--no-leader-elect", "-v"],
                               stdout=manager_log, stderr=subprocess.STDOUT,
                               env=dict(env, KUBECONFIG=str(workdir / "kubeconfig"), PYTHONUNBUFFERED="1"))
    c = Cluster(server.url, workdir / "controller-manager.log")
    try:
        for ns in (c.ns_a, c.ns_b):
            c.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        c.bind("vera-view", "ClusterRole", "view", [user("vera")])
        c.bind("eddie-edit", "ClusterRole", "edit", [{"kind": "Group", "apiGroup": G, "name": "developers"}],
               namespace=c.ns_a)
        c.role("binder", [{"verbs": ["create", "get", "list"], "apiGroups": [G], "resources": ["rolebindings", "roles"]},
                          {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}], namespace=c.ns_a)
        c.bind("bill-binder", "Role", "binder", [user("bill")], namespace=c.ns_a)

        def aggregated() -> bool:
            rules = c.admin("GET", f"{RBAC}/clusterroles/view").get("rules") or []
            edit = c.admin("GET", f"{RBAC}/clusterroles/edit").get("rules") or []
            return any("pods" in r.get("resources", []) for r in rules) and any(
                "secrets" in r.get("resources", []) for r in edit)

        try:
            support.wait_for(aggregated, timeout=60, what="the controller-manager aggregates view and edit")
        except AssertionError:
            manager_log.flush()
            raise AssertionError((workdir / "controller-manager.log").read_text()[-4000:]) from None
        support.wait_for(lambda: can_i(c, "vera", "list", "pods", namespace=c.ns_b), what="vera's binding")
        support.wait_for(lambda: can_i(c, "eddie", "create", "secrets", namespace=c.ns_a), what="eddie's binding")
        support.wait_for(lambda: can_i(c, "bill", "create", "rolebindings", namespace=c.ns_a, group=G),
                         what="bill's binding")
        yield c
    finally:
        manager.terminate()
        try:
            manager.wait(timeout=15)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait()
        manager_log.close()
        c.http.close()
        server.stop()


# --- authentication -------------------------------------------------------------------------------------------


def test_public_paths_anyone_else_needs_credentials(cluster: Cluster) -> None:
    for path in ("/healthz", "/readyz", "/livez", "/version"):
        assert cluster.req(None, "GET", path).status_code == 200, path
    for path in ("/api", "/apis", "/api/v1/namespaces", "/openapi/v3", f"/api/v1/namespaces/{cluster.ns_a}/pods"):
        response = cluster.req(None, "GET", path)
        assert response.status_code == 401, path
        assert response.json() == UNAUTHORIZED  # says nothing of what exists
    bogus = cluster.http.get("/api/v1/namespaces", headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401 and bogus.json() == UNAUTHORIZED
    assert cluster.http.get("/healthz", headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_whoami_adds_system_authenticated(cluster: Cluster) -> None:
    response = cluster.req("eddie", "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert response.status_code == 201
    assert response.json()["status"]["userInfo"] == {"username": "eddie", "uid": "uid-2",
                                                     "groups": ["developers", "system:authenticated"]}
    assert cluster.req("eddie", "GET", "/apis/authentication.k8s.io/v1/selfsubjectreviews").status_code == 403
    assert cluster.req("admin", "GET", "/apis/authentication.k8s.io/v1/selfsubjectreviews").status_code == 405


def test_non_resource_urls(cluster: Cluster) -> None:
    for path in ("/api", "/apis", "/api/v1", "/openapi/v3", "/version", "/healthz"):
        assert cluster.req("nobody", "GET", path).status_code == 200, path  # system:discovery
    response = cluster.req("nora", "GET", "/metrics")
    assert response.status_code == 403
    assert response.json()["message"] == 'forbidden: User "nora" cannot get path "/metrics"'
    cluster.role("metrics-reader", [{"verbs": ["get"], "nonResourceURLs": ["/metr*"]}])
    cluster.bind("nora-metrics", "ClusterRole", "metrics-reader", [user("nora")])
    support.wait_for(lambda: cluster.req("nora", "GET", "/metrics").status_code == 200, what="the URL rule applies")
    assert cluster.req("nobody", "GET", "/metrics").status_code == 403
    assert cluster.req("prom", "GET", "/metrics").status_code == 200  # system:monitoring


# --- view and edit ------------------------------------------------------------------------------------------------


def test_view_user_reads_but_never_writes_or_reads_secrets(cluster: Cluster) -> None:
    ns = cluster.ns_b
    cluster.admin("POST", helpers.cm_path(ns), helpers.configmap("settings", {"a": "1"}))
    cluster.admin("POST", f"/api/v1/namespaces/{ns}/secrets",
                  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert cluster.req("vera", "GET", helpers.cm_path(ns, "settings")).json()["data"] == {"a": "1"}
    assert cluster.req("vera", "GET", helpers.deploy_path(ns)).status_code == 200
    assert cluster.req("vera", "GET", "/api/v1/pods").status_code == 200  # all namespaces: a cluster binding
    refused = cluster.req("vera", "POST", helpers.cm_path(ns), json=helpers.configmap("mine"))
    assert refused.status_code == 403
    assert refused.json()["message"] == (f'configmaps is forbidden: User "vera" cannot create resource "configmaps" '
                                         f'in API group "" in the namespace "{ns}"')
    refused = cluster.req("vera", "DELETE", helpers.cm_path(ns, "settings"))
    assert refused.status_code == 403 and refused.json()["details"] == {"name": "settings", "kind": "configmaps"}
    for path in (f"/api/v1/namespaces/{ns}/secrets", f"/api/v1/namespaces/{ns}/secrets/s"):
        assert cluster.req("vera", "GET", path).status_code == 403, path
    assert cluster.req("vera", "GET", f"{RBAC}/namespaces/{ns}/roles").status_code == 403
    assert cluster.req("vera", "PATCH", helpers.cm_path(ns, "settings"), headers=helpers.MERGE,
                       json={"data": {"a": "2"}}).status_code == 403


def test_namespace_edit_user_stays_in_its_namespace(cluster: Cluster) -> None:
    a, b = cluster.ns_a, cluster.ns_b
    created = cluster.req("eddie", "POST", helpers.cm_path(a), json=helpers.configmap("eddies"))
    assert created.status_code == 201, created.text
    assert cluster.req("eddie", "POST", f"/api/v1/namespaces/{a}/secrets", json={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok"}, "stringData": {"k": "v"}}).status_code == 201
    assert cluster.req("eddie", "GET", f"/api/v1/namespaces/{a}/secrets/tok").status_code == 200
    assert cluster.req("eddie", "POST", helpers.deploy_path(a), json=helpers.deployment("web")).status_code == 201
    assert cluster.req("eddie", "DELETE", helpers.cm_path(a, "eddies")).status_code == 200
    for method, path, body in (("GET", helpers.cm_path(b), None), ("POST", helpers.cm_path(b), helpers.configmap("x")),
                               ("GET", "/api/v1/configmaps", None), ("GET", "/api/v1/namespaces", None),
                               ("GET", "/api/v1/nodes", None), ("GET", f"{RBAC}/namespaces/{a}/rolebindings", None)):
        response = cluster.req("eddie", method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
    # a namespace is in itself (upstream's RequestInfo): edit (through view) reads its own namespace only
    assert cluster.req("eddie", "GET", f"/api/v1/namespaces/{a}").status_code == 200
    assert cluster.req("eddie", "GET", f"/api/v1/namespaces/{b}").status_code == 403


# --- resourceNames, subresources ---------------------------------------------------------------------------------


def test_resource_names_and_subresources(cluster: Cluster) -> None:
    ns = cluster.ns_b
    for name in ("app", "other"):
        cluster.admin("POST", helpers.cm_path(ns), helpers.configmap(name))
    cluster.admin("POST", helpers.deploy_path(ns), helpers.deployment("web", replicas=1))
    cluster.role("nora", [
        {"verbs": ["get", "update", "patch"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"]},
        {"verbs": ["get", "update", "patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
    ], namespace=ns)
    cluster.bind("nora", "Role", "nora", [user("nora")], namespace=ns)
    support.wait_for(lambda: cluster.req("nora", "GET", helpers.cm_path(ns, "app")).status_code == 200,
                     what="nora's role")
    assert cluster.req("nora", "GET", helpers.cm_path(ns, "other")).status_code == 403
    assert cluster.req("nora", "GET", helpers.cm_path(ns)).status_code == 403  # a list names nothing
    assert cluster.req("nora", "PATCH", helpers.cm_path(ns, "app"), headers=helpers.MERGE,
                       json={"data": {"k": "v"}}).status_code == 200
    scale = cluster.req("nora", "GET", helpers.deploy_path(ns, "web") + "/scale")
    assert scale.status_code == 200 and scale.json()["spec"]["replicas"] == 1
    patched = cluster.req("nora", "PATCH", helpers.deploy_path(ns, "web") + "/scale", headers=helpers.MERGE,
                          json={"spec": {"replicas": 3}})
    assert patched.status_code == 200, patched.text
    assert cluster.admin("GET", helpers.deploy_path(ns, "web"))["spec"]["replicas"] == 3
    refused = cluster.req("nora", "GET", helpers.deploy_path(ns, "web"))
    assert refused.status_code == 403
    assert refused.json()["message"] == (f'deployments.apps "web" is forbidden: User "nora" cannot get resource '
                                         f'"deployments" in API group "apps" in the namespace "{ns}"')
    assert cluster.req("nora", "GET", helpers.deploy_path(ns, "web") + "/status").status_code == 403
    assert cluster.req("nora", "GET", helpers.pod_path(ns, "p") + "/log").status_code != 403  # allowed (no such pod)
    assert cluster.req("nora", "GET", helpers.pod_path(ns, "p")).status_code == 403
    assert cluster.req("vera", "GET", helpers.pod_path(ns, "p") + "/exec").status_code == 403


def test_a_changed_role_or_revoked_binding_counts_from_the_next_request(cluster: Cluster) -> None:
    """Decisions are cached per RBAC snapshot: once the watch cache holds a change (a consistent
    read of that resource returned after it), the very next request is decided under it."""
    ns = cluster.ns_b
    for name in ("rita-a", "rita-b"):
        cluster.admin("POST", helpers.cm_path(ns), helpers.configmap(name))
    rules = [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]
    cluster.role("rita", rules, namespace=ns)
    cluster.bind("rita", "Role", "rita", [user("rita")], namespace=ns)
    support.wait_for(lambda: cluster.req("rita", "GET", helpers.cm_path(ns, "rita-a")).status_code == 200,
                     what="rita's role")
    assert cluster.req("rita", "GET", helpers.cm_path(ns, "rita-b")).status_code == 200

    role = cluster.admin("GET", f"{RBAC}/namespaces/{ns}/roles/rita")
    role["rules"] = [dict(rules[0], resourceNames=["rita-a"])]
    cluster.admin("PUT", f"{RBAC}/namespaces/{ns}/roles/rita", role)
    cluster.admin("GET", f"{RBAC}/namespaces/{ns}/roles")  # consistent: the roles cache has the update
    assert cluster.req("rita", "GET", helpers.cm_path(ns, "rita-b")).status_code == 403
    assert cluster.req("rita", "GET", helpers.cm_path(ns, "rita-a")).status_code == 200

    cluster.admin("DELETE", f"{RBAC}/namespaces/{ns}/rolebindings/rita")
    cluster.admin("GET", f"{RBAC}/namespaces/{ns}/rolebindings")  # consistent: the bindings cache has the delete
    assert cluster.req("rita", "GET", helpers.cm_path(ns, "rita-a")).status_code == 403


# --- escalation -------------------------------------------------------------------------------------------------------


def _binding(name: str, role_kind: str, role: str, who: str) -> dict:
    return {"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": G, "kind": role_kind, "name": role}, "subjects": [user(who)]}


def test_binding_cluster_admin_needs_bind(cluster: Cluster) -> None:
    ns = cluster.ns_a
    path = f"{RBAC}/namespaces/{ns}/rolebindings"
    refused = cluster.req("bill", "POST", path, json=_binding("bill-admin", "ClusterRole", "cluster-admin", "bill"))
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert message.startswith('rolebindings.rbac.authorization.k8s.io "bill-admin" is forbidden: user "bill" '
                              '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
                              'currently held:\n'), message
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in message
    # a role he holds all of (get configmaps) he may bind without `bind`
    readers = cluster.req("bill", "POST", f"{RBAC}/namespaces/{ns}/roles", json={
        "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]})
    assert readers.status_code == 201, readers.text
    escalating = cluster.req("bill", "POST", f"{RBAC}/namespaces/{ns}/roles", json={
        "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "secret-reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]})
    assert escalating.status_code == 403
    assert "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}" in escalating.json()["message"]
    support.wait_for(lambda: cluster.req("bill", "POST", path, json=_binding(
        "nobody-reads", "Role", "cm-reader", "nobody")).status_code == 201, what="binding a role he holds")
    assert cluster.req("bill", "POST", f"{RBAC}/clusterrolebindings", json={
        **_binding("x", "ClusterRole", "cluster-admin", "bill"), "kind": "ClusterRoleBinding"}).status_code == 403
    # with `bind` on clusterroles/cluster-admin (here, in his namespace) he can, and then holds it there
    cluster.role("bind-cluster-admin", [{"verbs": ["bind"], "apiGroups": [G], "resources": ["clusterroles"],
                                         "resourceNames": ["cluster-admin"]}])
    cluster.bind("bill-may-bind", "ClusterRole", "bind-cluster-admin", [user("bill")], namespace=ns)
    support.wait_for(lambda: cluster.req("bill", "POST", path, json=_binding(
        "bill-admin", "ClusterRole", "cluster-admin", "bill")).status_code == 201, what="bind allows it")
    support.wait_for(lambda: cluster.req("bill", "GET", f"/api/v1/namespaces/{ns}/secrets").status_code == 200,
                     what="bill is admin in his namespace")
    assert cluster.req("bill", "GET", f"/api/v1/namespaces/{cluster.ns_b}/secrets").status_code == 403
    # and with it he may now write the role he could not before (he holds everything in ns)
    assert cluster.req("bill", "POST", f"{RBAC}/namespaces/{ns}/roles", json={
        "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "secret-reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}).status_code == 201


def test_escalate_verb_allows_roles_beyond_ones_own(cluster: Cluster) -> None:
    ns = cluster.ns_b
    cluster.role("role-writer", [{"verbs": ["create", "escalate"], "apiGroups": [G], "resources": ["roles"]}],
                 namespace=ns)
    cluster.bind("ivan-roles", "Role", "role-writer", [user("ivan")], namespace=ns)
    body = {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "anything"},
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}
    support.wait_for(lambda: cluster.req("ivan", "POST", f"{RBAC}/namespaces/{ns}/roles", json=body).status_code == 201,
                     what="escalate lets ivan write rules he lacks")
    aggregated = {"apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": helpers.unique("agg")},
                  "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}
    cluster.role("clusterrole-writer", [{"verbs": ["create"], "apiGroups": [G], "resources": ["clusterroles"]}])
    cluster.bind("nobody-clusterroles", "ClusterRole", "clusterrole-writer", [user("nobody")])

    def refused_aggregation() -> bool:
        response = cluster.req("nobody", "POST", f"{RBAC}/clusterroles", json=aggregated)
        return response.status_code == 403 and response.json()["message"].endswith(
            "must have cluster-admin privileges to use the aggregationRule")

    support.wait_for(refused_aggregation, what="an aggregationRule needs everything")


# --- impersonation ------------------------------------------------------------------------------------------------


def test_impersonation_needs_the_verb(cluster: Cluster) -> None:
    ns = cluster.ns_b
    refused = cluster.req("ivan", "GET", helpers.cm_path(ns), headers={"Impersonate-User": "vera"})
    assert refused.status_code == 403
    assert refused.json()["message"] == ('users "vera" is forbidden: User "ivan" cannot impersonate resource "users" '
                                         'in API group "" at the cluster scope')
    cluster.role("impersonate-vera", [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"],
                                       "resourceNames": ["vera"]}])
    cluster.bind("ivan-as-vera", "ClusterRole", "impersonate-vera", [user("ivan")])
    support.wait_for(lambda: cluster.req("ivan", "GET", helpers.cm_path(ns), headers={
        "Impersonate-User": "vera"}).status_code == 200, what="ivan may act as vera")
    assert cluster.req("ivan", "GET", helpers.cm_path(ns)).status_code == 403  # not as himself
    write = cluster.req("ivan", "POST", helpers.cm_path(ns), headers={"Impersonate-User": "vera"},
                        json=helpers.configmap("as-vera"))
    assert write.status_code == 403 and 'User "vera" cannot create' in write.json()["message"]
    who = cluster.req("ivan", "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                      headers={"Impersonate-User": "vera"}, json={})
    assert who.json()["status"]["userInfo"] == {"username": "vera", "groups": ["system:authenticated"]}
    masters = cluster.req("ivan", "GET", "/api/v1/nodes",
                          headers={"Impersonate-User": "vera", "Impersonate-Group": "system:masters"})
    assert masters.status_code == 403
    assert masters.json()["message"].startswith('groups "system:masters" is forbidden: User "ivan" cannot impersonate')
    other = cluster.req("ivan", "GET", "/api/v1/nodes", headers={"Impersonate-User": "eddie"})
    assert other.status_code == 403
    # an administrator may act as anyone, service accounts included
    as_sa = cluster.req("admin", "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        headers={"Impersonate-User": f"system:serviceaccount:{ns}:robot"}, json={})
    assert as_sa.json()["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]


# --- reviews and can-i -----------------------------------------------------------------------------------------------


def test_subject_access_review_and_rules_review(cluster: Cluster) -> None:
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "eddie", "groups": ["developers"],
                    "resourceAttributes": {"verb": "create", "resource": "secrets", "namespace": cluster.ns_a}}}
    answered = cluster.req("admin", "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar)
    assert answered.status_code == 201
    status = answered.json()["status"]
    assert status["allowed"] is True
    assert status["reason"] == (f'RBAC: allowed by RoleBinding "eddie-edit/{cluster.ns_a}" of ClusterRole "edit" '
                                'to Group "developers"')
    assert cluster.req("vera", "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                       json=sar).status_code == 403  # asking about others is a privilege
    invalid = cluster.req("admin", "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                          json={"spec": {"user": "eddie"}})
    assert invalid.status_code == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in invalid.json()["message"]
    url_review = cluster.req("admin", "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json={
        "spec": {"user": "anyone", "groups": ["system:authenticated"],
                 "nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}}).json()["status"]
    assert url_review == {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "system:discovery" of '
                                                     'ClusterRole "system:discovery" to Group "system:authenticated"'}
    local = f"/apis/authorization.k8s.io/v1/namespaces/{cluster.ns_a}/localsubjectaccessreviews"
    lsar = {"spec": {"user": "vera", "resourceAttributes": {"verb": "get", "resource": "secrets",
                                                            "namespace": cluster.ns_a}}}
    answered = cluster.req("eddie", "POST", local, json=lsar)  # localsubjectaccessreviews are admin's, not edit's
    assert answered.status_code == 403
    answered = cluster.req("admin", "POST", local, json=lsar)
    assert answered.status_code == 201 and answered.json()["status"] == {"allowed": False}
    assert answered.json()["metadata"]["namespace"] == cluster.ns_a
    elsewhere = dict(lsar, spec={**lsar["spec"], "resourceAttributes": {"verb": "get", "resource": "secrets",
                                                                        "namespace": cluster.ns_b}})
    mismatch = cluster.req("admin", "POST", local, json=elsewhere)
    assert mismatch.status_code == 400
    assert mismatch.json()["message"] == f"spec.resourceAttributes.namespace must match namespace: {cluster.ns_a}"
    rules_a = cluster.req("eddie", "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                          json={"spec": {"namespace": cluster.ns_a}}).json()["status"]
    rules_b = cluster.req("eddie", "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                          json={"spec": {"namespace": cluster.ns_b}}).json()["status"]
    assert any("secrets" in r.get("resources", []) and "create" in r["verbs"] for r in rules_a["resourceRules"])
    assert not any("secrets" in r.get("resources", []) for r in rules_b["resourceRules"])
    assert any("/api" in r["nonResourceURLs"] for r in rules_b["nonResourceRules"])
    assert rules_a["incomplete"] is False


USERS = ["vera", "eddie", "eddie", "nora", "bill", "nobody"]  # eddie twice: more answers are yes
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
RESOURCES = [("", "configmaps"), ("", "secrets"), ("", "pods"), ("apps", "deployments"), ("", "nodes"), (G, "roles")]


def _path(group: str, plural: str, namespace: str, name: str) -> str:
    base = f"/apis/{group}/v1" if group else "/api/v1"
    if plural != "nodes":
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}" + (f"/{name}" if name else "")


def _act(cluster: Cluster, who: str, verb: str, group: str, plural: str, namespace: str) -> int:
    named = verb in ("get", "update", "patch", "delete")
    path = _path(group, plural, namespace, "probe" if named else "")
    dry = {"dryRun": "All"}
    body = {"apiVersion": f"{group}/v1" if group else "v1", "metadata": {"name": "probe"}}
    if verb == "watch":
        with cluster.http.stream("GET", path, params={"watch": "1", "timeoutSeconds": "1"},
                                 headers=auth(who)) as response:
            return response.status_code
    method, params, json_body, headers = {
        "get": ("GET", None, None, {}), "list": ("GET", None, None, {}),
        "create": ("POST", dry, body, {}), "update": ("PUT", dry, body, {}),
        "patch": ("PATCH", dry, {"metadata": {"labels": {"a": "b"}}}, helpers.MERGE),
        "delete": ("DELETE", dry, None, {}), "deletecollection": ("DELETE", dry, None, {}),
    }[verb]
    return cluster.req(who, method, path, params=params, json=json_body, headers=headers).status_code


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=st.sampled_from(USERS), verb=st.sampled_from(VERBS), resource=st.sampled_from(RESOURCES),
       in_a=st.booleans())
def test_can_i_tells_what_the_request_meets(cluster: Cluster, who: str, verb: str, resource: tuple[str, str],
                                            in_a: bool) -> None:
    """SelfSubjectAccessReview and the real request agree, for a matrix of users x verbs x resources."""
    group, plural = resource
    namespace = cluster.ns_a if in_a else cluster.ns_b
    named = verb in ("get", "update", "patch", "delete")
    answer = can_i(cluster, who, verb, plural, group=group, namespace="" if plural == "nodes" else namespace,
                   name="probe" if named else "")
    status = _act(cluster, who, verb, group, plural, namespace)
    event("allowed" if answer else "denied")
    assert (status != 403) == answer, (who, verb, resource, namespace, status, answer)


# --- the RBAC objects themselves --------------------------------------------------------------------------------------


def test_role_ref_is_immutable_and_objects_are_validated(cluster: Cluster) -> None:
    ns = cluster.ns_b
    cluster.bind("immutable", "ClusterRole", "view", [user("nobody")], namespace=ns)
    stored = cluster.admin("GET", f"{RBAC}/namespaces/{ns}/rolebindings/immutable")
    assert stored["subjects"][0]["apiGroup"] == G
    stored["roleRef"]["name"] = "edit"
    changed = cluster.req("admin", "PUT", f"{RBAC}/namespaces/{ns}/rolebindings/immutable", json=stored)
    assert changed.status_code == 422
    assert changed.json()["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "roleRef",
        "message": 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
                   'Name:"edit"}: cannot change roleRef'}]
    stored["roleRef"]["name"] = "view"
    stored["subjects"].append(user("vera"))
    assert cluster.req("admin", "PUT", f"{RBAC}/namespaces/{ns}/rolebindings/immutable", json=stored).status_code == 200
    bad = cluster.req("admin", "POST", f"{RBAC}/namespaces/{ns}/roles", json={
        "metadata": {"name": "bad"}, "rules": [{"verbs": [], "nonResourceURLs": ["/x"]}]})
    assert bad.status_code == 422
    fields = {c["field"] for c in bad.json()["details"]["causes"]}
    assert fields == {"rules[0].verbs", "rules[0].nonResourceURLs"}
    wrong_kind = cluster.req("admin", "POST", f"{RBAC}/clusterrolebindings", json={
        "metadata": {"name": helpers.unique("crb")}, "roleRef": {"kind": "Role", "name": "x"}, "subjects": []})
    assert wrong_kind.status_code == 422 and "roleRef.kind" in wrong_kind.text


def test_printer_columns(cluster: Cluster) -> None:
    table = cluster.req("admin", "GET", f"{RBAC}/clusterrolebindings", headers={"Accept": helpers.TABLE_ACCEPT}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Role", "Age"]
    rows = {row["cells"][0]: row["cells"] for row in table["rows"]}
    assert rows["cluster-admin"][1] == "cluster-admin"
    roles = cluster.req("admin", "GET", f"{RBAC}/clusterroles", headers={"Accept": helpers.TABLE_ACCEPT}).json()
    assert [c["name"] for c in roles["columnDefinitions"]] == ["Name", "Created At"]


def test_default_policy_exists(cluster: Cluster) -> None:
    names = {i["metadata"]["name"] for i in cluster.admin("GET", f"{RBAC}/clusterroles")["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
            "system:public-info-viewer", "system:node", "system:kube-controller-manager", "system:kube-scheduler",
            "system:controller:replicaset-controller"} <= names
    binding = cluster.admin("GET", f"{RBAC}/clusterrolebindings/system:public-info-viewer")
    assert {s["name"] for s in binding["subjects"]} == {"system:authenticated", "system:unauthenticated"}


# --- the controller-manager under RBAC -----------------------------------------------------------------------------


def test_the_controller_manager_works_with_its_default_roles(cluster: Cluster) -> None:
    """Least privilege that is still enough: the controllers run as system:kube-controller-manager with
    only the default policy, and a Deployment, its Service's endpoints, a PodDisruptionBudget's status,
    garbage collection and a namespace deletion all work."""
    ns = helpers.unique("cm")
    cluster.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster.admin("POST", helpers.deploy_path(ns), helpers.deployment("web", replicas=2))

    def pods() -> list[dict]:
        return cluster.admin("GET", helpers.pod_path(ns))["items"]

    support.wait_for(lambda: len(pods()) == 2, timeout=30, what="the ReplicaSet controller creates pods")
    # the endpoint and endpointslice controllers: a Service over one of the pods, given an IP by hand
    cluster.admin("POST", f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    first = pods()[0]["metadata"]["name"]
    response = cluster.req("admin", "PATCH", f"{helpers.pod_path(ns)}/{first}/status",
                           json={"status": {"podIP": "10.9.0.1"}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert response.status_code == 200, response.text
    support.wait_for(lambda: any(e["addresses"] == ["10.9.0.1"] for s in cluster.admin(
        "GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")["items"] for e in s.get("endpoints") or [])
        and cluster.req("admin", "GET", f"/api/v1/namespaces/{ns}/endpoints/web").status_code == 200,
        timeout=30, what="the Service's EndpointSlice and Endpoints")
    # the disruption controller: a percent budget resolved against the Deployment's scale
    pdbs = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
    cluster.admin("POST", pdbs, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                                 "spec": {"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": "50%"}})
    support.wait_for(lambda: (cluster.admin("GET", f"{pdbs}/web").get("status") or {}).get("expectedPods") == 2,
                     timeout=30, what="the disruption controller writes the budget's status")
    cluster.admin("DELETE", helpers.deploy_path(ns, "web"))
    support.wait_for(lambda: not pods() and not cluster.admin(
        "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"], timeout=30, what="garbage collection")
    cluster.admin("POST", helpers.cm_path(ns), helpers.configmap("leftover"))
    cluster.admin("DELETE", f"/api/v1/namespaces/{ns}")
    support.wait_for(lambda: cluster.req("admin", "GET", f"/api/v1/namespaces/{ns}").status_code == 404, timeout=30,
                     what="the namespace controller empties and removes it")
    log = cluster.manager_log.read_text()
    assert "forbidden" not in log.lower(), log[-3000:]


# --- the official Python client -------------------------------------------------------------------------------------


def test_python_client_with_a_token(cluster: Cluster) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    configuration = k8s.Configuration()
    configuration.host = cluster.url
    pki = support.connection(cluster.url).pki
    if pki is not None:
        configuration.ssl_ca_cert = str(pki.ca.cert)
    configuration.api_key = {"authorization": TOKENS["vera"][0]}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with k8s.ApiClient(configuration) as api_client:
        core = k8s.CoreV1Api(api_client)
        assert core.list_namespaced_config_map(cluster.ns_b).items is not None
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_config_map(cluster.ns_b, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="py")))
        assert refused.value.status == 403
        assert json.loads(refused.value.body)["reason"] == "Forbidden"
        review = k8s.AuthorizationV1Api(api_client).create_self_subject_access_review(k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=k8s.V1ResourceAttributes(
                verb="list", resource="pods", namespace=cluster.ns_b))))
        assert review.status.allowed is True
        rules = k8s.AuthorizationV1Api(api_client).create_self_subject_rules_review(k8s.V1SelfSubjectRulesReview(
            spec=k8s.V1SelfSubjectRulesReviewSpec(namespace=cluster.ns_b)))
        assert rules.status.incomplete is False and rules.status.resource_rules
        me = k8s.AuthenticationV1Api(api_client).create_self_subject_review(k8s.V1SelfSubjectReview())
        assert me.status.user_info.username == "vera"
