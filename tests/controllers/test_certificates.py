"""CertificateSigningRequests end to end: a real TLS API server (RBAC, bootstrap tokens) and a real
controller-manager (csrapproving, csrsigning with the cluster CA, tokencleaner).

Attacks: a bootstrap token asking for `system:masters`, a node asking for another node's name, a
forged `spec.username`, approving without the `approve` verb, `/status` adding an Approved
condition, a `kube-apiserver-client` request for `system:masters`, malformed requests."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconcile.client import api as client_api
from reconcile.core import bootstraptoken, errors
from reconcile.pki import certs
from reconcile.pki import csr as csr_mod
from tests import support
from tests.controllers import helpers

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


@pytest.fixture(scope="module")
def server(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    process = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True,
                                       extra_args=("--enable-bootstrap-token-auth", "--authorization-mode", "Node,RBAC"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def controllers(server: support.ApiServerProcess, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[helpers.ControllerManagerProcess]:
    pki = server.pki
    assert pki is not None
    kubeconfig = server.connection.write_kubeconfig(tmp_path_factory.mktemp("cm") / "cm.kubeconfig",
                                                    as_user=pki.controller_manager)
    process = helpers.ControllerManagerProcess(server.url, connect=("--kubeconfig", str(kubeconfig)), extra_args=(
        "--cluster-signing-cert-file", str(pki.ca.cert), "--cluster-signing-key-file", str(pki.ca.key),
        "--cluster-signing-duration", "2h"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(server: support.ApiServerProcess) -> Iterator[client_api.Client]:
    client = client_api.Client(server.connection.client_config())
    yield client
    client.close()


@pytest.fixture(scope="module")
def token(admin: client_api.Client) -> str:
    made = bootstraptoken.generate()
    admin.create("v1", "secrets", bootstraptoken.new_secret(made, ttl=datetime.timedelta(hours=1)),
                 namespace=bootstraptoken.NAMESPACE)
    return str(made)


def _bearer(server: support.ApiServerProcess, token: str) -> httpx.Client:
    client = server.connection.http_client(anonymous=True)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _request(cn: str, subject_groups: tuple[str, ...], *, signer: str = csr_mod.KUBELET_CLIENT,
             usages: tuple[str, ...] = ("digital signature", "client auth"), **spec: object) -> tuple[dict, bytes]:
    key = certs.new_key()
    body = csr_mod.new_request(f"csr-{uuid.uuid4().hex[:8]}", certs.new_csr(key, common_name=cn, organizations=subject_groups),
                               signer=signer, usages=usages)
    body["spec"].update(spec)
    return body, key


def _create(http: httpx.Client, body: dict) -> httpx.Response:
    return http.post(CSRS, json=body)


def _wait_issued(admin: client_api.Client, name: str) -> bytes:
    def issued() -> bytes | None:
        return csr_mod.issued_certificate(admin.get(csr_mod.API_VERSION, csr_mod.PLURAL, name))

    return support.wait_for(issued, timeout=30, what=f"{name} signed")


def _get(admin: client_api.Client, name: str) -> dict:
    return admin.get(csr_mod.API_VERSION, csr_mod.PLURAL, name)


def test_a_bootstrap_token_gets_a_node_client_certificate(server, controllers, admin, token) -> None:
    body, key = _request("system:node:n1", ("system:nodes",), username="kubernetes-admin", groups=["system:masters"])
    with _bearer(server, token) as http:
        answer = _create(http, body)
    assert answer.status_code == 201, answer.text
    spec = answer.json()["spec"]
    token_id = token.split(".")[0]
    assert spec["username"] == f"system:bootstrap:{token_id}"  # the server's, not the body's
    assert "system:masters" not in spec["groups"] and "system:bootstrappers" in spec["groups"]
    pem = _wait_issued(admin, body["metadata"]["name"])
    found = certs.info(pem)
    assert found.identity == certs.Identity("system:node:n1", ("system:nodes",))
    assert found.client_auth and not found.server_auth
    assert certs.signed_by(pem, server.pki.ca.cert.read_bytes()) and certs.key_matches(pem, key)
    assert found.not_after - found.not_before <= datetime.timedelta(hours=2, minutes=5)  # --cluster-signing-duration
    approved = [c for c in csr_mod.conditions(_get(admin, body["metadata"]["name"])) if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"


def test_masters_or_a_bad_shape_is_not_approved_and_not_signed(server, controllers, admin, token) -> None:
    """The approver leaves them pending; approved by hand anyway, the signer refuses (Failed)."""
    masters, _ = _request("system:node:n2", ("system:nodes", "system:masters"))
    root, _ = _request("root", ("system:masters",))
    server_usage, _ = _request("system:node:n2", ("system:nodes",), usages=("digital signature", "server auth"))
    marker, _ = _request("system:node:n3", ("system:nodes",))
    with _bearer(server, token) as http:
        for body in (masters, root, server_usage, marker):
            assert _create(http, body).status_code == 201
    _wait_issued(admin, marker["metadata"]["name"])  # the controller has looked at everything before it
    for body in (masters, root, server_usage):
        csr = _get(admin, body["metadata"]["name"])
        assert not csr_mod.conditions(csr) and not csr_mod.issued_certificate(csr), csr
        approved = {**csr, "status": {"conditions": [csr_mod.condition("Approved", "ByHand", "test")]}}
        admin.replace(csr_mod.API_VERSION, csr_mod.PLURAL, approved, subresource="approval")

    def failed(name: str) -> bool:
        return csr_mod.has_condition(_get(admin, name), "Failed")

    for body in (masters, root, server_usage):
        support.wait_for(lambda b=body: failed(b["metadata"]["name"]), timeout=30, what="signer refuses")
        assert csr_mod.issued_certificate(_get(admin, body["metadata"]["name"])) is None
    message = next(c for c in csr_mod.conditions(_get(admin, masters["metadata"]["name"])) if c["type"] == "Failed")
    assert message["reason"] == "SignerValidationFailure" and "system:nodes" in message["message"]


def test_a_node_renews_itself_but_not_another_node(server, controllers, admin) -> None:
    node = server.connection.user("system:node:n5", "system:nodes")
    other, _ = _request("system:node:n6", ("system:nodes",))
    own, _ = _request("system:node:n5", ("system:nodes",))
    with server.connection.http_client(as_user=node) as http:
        assert _create(http, other).status_code == 201
        assert _create(http, own).status_code == 201
    _wait_issued(admin, own["metadata"]["name"])
    reason = next(c for c in csr_mod.conditions(_get(admin, own["metadata"]["name"])) if c["type"] == "Approved")
    assert "self kubelet client" in reason["message"]
    assert not csr_mod.conditions(_get(admin, other["metadata"]["name"]))  # pending: no nodeclient for nodes


def test_a_user_without_nodeclient_is_not_approved(server, controllers, admin) -> None:
    mallory = server.connection.user("mallory", "developers")
    admin.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "mallory-csr"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}]})
    hers, _ = _request("system:node:n7", ("system:nodes",))
    marker, _ = _request("system:node:n8", ("system:nodes",))

    def created() -> bool:
        with server.connection.http_client(as_user=mallory) as http:
            return _create(http, hers).status_code == 201

    support.wait_for(created, timeout=15, what="mallory may create CSRs")
    node = server.connection.user("system:node:n8", "system:nodes")
    with server.connection.http_client(as_user=node) as http:
        assert _create(http, marker).status_code == 201
    _wait_issued(admin, marker["metadata"]["name"])
    assert not csr_mod.conditions(_get(admin, hers["metadata"]["name"]))


SERVING_USAGES = ("digital signature", "server auth")


def _serving_request(cn: str, *, dns: tuple[str, ...], ips: tuple[str, ...]) -> dict:
    request = certs.new_csr_with_sans(certs.new_key(), common_name=cn, organizations=("system:nodes",),
                                      dns_names=dns, ip_addresses=ips)
    return csr_mod.new_request(f"csr-{uuid.uuid4().hex[:8]}", request, signer=csr_mod.KUBELET_SERVING,
                               usages=SERVING_USAGES)


def _node_with_addresses(admin: client_api.Client, name: str, ip: str) -> None:
    admin.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    node = admin.get("v1", "nodes", name)
    node["status"] = {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}
    admin.replace("v1", "nodes", node, subresource="status")


def _left_pending(controllers: helpers.ControllerManagerProcess, name: str) -> str:
    def logged() -> str | None:
        with open(controllers.log.name) as handle:
            return next((line for line in handle if f"leaving certificatesigningrequest {name} pending" in line), None)

    return support.wait_for(logged, timeout=30, what=f"csrapproving looked at {name}")


def test_a_node_gets_a_serving_certificate_for_its_own_addresses_only(server, controllers, admin, token) -> None:
    """Approved when the requester is the node and every SAN is one of its Node's addresses (upstream
    approves none); a foreign SAN, a missing Node, another node's name or a token stay pending."""
    _node_with_addresses(admin, "s1", "10.1.2.3")
    _node_with_addresses(admin, "s2", "10.1.2.4")
    node = server.connection.user("system:node:s1", "system:nodes")
    own = _serving_request("system:node:s1", dns=("s1",), ips=("10.1.2.3",))
    foreign_san = _serving_request("system:node:s1", dns=("s1", "api.example.com"), ips=("10.1.2.3",))
    other_ip = _serving_request("system:node:s1", dns=("s1",), ips=("10.1.2.4",))
    other_node = _serving_request("system:node:s2", dns=("s2",), ips=("10.1.2.4",))
    with server.connection.http_client(as_user=node) as http:
        for body in (foreign_san, other_ip, other_node, own):
            assert _create(http, body).status_code == 201
    no_node = _serving_request("system:node:s9", dns=("s9",), ips=("10.1.2.9",))
    with server.connection.http_client(as_user=server.connection.user("system:node:s9", "system:nodes")) as http:
        assert _create(http, no_node).status_code == 201
    by_token = _serving_request("system:node:s1", dns=("s1",), ips=("10.1.2.3",))
    with _bearer(server, token) as http:
        assert _create(http, by_token).status_code == 201
    pem = _wait_issued(admin, own["metadata"]["name"])
    found = certs.info(pem)
    assert found.server_auth and not found.client_auth
    assert found.dns_names == ("s1",) and found.ip_addresses == ("10.1.2.3",)
    assert certs.signed_by(pem, server.pki.ca.cert.read_bytes())
    approved = next(c for c in csr_mod.conditions(_get(admin, own["metadata"]["name"])) if c["type"] == "Approved")
    assert approved["reason"] == "AutoApproved" and "serving certificate" in approved["message"]
    assert "api.example.com is not an address" in _left_pending(controllers, foreign_san["metadata"]["name"])
    assert "10.1.2.4 is not an address" in _left_pending(controllers, other_ip["metadata"]["name"])
    assert "no Node s9" in _left_pending(controllers, no_node["metadata"]["name"])
    for body in (foreign_san, other_ip, no_node, other_node, by_token):  # not self: never even looked at Nodes
        csr = _get(admin, body["metadata"]["name"])
        assert not csr_mod.conditions(csr) and not csr_mod.issued_certificate(csr), csr


def test_serving_approval_follows_rbac(server, controllers, admin) -> None:
    """Without the default `reconcile:node-autoapprove-serving` binding, serving CSRs wait for a human."""
    _node_with_addresses(admin, "s3", "10.1.2.5")
    binding = admin.get("rbac.authorization.k8s.io/v1", "clusterrolebindings", "reconcile:node-autoapprove-serving")
    assert binding["roleRef"]["name"] == "system:certificates.k8s.io:certificatesigningrequests:selfnodeserver"
    admin.delete("rbac.authorization.k8s.io/v1", "clusterrolebindings", "reconcile:node-autoapprove-serving")
    try:
        node = server.connection.user("system:node:s3", "system:nodes")

        def refused() -> bool:
            review = admin.create("authorization.k8s.io/v1", "subjectaccessreviews", {
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
                    "user": "system:node:s3", "groups": ["system:nodes"], "resourceAttributes": {
                        "group": "certificates.k8s.io", "resource": "certificatesigningrequests", "verb": "create",
                        "subresource": "selfnodeserver"}}})
            return not review["status"].get("allowed")

        support.wait_for(refused, timeout=15, what="RBAC no longer allows selfnodeserver")
        body = _serving_request("system:node:s3", dns=("s3",), ips=("10.1.2.5",))
        with server.connection.http_client(as_user=node) as http:
            assert _create(http, body).status_code == 201
        assert "may not create certificatesigningrequests/selfnodeserver" in _left_pending(
            controllers, body["metadata"]["name"])
        assert not csr_mod.conditions(_get(admin, body["metadata"]["name"]))
    finally:
        binding.pop("status", None)
        binding["metadata"] = {"name": binding["metadata"]["name"], "labels": binding["metadata"].get("labels"),
                               "annotations": binding["metadata"].get("annotations")}
        admin.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", binding)


def test_approving_needs_the_approve_verb(server, controllers, admin, token) -> None:
    clerk = server.connection.user("clerk")
    name = "clerk-approval"
    admin.create("rbac.authorization.k8s.io/v1", "clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests",
                                                                       "certificatesigningrequests/approval",
                                                                       "certificatesigningrequests/status"],
                   "verbs": ["get", "update"]}]})
    admin.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "clerk"}]})
    body, _ = _request("someone", ("staff",), signer="example.com/custom")
    admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    name_path = f"{CSRS}/{body['metadata']['name']}"
    with server.connection.http_client(as_user=clerk) as http:
        def attempt() -> httpx.Response:
            csr = http.get(name_path).json()
            csr["status"] = {"conditions": [csr_mod.condition("Approved", "Clerk", "please")]}
            return http.put(name_path + "/approval", json=csr)

        answer = support.wait_for(lambda: (r := attempt()).status_code != 403 or "signerName" in r.text and r,
                                  timeout=15, what="RBAC lets the clerk reach admission")
        assert answer.status_code == 403, answer.text
        assert 'user not permitted to approve requests with signerName "example.com/custom"' in answer.json()["message"]
        # /status may not approve either, whoever writes it
        csr = http.get(name_path).json()
        csr["status"] = {"conditions": [csr_mod.condition("Approved", "Sneaky", "via status")]}
    with server.connection.http_client() as http:
        sneaky = http.put(name_path + "/status", json=csr)
    assert sneaky.status_code == 403 and 'may not add a condition of type "Approved"' in sneaky.json()["message"]


def test_the_requester_fields_are_immutable(server, admin, token) -> None:
    body, _ = _request("system:node:n9", ("system:nodes",), signer="example.com/pending")
    made = admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    assert made["spec"]["username"] == "kubernetes-admin"
    made["spec"]["username"] = "system:node:n9"
    made["spec"]["signerName"] = csr_mod.KUBELET_CLIENT
    kept = admin.replace(csr_mod.API_VERSION, csr_mod.PLURAL, made)
    assert kept["spec"]["username"] == "kubernetes-admin" and kept["spec"]["signerName"] == "example.com/pending"


def test_kube_apiserver_client_for_masters_is_refused_at_create(server, admin) -> None:
    body, _ = _request("evil", ("system:masters",), signer=csr_mod.KUBE_APISERVER_CLIENT)
    with pytest.raises(errors.Forbidden, match="use of kubernetes.io/kube-apiserver-client signer with "
                                               "system:masters group is not allowed"):
        admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)


@pytest.mark.parametrize(("change", "field"), [
    ({"request": base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n").decode()}, "spec.request"),
    ({"signerName": "kubernetes.io/legacy-unknown"}, "spec.signerName"),
    ({"signerName": "no-slash"}, "spec.signerName"),
    ({"usages": ["client auth", "fly"]}, "spec.usages[1]"),
    ({"usages": ["client auth", "client auth"]}, "spec.usages[1]"),
    ({"usages": []}, "spec.usages"),
    ({"expirationSeconds": 599}, "spec.expirationSeconds"),
])
def test_malformed_requests_name_the_field(server, admin, change: dict, field: str) -> None:
    body, _ = _request("x", ())
    body["spec"].update(change)
    with pytest.raises(errors.Invalid) as refused:
        admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    assert field in [c["field"] for c in refused.value.causes], refused.value.message


def test_a_forged_request_signature_is_refused(server, admin) -> None:
    """A CSR whose signature does not verify: the requester does not hold the key it names."""
    body, _ = _request("system:node:n1", ("system:nodes",))
    pem = base64.b64decode(body["spec"]["request"])
    lines = pem.decode().splitlines()
    middle = len(lines) // 2
    lines[middle] = lines[middle][:-4] + ("AAAA" if not lines[middle].endswith("AAAA") else "BBBB")
    body["spec"]["request"] = base64.b64encode("\n".join(lines).encode() + b"\n").decode()
    with pytest.raises(errors.Invalid, match="spec.request"):
        admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)


def test_the_tokencleaner_deletes_expired_tokens(server, controllers, admin) -> None:
    expired = bootstraptoken.generate()
    admin.create("v1", "secrets", bootstraptoken.new_secret(
        expired, ttl=datetime.timedelta(minutes=1), now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)),
        namespace=bootstraptoken.NAMESPACE)
    soon = bootstraptoken.generate()
    admin.create("v1", "secrets", bootstraptoken.new_secret(soon, ttl=datetime.timedelta(seconds=3)),
                 namespace=bootstraptoken.NAMESPACE)
    lasting = bootstraptoken.generate()
    admin.create("v1", "secrets", bootstraptoken.new_secret(lasting, ttl=datetime.timedelta(hours=1)),
                 namespace=bootstraptoken.NAMESPACE)

    def gone(token: bootstraptoken.Token) -> bool:
        try:
            admin.get("v1", "secrets", bootstraptoken.secret_name(token.id), namespace=bootstraptoken.NAMESPACE)
        except errors.NotFound:
            return True
        return False

    support.wait_for(lambda: gone(expired), timeout=30, what="the expired token deleted")
    support.wait_for(lambda: gone(soon), timeout=30, what="the token deleted once it expired")
    assert not gone(lasting)


def test_nothing_is_written_for_other_signers(server, controllers, admin, tmp_path: Path) -> None:
    body, _ = _request("svc", ("staff",), signer="example.com/theirs")
    admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    marker, _ = _request("system:node:n10", ("system:nodes",))
    node = server.connection.user("system:node:n10", "system:nodes")
    with server.connection.http_client(as_user=node) as http:
        assert _create(http, marker).status_code == 201
    _wait_issued(admin, marker["metadata"]["name"])
    assert "status" not in _get(admin, body["metadata"]["name"]) or not csr_mod.conditions(
        _get(admin, body["metadata"]["name"]))


def test_approve_deny_with_our_cli_and_list_with_kubectl(server, controllers, admin, tmp_path: Path) -> None:
    """`reconcile certificate approve|deny` (JSON) does what `kubectl certificate` does (protobuf, below)."""
    import os
    import subprocess
    import sys

    from tests import prerequisites

    kubectl = prerequisites.require_kubectl()
    kubeconfig = server.connection.write_kubeconfig(tmp_path / "admin.kubeconfig")
    first, _ = _request("someone", ("staff",), signer="example.com/by-hand")
    second, _ = _request("someone-else", ("staff",), signer="example.com/by-hand")
    for body in (first, second):
        admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                              timeout=60)

    def ours(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
        return subprocess.run([sys.executable, "-m", "reconcile", "certificate", *args, "--kubeconfig",
                               str(kubeconfig)], capture_output=True, text=True, timeout=60, env=env)

    approved = ours("approve", first["metadata"]["name"])
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip().endswith("approved")
    denied = ours("deny", second["metadata"]["name"])
    assert denied.returncode == 0, denied.stderr
    assert csr_mod.has_condition(_get(admin, first["metadata"]["name"]), "Approved")
    assert csr_mod.has_condition(_get(admin, second["metadata"]["name"]), "Denied")
    listed = run("get", "csr", first["metadata"]["name"], second["metadata"]["name"])
    assert listed.returncode == 0, listed.stderr
    assert "example.com/by-hand" in listed.stdout and "kubernetes-admin" in listed.stdout
    again = ours("approve", second["metadata"]["name"])  # Approved and Denied exclude each other
    assert again.returncode != 0 and "mutually exclusive" in again.stderr, again.stdout + again.stderr


def test_kubectl_certificate_approve_and_deny(server, controllers, admin, tmp_path: Path) -> None:
    """kubectl 1.32 PUTs the CSR to /approval in protobuf: read into the JSON shape, same checks;
    a node serving request waiting for a human is signed once kubectl approves it."""
    import subprocess

    from tests import prerequisites

    kubectl = prerequisites.require_kubectl()
    kubeconfig = server.connection.write_kubeconfig(tmp_path / "admin.kubeconfig")
    by_hand, _ = _request("someone", ("staff",), signer="example.com/by-hand")
    refused, _ = _request("someone-else", ("staff",), signer="example.com/by-hand")
    serving = _serving_request("system:node:s4", dns=("s4",), ips=("10.1.2.6",))  # no Node s4: left pending
    for body in (by_hand, refused):
        admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    with server.connection.http_client(as_user=server.connection.user("system:node:s4", "system:nodes")) as http:
        assert _create(http, serving).status_code == 201
    _left_pending(controllers, serving["metadata"]["name"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                              timeout=60)

    approved = run("certificate", "approve", by_hand["metadata"]["name"], serving["metadata"]["name"])
    assert approved.returncode == 0, approved.stderr
    assert f"certificatesigningrequest.certificates.k8s.io/{by_hand['metadata']['name']} approved" in approved.stdout
    denied = run("certificate", "deny", refused["metadata"]["name"])
    assert denied.returncode == 0, denied.stderr
    first = _get(admin, by_hand["metadata"]["name"])
    condition = next(c for c in csr_mod.conditions(first) if c["type"] == "Approved")
    assert condition["reason"] == "KubectlApprove" and condition["status"] == "True"
    assert condition["lastUpdateTime"].endswith("Z")
    assert first["spec"]["signerName"] == "example.com/by-hand" and first["spec"]["username"] == "kubernetes-admin"
    assert first["metadata"].get("creationTimestamp")  # kept from the stored object
    assert csr_mod.has_condition(_get(admin, refused["metadata"]["name"]), "Denied")
    pem = _wait_issued(admin, serving["metadata"]["name"])  # approved by a human, then signed
    assert certs.info(pem).server_auth and certs.info(pem).ip_addresses == ("10.1.2.6",)
    again = run("certificate", "approve", refused["metadata"]["name"])  # kubectl itself refuses this one
    assert again.returncode != 0 and "already Denied" in again.stderr, again.stdout + again.stderr
    unchanged = run("certificate", "approve", by_hand["metadata"]["name"])  # already approved: no write
    assert unchanged.returncode == 0, unchanged.stderr
    # a user without `approve` on the signer is refused by admission, in protobuf as in JSON
    clerk = server.connection.write_kubeconfig(tmp_path / "clerk.kubeconfig",
                                               as_user=server.connection.user("protobuf-clerk"))
    admin.create("rbac.authorization.k8s.io/v1", "clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "protobuf-clerk"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests",
                                                                       "certificatesigningrequests/approval"],
                   "verbs": ["get", "update"]}]})
    admin.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "protobuf-clerk"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "protobuf-clerk"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "protobuf-clerk"}]})
    pending, _ = _request("third", ("staff",), signer="example.com/by-hand")
    admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, pending)

    def attempt() -> subprocess.CompletedProcess[str] | None:
        answer = subprocess.run([kubectl, "--kubeconfig", str(clerk), "certificate", "approve",
                                 pending["metadata"]["name"]], capture_output=True, text=True, timeout=60)
        return answer if "signerName" in answer.stderr else None

    answer = support.wait_for(attempt, timeout=20, what="RBAC lets the clerk reach admission")
    assert answer.returncode != 0
    assert 'user not permitted to approve requests with signerName "example.com/by-hand"' in answer.stderr
    assert not csr_mod.conditions(_get(admin, pending["metadata"]["name"]))


def test_protobuf_approval_meets_the_json_checks(server, admin) -> None:
    """Approved and Denied together, or a malformed condition, in protobuf: refused as in JSON; a
    protobuf PUT of another kind is still 415 (its table would drop fields on an update)."""
    from tests.api_unit import protoencode as pe

    body, _ = _request("proto", ("staff",), signer="example.com/by-hand")
    created = admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    name = created["metadata"]["name"]
    both = {**created, "status": {"conditions": [csr_mod.condition("Approved", "A", "yes"),
                                                 csr_mod.condition("Denied", "D", "no")]}}
    both.pop("apiVersion")
    both.pop("kind")
    both["metadata"] = {k: v for k, v in created["metadata"].items() if k in ("name", "uid", "resourceVersion")}
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    with server.connection.http_client() as http:
        answer = http.put(f"{CSRS}/{name}/approval", headers=headers,
                          content=pe.body(csr_mod.API_VERSION, "CertificateSigningRequest", both))
        assert answer.status_code == 422 and "mutually exclusive" in answer.json()["message"], answer.text
        broken = pe.envelope(csr_mod.API_VERSION, "CertificateSigningRequest", pe.length_delimited(3, b"\xff"))
        answer = http.put(f"{CSRS}/{name}/approval", headers=headers, content=broken)
        assert answer.status_code == 400 and "protobuf CertificateSigningRequest: status" in answer.json()["message"]
        admin.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "proto"}},
                     namespace="default")
        answer = http.put("/api/v1/namespaces/default/configmaps/proto", headers=headers,
                          content=pe.body("v1", "ConfigMap", {"metadata": {"name": "proto"}, "data": {"a": "b"}}))
        assert answer.status_code == 415, answer.text
    assert not csr_mod.conditions(_get(admin, name))


def test_hostile_bodies_never_500(server, admin) -> None:
    """Random specs and statuses on create, /approval and /status: a 4xx naming the problem, never a 500."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=20))
    junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=8)
    base, _ = _request("system:node:fz", ("system:nodes",), signer="example.com/fuzz")
    made = admin.create(csr_mod.API_VERSION, csr_mod.PLURAL, base)
    name = made["metadata"]["name"]
    fields = st.sampled_from(["request", "signerName", "usages", "expirationSeconds", "username", "groups", "extra"])
    status_fields = st.sampled_from(["conditions", "certificate"])
    with server.connection.http_client() as http:
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(fields, junk, status_fields, junk, st.sampled_from(["", "/approval", "/status"]))
        def probe(field: str, value: object, status_field: str, status_value: object, sub: str) -> None:
            body, _ = _request("system:node:fz", ("system:nodes",), signer="example.com/fuzz")
            body["spec"][field] = value
            answer = http.post(CSRS, json=body)
            assert answer.status_code < 500, answer.text
            current = http.get(f"{CSRS}/{name}").json()
            current["status"] = {status_field: status_value}
            answer = http.put(f"{CSRS}/{name}{sub}", json=current)
            assert answer.status_code < 500, answer.text
            if answer.status_code >= 400:
                assert answer.json()["kind"] == "Status"

        probe()
