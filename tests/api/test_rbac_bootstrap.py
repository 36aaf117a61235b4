"""The default policy across API server restarts (auto-reconcile and its autoupdate annotation), and
the authentication switches: anonymous requests off, and off beside the AlwaysAllow default."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import support

RBAC = "/apis/rbac.authorization.k8s.io/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.csv"
    path.write_text('root-token,root,0,"system:masters"\nuser-token,someone,1\n')
    return path


def _server(etcd_endpoint: str, prefix: str, *args: str) -> support.ApiServerProcess:
    server = support.ApiServerProcess(etcd_endpoint, prefix=prefix, extra_args=args)
    server.start()
    return server


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"/test-{uuid.uuid4().hex[:12]}/registry"


def test_defaults_are_restored_at_start_unless_autoupdate_is_false(etcd_endpoint: str, prefix: str) -> None:
    server = _server(etcd_endpoint, prefix)  # the suite's default server: the admin's certificate
    try:
        with server.connection.http_client() as http:
            discovery = http.get(f"{RBAC}/clusterroles/system:discovery").json()
            assert discovery["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
            full = discovery["rules"]
            discovery["rules"] = [{"verbs": ["get"], "nonResourceURLs": ["/version"]}]
            assert http.put(f"{RBAC}/clusterroles/system:discovery", json=discovery).status_code == 200
            binding = http.get(f"{RBAC}/clusterrolebindings/system:basic-user").json()
            binding["subjects"] = []
            assert http.put(f"{RBAC}/clusterrolebindings/system:basic-user", json=binding).status_code == 200
            viewer = http.get(f"{RBAC}/clusterroles/system:public-info-viewer").json()
            viewer["metadata"]["annotations"][AUTOUPDATE] = "false"
            viewer["rules"] = [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
            assert http.put(f"{RBAC}/clusterroles/system:public-info-viewer", json=viewer).status_code == 200
            assert http.delete(f"{RBAC}/clusterroles/system:kube-scheduler").status_code == 200
    finally:
        server.stop()
    server = _server(etcd_endpoint, prefix)  # a restart on the same storage
    try:
        with server.connection.http_client() as http:
            restored = http.get(f"{RBAC}/clusterroles/system:discovery").json()["rules"]
            assert {"verbs": ["get"], "nonResourceURLs": ["/version"]} in restored
            for rule in full:
                assert rule in restored  # what was taken away is back, what was added stays
            subjects = http.get(f"{RBAC}/clusterrolebindings/system:basic-user").json()["subjects"]
            assert subjects == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}]
            kept = http.get(f"{RBAC}/clusterroles/system:public-info-viewer").json()
            assert kept["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]  # autoupdate: false
            assert http.get(f"{RBAC}/clusterroles/system:kube-scheduler").status_code == 200  # re-created
    finally:
        server.stop()


def test_anonymous_auth_false_refuses_every_request_without_credentials(etcd_endpoint: str, prefix: str,
                                                                        tokens: Path) -> None:
    server = _server(etcd_endpoint, prefix, "--token-auth-file", str(tokens), "--anonymous-auth=false",
                     "--authorization-mode", "AlwaysAllow")  # what authentication alone does
    try:
        with server.connection.http_client(anonymous=True) as http:  # tokens say who calls
            response = http.get("/api/v1/namespaces")
            assert response.status_code == 401 and response.json() == UNAUTHORIZED
            assert http.get("/healthz").status_code == 200  # the public paths stay public
            assert http.get("/version").status_code == 200
            # AlwaysAllow: authenticated is enough, whoever it is
            user = {"Authorization": "Bearer user-token"}
            assert http.get("/api/v1/namespaces", headers=user).status_code == 200
            who = http.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=user, json={}).json()
            assert who["status"]["userInfo"] == {"username": "someone", "uid": "1", "groups": ["system:authenticated"]}
    finally:
        server.stop()


def test_always_allow_turns_anonymous_requests_off(etcd_endpoint: str, prefix: str, tokens: Path) -> None:
    """Authentication without RBAC: as upstream, --anonymous-auth (true by default) is reset to false
    beside AlwaysAllow, which would otherwise let an anonymous caller do anything."""
    server = _server(etcd_endpoint, prefix, "--token-auth-file", str(tokens), "--authorization-mode", "AlwaysAllow")
    try:
        with server.connection.http_client(anonymous=True) as http:  # tokens say who calls
            refused = http.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
            assert refused.status_code == 401 and refused.json() == UNAUTHORIZED
            assert http.get("/api/v1/namespaces").status_code == 401
            assert http.get("/healthz").status_code == 200  # the public paths stay public
            assert http.get("/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert http.get("/api/v1/namespaces", headers={"Authorization": "Bearer user-token"}).status_code == 200
    finally:
        server.stop()


def test_unknown_authorization_mode_is_refused_at_start(etcd_endpoint: str, prefix: str) -> None:
    result = subprocess.run([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd_endpoint, "--etcd-prefix",
                             prefix, "--port", str(support.free_port()), "--authorization-mode", "RBAC,Bogus"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--authorization-mode: unknown mode 'Bogus' (known: AlwaysAllow, AlwaysDeny, RBAC, Node)" in result.stderr
