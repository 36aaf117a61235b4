"""ServiceAccounts and their tokens against a real API server (HTTPS, client certificates, RBAC, the
cluster PKI's sa.key/sa.pub): TokenRequest, the token authenticator, TokenReview, the
ServiceAccount admission plugin, `kubectl create token`, and the forgeries a token must survive."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.api import jwts, satokens
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster
from tests import prerequisites, support
from tests.api import helpers

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
ISSUER = satokens.DEFAULT_ISSUER
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class Api:
    def __init__(self, server: support.ApiServerProcess) -> None:
        self.server = server
        self.pki = server.pki
        assert self.pki is not None
        self.admin = server.connection.http_client()
        self.anonymous = server.connection.http_client(anonymous=True)

    def ok(self, method: str, path: str, body: Any = None, *, status: tuple[int, ...] = (200, 201)) -> dict:
        response = self.admin.request(method, path, json=body)
        assert response.status_code in status, response.text
        return response.json()

    def with_token(self, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.anonymous.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    def whoami(self, token: str) -> httpx.Response:
        return self.with_token(token, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                               {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})

    def service_account(self, ns: str, name: str, **fields: Any) -> dict:
        return self.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                       {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields})

    def token(self, ns: str, name: str, spec: dict | None = None, *, status: tuple[int, ...] = (201,)) -> dict:
        return self.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec or {}},
                       status=status)

    def pod(self, ns: str, name: str, **spec: Any) -> dict:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
        return self.ok("POST", f"/api/v1/namespaces/{ns}/pods", body)

    def review(self, token: str, audiences: list[str] | None = None) -> dict:
        spec: dict[str, Any] = {"token": token}
        if audiences is not None:
            spec["audiences"] = audiences
        return self.ok("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})["status"]


@pytest.fixture(scope="module")
def api(etcd_endpoint: str) -> Iterator[Api]:
    pki = pki_cluster.ClusterPki(Path(tempfile.mkdtemp(prefix="sa-pki-")) / "pki")
    pki.ensure()
    server = support.ApiServerProcess(
        etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--authorization-mode", "RBAC", "--service-account-key-file", str(pki.sa_pub),
                    "--service-account-signing-key-file", str(pki.sa_key),
                    "--service-account-max-token-expiration", "48h"))
    server.start()
    try:
        yield Api(server)
    finally:
        server.stop()


@pytest.fixture
def ns(api: Api) -> str:
    name = helpers.unique("sa")
    api.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    api.service_account(name, "default")
    return name


def _segments(token: str) -> tuple[dict, dict]:
    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def _forge(claims: dict, key: bytes) -> str:
    public = certs.signing_public_key(key)
    return jwts.sign(claims, key, algorithm=certs.jws_algorithm(key), kid=certs.key_id(public))


def _claims_for(sa: dict, *, now: int, expiration: int = 3600, audiences: tuple[str, ...] = (ISSUER,)) -> dict:
    return satokens.claims(issuer=ISSUER, service_account=sa, audiences=audiences, expiration=expiration, now=now)


# --- TokenRequest -------------------------------------------------------------------------------


def test_token_request_claims_are_upstreams(api: Api, ns: str) -> None:
    sa = api.service_account(ns, "builder")
    before = int(time.time())
    answer = api.token(ns, "builder")
    assert answer["kind"] == "TokenRequest" and answer["apiVersion"] == "authentication.k8s.io/v1"
    assert answer["spec"]["audiences"] == [ISSUER] and answer["spec"]["expirationSeconds"] == 3600
    header, claims = _segments(answer["status"]["token"])
    assert header == {"alg": "RS256", "kid": certs.key_id(api.pki.sa_pub.read_bytes())}
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == f"system:serviceaccount:{ns}:builder"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"] >= before
    assert uuid.UUID(claims["jti"])
    assert claims["kubernetes.io"] == {"namespace": ns, "serviceaccount": {"name": "builder",
                                                                           "uid": sa["metadata"]["uid"]}}
    expires = answer["status"]["expirationTimestamp"]
    assert expires == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))


def test_token_authenticates_as_the_service_account(api: Api, ns: str) -> None:
    sa = api.service_account(ns, "reader")
    token = api.token(ns, "reader")["status"]["token"]
    response = api.whoami(token)
    assert response.status_code == 201, response.text
    info = response.json()["status"]["userInfo"]
    jti = _segments(token)[1]["jti"]
    assert info == {"username": f"system:serviceaccount:{ns}:reader", "uid": sa["metadata"]["uid"],
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                    "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]}}
    # nothing is bound to it: RBAC refuses what the account was never granted
    assert api.with_token(token, "GET", f"/api/v1/namespaces/{ns}/secrets").status_code == 403


def test_expiration_bounds_and_defaults(api: Api, ns: str) -> None:
    refused = api.token(ns, "default", {"expirationSeconds": 599}, status=(422,))
    assert refused["message"] == ('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
                                  "Invalid value: 599: may not specify a duration less than 10 minutes")
    assert refused["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    huge = api.token(ns, "default", {"expirationSeconds": (1 << 32) + 1}, status=(422,))
    assert "may not specify a duration larger than 2^32 seconds" in huge["message"]
    response = api.admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
                              json={"spec": {"expirationSeconds": 3 * 86400}})
    assert response.status_code == 201
    assert response.json()["spec"]["expirationSeconds"] == 48 * 3600  # --service-account-max-token-expiration
    assert "requested expiration of 259200 seconds shortened to 172800 seconds" in response.headers["warning"]
    for bad in ({"spec": {"expirationSeconds": "1h"}}, {"spec": {"audiences": "x"}}, {"spec": []},
                {"kind": "Pod", "apiVersion": "v1"}, [1, 2]):
        answer = api.admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", json=bad)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["reason"] == "BadRequest"


def test_token_of_a_missing_account_and_other_methods(api: Api, ns: str) -> None:
    missing = api.token(ns, "ghost", status=(404,))
    assert missing["message"] == 'serviceaccounts "ghost" not found'
    assert api.admin.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default/token").status_code == 405


def test_bound_to_a_pod_until_the_pod_is_deleted(api: Api, ns: str) -> None:
    sa = api.service_account(ns, "runner")
    pod = api.pod(ns, "p1", serviceAccountName="runner", automountServiceAccountToken=False)
    uid = pod["metadata"]["uid"]
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": uid}
    answer = api.token(ns, "runner", {"boundObjectRef": ref, "expirationSeconds": 3607})
    _, claims = _segments(answer["status"]["token"])
    assert claims["kubernetes.io"]["pod"] == {"name": "p1", "uid": uid}
    # the projected-volume case: valid a year, warns after the 3607 s asked for
    assert claims["exp"] - claims["iat"] == satokens.EXTENDED_EXPIRATION
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    token = answer["status"]["token"]
    info = api.whoami(token).json()["status"]["userInfo"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["p1"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    assert info["uid"] == sa["metadata"]["uid"]

    api.ok("DELETE", helpers.pod_path(ns, "p1"), {"gracePeriodSeconds": 0})
    api.ok("DELETE", helpers.pod_path(ns, "p1"), status=(200, 404))  # finalized, if the first only marked it

    def refused() -> bool:
        response = api.whoami(token)
        return response.status_code == 401 and response.json() == UNAUTHORIZED

    support.wait_for(refused, timeout=10, what="the deleted pod's token to be refused")
    review = api.review(token)
    assert review.get("authenticated") is not True and review["error"] == "service account token has been invalidated"
    # a new pod of the same name is another pod: the old token stays refused
    api.pod(ns, "p1", serviceAccountName="runner", automountServiceAccountToken=False)
    assert api.whoami(token).status_code == 401
    assert "pod UID" in api.review(token)["error"]


def test_binding_checks_uid_account_and_kind(api: Api, ns: str) -> None:
    api.service_account(ns, "a")
    api.service_account(ns, "b")
    pod = api.pod(ns, "pa", serviceAccountName="a", automountServiceAccountToken=False)
    wrong_uid = api.token(ns, "a", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "pa",
                                                       "uid": "not-the-uid"}}, status=(409,))
    assert "the UID in the bound object reference (not-the-uid) does not match the UID in record" in wrong_uid["message"]
    other = api.token(ns, "b", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "pa"}}, status=(400,))
    assert other["message"] == ('cannot bind token for serviceaccount "b" to pod running with different '
                                "serviceaccount name.")
    kind = api.token(ns, "a", {"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "x"}},
                     status=(400,))
    assert kind["message"] == "cannot bind token to object of type apps/v1, Kind=Deployment"
    assert api.token(ns, "a", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "nope"}},
                     status=(404,))["message"] == 'pods "nope" not found'
    assert pod["spec"]["serviceAccountName"] == "a"


# --- the authenticator, as an attacker ----------------------------------------------------------


def test_forged_expired_and_misdirected_tokens_get_a_plain_401(api: Api, ns: str) -> None:
    sa = api.service_account(ns, "target")
    now = int(time.time())
    good = _claims_for(sa, now=now)
    assert api.whoami(_forge(good, api.pki.sa_key.read_bytes())).status_code == 201  # the control
    other_key = certs.new_signing_key()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(good).encode()).rstrip(b"=").decode()
    hmac_with_public_key = jwts_hs256(good, api.pki.sa_pub.read_bytes())
    sa_key = api.pki.sa_key.read_bytes()
    cases = {
        "another key": _forge(good, other_key),
        "expired": _forge(_claims_for(sa, now=now - 7200, expiration=3600), sa_key),
        "not yet valid": _forge({**good, "nbf": now + 3600}, sa_key),
        "wrong audience": _forge(_claims_for(sa, now=now, audiences=("https://elsewhere",)), sa_key),
        "other account uid": _forge({**good, "kubernetes.io": {**good["kubernetes.io"],
                                                               "serviceaccount": {"name": "target", "uid": "x"}}},
                                    sa_key),
        "subject of another account": _forge({**good, "sub": f"system:serviceaccount:{ns}:admin"}, sa_key),
        "alg none": f"{header}.{body}.",
        "hmac keyed with the public key": hmac_with_public_key,
        "tampered payload": _forge(good, sa_key).rsplit(".", 2)[0] + "." + body + "."
                            + _forge(good, sa_key).rsplit(".", 1)[1],
        "garbage": "a.b.c",
    }
    for what, token in cases.items():
        response = api.whoami(token)
        assert response.status_code == 401, what
        assert response.json() == UNAUTHORIZED, what
    reasons = {what: api.review(cases[what])["error"] for what in ("expired", "wrong audience", "another key")}
    assert reasons["expired"] == "service account token has expired"
    assert reasons["wrong audience"] == (f'token audiences ["https://elsewhere"] is invalid for the target '
                                         f'audiences ["{ISSUER}"]')
    assert reasons["another key"] == "invalid signature"


def jwts_hs256(claims: dict, secret: bytes) -> str:
    """A token MACed with the server's public key: the alg-confusion forgery (built by hand: PyJWT
    itself refuses to use a PEM key as an HMAC secret)."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def test_a_recreated_account_invalidates_its_old_tokens(api: Api, ns: str) -> None:
    api.service_account(ns, "phoenix")
    token = api.token(ns, "phoenix")["status"]["token"]
    assert api.whoami(token).status_code == 201
    api.ok("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/phoenix")
    support.wait_for(lambda: api.whoami(token).status_code == 401, timeout=10, what="the token to be refused")
    api.service_account(ns, "phoenix")
    support.wait_for(lambda: "does not match claim" in api.review(token).get("error", ""), timeout=10,
                     what="the new account in the cache")
    assert api.whoami(token).status_code == 401


def test_token_review(api: Api, ns: str) -> None:
    api.service_account(ns, "rev")
    token = api.token(ns, "rev", {"audiences": ["vault", ISSUER]})["status"]["token"]
    status = api.review(token)
    assert status["authenticated"] is True and status["audiences"] == [ISSUER]
    assert status["user"]["username"] == f"system:serviceaccount:{ns}:rev"
    assert api.review(token, ["vault"])["audiences"] == ["vault"]
    assert api.review(token, ["nobody"])["error"].startswith('token audiences ["vault"')
    assert api.review("not-a-token") == {"user": {}, "error": "invalid bearer token"}
    missing = api.admin.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": {}})
    assert missing.status_code == 400 and missing.json()["message"] == ("token is required for TokenReview in "
                                                                        "authentication")
    # a service account may not ask: TokenReview is for delegated authenticators (system:auth-delegator)
    assert api.with_token(token, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                          {"spec": {"token": token}}).status_code == 403


def test_rbac_minting_needs_create_on_serviceaccounts_token(api: Api, ns: str) -> None:
    """Reading an account is not minting its tokens: `create serviceaccounts/token` is its own grant
    (upstream's edit and admin hold it, view does not; no controller-manager aggregates them here,
    so hand-made roles stand in)."""
    connection = api.server.connection
    reader = connection.http_client(as_user=connection.user("sa-reader"))
    minter = connection.http_client(as_user=connection.user("sa-minter"))
    rules = {"sa-reader": [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list"]}],
             "sa-minter": [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
                            "resourceNames": ["default"]}]}
    for who, role_rules in rules.items():
        api.ok("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": who},
            "rules": role_rules})
        api.ok("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": who},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": who},
            "subjects": [{"kind": "User", "name": who, "apiGroup": "rbac.authorization.k8s.io"}]})
    api.service_account(ns, "other")

    def status_of(client: httpx.Client, name: str = "default") -> int:
        return client.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", json={"spec": {}}).status_code

    support.wait_for(lambda: status_of(minter) == 201, timeout=15, what="the minter's binding")
    assert status_of(minter, "other") == 403  # resourceNames hold
    support.wait_for(lambda: reader.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200,
                     timeout=15, what="the reader's binding")
    assert status_of(reader) == 403


def test_discovery_lists_the_token_subresource(api: Api) -> None:
    resources = api.ok("GET", "/api/v1")["resources"]
    token = next(r for r in resources if r["name"] == "serviceaccounts/token")
    assert token["verbs"] == ["create"] and token["kind"] == "TokenRequest"
    sa = next(r for r in resources if r["name"] == "serviceaccounts")
    assert sa["shortNames"] == ["sa"] and sa["namespaced"]
    groups = api.ok("GET", "/apis/authentication.k8s.io/v1")["resources"]
    assert next(r for r in groups if r["name"] == "tokenreviews")["verbs"] == ["create"]


# --- kubectl --------------------------------------------------------------------------------------


def _kubectl(api: Api, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    kubeconfig = api.server.connection.write_kubeconfig(tmp_path / "kubeconfig")
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin"})


def test_kubectl_create_serviceaccount_and_token(api: Api, ns: str, tmp_path: Path) -> None:
    created = _kubectl(api, tmp_path, "-n", ns, "create", "serviceaccount", "robot")  # a protobuf body
    assert (created.returncode, created.stdout.strip()) == (0, "serviceaccount/robot created"), created.stderr
    pod = api.pod(ns, "rp", serviceAccountName="robot", automountServiceAccountToken=False)
    done = _kubectl(api, tmp_path, "-n", ns, "create", "token", "robot", "--audience", "vault", "--audience",
                    ISSUER, "--duration", "20m", "--bound-object-kind", "Pod", "--bound-object-name", "rp",
                    "--bound-object-uid", pod["metadata"]["uid"])
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    _, claims = _segments(token)
    assert claims["aud"] == ["vault", ISSUER] and claims["exp"] - claims["iat"] == 1200
    assert claims["kubernetes.io"]["pod"]["name"] == "rp"
    assert api.whoami(token).json()["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"
    plain = _kubectl(api, tmp_path, "-n", ns, "create", "token", "robot")
    assert plain.returncode == 0, plain.stderr
    assert _segments(plain.stdout.strip())[1]["aud"] == [ISSUER]
    short = _kubectl(api, tmp_path, "-n", ns, "create", "token", "robot", "--duration", "5m")
    assert short.returncode != 0 and "may not specify a duration less than 10 minutes" in short.stderr


# --- admission ------------------------------------------------------------------------------------


def test_admission_defaults_the_account_and_mounts_its_token(api: Api, ns: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "c", "image": "busybox"},
                                    {"name": "own", "image": "busybox",
                                     "volumeMounts": [{"name": "mine", "mountPath": MOUNT}]}],
                     "volumes": [{"name": "mine", "emptyDir": {}}]}}
    pod = api.ok("POST", helpers.pod_path(ns), body)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert len(volume["name"]) == len("kube-api-access-") + 5
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT}]  # its own mount stays


def test_admission_automount_false_and_pull_secrets(api: Api, ns: str) -> None:
    api.service_account(ns, "quiet", automountServiceAccountToken=False, imagePullSecrets=[{"name": "regcred"}])
    quiet = api.pod(ns, "q", serviceAccountName="quiet")["spec"]
    assert "volumes" not in quiet and "volumeMounts" not in quiet["containers"][0]
    assert quiet["imagePullSecrets"] == [{"name": "regcred"}]
    loud = api.pod(ns, "l", serviceAccountName="quiet", automountServiceAccountToken=True)["spec"]
    assert loud["volumes"][0]["name"].startswith("kube-api-access-")  # the pod's word wins
    off = api.pod(ns, "o", automountServiceAccountToken=False)["spec"]
    assert "volumes" not in off


def test_admission_refuses_a_pod_of_a_missing_account(api: Api, ns: str) -> None:
    response = api.admin.post(helpers.pod_path(ns), json={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan"},
        "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}})
    assert response.status_code == 403
    assert response.json()["message"] == (f'pods "orphan" is forbidden: error looking up service account '
                                          f'{ns}/ghost: serviceaccount "ghost" not found')
    bare = helpers.unique("nosa")
    api.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bare}})
    started = time.monotonic()
    refused = api.admin.post(helpers.pod_path(bare), json={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert refused.status_code == 403 and 'serviceaccount "default" not found' in refused.json()["message"]
    assert time.monotonic() - started >= 0.9  # upstream's retries for `default` (the controller may be late)


# --- in-cluster configuration of our client ----------------------------------------------------------


def test_in_cluster_client_follows_the_refreshed_token(api: Api, ns: str, tmp_path: Path) -> None:
    """Our client inside a pod: the service variables and the projected files, the token re-read
    when the node agent replaces it (here: replaced by hand, through a ..data symlink swap as the
    agent's atomic writer does)."""
    from reconcile.client import api as client_api
    from reconcile.client import config as client_config

    api.service_account(ns, "first")
    api.service_account(ns, "second")
    root = tmp_path / "serviceaccount"
    root.mkdir()
    (root / "ca.crt").write_bytes(api.pki.ca.cert.read_bytes())
    (root / "namespace").write_text(ns)
    (root / "v1").mkdir()
    (root / "v1" / "token").write_text(api.token(ns, "first")["status"]["token"])
    (root / "..data").symlink_to("v1")
    (root / "token").symlink_to("..data/token")
    port = api.server.url.rsplit(":", 1)[1]
    cfg = client_config.in_cluster_config(root=root, environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                                              "KUBERNETES_SERVICE_PORT": port})
    assert cfg is not None and cfg.server == f"https://127.0.0.1:{port}" and cfg.namespace == ns

    def whoami(client: client_api.Client) -> str:
        review = client.create("authentication.k8s.io/v1", "selfsubjectreviews",
                               {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return review["status"]["userInfo"]["username"]

    with client_api.Client(cfg) as client:
        assert whoami(client) == f"system:serviceaccount:{ns}:first"
        (root / "v2").mkdir()
        (root / "v2" / "token").write_text(api.token(ns, "second")["status"]["token"])
        (root / "..data_tmp").symlink_to("v2")
        (root / "..data_tmp").replace(root / "..data")
        assert whoami(client) == f"system:serviceaccount:{ns}:second"


def test_rbac_grants_reach_a_service_account_in_its_namespace_only(api: Api, ns: str) -> None:
    other = helpers.unique("sa-other")
    api.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    api.service_account(other, "default")
    api.pod(other, "theirs", automountServiceAccountToken=False)
    api.service_account(ns, "app")
    api.ok("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})
    api.ok("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "app-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]})
    token = api.token(ns, "app")["status"]["token"]
    support.wait_for(lambda: api.with_token(token, "GET", f"/api/v1/namespaces/{ns}/configmaps").status_code == 200,
                     timeout=15, what="the ServiceAccount's binding")
    assert api.with_token(token, "GET", f"/api/v1/namespaces/{other}/configmaps").status_code == 403
    # a token is bound only to objects of its own namespace: another namespace's pod is not found
    theirs = api.token(ns, "app", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "theirs"}},
                       status=(404,))
    assert theirs["message"] == 'pods "theirs" not found'
    # and the account cannot mint tokens for itself or others
    assert api.with_token(token, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/app/token",
                          {"spec": {}}).status_code == 403


def test_kubectl_debug_copy_resends_the_projected_token_volume(api: Api, ns: str, tmp_path: Path) -> None:
    """`kubectl debug --copy-to` posts (in protobuf) a copy of the pod as it reads it, with the
    `kube-api-access-*` volume admission gave it and a downward API volume: accepted, kept as they were."""
    original = api.pod(ns, "orig", volumes=[{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}])
    volumes = original["spec"]["volumes"]
    assert any(v["name"].startswith("kube-api-access-") and "projected" in v for v in volumes), volumes
    kubectl = prerequisites.find_kubectl()
    assert kubectl is not None
    kubeconfig = api.server.connection.write_kubeconfig(tmp_path / "kubeconfig")
    done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "-n", ns, "debug", "orig", "--copy-to=copy",
                           "--container=dbg", "--image=busybox:1.36", "--", "true"], capture_output=True, text=True,
                          timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    copy = api.ok("GET", f"/api/v1/namespaces/{ns}/pods/copy")
    assert copy["spec"]["volumes"] == volumes
    assert [c["name"] for c in copy["spec"]["containers"]] == ["c", "dbg"]
    assert copy["spec"]["containers"][0] == original["spec"]["containers"][0]
