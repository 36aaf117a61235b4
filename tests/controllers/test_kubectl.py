"""kubectl 1.32's scale and rollout commands against the API server and the controllers."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from reconcile.client import api
from tests import prerequisites, support
from tests.controllers import helpers

KUBECTL = prerequisites.find_kubectl()  # asked for its version; None if no kubectl 1.32 is here


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    """Every test here runs the real kubectl 1.32: skip without it, or fail under CI / make test."""
    prerequisites.require_kubectl()


def kubectl(env: dict[str, str], *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _pods(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", namespace=ns).get("items") or []


def test_kubectl_scale_rollout_status_undo_restart(controller_manager, client: api.Client, ns: str,
                                                   api_server: str, kube_env: dict[str, str]) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("kw", replicas=2), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        out = kubectl(kube_env, "rollout", "status", "deployment/kw", "-n", ns, "--timeout=60s").stdout
        assert 'deployment "kw" successfully rolled out' in out
        assert kubectl(kube_env, "scale", "deployment", "kw", "--replicas=3", "-n", ns).stdout.strip() == \
            "deployment.apps/kw scaled"
        support.wait_for(lambda: len(_pods(client, ns)) == 3, timeout=20, what="3 pods")
        kubectl(kube_env, "rollout", "status", "deployment/kw", "-n", ns, "--timeout=60s")
        kubectl(kube_env, "set", "image", "deployment/kw", "main=nginx:2", "-n", ns)
        kubectl(kube_env, "rollout", "status", "deployment/kw", "-n", ns, "--timeout=60s")
        support.wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in _pods(client, ns)} == {"nginx:2"},
                         timeout=30, what="nginx:2 everywhere")
        history = kubectl(kube_env, "rollout", "history", "deployment/kw", "-n", ns).stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        sets_before = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["metadata"]["name"]
                       for rs in client.list("apps/v1", "replicasets", namespace=ns)["items"]}
        assert "rolled back" in kubectl(kube_env, "rollout", "undo", "deployment/kw", "-n", ns).stdout
        kubectl(kube_env, "rollout", "status", "deployment/kw", "-n", ns, "--timeout=60s")
        support.wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in _pods(client, ns)} == {"nginx:1"},
                         timeout=30, what="nginx:1 again")
        d = client.get("apps/v1", "deployments", "kw", namespace=ns)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        # kubectl sent revision 1's template with `resources: {}` and `creationTimestamp: null`: the same revision,
        # so its ReplicaSet is reused (now revision 3), no third one is made
        sets_after = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["metadata"]["name"]
                      for rs in client.list("apps/v1", "replicasets", namespace=ns)["items"]}
        assert sets_after == {"3": sets_before["1"], "2": sets_before["2"]}
        history = kubectl(kube_env, "rollout", "history", "deployment/kw", "-n", ns).stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
        before = {p["metadata"]["name"] for p in _pods(client, ns)}
        assert "restarted" in kubectl(kube_env, "rollout", "restart", "deployment/kw", "-n", ns).stdout
        kubectl(kube_env, "rollout", "status", "deployment/kw", "-n", ns, "--timeout=60s")
        support.wait_for(lambda: not before & {p["metadata"]["name"] for p in _pods(client, ns)}
                         and len(_pods(client, ns)) == 3, timeout=30, what="all pods replaced")
    described = kubectl(kube_env, "describe", "deployment", "kw", "-n", ns).stdout
    assert "NewReplicaSet:" in described and "ScalingReplicaSet" in described


def test_kubectl_rollout_status_fails_past_deadline(controller_manager, client: api.Client, ns: str,
                                                    kube_env: dict[str, str]) -> None:
    client.create("apps/v1", "deployments",
                  helpers.deployment("late", replicas=1, progressDeadlineSeconds=1), namespace=ns)
    result = kubectl(kube_env, "rollout", "status", "deployment/late", "-n", ns, "--timeout=60s", check=False)
    assert result.returncode != 0
    assert 'deployment "late" exceeded its progress deadline' in result.stderr


def _statefulset(name: str, replicas: int, image: str = "nginx:1") -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": helpers.pod_template(labels, image=image)}}


def _images(client: api.Client, ns: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in _pods(client, ns)
            if not p["metadata"].get("deletionTimestamp")}


def test_kubectl_get_scale_rollout_status_history_undo_statefulset(controller_manager, client: api.Client, ns: str,
                                                                   api_server: str, kube_env: dict[str, str]) -> None:
    client.create("apps/v1", "statefulsets", _statefulset("web", 2), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        out = kubectl(kube_env, "rollout", "status", "sts/web", "-n", ns, "--timeout=60s").stdout
        assert "partitioned roll out complete: 2 new pods have been updated..." in out
        table = kubectl(kube_env, "get", "sts", "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["web", "2/2"]
        assert kubectl(kube_env, "scale", "sts", "web", "--replicas=3", "-n", ns).stdout.strip() == \
            "statefulset.apps/web scaled"
        support.wait_for(lambda: set(_images(client, ns)) == {"web-0", "web-1", "web-2"}, timeout=30, what="web-2")
        kubectl(kube_env, "rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        kubectl(kube_env, "set", "image", "sts/web", "main=nginx:2", "-n", ns)
        kubectl(kube_env, "rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        support.wait_for(lambda: set(_images(client, ns).values()) == {"nginx:2"}
                         and len(_images(client, ns)) == 3, timeout=30, what="nginx:2 everywhere")
        history = kubectl(kube_env, "rollout", "history", "sts/web", "-n", ns).stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        revisions = kubectl(kube_env, "get", "controllerrevisions", "-n", ns).stdout.splitlines()
        assert revisions[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
        assert {line.split()[1] for line in revisions[1:]} == {"statefulset.apps/web"}
        first = {r["revision"]: r["metadata"]["name"] for r in client.list("apps/v1", "controllerrevisions",
                                                                           namespace=ns)["items"]}
        assert "rolled back" in kubectl(kube_env, "rollout", "undo", "sts/web", "-n", ns).stdout
        kubectl(kube_env, "rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        support.wait_for(lambda: set(_images(client, ns).values()) == {"nginx:1"}
                         and len(_images(client, ns)) == 3, timeout=30, what="nginx:1 again")
        # revision 1's ControllerRevision is reused as revision 3, no third one is made
        after = {r["revision"]: r["metadata"]["name"] for r in client.list("apps/v1", "controllerrevisions",
                                                                           namespace=ns)["items"]}
        assert after == {3: first[1], 2: first[2]}
        sts = client.get("apps/v1", "statefulsets", "web", namespace=ns)
        assert "$patch" not in sts["spec"]["template"]
        assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"] == first[1]
        pods = _pods(client, ns)
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {first[1]}
    described = kubectl(kube_env, "describe", "sts", "web", "-n", ns).stdout
    assert "Pods Status:" in described and "SuccessfulCreate" in described
