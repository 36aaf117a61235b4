"""Real kubectl 1.32 against a real HTTPS + RBAC API server (client certificates from the test PKI),
where it posts protobuf only: `auth can-i` (SelfSubjectAccessReview), `can-i --list`
(SelfSubjectRulesReview), `--as` (impersonated), `auth whoami` (SelfSubjectReview), and the
`create serviceaccount|namespace|configmap|secret|role|rolebinding|clusterrole|clusterrolebinding|quota|
priorityclass|ingress` generators. Answers are truthful for a `view` user and an admin; protobuf and JSON bodies meet the
same checks; hostile protobuf over HTTPS is a 400 Status."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.api import protometa, protoworkloads
from reconcile.pki import cluster as pki_cluster
from tests import prerequisites, support
from tests.api import helpers
from tests.api_unit import protoencode as pe

G = "rbac.authorization.k8s.io"
AUTHZ = "authorization.k8s.io/v1"
PROTOBUF = {"Content-Type": "application/vnd.kubernetes.protobuf",
            "Accept": "application/vnd.kubernetes.protobuf,application/json"}
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    prerequisites.require_kubectl()


@pytest.fixture(scope="module")
def server(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    process = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True,
                                       extra_args=("--authorization-mode", "RBAC"))
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


def _bind(admin: httpx.Client, ns: str | None, name: str, role: str, user: str) -> None:
    kind, path = ("RoleBinding", f"/apis/{G}/v1/namespaces/{ns}/rolebindings") if ns else \
        ("ClusterRoleBinding", f"/apis/{G}/v1/clusterrolebindings")
    helpers.create(admin, path, {"apiVersion": f"{G}/v1", "kind": kind, "metadata": {"name": name},
                                 "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role},
                                 "subjects": [{"kind": "User", "apiGroup": G, "name": user}]})


@pytest.fixture(scope="module")
def ns(admin: httpx.Client) -> str:
    """A namespace where vera may view and dora may edit; ivan may impersonate dora (only). (The roles
    are spelled out: upstream's `view` and `edit` are aggregated by a controller-manager, which this
    API-only server does not run.)"""
    name = helpers.make_namespace(admin, "kpb")
    for role, verbs in (("viewer", ["get", "list", "watch"]),
                        ("editor", ["get", "list", "watch", "create", "update", "patch", "delete"])):
        helpers.create(admin, f"/apis/{G}/v1/clusterroles", {
            "apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": f"{role}-{name}"},
            "rules": [{"verbs": verbs, "apiGroups": [""], "resources": ["pods", "configmaps", "serviceaccounts"]},
                      {"verbs": verbs, "apiGroups": [G], "resources": ["rolebindings"]}]})
    _bind(admin, name, "vera-view", f"viewer-{name}", "vera")
    _bind(admin, name, "dora-edit", f"editor-{name}", "dora")
    impersonator = f"impersonate-dora-{name}"
    helpers.create(admin, f"/apis/{G}/v1/clusterroles", {
        "apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": impersonator},
        "rules": [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"], "resourceNames": ["dora"]}]})
    _bind(admin, None, impersonator, impersonator, "ivan")
    return name


def kubectl(conn: support.Connection, tmp_path: Path, user: pki_cluster.Pair | None, *args: str,
            ) -> subprocess.CompletedProcess[str]:
    home = tmp_path / (user.cert.stem if user else "admin")
    home.mkdir(exist_ok=True)
    kubeconfig = conn.write_kubeconfig(home / "kubeconfig", as_user=user)
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env.update(KUBECONFIG=str(kubeconfig), HOME=str(home), KUBECACHEDIR=str(home / "cache"))
    found = prerequisites.find_kubectl()
    assert found is not None
    return subprocess.run([found, *args], capture_output=True, text=True, env=env, timeout=60)


def can_i(conn: support.Connection, tmp_path: Path, user: pki_cluster.Pair | None, *args: str) -> tuple[int, str]:
    done = kubectl(conn, tmp_path, user, "auth", "can-i", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout.strip()


YES, NO = (0, "yes"), (1, "no")


def test_can_i_is_truthful_for_a_viewer_and_an_admin(conn: support.Connection, ns: str, tmp_path: Path) -> None:
    vera = conn.user("vera")
    support.wait_for(lambda: can_i(conn, tmp_path, vera, "get", "pods", "-n", ns) == YES, what="vera's binding")
    assert can_i(conn, tmp_path, vera, "create", "pods", "-n", ns) == NO
    assert can_i(conn, tmp_path, vera, "get", "secrets", "-n", ns) == NO
    assert can_i(conn, tmp_path, vera, "get", "pods", "-n", "default") == NO
    assert can_i(conn, tmp_path, vera, "list", "configmaps", "-n", ns, "--subresource", "") == YES
    assert can_i(conn, tmp_path, None, "create", "pods", "-n", ns) == YES
    assert can_i(conn, tmp_path, None, "delete", "nodes", "--all-namespaces") == YES
    assert can_i(conn, tmp_path, vera, "get", "/healthz") == YES  # nonResourceAttributes
    assert can_i(conn, tmp_path, vera, "get", "/metrics") == NO


def test_can_i_list_shows_the_users_rules(conn: support.Connection, ns: str, tmp_path: Path) -> None:
    vera = conn.user("vera")
    support.wait_for(lambda: can_i(conn, tmp_path, vera, "get", "pods", "-n", ns) == YES, what="vera's binding")
    done = kubectl(conn, tmp_path, vera, "auth", "can-i", "--list", "-n", ns)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert "[get list watch]" in rows["pods"] and "[get list watch]" in rows["configmaps"]
    assert "secrets" not in rows and "selfsubjectaccessreviews.authorization.k8s.io" in rows
    elsewhere = kubectl(conn, tmp_path, vera, "auth", "can-i", "--list", "-n", "default")
    assert "pods" not in {line.split()[0] for line in elsewhere.stdout.splitlines()[1:] if line.strip()}


def test_can_i_as_needs_the_impersonate_verb(conn: support.Connection, ns: str, tmp_path: Path) -> None:
    ivan, vera = conn.user("ivan"), conn.user("vera")
    support.wait_for(lambda: can_i(conn, tmp_path, ivan, "--as", "dora", "create", "pods", "-n", ns) == YES,
                     what="ivan's and dora's bindings")
    assert can_i(conn, tmp_path, ivan, "--as", "dora", "create", "pods", "-n", "default") == NO
    assert can_i(conn, tmp_path, ivan, "create", "pods", "-n", ns) == NO  # ivan himself may not
    refused = kubectl(conn, tmp_path, ivan, "auth", "can-i", "--as", "vera", "get", "pods", "-n", ns)
    assert refused.returncode == 1 and 'User "ivan" cannot impersonate resource "users"' in refused.stderr, refused
    refused = kubectl(conn, tmp_path, vera, "auth", "can-i", "--as", "dora", "create", "pods", "-n", ns)
    assert refused.returncode == 1 and refused.stdout.strip() != "yes"
    assert 'users "dora" is forbidden: User "vera" cannot impersonate resource "users" in API group "" at the ' \
           "cluster scope" in refused.stderr, refused.stderr


def test_whoami_json(conn: support.Connection, ns: str, tmp_path: Path) -> None:
    done = kubectl(conn, tmp_path, conn.user("vera", "team-a"), "auth", "whoami", "-o", "json")
    assert done.returncode == 0, done.stderr
    review = json.loads(done.stdout)
    assert (review["apiVersion"], review["kind"]) == ("authentication.k8s.io/v1", "SelfSubjectReview")
    assert review["status"]["userInfo"] == {"username": "vera", "groups": ["team-a", "system:authenticated"]}
    support.wait_for(lambda: can_i(conn, tmp_path, conn.user("ivan"), "--as", "dora", "create", "pods", "-n",
                                   ns) == YES, what="ivan's binding")
    done = kubectl(conn, tmp_path, conn.user("ivan"), "auth", "whoami", "--as", "dora", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"]["userInfo"]["username"] == "dora"
    admin = json.loads(kubectl(conn, tmp_path, None, "auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in admin["status"]["userInfo"]["groups"]


def test_kubectl_create_generators(conn: support.Connection, admin: httpx.Client, ns: str, tmp_path: Path) -> None:
    """Each posts a protobuf body; what is stored is what the flags said."""
    name = helpers.unique("gen")
    commands = [
        ("serviceaccount", name, "-n", ns),
        ("namespace", name),
        ("configmap", name, "-n", ns, "--from-literal=a=b", "--from-literal=c=d"),
        ("secret", "generic", name, "-n", ns, "--from-literal=password=s3cret", "--type=Opaque"),
        ("role", name, "-n", ns, "--verb=get,list", "--resource=pods", "--resource-name=web"),
        ("rolebinding", name, "-n", ns, f"--role={name}", "--user=vera", f"--serviceaccount={ns}:{name}"),
        ("clusterrole", name, "--verb=get", "--non-resource-url=/logs/*"),
        ("clusterrolebinding", name, f"--clusterrole={name}", "--group=team-a"),
        ("quota", name, "-n", ns, "--hard=pods=3,requests.cpu=500m", "--scopes=NotTerminating"),
    ]
    for command in commands:
        done = kubectl(conn, tmp_path, None, "create", *command)
        assert done.returncode == 0 and "created" in done.stdout, (command, done.stderr)
    sa = admin.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}").json()
    assert sa["metadata"]["name"] == name and sa["metadata"]["uid"]
    assert admin.get(f"/api/v1/namespaces/{name}").status_code == 200
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}").json()["data"] == {"a": "b", "c": "d"}
    secret = admin.get(f"/api/v1/namespaces/{ns}/secrets/{name}").json()
    assert (secret["type"], secret["data"]) == ("Opaque", {"password": "czNjcmV0"})
    role = admin.get(f"/apis/{G}/v1/namespaces/{ns}/roles/{name}").json()
    assert role["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                              "resourceNames": ["web"]}]
    binding = admin.get(f"/apis/{G}/v1/namespaces/{ns}/rolebindings/{name}").json()
    assert binding["roleRef"] == {"apiGroup": G, "kind": "Role", "name": name}
    assert {(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]} == {
        ("User", "vera", None), ("ServiceAccount", name, ns)}
    cluster_role = admin.get(f"/apis/{G}/v1/clusterroles/{name}").json()
    assert cluster_role["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
    crb = admin.get(f"/apis/{G}/v1/clusterrolebindings/{name}").json()
    assert crb["subjects"] == [{"kind": "Group", "apiGroup": G, "name": "team-a"}]
    quota = admin.get(f"/api/v1/namespaces/{ns}/resourcequotas/{name}").json()
    assert quota["spec"] == {"hard": {"pods": "3", "requests.cpu": "500m"}, "scopes": ["NotTerminating"]}
    again = kubectl(conn, tmp_path, None, "create", "serviceaccount", name, "-n", ns)
    assert again.returncode == 1
    assert again.stderr.strip() == f'error: failed to create serviceaccount: serviceaccounts "{name}" already exists'


def test_a_viewer_cannot_create_in_protobuf_either(conn: support.Connection, ns: str, tmp_path: Path) -> None:
    vera = conn.user("vera")
    support.wait_for(lambda: can_i(conn, tmp_path, vera, "get", "pods", "-n", ns) == YES, what="vera's binding")
    done = kubectl(conn, tmp_path, vera, "create", "serviceaccount", "sneaky", "-n", ns)
    assert done.returncode == 1
    assert done.stderr.strip() == (f'error: failed to create serviceaccount: serviceaccounts is forbidden: User '
                                   f'"vera" cannot create resource "serviceaccounts" in API group "" in the '
                                   f'namespace "{ns}"')
    # escalation through a protobuf RoleBinding is judged as a JSON one is
    done = kubectl(conn, tmp_path, conn.user("dora"), "create", "rolebinding", "grab", "-n", ns,
                   "--clusterrole=cluster-admin", "--user=dora")
    assert done.returncode == 1 and "forbidden" in done.stderr, done.stderr


def _ssar(obj: dict[str, Any]) -> bytes:
    return pe.body(AUTHZ, "SelfSubjectAccessReview", obj)


@pytest.mark.parametrize("spec", [
    {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}},
    {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
    {},  # neither: 422 naming spec.resourceAttributes
    {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/x", "verb": "get"}},
    {"resourceAttributes": {"verb": "list", "resource": "secrets", "fieldSelector": {"rawSelector": "a=b"}}},
])
def test_protobuf_and_json_meet_the_same_checks(conn: support.Connection, spec: dict[str, Any]) -> None:
    with conn.http_client(as_user=conn.user("vera")) as vera:
        obj = {"metadata": {}, "spec": spec}
        over_json = vera.post(SSAR, json={"apiVersion": AUTHZ, "kind": "SelfSubjectAccessReview", **obj})
        over_protobuf = vera.post(SSAR, content=_ssar(obj), headers=PROTOBUF)
    assert over_protobuf.status_code == over_json.status_code, over_protobuf.text
    assert over_protobuf.headers["content-type"].startswith("application/json")
    assert over_protobuf.json() == over_json.json()


@pytest.mark.parametrize("body, status, needle", [
    (_ssar({"spec": {"resourceAttributes": {"verb": "get"}}})[:-9], 400, "truncated"),
    (pe.envelope(AUTHZ, "SelfSubjectAccessReview", b"\x12" + b"\xff" * 12), 400, "an over-long varint"),
    (pe.envelope(AUTHZ, "SelfSubjectAccessReview", pe.length_delimited(2, pe.tag(1, 0) + b"\x01")), 400,
     "spec.resourceAttributes: expected a length-delimited field"),
    (pe.envelope(AUTHZ, "SelfSubjectAccessReview", pe.length_delimited(2, pe.length_delimited(1, b"\x0f"))), 400,
     "spec.resourceAttributes: malformed protobuf"),  # wire type 7
    (b"k8s\x00", 400, "missing the k8s\\0 envelope"),
    (b"{}", 400, "missing the k8s\\0 envelope"),  # a protobuf Content-Type is read as protobuf only
    (pe.envelope("v1", "Namespace", b""), 400, "cannot be handled as a SelfSubjectAccessReview"),
    (pe.envelope(AUTHZ, "SelfSubjectAccessReview", pe.length_delimited(2, (pe.tag(9, 0) + b"\x00") * 150_000)), 400,
     "more than 100000 fields"),
])
def test_hostile_protobuf_is_a_400_status(conn: support.Connection, body: bytes, status: int, needle: str) -> None:
    with conn.http_client(as_user=conn.user("vera")) as vera:
        answer = vera.post(SSAR, content=body, headers=PROTOBUF)
        helpers.assert_status(answer, status)
        assert needle in answer.json()["message"], answer.json()["message"]
        assert vera.post(SSAR, content=_ssar({"spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}}),
                         headers=PROTOBUF).json()["status"]["allowed"] is True


def test_large_protobuf_bodies_are_read_off_the_loop(conn: support.Connection, admin: httpx.Client,
                                                    ns: str) -> None:
    """Bodies past the inline size go to the decoder's workers (the reader is pure Python): a large
    ConfigMap is stored whole, a large flood of fields is a 400, and the server answers meanwhile."""
    name = helpers.unique("big")
    data = {f"k{i}": "v" * 40 for i in range(20_000)}  # ~1 MiB
    body = pe.body("v1", "ConfigMap", {"metadata": {"name": name}, "data": data})
    created = admin.post(f"/api/v1/namespaces/{ns}/configmaps", content=body, headers=PROTOBUF)
    assert created.status_code == 201, created.text[:300]
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}").json()["data"] == data
    flood = pe.envelope("v1", "ConfigMap", pe.length_delimited(1, (pe.tag(40, 0) + b"\x00") * 500_000))
    refused = admin.post(f"/api/v1/namespaces/{ns}/configmaps", content=flood, headers=PROTOBUF)
    helpers.assert_status(refused, 400, "BadRequest")
    assert refused.json()["message"] == ("the body of the request could not be decoded as a protobuf ConfigMap: "
                                         "metadata: more than 100000 fields")
    assert admin.get("/readyz").status_code == 200


@pytest.mark.parametrize("kind, path, spec", [
    ("SubjectAccessReview", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
     {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "NS"}, "user": "vera",
      "groups": ["system:authenticated"], "extra": {"scopes": ["x"]}}),
    ("SubjectAccessReview", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
     {"resourceAttributes": {"verb": "get", "resource": "pods"}}),  # no user or group: 422
    ("LocalSubjectAccessReview", "/apis/authorization.k8s.io/v1/namespaces/NS/localsubjectaccessreviews",
     {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "NS"}, "user": "dora"}),
    ("LocalSubjectAccessReview", "/apis/authorization.k8s.io/v1/namespaces/NS/localsubjectaccessreviews",
     {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "other"}, "user": "dora"}),
    ("SelfSubjectRulesReview", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {"namespace": "NS"}),
    ("SelfSubjectRulesReview", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {}),  # no namespace: 400
])
def test_every_review_kind_answers_protobuf_as_json(admin: httpx.Client, ns: str, kind: str, path: str,
                                                    spec: dict[str, Any]) -> None:
    spec = json.loads(json.dumps(spec).replace('"NS"', json.dumps(ns)))
    obj = {"metadata": {}, "spec": spec}
    over_json = admin.post(path.replace("NS", ns), json={"apiVersion": AUTHZ, "kind": kind, **obj})
    over_protobuf = admin.post(path.replace("NS", ns), content=pe.body(AUTHZ, kind, obj), headers=PROTOBUF)
    assert over_protobuf.status_code == over_json.status_code, over_protobuf.text
    assert over_protobuf.json() == over_json.json()


def test_token_review_and_whoami_in_protobuf(conn: support.Connection) -> None:
    authn = "authentication.k8s.io/v1"
    with conn.http_client(as_user=conn.user("vera", "team-a")) as vera:
        answer = vera.post(f"/apis/{authn}/selfsubjectreviews", headers=PROTOBUF,
                           content=pe.body(authn, "SelfSubjectReview", {"metadata": {}}))
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"]["userInfo"]["username"] == "vera"
    with conn.http_client() as admin:
        review = admin.post(f"/apis/{authn}/tokenreviews", headers=PROTOBUF,
                            content=pe.body(authn, "TokenReview", {"spec": {"token": "not-a-token"}}))
        assert review.status_code == 201, review.text
        assert review.json()["status"] == {"user": {}, "error": "invalid bearer token"}


# --- the workload generators: the oracle is `--dry-run=client -o json` -----------------------------

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def _as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what the server sets itself (and, for Services, the cluster IPs it
    allocates, which another part of the server owns)."""
    found = json.loads(json.dumps(obj))
    for key in SERVER_SET:
        found["metadata"].pop(key, None)
    found.pop("status", None)
    spec = found.get("spec", {})
    if found["kind"] == "Service":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
        for port in spec.get("ports", []):
            if found.get("spec", {}).get("type") == "LoadBalancer":
                port.pop("nodePort", None)  # allocated, as the cluster IP is
    return found


@pytest.mark.parametrize("command, plural", [
    (("deployment", "NAME", "--image=busybox:1.36", "--replicas=3", "--port=8080", "--", "sleep", "3600"),
     "deployments"),
    (("deployment", "NAME", "--image=busybox:1.36", "--image=nginx:1.25"), "deployments"),
    (("service", "clusterip", "NAME", "--tcp=80:8080", "--tcp=443:https"), "services"),
    (("service", "nodeport", "NAME", "--tcp=80:8080", "--node-port=NODEPORT"), "services"),
    (("service", "loadbalancer", "NAME", "--tcp=5678:8080"), "services"),
    (("service", "externalname", "NAME", "--external-name=db.example.com"), "services"),
    (("service", "clusterip", "NAME", "--clusterip=None"), "services"),
], ids=["deployment-replicas-port-command", "deployment-two-images", "service-clusterip", "service-nodeport",
        "service-loadbalancer", "service-externalname", "service-headless"])
def test_kubectl_create_workloads_store_what_dry_run_prints(conn: support.Connection, admin: httpx.Client, ns: str,
                                                             tmp_path: Path, command: tuple[str, ...],
                                                             plural: str) -> None:
    """kubectl posts these in protobuf only. What it prints for `--dry-run=client -o json`, posted
    as JSON (server dry run: same defaults), is exactly what the protobuf request stored."""
    name = helpers.unique("wl")
    nodeport = str(30000 + uuid.uuid4().int % 2700)
    args = [a.replace("NAME", name).replace("NODEPORT", nodeport) for a in command]
    dash = args.index("--") if "--" in args else len(args)
    head, tail = args[:dash], args[dash:]
    printed = kubectl(conn, tmp_path, None, "create", *head, "-n", ns, "--dry-run=client", "-o", "json", *tail)
    assert printed.returncode == 0, printed.stderr
    sent = json.loads(printed.stdout)
    base = "/apis/apps/v1" if plural == "deployments" else "/api/v1"
    collection = f"{base}/namespaces/{ns}/{plural}"
    as_json = admin.post(collection, json=sent, params={"dryRun": "All"})
    assert as_json.status_code == 201, as_json.text
    done = kubectl(conn, tmp_path, None, "create", *head, "-n", ns, *tail)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{'deployment.apps' if plural == 'deployments' else 'service'}/{name} created"
    stored = admin.get(f"{collection}/{name}").json()
    assert _as_stored(stored) == _as_stored(as_json.json())
    managers = {entry.get("manager") for entry in stored["metadata"].get("managedFields", [])}
    assert managers <= {"kubectl-create"}
    # what the client sent is there as sent
    spec, printed_spec = stored["spec"], sent["spec"]
    if plural == "deployments":
        assert spec["replicas"] == printed_spec.get("replicas", 1)
        assert spec["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
        if "--port=8080" in args:
            container = spec["template"]["spec"]["containers"][0]
            assert (container["command"], container["ports"]) == (
                ["sleep", "3600"], [{"containerPort": 8080, "protocol": "TCP"}])
        else:
            assert [c["name"] for c in spec["template"]["spec"]["containers"]] == ["busybox", "nginx"]
        scaled = kubectl(conn, tmp_path, None, "scale", "deployment", name, "-n", ns, "--replicas=5")  # merge patch
        assert scaled.returncode == 0 and f"deployment.apps/{name} scaled" in scaled.stdout, scaled.stderr
        assert admin.get(f"{collection}/{name}").json()["spec"]["replicas"] == 5
    else:
        assert spec["type"] == printed_spec["type"]
        assert spec.get("selector") == printed_spec.get("selector")
        for port, want in zip(spec.get("ports", []), printed_spec.get("ports", []), strict=True):
            assert {k: port.get(k) for k in want} == want
        if "--node-port=" + nodeport in args:
            assert spec["ports"][0]["nodePort"] == int(nodeport)
        if printed_spec["type"] == "ExternalName":
            assert spec["externalName"] == "db.example.com"
        if "--clusterip=None" in args:
            assert spec["clusterIP"] == "None"


def test_a_deployment_with_parts_the_server_does_not_read_in_protobuf_is_refused(admin: httpx.Client,
                                                                                  ns: str) -> None:
    """A lifecycle hook in protobuf (Container field 12) is a 400 naming it; nothing is stored."""
    name = helpers.unique("probe")
    context = pe.length_delimited(12, pe.length_delimited(1, b""))  # lifecycle {postStart {}}
    container = pe.encode(protoworkloads.CONTAINER, {"name": "c", "image": "busybox"}) + context
    labels = {"matchLabels": {"app": name}}
    template = pe.length_delimited(1, pe.encode(protometa.OBJECT_META, {"labels": labels["matchLabels"]})) \
        + pe.length_delimited(2, pe.length_delimited(2, container))
    spec = pe.length_delimited(2, pe.encode(protometa.LABEL_SELECTOR, labels)) + pe.length_delimited(3, template)
    raw = pe.length_delimited(1, pe.encode(protometa.OBJECT_META, {"name": name})) + pe.length_delimited(2, spec)
    refused = admin.post(f"/apis/apps/v1/namespaces/{ns}/deployments", headers=PROTOBUF,
                         content=pe.envelope("apps/v1", "Deployment", raw))
    helpers.assert_status(refused, 400, "BadRequest")
    assert refused.json()["message"].endswith(
        "spec.template.spec.containers[0]: field 12 of Container is not read from protobuf by this server; send JSON")
    assert admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}").status_code == 404


def _deployment_body(raw_spec: bytes) -> bytes:
    return pe.envelope("apps/v1", "Deployment", pe.length_delimited(
        1, pe.encode(protometa.OBJECT_META, {"name": helpers.unique("hostile")})) + pe.length_delimited(2, raw_spec))


@pytest.mark.parametrize("body, needle", [
    (_deployment_body(pe.length_delimited(1, b"\x03")), "spec.replicas: expected a varint, got wire type 2"),
    (_deployment_body(pe.length_delimited(3, pe.length_delimited(2, pe.length_delimited(2, b"\x0a\x20c"))))[:-3],
     "truncated"),
    (_deployment_body(pe.length_delimited(3, pe.length_delimited(2, pe.length_delimited(2, b"") * 110_000))),
     "spec.template.spec: more than 100000 fields"),
    (_deployment_body(pe.length_delimited(3, pe.length_delimited(2, pe.length_delimited(
        2, pe.length_delimited(6, pe.tag(3, 0) + pe.varint(1 << 33)))))),
     "spec.template.spec.containers[0].ports[0].containerPort: 8589934592 is out of range for an int32"),
])
def test_hostile_protobuf_deployments_are_a_400(admin: httpx.Client, ns: str, body: bytes, needle: str) -> None:
    answer = admin.post(f"/apis/apps/v1/namespaces/{ns}/deployments", headers=PROTOBUF, content=body)
    helpers.assert_status(answer, 400, "BadRequest")
    assert needle in answer.json()["message"], answer.json()["message"]
    assert admin.get("/readyz").status_code == 200


@pytest.mark.parametrize("bound", ["--min-available=1", "--max-unavailable=50%"])
def test_kubectl_create_pdb_stores_what_dry_run_prints(conn: support.Connection, admin: httpx.Client, ns: str,
                                                       tmp_path: Path, bound: str) -> None:
    """`kubectl create pdb` posts a protobuf PodDisruptionBudget (IntOrString bounds, a selector):
    stored exactly as its `--dry-run=client -o json` posted as JSON."""
    name = helpers.unique("pdb")
    args = ("create", "pdb", name, "-n", ns, "--selector=app=x", bound)
    printed = kubectl(conn, tmp_path, None, *args, "--dry-run=client", "-o", "json")
    assert printed.returncode == 0, printed.stderr
    collection = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
    as_json = admin.post(collection, json=json.loads(printed.stdout), params={"dryRun": "All"})
    assert as_json.status_code == 201, as_json.text
    done = kubectl(conn, tmp_path, None, *args)
    assert done.returncode == 0 and done.stdout.strip() == f"poddisruptionbudget.policy/{name} created", done.stderr
    stored = admin.get(f"{collection}/{name}").json()
    assert _as_stored(stored) == _as_stored(as_json.json())
    assert stored["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert stored["spec"] == {"selector": {"matchLabels": {"app": "x"}},
                              **({"minAvailable": 1} if "min" in bound else {"maxUnavailable": "50%"})}


def test_kubectl_drain_deletes_the_nodes_pods(conn: support.Connection, admin: httpx.Client, ns: str,
                                              tmp_path: Path) -> None:
    """`kubectl drain` cordons the node, then evicts each pod (pods/eviction, policy/v1: no budget
    here, and pods that are not Running skip budgets anyway) and waits for it to go. Pods elsewhere
    stay. (API-only server: the pods are bound to the node by hand and no node agent confirms their
    end.)"""
    node = helpers.unique("node")
    helpers.create(admin, "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    for name, on in (("a", node), ("b", node), ("elsewhere", "other-node")):
        helpers.create(admin, helpers.pod_path(ns), helpers.pod(f"{name}-{node}", node=on))
    done = kubectl(conn, tmp_path, None, "drain", node, "--force", "--grace-period=0", "--timeout=60s")
    assert done.returncode == 0, done.stderr
    assert f"node/{node} drained" in done.stdout, done.stdout
    assert admin.get(f"/api/v1/nodes/{node}").json()["spec"]["unschedulable"] is True
    left = {p["metadata"]["name"] for p in admin.get(helpers.pod_path(ns)).json()["items"]
            if not p["metadata"].get("deletionTimestamp")}
    assert f"a-{node}" not in left and f"b-{node}" not in left and f"elsewhere-{node}" in left
    done = kubectl(conn, tmp_path, None, "uncordon", node)
    assert done.returncode == 0 and "uncordoned" in done.stdout, done.stderr


def test_a_protobuf_delete_options_body_is_read(admin: httpx.Client, ns: str) -> None:
    """client-go's typed Delete: preconditions in protobuf are honoured, a malformed body is a 400."""
    name = helpers.unique("del")
    created = helpers.create(admin, helpers.cm_path(ns), helpers.configmap(name))
    path = helpers.cm_path(ns, name)
    wrong = pe.envelope("v1", "DeleteOptions", pe.encode(protometa.DELETE_OPTIONS, {"preconditions": {"uid": "x"}}))
    conflict = admin.request("DELETE", path, content=wrong, headers=PROTOBUF)
    helpers.assert_status(conflict, 409, "Conflict")
    bad = admin.request("DELETE", path, content=pe.envelope("v1", "DeleteOptions", pe.length_delimited(1, b"")),
                        headers=PROTOBUF)
    helpers.assert_status(bad, 400, "BadRequest")
    assert bad.json()["message"] == ("the body of the request could not be decoded as a protobuf DeleteOptions: "
                                     "gracePeriodSeconds: expected a varint, got wire type 2")
    right = pe.envelope("v1", "DeleteOptions", pe.encode(protometa.DELETE_OPTIONS, {
        "preconditions": {"uid": created["metadata"]["uid"]}, "dryRun": ["All"]}))
    assert admin.request("DELETE", path, content=right, headers=PROTOBUF).status_code == 200
    assert admin.get(path).status_code == 200  # a dry run
    gone = admin.request("DELETE", path, content=pe.envelope("v1", "DeleteOptions", b""), headers=PROTOBUF)
    assert gone.status_code == 200, gone.text
    assert admin.get(path).status_code == 404


def test_pod_security_judges_a_protobuf_pod_as_a_json_one(admin: httpx.Client) -> None:
    """An attacker's privileged pod in protobuf meets the namespace's `restricted` level as JSON does:
    the security context is read, not skipped (and parts not read are refused, not hidden)."""
    name = helpers.unique("pss")
    helpers.create(admin, "/api/v1/namespaces", {"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    privileged = {"metadata": {"name": "evil"}, "spec": {"containers": [
        {"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}], "hostPID": True}}
    over_json = admin.post(f"/api/v1/namespaces/{name}/pods", json={"apiVersion": "v1", "kind": "Pod", **privileged})
    over_protobuf = admin.post(f"/api/v1/namespaces/{name}/pods", headers=PROTOBUF,
                               content=pe.body("v1", "Pod", privileged))
    assert over_json.status_code == 403, over_json.text
    assert (over_protobuf.status_code, over_protobuf.json()) == (over_json.status_code, over_json.json())
    restricted = {"metadata": {"name": "fine"}, "spec": {"containers": [{
        "name": "c", "image": "busybox:1.36", "securityContext": {
            "allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}}]}}
    created = admin.post(f"/api/v1/namespaces/{name}/pods", headers=PROTOBUF, content=pe.body("v1", "Pod", restricted))
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


# --- protobuf updates: `kubectl auth reconcile` PUTs the RBAC kinds ----------------------------------

def _objects(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The JSON objects kubectl printed one after the other."""
    assert done.returncode == 0, done.stderr
    decoder, text, found = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        obj, end = decoder.raw_decode(text)
        found.append(obj)
        text = text[end:].strip()
    return found


def _rbac_list(ns: str, name: str, verbs: list[str], subject: str) -> dict[str, Any]:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]
    subjects = [{"kind": "User", "apiGroup": G, "name": subject}]
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules},
        {"apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
        {"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
         "roleRef": {"apiGroup": G, "kind": "Role", "name": name}, "subjects": subjects},
        {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": name}, "subjects": subjects}]}


def test_auth_reconcile_updates_rbac_in_protobuf(conn: support.Connection, admin: httpx.Client, ns: str,
                                                 tmp_path: Path) -> None:
    """kubectl 1.32 PUTs each changed object in protobuf (was 415): what it stores is what it meant,
    and what the server owns (uid, creationTimestamp, managedFields, labels set by others) stays."""
    name = helpers.unique("recon")
    paths = {"Role": f"/apis/{G}/v1/namespaces/{ns}/roles/{name}", "ClusterRole": f"/apis/{G}/v1/clusterroles/{name}",
             "RoleBinding": f"/apis/{G}/v1/namespaces/{ns}/rolebindings/{name}",
             "ClusterRoleBinding": f"/apis/{G}/v1/clusterrolebindings/{name}"}
    manifest = tmp_path / "rbac.json"

    def reconcile(verbs: list[str], subject: str, *flags: str) -> subprocess.CompletedProcess[str]:
        manifest.write_text(json.dumps(_rbac_list(ns, name, verbs, subject)))
        return kubectl(conn, tmp_path, None, "auth", "reconcile", "-f", str(manifest), *flags)

    done = reconcile(["get"], "vera")
    assert done.returncode == 0, done.stderr
    first = {kind: admin.get(path).json() for kind, path in paths.items()}
    for path in paths.values():  # another writer's label, which an update must keep
        assert admin.patch(path, json={"metadata": {"labels": {"team": "a"}}},
                           headers={"Content-Type": "application/merge-patch+json"}).status_code == 200

    printed = _objects(reconcile(["get", "list"], "dora", "--dry-run=client", "-o", "json"))  # the oracle
    done = reconcile(["get", "list"], "dora")  # reconcile adds: rules and subjects are unions
    assert done.returncode == 0, done.stderr
    assert f"role.rbac.authorization.k8s.io/{name} reconciled" in done.stdout, done.stdout
    stored = {kind: admin.get(path).json() for kind, path in paths.items()}
    for meant in printed:
        field = "rules" if meant["kind"].endswith("Role") else "subjects"
        assert stored[meant["kind"]][field] == meant[field]
    assert {v for rule in stored["Role"]["rules"] for v in rule["verbs"]} == {"get", "list"}
    assert [s["name"] for s in stored["RoleBinding"]["subjects"]] == ["vera", "dora"]
    for kind, obj in stored.items():
        md, before = obj["metadata"], first[kind]["metadata"]
        assert (md["uid"], md["creationTimestamp"]) == (before["uid"], before["creationTimestamp"])
        assert md["labels"] == {"team": "a"} and md["resourceVersion"] != before["resourceVersion"]
        managers = {e["manager"] for e in md["managedFields"]}  # kubectl's is its user agent's program name
        assert "python-httpx" in managers and any(m.startswith("kubectl") for m in managers), managers

    done = reconcile(["get"], "vera", "--remove-extra-permissions", "--remove-extra-subjects")
    assert done.returncode == 0, done.stderr
    for kind in ("Role", "ClusterRole"):
        assert admin.get(paths[kind]).json()["rules"] == [{"verbs": ["get"], "apiGroups": [""],
                                                           "resources": ["pods"]}]
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        assert admin.get(paths[kind]).json()["subjects"] == [{"kind": "User", "apiGroup": G, "name": "vera"}]


def test_protobuf_rbac_update_meets_the_json_checks(admin: httpx.Client, ns: str) -> None:
    """A stale resourceVersion is the JSON 409, an invalid rule the JSON 422, and a ConfigMap (whose
    table is not read on updates) still 415."""
    name = helpers.unique("pbput")
    path = f"/apis/{G}/v1/namespaces/{ns}/roles/{name}"
    rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    created = helpers.create(admin, f"/apis/{G}/v1/namespaces/{ns}/roles", {
        "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": name}, "rules": [rule]})
    md = {"name": name, "namespace": ns, "resourceVersion": created["metadata"]["resourceVersion"]}
    for rules, stale in (([{"apiGroups": [""], "resources": ["pods"]}], False), ([rule], True)):
        sent = {"metadata": {**md, "resourceVersion": "1"} if stale else md, "rules": rules}
        over_json = admin.put(path, json={"apiVersion": f"{G}/v1", "kind": "Role", **sent})
        over_protobuf = admin.put(path, content=pe.body(f"{G}/v1", "Role", sent), headers=PROTOBUF)
        assert over_protobuf.status_code == over_json.status_code == (409 if stale else 422), over_protobuf.text
        assert over_protobuf.json() == over_json.json()
    answer = admin.put(path, content=pe.body(f"{G}/v1", "Role", {"metadata": md, "rules": [rule, rule]}),
                       headers=PROTOBUF)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rules"] == [rule, rule]
    assert answer.json()["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


# --- every other `kubectl create` generator, by the same oracle --------------------------------------

def _within(printed: Any, stored: Any, path: str = "") -> list[str]:
    """Where `printed` is not found in `stored` (a printed leaf missing or different); [] if within."""
    if isinstance(printed, dict):
        if not isinstance(stored, dict):
            return [path]
        return [miss for key, value in printed.items() if value is not None
                for miss in _within(value, stored.get(key), f"{path}.{key}")]
    if isinstance(printed, list):
        if not isinstance(stored, list) or len(stored) != len(printed):
            return [path]
        return [miss for i, (a, b) in enumerate(zip(printed, stored, strict=True)) for miss in _within(a, b, f"{path}[{i}]")]
    return [] if printed == stored else [path]


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate and key for `kubectl create secret tls` (from the test PKI's CA)."""
    pki = support.shared_pki()
    return str(pki.ca.cert), str(pki.ca.key)


GENERATORS = [  # (kubectl create arguments, collection under /api/v1 or /apis, namespaced)
    (("namespace", "NAME"), "/api/v1/namespaces", False),
    (("serviceaccount", "NAME"), "/api/v1/namespaces/NS/serviceaccounts", True),
    (("configmap", "NAME", "--from-literal=a=b", "--from-literal=c=", "--from-file=FILE"),
     "/api/v1/namespaces/NS/configmaps", True),
    (("configmap", "NAME", "--from-file=BINARY", "--from-literal=text=x"), "/api/v1/namespaces/NS/configmaps", True),
    (("secret", "generic", "NAME", "--from-literal=password=s3cret", "--type=example.com/kind"),
     "/api/v1/namespaces/NS/secrets", True),
    (("secret", "generic", "NAME", "--from-file=BINARY", "--from-file=FILE"), "/api/v1/namespaces/NS/secrets", True),
    (("secret", "tls", "NAME", "--cert=CERT", "--key=KEY"), "/api/v1/namespaces/NS/secrets", True),
    (("secret", "docker-registry", "NAME", "--docker-server=registry.example", "--docker-username=u",
      "--docker-password=p", "--docker-email=u@example.com"), "/api/v1/namespaces/NS/secrets", True),
    (("quota", "NAME", "--hard=pods=3,requests.cpu=500m,limits.memory=1Gi", "--scopes=NotTerminating"),
     "/api/v1/namespaces/NS/resourcequotas", True),
    (("role", "NAME", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=web"),
     f"/apis/{G}/v1/namespaces/NS/roles", True),
    (("rolebinding", "NAME", "--clusterrole=view", "--user=vera", "--group=team", "--serviceaccount=NS:robot"),
     f"/apis/{G}/v1/namespaces/NS/rolebindings", True),
    (("clusterrole", "NAME", "--verb=get", "--non-resource-url=/logs/*", "--verb=head"),
     f"/apis/{G}/v1/clusterroles", False),
    (("clusterrole", "NAME", "--aggregation-rule=team=a,tier=b"), f"/apis/{G}/v1/clusterroles", False),
    (("clusterrolebinding", "NAME", "--clusterrole=view", "--group=team-a", "--user=u"),
     f"/apis/{G}/v1/clusterrolebindings", False),
    (("poddisruptionbudget", "NAME", "--selector=app=web,tier in (a,b)", "--max-unavailable=50%"),
     "/apis/policy/v1/namespaces/NS/poddisruptionbudgets", True),
    (("poddisruptionbudget", "NAME", "--selector=app=web", "--min-available=2"),
     "/apis/policy/v1/namespaces/NS/poddisruptionbudgets", True),
    (("deployment", "NAME", "--image=busybox:1.36", "--replicas=2"), "/apis/apps/v1/namespaces/NS/deployments", True),
    (("priorityclass", "NAME", "--value=1000", "--description=x"), "/apis/scheduling.k8s.io/v1/priorityclasses",
     False),
    (("priorityclass", "NAME", "--value=5", "--preemption-policy=Never", "--description=never"),
     "/apis/scheduling.k8s.io/v1/priorityclasses", False),
    (("ingress", "NAME", "--rule=foo.com/bar=svc1:8080"), "/apis/networking.k8s.io/v1/namespaces/NS/ingresses", True),
    (("ingress", "NAME", "--class=default", "--rule=foo.com/path*=svc:8080", "--rule=bar.com/admin*=svc2:http"),
     "/apis/networking.k8s.io/v1/namespaces/NS/ingresses", True),
    (("ingress", "NAME", "--default-backend=defsvc:http", "--rule=foo.com/=svc:https,tls=secret"),
     "/apis/networking.k8s.io/v1/namespaces/NS/ingresses", True),
    (("ingress", "NAME", "--rule=/path=svc:port", "--rule=*.foo.com/=svc:80,tls", "--annotation=team=web"),
     "/apis/networking.k8s.io/v1/namespaces/NS/ingresses", True),
    (("service", "nodeport", "NAME", "--tcp=8080:http"), "/api/v1/namespaces/NS/services", True),
]


@pytest.mark.parametrize("command, collection, namespaced", GENERATORS,
                         ids=[f"{'-'.join(a for a in c[0][:2] if a != 'NAME')}-{i}" for i, c in enumerate(GENERATORS)])
def test_every_generator_stores_what_dry_run_prints(conn: support.Connection, admin: httpx.Client, ns: str,
                                                    tmp_path: Path, tls_pair: tuple[str, str],
                                                    command: tuple[str, ...], collection: str,
                                                    namespaced: bool) -> None:
    """kubectl posts each in protobuf. What it prints for `--dry-run=client -o json` is all in what
    the protobuf request stored, and what it stored is what that JSON, posted with `dryRun=All`
    (the same defaults), would have stored."""
    name = helpers.unique("g")
    data = tmp_path / "settings.ini"
    data.write_text("[main]\nkey = value\n")
    binary = tmp_path / "blob.bin"  # not UTF-8: a ConfigMap keeps it in binaryData
    binary.write_bytes(bytes(range(256)))
    values = {"NAME": name, "NS": ns, "FILE": str(data), "BINARY": str(binary), "CERT": tls_pair[0],
              "KEY": tls_pair[1]}
    args = [functools.reduce(lambda text, kv: text.replace(*kv), values.items(), a) for a in command]
    where = ["-n", ns] if namespaced else []
    printed = kubectl(conn, tmp_path, None, "create", *args, *where, "--dry-run=client", "-o", "json")
    assert printed.returncode == 0, printed.stderr
    sent = json.loads(printed.stdout)
    path = collection.replace("NS", ns)
    as_json = admin.post(path, json=sent, params={"dryRun": "All"})
    assert as_json.status_code == 201, as_json.text
    done = kubectl(conn, tmp_path, None, "create", *args, *where)
    assert done.returncode == 0 and done.stdout.strip().endswith(f"/{name} created"), done.stderr
    stored = admin.get(f"{path}/{name}").json()
    allocated = [stored, as_json.json()]
    for obj in allocated if sent["kind"] == "Service" else []:
        for port in obj["spec"]["ports"]:
            port.pop("nodePort", None)  # allocated by the create (a dry run allocates none here)
    assert _as_stored(allocated[0]) == _as_stored(allocated[1])
    sent["metadata"].pop("creationTimestamp", None)  # null: the server sets it
    assert _within({k: v for k, v in sent.items() if k != "status"}, stored) == []


def test_debug_node_creates_its_pod_in_protobuf(conn: support.Connection, admin: httpx.Client, ns: str,
                                               tmp_path: Path) -> None:
    """`kubectl debug node/NAME` posts a protobuf Pod with the host's namespaces and root filesystem."""
    node = helpers.unique("dbgnode")
    helpers.create(admin, "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    done = kubectl(conn, tmp_path, None, "debug", f"node/{node}", "-n", ns, "--image=busybox:1.36", "--", "true")
    assert done.returncode == 0, done.stderr
    assert f"Creating debugging pod node-debugger-{node}-" in done.stdout, done.stdout
    pods = [p for p in admin.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]
            if p["metadata"]["name"].startswith(f"node-debugger-{node}-")]
    assert len(pods) == 1
    spec = pods[0]["spec"]
    assert (spec["nodeName"], spec["hostNetwork"], spec["hostPID"], spec["hostIPC"]) == (node, True, True, True)
    assert {"operator": "Exists"} in spec["tolerations"]
    root = [v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == "/"]
    assert len(root) == 1
    mounts = spec["containers"][0]["volumeMounts"]
    assert {"name": root[0]["name"], "mountPath": "/host"} in mounts
    assert (spec["containers"][0]["image"], spec["containers"][0]["command"]) == ("busybox:1.36", ["true"])
