"""`reconcile up` makes a secured cluster: a PKI in the state dir, etcd on TLS with client-certificate
auth, the API server on HTTPS with the client CA, every component with its own certificate, and a
kubeconfig that kubectl and the official Python client use unchanged. A certificate renewed by the
next `up` restarts what held the old one."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import ssl
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from reconcile.cli import cluster as cli_cluster
from reconcile.cli import dnsservice, processes
from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.dns import wire
from reconcile.node import images
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster
from tests import prerequisites, support

NODE = "up-tls-test"  # a node name of its own: other clusters on the same Docker engine keep their containers


def reconcile(*args: str, env: dict[str, str], timeout: float = 180,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, input=input)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env.update(RECONCILE_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path), RECONCILE_NODE_NAME=NODE,
               KUBECACHEDIR=str(tmp_path / "kube-cache"))
    return env


@pytest.mark.timeout(300)  # three `up`s of six components each, on a loaded 2-core machine
def test_up_runs_a_secured_cluster(tmp_path: Path, up_env: dict[str, str]) -> None:
    state_dir = tmp_path / "state"
    port = support.free_port()
    try:
        result = reconcile("up", "--api-port", str(port), "--advertise-address", "192.0.2.44", env=up_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "pki          issued" in result.stdout
        state = json.loads((state_dir / "state.json").read_text())
        components = state["components"]
        url = f"https://127.0.0.1:{port}"
        assert state["server"] == url and components["apiserver"]["url"] == url
        pki = pki_cluster.ClusterPki(state_dir / "pki")
        assert state["ca_hash"] == pki.ca_hash() and f"({pki.ca_hash()})" in result.stdout
        _check_files(state_dir, pki)
        _check_etcd(components["etcd"], pki)
        _check_apiserver(components["apiserver"], pki, url)
        _check_identities(components, state_dir)
        _check_service_accounts(components, pki, url)
        _check_clients(state_dir / "kubeconfig", up_env, pki)
        _check_workload(state_dir / "kubeconfig")
        _check_node_agent(components, pki, state_dir / "kubeconfig")
        _check_secured_default(components["apiserver"], state_dir / "kubeconfig", up_env, url)

        status = reconcile("status", env=up_env)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
        assert all(rows[name][2:4] == ["true", "true"] for name in components), status.stdout

        again = reconcile("up", env=up_env)
        assert again.returncode == 0, again.stderr
        assert "pki          reused" in again.stdout
        assert again.stdout.count("already running") == len(components)

        # a certificate near its end: the next `up` renews it and restarts what runs
        issued = certs.issue(pki.ca.read(), common_name="system:kube-scheduler", client=True, days=10,
                             start=certs.now() - datetime.timedelta(days=9))
        pki.scheduler.cert.write_bytes(issued.cert)
        pki.scheduler.key.write_bytes(issued.key)
        renewed = reconcile("up", env=up_env)
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        assert "pki          issued 1 certificates" in renewed.stdout
        assert "already running" not in renewed.stdout
        after = json.loads((state_dir / "state.json").read_text())["components"]
        assert after["scheduler"]["pid"] != components["scheduler"]["pid"]
        assert certs.info(pki.scheduler.cert.read_bytes()).not_after > certs.now() + datetime.timedelta(days=300)
        listed = reconcile("get", "ns", env=up_env)
        assert listed.returncode == 0 and "default" in listed.stdout.split(), listed.stderr
    finally:
        down = reconcile("down", "--remove-containers", env=up_env)
    assert down.returncode == 0, down.stderr


def _check_files(state_dir: Path, pki: pki_cluster.ClusterPki) -> None:
    keys = sorted(pki.root.rglob("*.key"))
    assert {k.relative_to(pki.root).as_posix() for k in keys} >= {
        "ca.key", "etcd/ca.key", "apiserver.key", "admin.key", "controller-manager.key", "scheduler.key",
        "apiserver-etcd-client.key", "etcd/server.key", "etcd/peer.key", f"nodes/{NODE}.key"}
    assert all(_mode(k) == 0o600 for k in keys)
    for directory in (pki.root, pki.root / "etcd", pki.root / "nodes", state_dir / "kubeconfigs"):
        assert _mode(directory) == 0o700, directory
    assert _mode(state_dir / "kubeconfig") == 0o600
    assert all(_mode(k) == 0o600 for k in (state_dir / "kubeconfigs").iterdir())
    serving = certs.info(pki.apiserver.cert.read_bytes())
    assert {"127.0.0.1", "::1", "192.0.2.44"} <= set(serving.ip_addresses) and "localhost" in serving.dns_names


def _check_service_accounts(components: dict, pki: pki_cluster.ClusterPki, url: str) -> None:
    """The API server signs tokens with sa.key; the controller-manager gives `default` its
    ServiceAccount and kube-root-ca.crt; a token of that account authenticates."""
    argv = _argv(components["apiserver"]["pid"])
    assert _flag(argv, "--service-account-signing-key-file") == str(pki.sa_key)
    assert _flag(argv, "--service-account-key-file") == str(pki.sa_pub)
    assert _flag(_argv(components["controller-manager"]["pid"]), "--root-ca-file") == str(pki.ca.cert)
    connection = support.Connection(url, pki)
    with connection.http_client() as admin:
        def published() -> dict | None:
            found = admin.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            return found.json() if found.status_code == 200 else None

        assert support.wait_for(published, timeout=30, what="kube-root-ca.crt")["data"]["ca.crt"] == \
            pki.ca.cert.read_text()
        support.wait_for(lambda: admin.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
                         timeout=30, what="the default ServiceAccount")
        minted = admin.post("/api/v1/namespaces/default/serviceaccounts/default/token", json={"spec": {}})
        assert minted.status_code == 201, minted.text
        token = minted.json()["status"]["token"]
    with connection.http_client(anonymous=True) as anonymous:
        review = anonymous.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                headers={"Authorization": f"Bearer {token}"}, json={})
        assert review.json()["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"


def _check_etcd(entry: dict, pki: pki_cluster.ClusterPki) -> None:
    endpoint = entry["endpoint"]
    assert endpoint.startswith("https://127.0.0.1:")
    argv = _argv(entry["pid"])
    assert "--client-cert-auth" in argv and "--peer-client-cert-auth" in argv
    assert _flag(argv, "--trusted-ca-file") == str(pki.etcd_ca.cert)
    plain = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(pki.etcd_ca.cert), "-X", "POST",
                            "-d", '{"key":"AA=="}', endpoint + "/v3/kv/range"], capture_output=True, text=True)
    assert plain.returncode == 35 and not plain.stdout, plain.stdout + plain.stderr  # no certificate: no handshake
    admin = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(pki.etcd_ca.cert), "--cert",
                            str(pki.admin.cert), "--key", str(pki.admin.key), "-X", "POST", "-d", '{"key":"AA=="}',
                            endpoint + "/v3/kv/range"], capture_output=True, text=True)
    assert admin.returncode == 35 and not admin.stdout  # the cluster admin is no etcd client


def _check_apiserver(entry: dict, pki: pki_cluster.ClusterPki, url: str) -> None:
    argv = _argv(entry["pid"])
    assert _flag(argv, "--client-ca-file") == str(pki.ca.cert)
    assert _flag(argv, "--etcd-cert") == str(pki.apiserver_etcd_client.cert)
    assert _flag(argv, "--authorization-mode") == "Node,RBAC"  # node agents by the Node authorizer, the rest RBAC
    anonymous = support.Connection(url, pki)
    with anonymous.http_client(anonymous=True) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/v1/namespaces").status_code == 401
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https:", "http:") + "/readyz", timeout=5).raise_for_status()


def _check_node_agent(components: dict, pki: pki_cluster.ClusterPki, kubeconfig: Path) -> None:
    """The agent serves HTTPS with a cluster-CA certificate and lets in only cluster-CA clients; the
    API server holds the kubelet-client certificate; cluster-info and CSR signing are there for joins."""
    entry = components["node"]
    assert entry["url"].startswith("https://127.0.0.1:")
    argv = _argv(entry["pid"])
    assert _flag(argv, "--client-ca-file") == str(pki.ca.cert)
    api_argv = _argv(components["apiserver"]["pid"])
    assert _flag(api_argv, "--kubelet-client-certificate") == str(pki.apiserver_kubelet_client.cert)
    assert "--enable-bootstrap-token-auth" in api_argv
    assert _flag(_argv(components["controller-manager"]["pid"]), "--cluster-signing-cert-file") == str(pki.ca.cert)
    anonymous = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(pki.ca.cert), entry["url"] + "/healthz"],
                               capture_output=True, text=True)
    assert anonymous.returncode != 0 and "ok" not in anonymous.stdout  # no client certificate: no handshake
    kubelet_client = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(pki.ca.cert), "--cert",
                                     str(pki.apiserver_kubelet_client.cert), "--key", str(pki.apiserver_kubelet_client.key),
                                     entry["url"] + "/healthz"], capture_output=True, text=True)
    assert kubelet_client.returncode == 0 and kubelet_client.stdout == "ok", kubelet_client.stderr
    info = subprocess.run([prerequisites.require_kubectl(), "--kubeconfig", str(kubeconfig), "get", "configmap",
                           "-n", "kube-public", "cluster-info", "-o", "jsonpath={.data.kubeconfig}"],
                          capture_output=True, text=True, timeout=60)
    cluster = yaml.safe_load(info.stdout)["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca.cert.read_bytes()
    # cluster DNS listens on the node's pod bridge gateway; pods are told the kube-dns Service's IP
    # when a service proxy runs to translate it, else the gateway itself
    dns_entry = components["dns"]
    expected_nameserver = dnsservice.cluster_ip(cli_cluster.SERVICE_CIDR) if "proxy" in components \
        else dns_entry["address"]
    assert _flag(argv, "--cluster-dns") == expected_nameserver
    assert _flag(_argv(dns_entry["pid"]), "--listen") == f"{dns_entry['address']}:53"
    assert wire.ready(dns_entry["address"], 53)


def _check_identities(components: dict, state_dir: Path) -> None:
    """Each component runs on a kubeconfig of its own identity (and no --server)."""
    expected = {"controller-manager": "system:kube-controller-manager", "scheduler": "system:kube-scheduler",
                "node": f"system:node:{NODE}", "dns": "system:serviceaccount:kube-system:coredns"}
    if "proxy" in components:  # started when `up` runs as root with nft
        expected["proxy"] = "system:kube-proxy"
    for name, user in expected.items():
        argv = _argv(components[name]["pid"])
        assert "--server" not in argv, argv
        kubeconfig = yaml.safe_load(Path(_flag(argv, "--kubeconfig")).read_text())
        assert Path(_flag(argv, "--kubeconfig")).parent == state_dir / "kubeconfigs"
        entry = kubeconfig["users"][0]["user"]
        assert certs.info(Path(entry["client-certificate"]).read_bytes()).identity.user == user
        assert processes.alive(components[name]["pid"])


def _check_workload(kubeconfig: Path) -> None:
    """Every component under Node,RBAC with its own identity: the controllers make a Deployment's pod,
    the scheduler binds it, the node agent reads its Secret and ConfigMap and runs it."""
    client = client_api.Client(client_config.load_config(kubeconfig=str(kubeconfig)))
    ns = f"up-{uuid.uuid4().hex[:6]}"
    try:
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                        "data": {"k": "dg=="}}, namespace=ns)
        client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                           "data": {"K": "v"}}, namespace=ns)
        labels = {"app": "pause"}
        container = {"name": "pause", "image": images.PAUSE_IMAGE, "envFrom": [{"configMapRef": {"name": "c"}}],
                     "volumeMounts": [{"name": "s", "mountPath": "/etc/s"}]}
        client.create("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pause"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}}}},
            namespace=ns)

        def running() -> bool:
            pods = client.list("v1", "pods", namespace=ns)["items"]
            return any((p.get("status") or {}).get("phase") == "Running" and p["spec"].get("nodeName") == NODE
                       for p in pods)

        support.wait_for(running, timeout=120, what="the Deployment's pod Running on the node")
    finally:
        with contextlib.suppress(Exception):
            client.delete("v1", "namespaces", ns)
        client.close()


def _check_clients(kubeconfig: Path, env: dict[str, str], pki: pki_cluster.ClusterPki) -> None:
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca.cert.read_bytes()
    admin = certs.info(base64.b64decode(user["client-certificate-data"]))
    assert admin.identity == certs.Identity("kubernetes-admin", ("system:masters",))
    assert certs.key_matches(base64.b64decode(user["client-certificate-data"]),
                             base64.b64decode(user["client-key-data"]))

    kubectl = prerequisites.require_kubectl()
    listed = subprocess.run([kubectl, "get", "ns"], env={**env, "KUBECONFIG": str(kubeconfig)},
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout.split()
    nodes = subprocess.run([kubectl, "get", "nodes", "-o", "name"], env={**env, "KUBECONFIG": str(kubeconfig)},
                           capture_output=True, text=True, timeout=60)
    assert f"node/{NODE}" in nodes.stdout.split(), nodes.stdout + nodes.stderr  # the agent got in with its cert

    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    with k8s.ApiClient(configuration) as api:
        coordination = k8s.CoordinationV1Api(api)

        def leases() -> set[str]:
            return {lease.metadata.name for lease in coordination.list_namespaced_lease("kube-system").items}

        # the controller-manager and the scheduler wrote their leader leases: they are in, as themselves
        support.wait_for(lambda: {"reconcile-controller-manager", "reconcile-scheduler"} <= leases(), timeout=60,
                         what="the components' leader leases")
        assert "default" in [n.metadata.name for n in k8s.CoreV1Api(api).list_namespace().items]


PRIVILEGED_POD = """apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  containers:
  - {name: c, image: reconcile-pause:1.0, securityContext: {privileged: true}}
"""

WORKLOAD = """apiVersion: apps/v1
kind: Deployment
metadata: {name: secured}
spec:
  replicas: 1
  selector: {matchLabels: {app: secured}}
  template:
    metadata: {labels: {app: secured}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: reconcile-hello:1.0, command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}
"""


def _check_secured_default(entry: dict, kubeconfig: Path, env: dict[str, str], url: str) -> None:
    """RBAC with anonymous requests (public paths only), Pod Security baseline in `default`, and every
    component working with just the default policy's roles for its identity."""
    argv = _argv(entry["pid"])
    assert _flag(argv, "--authorization-mode") == "Node,RBAC" and "--initial-namespaces-pod-security" in argv
    ca = str(Path(entry["ca"]))
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca), timeout=15) as anonymous:
        for path in ("/healthz", "/readyz", "/livez", "/version"):
            assert anonymous.get(path).status_code == 200, path  # system:public-info-viewer
        refused = anonymous.get("/api/v1/namespaces")
        assert refused.status_code == 401 and refused.json()["reason"] == "Unauthorized"
        assert "namespaces" not in refused.text  # a 401 says nothing of what exists
        bogus = anonymous.get("/api/v1/namespaces", headers={"Authorization": "Bearer not-a-token"})
        assert bogus.status_code == 401
    kubectl = prerequisites.require_kubectl()
    kenv = {**env, "KUBECONFIG": str(kubeconfig)}
    labels = subprocess.run([kubectl, "get", "ns", "default", "-o", "jsonpath={.metadata.labels}"], env=kenv,
                            capture_output=True, text=True, timeout=60)
    assert json.loads(labels.stdout)["pod-security.kubernetes.io/enforce"] == "baseline", labels.stderr
    privileged = subprocess.run([kubectl, "apply", "-f", "-"], input=PRIVILEGED_POD, env=kenv, capture_output=True,
                                text=True, timeout=60)
    assert privileged.returncode == 1
    assert ('pods "privileged" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" '
            'must not set securityContext.privileged=true)') in privileged.stderr, privileged.stderr
    # a Deployment runs: the controller-manager (deployment, replicaset), the scheduler and the node
    # agent each did their part as themselves, under the default policy
    applied = reconcile("apply", "-f", "-", env=env, input=WORKLOAD)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def running() -> bool:
        pods = subprocess.run([kubectl, "get", "pods", "-l", "app=secured", "-o", "json"], env=kenv,
                              capture_output=True, text=True, timeout=60)
        items = json.loads(pods.stdout)["items"]
        return bool(items) and items[0]["spec"].get("nodeName") == NODE and \
            items[0].get("status", {}).get("phase") == "Running"

    support.wait_for(running, timeout=90, interval=0.5, what="the Deployment's pod Running on the node")
    deleted = reconcile("delete", "deployment", "secured", env=env)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
