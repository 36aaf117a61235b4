"""Real kubectl 1.32 against the API server (plain http, no auth, fresh discovery cache per test)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests import prerequisites
from tests.api import helpers
from tests.api.helpers import deploy_path

KUBECTL = prerequisites.find_kubectl()  # asked for its version; None if no kubectl 1.32 is here


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    """Every test here runs the real kubectl 1.32: skip without it, or fail under CI / make test."""
    prerequisites.require_kubectl()


class Kubectl:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir

    def run(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                                timeout=timeout, cwd=self.workdir)
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def write(self, name: str, docs: list[dict]) -> str:
        path = self.workdir / name
        path.write_text(yaml.safe_dump_all(docs))
        return str(path)


@pytest.fixture
def kubectl(kube_env: dict[str, str], tmp_path: Path) -> Kubectl:
    return Kubectl(kube_env, tmp_path)


def test_get_tables(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    helpers.create(client, helpers.cm_path(ns), helpers.configmap("alpha", {"a": "1", "b": "2"}))
    helpers.create(client, helpers.pod_path(ns), helpers.pod("p1", node="node-1"))
    out = kubectl.run("get", "configmaps", "-n", ns).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"] and lines[1].split()[:2] == ["alpha", "2"]
    pods = kubectl.run("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
    assert pods[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert pods[1].split()[0] == "p1" and "node-1" in pods[1]
    single = kubectl.run("get", "cm", "alpha", "-n", ns).stdout
    assert "alpha" in single and len(single.splitlines()) == 2


def test_get_output_yaml_and_json(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, helpers.cm_path(ns), helpers.configmap("conf", {"k": "v"}))
    as_yaml = yaml.safe_load(kubectl.run("get", "cm", "conf", "-n", ns, "-o", "yaml").stdout)
    assert as_yaml["data"] == {"k": "v"} and as_yaml["metadata"]["uid"] == created["metadata"]["uid"]
    as_json = json.loads(kubectl.run("get", "cm", "-n", ns, "-o", "json").stdout)
    assert as_json["kind"] == "List" and [i["metadata"]["name"] for i in as_json["items"]] == ["conf"]
    assert kubectl.run("get", "cm", "-n", ns, "-o", "name").stdout.strip() == "configmap/conf"


def test_get_watch(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    assert KUBECTL is not None
    helpers.create(client, helpers.cm_path(ns), helpers.configmap("first"))
    process = subprocess.Popen([KUBECTL, "get", "configmaps", "-n", ns, "-w"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=kubectl.env)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []

    def wait_line(prefix: str) -> None:
        deadline = time.monotonic() + 20
        while not any(line.startswith(prefix) for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"kubectl get -w did not show {prefix}: {seen}"
            try:
                seen.append(lines.get(timeout=remaining))
            except queue.Empty:
                pass

    try:
        wait_line("first")  # the list is done and the watch is open
        assert seen[0].split() == ["NAME", "DATA", "AGE"]
        helpers.create(client, helpers.cm_path(ns), helpers.configmap("watched", {"a": "1"}))
        wait_line("watched")
        assert process.poll() is None  # still watching
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    row = next(line for line in seen if line.startswith("watched")).split()
    assert row[:2] == ["watched", "1"]


def test_apply_client_side(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    manifest = helpers.deployment("web", replicas=2)
    path = kubectl.write("deploy.yaml", [manifest])
    assert kubectl.run("apply", "-n", ns, "-f", path).stdout.strip() == "deployment.apps/web created"
    first = client.get(deploy_path(ns, "web")).json()
    last_applied = json.loads(first["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"]["replicas"] == 2
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    manifest["spec"]["replicas"] = 3
    kubectl.write("deploy.yaml", [manifest])
    assert kubectl.run("apply", "-n", ns, "-f", path).stdout.strip() == "deployment.apps/web configured"
    second = client.get(deploy_path(ns, "web")).json()
    containers = second["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["nginx:1.26", "busybox:1.36"] and second["spec"]["replicas"] == 3
    assert second["metadata"]["generation"] == 2
    annotation = json.loads(second["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert annotation["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert kubectl.run("apply", "-n", ns, "-f", path).stdout.strip() == "deployment.apps/web unchanged"
    assert client.get(deploy_path(ns, "web")).json()["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


def test_apply_a_saved_list_with_default_validation(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    """`kubectl get -o yaml` output is a `kind: List`; kubectl validates those through /openapi/v2, and a
    404 there made `apply -f` fail unless --validate=false."""
    helpers.create(client, helpers.cm_path(ns), helpers.configmap("saved", {"k": "v"}))
    saved = yaml.safe_load(kubectl.run("get", "cm", "saved", "-n", ns, "-o", "yaml").stdout)
    listed = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "namespace": ns}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "namespace": ns}, "data": {"b": "2"}}]}
    path = kubectl.write("list.yaml", [listed])
    out = kubectl.run("apply", "-f", path).stdout.split("\n")
    assert "configmap/one created" in out and "configmap/two created" in out
    assert client.get(helpers.cm_path(ns) + "/two").json()["data"] == {"b": "2"}
    assert saved["metadata"]["name"] == "saved"


def test_apply_custom_resource(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    group = f"{helpers.unique('kc')}.example.com"
    helpers.install_crd(client, helpers.widget_crd(group))
    path = kubectl.write("widget.yaml", [helpers.widget("w1", group, size=1)])
    assert kubectl.run("apply", "-n", ns, "-f", path).stdout.strip() == f"widget.{group}/w1 created"
    kubectl.write("widget.yaml", [helpers.widget("w1", group, size=4)])
    assert kubectl.run("apply", "-n", ns, "-f", path).stdout.strip() == f"widget.{group}/w1 configured"
    assert client.get(helpers.widget_path(group, ns, "w1")).json()["spec"]["size"] == 4
    table = kubectl.run("get", "widgets", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "AGE"] and table[1].split()[:2] == ["w1", "4"]


def test_apply_server_side(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    path = kubectl.write("cm.yaml", [helpers.configmap("ssa", {"a": "1"})])
    out = kubectl.run("apply", "--server-side", "-n", ns, "-f", path).stdout.strip()
    assert out == "configmap/ssa serverside-applied"
    kubectl.write("cm.yaml", [helpers.configmap("ssa", {"a": "2"})])
    kubectl.run("apply", "--server-side", "-n", ns, "-f", path)
    live = client.get(helpers.cm_path(ns, "ssa")).json()
    assert live["data"] == {"a": "2"}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (live["metadata"].get("annotations") or {})


def test_create_describe_delete(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    path = kubectl.write("both.yaml", [helpers.configmap("made", {"greeting": "hello"}), helpers.deployment("web")])
    out = kubectl.run("create", "-n", ns, "-f", path).stdout.splitlines()
    assert out == ["configmap/made created", "deployment.apps/web created"]
    again = kubectl.run("create", "-n", ns, "-f", path, check=False)
    assert again.returncode == 1 and "Error from server (AlreadyExists)" in again.stderr
    assert 'configmaps "made" already exists' in again.stderr
    web = client.get(deploy_path(ns, "web")).json()
    helpers.create(client, f"/api/v1/namespaces/{ns}/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"}, "reason": "ScalingReplicaSet",
        "type": "Normal", "message": "Scaled up replica set web-abc to 1", "source": {"component": "test"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": ns,
                           "uid": web["metadata"]["uid"]},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    })
    described = kubectl.run("describe", "deployment", "web", "-n", ns).stdout
    assert "Scaled up replica set web-abc to 1" in described  # events found through involvedObject field selectors
    assert re.search(r"^Name:\s+web$", described, re.M) and re.search(rf"^Namespace:\s+{ns}$", described, re.M)
    assert re.search(r"^Replicas:\s+1 desired", described, re.M), described
    assert "nginx:1.25" in described
    assert "hello" in kubectl.run("describe", "cm", "made", "-n", ns).stdout
    deleted = kubectl.run("delete", "deployment", "web", "-n", ns).stdout.strip()
    assert deleted == 'deployment.apps "web" deleted'
    assert client.get(deploy_path(ns, "web")).status_code == 404
    missing = kubectl.run("get", "deployment", "web", "-n", ns, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "web" not found'


def test_get_all(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    helpers.create(client, helpers.pod_path(ns), helpers.pod("lonely"))
    helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    out = kubectl.run("get", "all", "-n", ns).stdout
    assert "pod/lonely" in out and "deployment.apps/web" in out


def test_strict_validation_error(kubectl: Kubectl, client: httpx.Client, ns: str) -> None:
    manifest = helpers.deployment("strict")
    manifest["spec"]["bogus"] = 1
    path = kubectl.write("bad.yaml", [manifest])
    result = kubectl.run("apply", "-n", ns, "-f", path, check=False)
    assert result.returncode == 1
    assert ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
            'unknown field "spec.bogus"') in result.stderr, result.stderr
    assert client.get(deploy_path(ns, "strict")).status_code == 404
    invalid = helpers.deployment("neg", replicas=-1)
    result = kubectl.run("apply", "-n", ns, "-f", kubectl.write("neg.yaml", [invalid]), check=False)
    assert result.returncode == 1 and 'The Deployment "neg" is invalid' in result.stderr
    assert "spec.replicas" in result.stderr
