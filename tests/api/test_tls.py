"""The API server secured as `reconcile up` runs it: HTTPS only, client certificates, an etcd with TLS
and client-certificate auth; real kubectl 1.32, the official Python client and our CLI and client
against the kubeconfig `write_kubeconfig` writes."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from reconcile.client import aio
from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.etcdserver import embedded
from reconcile.pki import cluster as pki_cluster
from tests import prerequisites, support


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pki_cluster.ClusterPki:
    pki = pki_cluster.ClusterPki(tmp_path_factory.mktemp("tls") / "pki")
    pki.ensure()
    return pki


@pytest.fixture(scope="module")
def tls_etcd(pki: pki_cluster.ClusterPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedEtcd]:
    member = embedded.EmbeddedEtcd(tmp_path_factory.mktemp("tls-etcd"), tls=embedded.MemberTls(
        trusted_ca=pki.etcd_ca.cert, cert=pki.etcd_server.cert, key=pki.etcd_server.key,
        peer_trusted_ca=pki.etcd_ca.cert, peer_cert=pki.etcd_peer.cert, peer_key=pki.etcd_peer.key)).start()
    try:
        yield member
    finally:
        member.stop()


@pytest.fixture(scope="module")
def server(pki: pki_cluster.ClusterPki, tls_etcd: embedded.EmbeddedEtcd) -> Iterator[support.ApiServerProcess]:
    process = support.ApiServerProcess(
        tls_etcd.endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--etcd-cacert", str(pki.etcd_ca.cert), "--etcd-cert", str(pki.apiserver_etcd_client.cert),
                    "--etcd-key", str(pki.apiserver_etcd_client.key)))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def kubeconfig(server: support.ApiServerProcess, tmp_path: Path) -> Path:
    return server.connection.write_kubeconfig(tmp_path / "kubeconfig")


def _env(kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env.update(KUBECONFIG=str(kubeconfig), HOME=str(tmp_path), KUBECACHEDIR=str(tmp_path / "kube-cache"))
    return env


def test_https_only(server: support.ApiServerProcess) -> None:
    assert server.url.startswith("https://")
    try:
        answer = httpx.get(server.url.replace("https:", "http:") + "/readyz", timeout=5)
    except httpx.HTTPError:
        pass  # plain HTTP on the port gets no HTTP answer
    else:
        pytest.fail(f"plain HTTP was answered: {answer.status_code} {answer.text[:200]}")
    with pytest.raises(httpx.ConnectError):  # the serving certificate is the cluster CA's, nobody else's
        httpx.get(server.url + "/readyz", timeout=5)


def test_anonymous_gets_health_and_version_and_401_elsewhere(server: support.ApiServerProcess) -> None:
    with server.connection.http_client(anonymous=True) as anonymous:
        for public in ("/healthz", "/readyz", "/livez", "/version"):
            assert anonymous.get(public).status_code == 200, public
        for path in ("/api/v1/namespaces", "/api/v1/namespaces/default/secrets", "/apis", "/openapi/v3"):
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["reason"] == "Unauthorized" and refused.json()["message"] == "Unauthorized"
        # impersonation headers without credentials: 401 as well, not a 403 that names the verb
        impersonating = anonymous.get("/api/v1/namespaces", headers={"Impersonate-User": "kubernetes-admin",
                                                                     "Impersonate-Group": "system:masters"})
        assert impersonating.status_code == 401 and impersonating.json()["message"] == "Unauthorized"
        created = anonymous.post("/api/v1/namespaces/default/configmaps",
                                 json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "anon"}})
        assert created.status_code == 401
    with server.connection.http_client() as admin:
        assert admin.get("/api/v1/namespaces/default/configmaps/anon").status_code == 404  # nothing was written


def test_a_token_alone_proves_nothing_yet(server: support.ApiServerProcess) -> None:
    """No token authenticator is configured on this branch: a bearer token is anonymous (401)."""
    with server.connection.http_client(anonymous=True) as anonymous:
        assert anonymous.get("/api/v1/namespaces", headers={"Authorization": "Bearer bogus"}).status_code == 401


def test_any_user_with_a_certificate_of_the_client_ca_is_authenticated(server: support.ApiServerProcess) -> None:
    viewer = server.connection.user("jane", "viewers")
    with server.connection.http_client(as_user=viewer) as client:
        who = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
        assert who.status_code == 201, who.text
        assert who.json()["status"]["userInfo"] == {"username": "jane", "groups": ["viewers", "system:authenticated"]}
        # known, but RBAC grants jane nothing: 403 naming her (not the anonymous 401)
        refused = client.get("/api/v1/namespaces")
        assert refused.status_code == 403 and 'User "jane" cannot list resource "namespaces"' in refused.json()["message"]


def test_kubectl_with_the_kubeconfig(kubeconfig: Path, tmp_path: Path, server: support.ApiServerProcess) -> None:
    kubectl = prerequisites.require_kubectl()
    env = _env(kubeconfig, tmp_path)
    listed = subprocess.run([kubectl, "get", "ns"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout.split()
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-kubectl}\ndata: {a: '1'}\n"
    applied = subprocess.run([kubectl, "apply", "-f", "-"], input=manifest, env=env, capture_output=True, text=True,
                             timeout=60)
    assert applied.returncode == 0, applied.stderr
    got = subprocess.run([kubectl, "get", "configmap", "from-kubectl", "-o", "jsonpath={.data.a}"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert got.stdout == "1", got.stderr
    # without the client certificate (a token nobody issued instead): kubectl's own wording for a 401
    assert server.pki is not None
    anonymous = tmp_path / "anonymous"
    client_config.write_kubeconfig(anonymous, server.url, ca_data=server.pki.ca.cert.read_bytes(), token="bogus")
    refused = subprocess.run([kubectl, "get", "ns"], env=_env(anonymous, tmp_path), capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode != 0 and "Unauthorized" in refused.stderr, refused.stderr


def test_kubectl_refuses_a_server_it_cannot_verify(kubeconfig: Path, tmp_path: Path) -> None:
    kubectl = prerequisites.require_kubectl()
    other = pki_cluster.ClusterPki(tmp_path / "other")
    other.ensure()
    text = kubeconfig.read_text()
    wrong_ca = base64.b64encode(other.ca.cert.read_bytes()).decode()
    lines = [f"    certificate-authority-data: {wrong_ca}" if "certificate-authority-data" in line else line
             for line in text.splitlines()]
    (tmp_path / "wrong").write_text("\n".join(lines) + "\n")
    refused = subprocess.run([kubectl, "get", "ns"], env=_env(tmp_path / "wrong", tmp_path), capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr


def test_official_python_client_with_load_kube_config(kubeconfig: Path, server: support.ApiServerProcess) -> None:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    with k8s.ApiClient(configuration) as api:
        core = k8s.CoreV1Api(api)
        assert "default" in [n.metadata.name for n in core.list_namespace().items]
        created = core.create_namespaced_config_map("default", k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="from-python"), data={"k": "v"}))
        stream = k8s_watch.Watch().stream(core.list_namespaced_config_map, "default",
                                          resource_version=created.metadata.resource_version, timeout_seconds=5)
        core.patch_namespaced_config_map("from-python", "default", {"data": {"k": "w"}})
        event = next(stream)
        assert event["type"] == "MODIFIED" and event["object"].data == {"k": "w"}
        core.delete_namespaced_config_map("from-python", "default")
    anonymous = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=anonymous)
    anonymous.cert_file = anonymous.key_file = None
    with k8s.ApiClient(anonymous) as api, pytest.raises(ApiException) as refused:
        k8s.CoreV1Api(api).list_namespace()
    assert refused.value.status == 401


def test_our_cli_with_the_kubeconfig(kubeconfig: Path, tmp_path: Path) -> None:
    env = _env(kubeconfig, tmp_path)
    listed = subprocess.run([sys.executable, "-m", "reconcile", "get", "ns"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout.split()


def test_our_sync_client_from_the_kubeconfig(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILE_SERVER", raising=False)
    with client_api.Client(client_config.load_config(kubeconfig=str(kubeconfig))) as client:
        created = client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "from-sync"}}, namespace="default")
        assert client.get("v1", "configmaps", "from-sync", namespace="default")["metadata"]["uid"] == \
            created["metadata"]["uid"]
        client.delete("v1", "configmaps", "from-sync", namespace="default")


async def test_our_async_client_watches_over_tls(server: support.ApiServerProcess) -> None:
    async with aio.AsyncClient(server.connection.client_config()) as client:
        created = await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                           "metadata": {"name": "from-async"}}, namespace="default")
        await client.delete("v1", "configmaps", "from-async", namespace="default")
        async with contextlib.aclosing(client.watch("v1", "configmaps", namespace="default",
                                                    resource_version=created["metadata"]["resourceVersion"])) as events:
            async for event in events:  # replayed from the watch cache after the create's revision
                assert event["type"] == "DELETED" and event["object"]["metadata"]["name"] == "from-async"
                break
    anonymous = support.Connection(server.url, server.pki).client_config()
    anonymous.cert = None
    async with aio.AsyncClient(anonymous) as client:
        with pytest.raises(errors.Unauthorized):
            await client.get("v1", "namespaces", "default")
