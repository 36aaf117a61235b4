"""Deployment controller: rolling updates within surge/unavailability, undo, pause, deadlines, Recreate."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from reconcile.client import api
from reconcile.core import meta
from tests import support
from tests.controllers import helpers

REVISION = "deployment.kubernetes.io/revision"


def _get(client: api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("apps/v1", "deployments", name, namespace=ns)


def rolled_out(client: api.Client, ns: str, name: str) -> bool:
    """kubectl's rollout-status rule, plus: no old pods remain."""
    d = _get(client, ns, name)
    st = d.get("status") or {}
    want = d["spec"]["replicas"]
    return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("updatedReplicas") == want
            and st.get("replicas") == want and st.get("availableReplicas") == want)


def _sets(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("apps/v1", "replicasets", namespace=ns).get("items") or []


def _pods(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", namespace=ns).get("items") or []


def _images(client: api.Client, ns: str) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in _pods(client, ns)}


def _condition(d: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def test_rolling_update_keeps_availability_and_surge(controller_manager, client: api.Client, ns: str,
                                                     api_server: str) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("web", replicas=10, surge=1, unavailable=1),
                  namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        support.wait_for(lambda: rolled_out(client, ns, "web"), timeout=40, what="first rollout")
    low = {"ready": 10, "pods": 10}
    violations: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if helpers.is_ready(p))
        low["ready"] = min(low["ready"], ready)
        low["pods"] = max(low["pods"], len(pods))
        if ready < 9 or len(pods) > 11:
            violations.append(f"{len(pods)} pods, {ready} ready")

    with helpers.PodWatcher(api_server, ns, ready_stand_in=True, check=check) as watcher:
        client.patch("apps/v1", "deployments", "web",
                     {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}},
                     namespace=ns, patch_type="strategic")
        support.wait_for(lambda: rolled_out(client, ns, "web") and _images(client, ns) == {"nginx:2"},
                         timeout=90, what="second rollout")
        assert watcher.events > 20
    assert not violations, violations[:5]
    assert low["pods"] == 11  # the surge was used
    d = _get(client, ns, "web")
    assert d["metadata"]["annotations"][REVISION] == "2"
    assert _condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert _condition(d, "Available") == {**_condition(d, "Available"), "status": "True",
                                          "reason": "MinimumReplicasAvailable"}
    sets = _sets(client, ns)
    assert len(sets) == 2
    new = next(rs for rs in sets if rs["spec"]["replicas"] == 10)
    hash_ = new["metadata"]["labels"]["pod-template-hash"]
    assert new["metadata"]["name"] == f"web-{hash_}"
    assert new["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_}
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == hash_ for p in _pods(client, ns))

    # undo: the old ReplicaSet is reused and becomes revision 3
    old = next(rs for rs in sets if rs["spec"]["replicas"] == 0)
    result = support_cli("rollout", "undo", "deployment/web", "-n", ns, server=api_server)
    assert result.returncode == 0, result.stderr
    assert "rolled back" in result.stdout
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        support.wait_for(lambda: rolled_out(client, ns, "web") and _images(client, ns) == {"nginx:1"},
                         timeout=60, what="undo rollout")
    reused = client.get("apps/v1", "replicasets", old["metadata"]["name"], namespace=ns)
    assert reused["metadata"]["uid"] == old["metadata"]["uid"]
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["spec"]["replicas"] == 10
    assert _get(client, ns, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    history = support_cli("rollout", "history", "deployment/web", "-n", ns, server=api_server)
    assert history.returncode == 0, history.stderr
    assert [line.split()[0] for line in history.stdout.splitlines()[2:]] == ["2", "3"]


def support_cli(*args: str, server: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = support.connection(server).env()
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_paused_deployment_does_not_roll(controller_manager, client: api.Client, ns: str, api_server: str) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("p", replicas=2), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        support.wait_for(lambda: rolled_out(client, ns, "p"), timeout=30, what="first rollout")
        assert support_cli("rollout", "pause", "deploy/p", "-n", ns, server=api_server).returncode == 0
        d = client.patch("apps/v1", "deployments", "p",
                         {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:9"}]}}}},
                         namespace=ns, patch_type="strategic")
        generation = d["metadata"]["generation"]
        support.wait_for(lambda: (_get(client, ns, "p").get("status") or {}).get("observedGeneration") == generation,
                         timeout=20, what="paused generation observed")
        d = _get(client, ns, "p")
        assert _condition(d, "Progressing")["reason"] == "DeploymentPaused"
        assert len(_sets(client, ns)) == 1 and _images(client, ns) == {"nginx:1"}
        # scaling still works while paused
        client.patch("apps/v1", "deployments", "p", {"spec": {"replicas": 3}}, namespace=ns, subresource="scale")
        support.wait_for(lambda: len(_pods(client, ns)) == 3, timeout=20, what="scaled while paused")
        assert _images(client, ns) == {"nginx:1"}
        assert support_cli("rollout", "resume", "deploy/p", "-n", ns, server=api_server).returncode == 0
        support.wait_for(lambda: rolled_out(client, ns, "p") and _images(client, ns) == {"nginx:9"},
                         timeout=40, what="rollout after resume")


def test_progress_deadline_exceeded(controller_manager, client: api.Client, ns: str, api_server: str) -> None:
    client.create("apps/v1", "deployments",
                  helpers.deployment("stuck", replicas=2, progressDeadlineSeconds=2), namespace=ns)
    # nobody marks these pods ready
    support.wait_for(lambda: _condition(_get(client, ns, "stuck"), "Progressing").get("reason")
                     == "ProgressDeadlineExceeded", timeout=30, what="deadline exceeded")
    cond = _condition(_get(client, ns, "stuck"), "Progressing")
    assert cond["status"] == "False"
    assert "has timed out progressing" in cond["message"]
    assert _condition(_get(client, ns, "stuck"), "Available")["status"] == "False"
    result = support_cli("rollout", "status", "deployment/stuck", "-n", ns, server=api_server)
    assert result.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in result.stderr


def test_recreate_replaces_all_pods_at_once(controller_manager, client: api.Client, ns: str,
                                            api_server: str) -> None:
    client.create("apps/v1", "deployments",
                  helpers.deployment("re", replicas=3, strategy={"type": "Recreate"}), namespace=ns)
    mixed: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        images = {p["spec"]["containers"][0]["image"] for p in pods.values()}
        if len(images) > 1:
            mixed.append(",".join(sorted(images)))

    with helpers.PodWatcher(api_server, ns, ready_stand_in=True, check=check):
        support.wait_for(lambda: rolled_out(client, ns, "re"), timeout=30, what="first rollout")
        client.patch("apps/v1", "deployments", "re",
                     {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}},
                     namespace=ns, patch_type="strategic")
        support.wait_for(lambda: rolled_out(client, ns, "re") and _images(client, ns) == {"nginx:2"},
                         timeout=40, what="recreate rollout")
    assert not mixed


def test_rollout_status_cli_and_restart(controller_manager, client: api.Client, ns: str, api_server: str) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("rs", replicas=2), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        result = support_cli("rollout", "status", "deployment/rs", "-n", ns, server=api_server)
        assert result.returncode == 0, result.stderr
        assert 'deployment "rs" successfully rolled out' in result.stdout
        before = {p["metadata"]["name"] for p in _pods(client, ns)}
        restart = support_cli("rollout", "restart", "deployment/rs", "-n", ns, server=api_server)
        assert restart.returncode == 0 and "restarted" in restart.stdout
        result = support_cli("rollout", "status", "deployment/rs", "-n", ns, server=api_server)
        assert result.returncode == 0, result.stderr
        support.wait_for(lambda: rolled_out(client, ns, "rs"), timeout=30, what="restart rollout")
        after = {p["metadata"]["name"] for p in _pods(client, ns)}
    assert not before & after
    d = _get(client, ns, "rs")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    scaled = support_cli("scale", "deployment", "rs", "--replicas", "4", "-n", ns, server=api_server)
    assert scaled.returncode == 0 and "deployment.apps/rs scaled" in scaled.stdout
    support.wait_for(lambda: len(_pods(client, ns)) == 4, timeout=20, what="4 pods")
    events = support_cli("events", "-n", ns, server=api_server)
    assert "ScalingReplicaSet" in events.stdout and "SuccessfulCreate" in events.stdout
    assert meta.controller_owner(_pods(client, ns)[0])["kind"] == "ReplicaSet"


def test_revision_history_limit_prunes_old_replicasets(controller_manager, client: api.Client, ns: str,
                                                      api_server: str) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("h", replicas=1, revisionHistoryLimit=1),
                  namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        for version in range(2, 5):
            support.wait_for(lambda: rolled_out(client, ns, "h"), timeout=30, what="rolled out")
            client.patch("apps/v1", "deployments", "h",
                         {"spec": {"template": {"spec": {"containers": [{"name": "main",
                                                                          "image": f"nginx:{version}"}]}}}},
                         namespace=ns, patch_type="strategic")
        support.wait_for(lambda: rolled_out(client, ns, "h") and _images(client, ns) == {"nginx:4"}
                         and len(_sets(client, ns)) == 2, timeout=30, what="history pruned to 1 old set")
    revisions = sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in _sets(client, ns))
    assert revisions == [3, 4]


def test_undo_with_a_typed_client_template_reuses_the_revisions_replicaset(controller_manager, client: api.Client,
                                                                           ns: str, api_server: str) -> None:
    """`kubectl rollout undo` sends the old ReplicaSet's template through Go's types: `creationTimestamp:
    null`, `resources: {}`. That is the same revision: its ReplicaSet comes back, with the top revision."""
    client.create("apps/v1", "deployments", helpers.deployment("undo", replicas=2), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True):
        support.wait_for(lambda: rolled_out(client, ns, "undo"), timeout=30, what="revision 1 rolled out")
        (first,) = _sets(client, ns)
        client.patch("apps/v1", "deployments", "undo",
                     {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}},
                     namespace=ns, patch_type="strategic")
        support.wait_for(lambda: rolled_out(client, ns, "undo") and _images(client, ns) == {"nginx:2"},
                         timeout=30, what="revision 2 rolled out")
        # what kubectl's DeploymentRollbacker patches: the revision's template, hash label dropped, as Go encodes it
        template = client.get("apps/v1", "replicasets", first["metadata"]["name"], namespace=ns)["spec"]["template"]
        template["metadata"]["labels"].pop("pod-template-hash")
        template["metadata"]["creationTimestamp"] = None
        for container in template["spec"]["containers"]:
            container["resources"] = {}
        annotations = {k: v for k, v in _get(client, ns, "undo")["metadata"]["annotations"].items()
                       if k != "kubectl.kubernetes.io/last-applied-configuration"}
        client.patch("apps/v1", "deployments", "undo", [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations}], namespace=ns, patch_type="json")
        support.wait_for(lambda: rolled_out(client, ns, "undo") and _images(client, ns) == {"nginx:1"},
                         timeout=30, what="rolled back")
    sets = {rs["metadata"]["name"]: rs for rs in _sets(client, ns)}
    assert len(sets) == 2, sorted(sets)  # no third ReplicaSet for a template that only differs by defaults
    reused = sets[first["metadata"]["name"]]
    assert reused["spec"]["replicas"] == 2
    assert reused["metadata"]["annotations"][REVISION] == "3"  # moved to the top
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert _get(client, ns, "undo")["metadata"]["annotations"][REVISION] == "3"
    assert {meta.controller_owner(p)["name"] for p in _pods(client, ns)} == {first["metadata"]["name"]}
