"""StatefulSet controller against a real API server and controller-manager (no node agents).

The tests stand in for the kubelet by patching pods' status to Running+Ready (named so in
helpers.mark_pods_ready_stand_in), then check what the controller does next: ordered creation,
scale-down from the top, rolling updates within the partition, claims per ordinal kept or
garbage-collected per the retention policy, and hostile specs refused with 422.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconcile.cli import workloads_cmd
from reconcile.client import api
from reconcile.controllers import statefulsetplan as plan
from reconcile.core import errors, meta
from tests import support
from tests.conftest import run_cli
from tests.controllers import helpers

REVISION = "controller-revision-hash"


def _sts(name: str, replicas: int, *, image: str = "nginx:1", claims: bool = True, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": f"{name}-svc", "selector": {"matchLabels": labels},
                 "template": helpers.pod_template(labels, image=image), **spec},
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return body


def _pods(client: api.Client, ns: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in client.list("v1", "pods", namespace=ns).get("items") or []}


def _live(client: api.Client, ns: str) -> dict[str, dict[str, Any]]:
    return {n: p for n, p in _pods(client, ns).items() if not p["metadata"].get("deletionTimestamp")}


def _claims(client: api.Client, ns: str) -> set[str]:
    return {c["metadata"]["name"] for c in client.list("v1", "persistentvolumeclaims", namespace=ns).get("items") or []
            if not c["metadata"].get("deletionTimestamp")}


def _ready(client: api.Client, ns: str, *names: str) -> None:
    pods = _pods(client, ns)
    helpers.mark_pods_ready_stand_in(client, ns, [pods[n] for n in names])


def _status(client: api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("apps/v1", "statefulsets", name, namespace=ns).get("status") or {}


def _bring_up(client: api.Client, ns: str, name: str, replicas: int) -> None:
    """Mark each ordinal Ready as it appears, in order, until all are."""
    for i in range(replicas):
        support.wait_for(lambda i=i: f"{name}-{i}" in _live(client, ns), timeout=20, what=f"{name}-{i} created")
        _ready(client, ns, f"{name}-{i}")
    support.wait_for(lambda: _status(client, ns, name).get("readyReplicas") == replicas, timeout=20,
                     what=f"{replicas} ready")


def test_ordered_ready_creates_one_at_a_time_with_identity_and_claims(controller_manager, client: api.Client,
                                                                      ns: str, api_server: str) -> None:
    violations: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        for name in pods:
            ordinal = int(name.rsplit("-", 1)[1])
            for lower in range(ordinal):
                below = pods.get(f"web-{lower}")
                if below is None or not helpers.is_ready(below):
                    violations.append(f"{name} exists while web-{lower} is not Ready")

    client.create("apps/v1", "statefulsets", _sts("web", 3), namespace=ns)
    with helpers.PodWatcher(api_server, ns, check=check):
        support.wait_for(lambda: "web-0" in _pods(client, ns), timeout=20, what="web-0")
        support.wait_for(lambda: _status(client, ns, "web").get("replicas") == 1, timeout=20, what="status")
        assert set(_pods(client, ns)) == {"web-0"}  # web-1 waits for web-0 to be Ready
        assert "data-web-0" in _claims(client, ns)
        _bring_up(client, ns, "web", 3)
    assert violations == []
    pods = _pods(client, ns)
    assert set(pods) == {"web-0", "web-1", "web-2"}
    pod = pods["web-1"]
    labels = pod["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-1" and labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels[REVISION].startswith("web-")
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "web-svc"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in pod["spec"]["volumes"]
    assert _claims(client, ns) == {"data-web-0", "data-web-1", "data-web-2"}
    status = _status(client, ns, "web")
    assert status["readyReplicas"] == 3 and status["currentRevision"] == status["updateRevision"] == labels[REVISION]
    revisions = client.list("apps/v1", "controllerrevisions", namespace=ns)["items"]
    assert [r["metadata"]["name"] for r in revisions] == [labels[REVISION]]
    assert revisions[0]["revision"] == 1
    assert revisions[0]["metadata"]["labels"]["controller.kubernetes.io/hash"] == labels[REVISION][len("web-"):]
    assert revisions[0]["data"]["spec"]["template"]["$patch"] == "replace"

    # a deleted pod comes back with the same name and claim
    old_uid = pods["web-1"]["metadata"]["uid"]
    client.delete("v1", "pods", "web-1", namespace=ns)
    support.wait_for(lambda: (_live(client, ns).get("web-1") or {}).get("metadata", {}).get("uid") not in (None, old_uid),
                     timeout=20, what="web-1 recreated")
    again = _pods(client, ns)["web-1"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in again["spec"]["volumes"]
    assert _claims(client, ns) == {"data-web-0", "data-web-1", "data-web-2"}


def test_finished_pods_are_replaced_under_the_same_name(controller_manager, client: api.Client, ns: str) -> None:
    """A pod that Succeeded (restartPolicy Never, exit 0) or Failed is deleted and made again."""
    body = _sts("job", 2, claims=False)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    client.create("apps/v1", "statefulsets", body, namespace=ns)
    _bring_up(client, ns, "job", 2)
    for name, phase in (("job-0", "Succeeded"), ("job-1", "Failed")):
        uid = _pods(client, ns)[name]["metadata"]["uid"]
        client.patch("v1", "pods", name, {"status": {"phase": phase}}, namespace=ns, subresource="status")

        def replaced(n: str = name, u: str = uid) -> dict[str, Any] | None:
            found = _live(client, ns).get(n)
            return found if found and found["metadata"]["uid"] != u else None

        again = support.wait_for(replaced, timeout=20, what=f"{name} replaced after {phase}")
        assert again["metadata"]["name"] == name and again["metadata"]["uid"] != uid
        assert (again.get("status") or {}).get("phase") != phase
        _ready(client, ns, name)
    assert set(_live(client, ns)) == {"job-0", "job-1"}


def test_ordered_ready_waits_min_ready_seconds(controller_manager, client: api.Client, ns: str) -> None:
    client.create("apps/v1", "statefulsets", _sts("slow", 2, claims=False, minReadySeconds=2), namespace=ns)
    support.wait_for(lambda: "slow-0" in _live(client, ns), timeout=20, what="slow-0")
    _ready(client, ns, "slow-0")
    ready_at = meta.parse_time(next(c["lastTransitionTime"] for c in _pods(client, ns)["slow-0"]["status"]["conditions"]
                                    if c["type"] == "Ready"))
    support.wait_for(lambda: "slow-1" in _live(client, ns), timeout=20, what="slow-1")
    created = meta.parse_time(_pods(client, ns)["slow-1"]["metadata"]["creationTimestamp"])
    assert (created - ready_at).total_seconds() >= 2  # the controller waits from the (truncated) Ready stamp
    support.wait_for(lambda: _status(client, ns, "slow").get("availableReplicas") == 1, timeout=10,
                     what="slow-0 counted available")


def test_scale_down_goes_from_the_highest_ordinal_and_keeps_claims(controller_manager, client: api.Client,
                                                                    ns: str, api_server: str) -> None:
    client.create("apps/v1", "statefulsets", _sts("db", 3), namespace=ns)
    _bring_up(client, ns, "db", 3)
    order: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        for name in ("db-2", "db-1"):
            if (name not in pods or pods[name]["metadata"].get("deletionTimestamp")) and name not in order:
                order.append(name)

    with helpers.PodWatcher(api_server, ns, check=check):
        done = run_cli("scale", "statefulset", "db", "--replicas", "1", "-n", ns, server=api_server)
        assert done.returncode == 0 and done.stdout.strip() == "statefulset.apps/db scaled", done.stderr
        support.wait_for(lambda: set(_pods(client, ns)) == {"db-0"}, timeout=30, what="scaled to 1")
    assert order == ["db-2", "db-1"]
    assert _claims(client, ns) == {"data-db-0", "data-db-1", "data-db-2"}  # whenScaled: Retain
    scale = client.get("apps/v1", "statefulsets", "db", namespace=ns, subresource="scale")
    assert scale["spec"]["replicas"] == 1
    support.wait_for(lambda: client.get("apps/v1", "statefulsets", "db", namespace=ns,
                                        subresource="scale")["status"]["replicas"] == 1, timeout=20, what="scale status")


def test_rolling_update_from_the_top_within_the_partition(controller_manager, client: api.Client, ns: str,
                                                           api_server: str) -> None:
    client.create("apps/v1", "statefulsets", _sts("ru", 3, claims=False), namespace=ns)
    _bring_up(client, ns, "ru", 3)
    old = _status(client, ns, "ru")["updateRevision"]
    client.patch("apps/v1", "statefulsets", "ru", {"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": helpers.pod_template({"app": "ru"}, image="nginx:2")}}, namespace=ns)

    def revisions() -> dict[str, str]:
        return {n: p["metadata"]["labels"][REVISION] for n, p in _live(client, ns).items()}

    support.wait_for(lambda: _status(client, ns, "ru").get("updateRevision") not in (None, old), timeout=20,
                     what="update revision")
    new = _status(client, ns, "ru")["updateRevision"]
    support.wait_for(lambda: revisions().get("ru-2") == new, timeout=20, what="ru-2 updated")
    assert revisions()["ru-1"] == old  # ru-1 waits for the new ru-2 to be Ready
    _ready(client, ns, "ru-2")
    support.wait_for(lambda: revisions().get("ru-1") == new, timeout=20, what="ru-1 updated")
    _ready(client, ns, "ru-1")
    support.wait_for(lambda: _status(client, ns, "ru").get("updatedReplicas") == 2
                     and _status(client, ns, "ru").get("readyReplicas") == 3, timeout=20, what="partitioned done")
    assert revisions() == {"ru-0": old, "ru-1": new, "ru-2": new}  # below the partition: untouched
    status = _status(client, ns, "ru")
    assert status["currentRevision"] == old and status["currentReplicas"] == 1
    # a pod below the partition deleted comes back at the current revision
    uid0 = _pods(client, ns)["ru-0"]["metadata"]["uid"]
    client.delete("v1", "pods", "ru-0", namespace=ns)
    support.wait_for(lambda: (_live(client, ns).get("ru-0") or {}).get("metadata", {}).get("uid") not in (None, uid0),
                     timeout=20, what="ru-0 recreated")
    assert revisions()["ru-0"] == old  # back at the current revision
    pod0 = _pods(client, ns)["ru-0"]
    assert pod0["spec"]["containers"][0]["image"] == "nginx:1"
    _ready(client, ns, "ru-0")
    # partition 0: the rest follows, and the update revision becomes current
    client.patch("apps/v1", "statefulsets", "ru", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
                 namespace=ns)
    support.wait_for(lambda: revisions().get("ru-0") == new, timeout=20, what="ru-0 updated")
    _ready(client, ns, "ru-0")
    support.wait_for(lambda: _status(client, ns, "ru").get("currentRevision") == new, timeout=20,
                     what="rollout complete")
    done = run_cli("rollout", "status", "sts/ru", "-n", ns, "--timeout", "20", server=api_server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "partitioned roll out complete: 3 new pods have been updated..."
    assert len(client.list("apps/v1", "controllerrevisions", namespace=ns)["items"]) == 2


def test_a_squatted_revision_name_is_a_collision_not_a_takeover(controller_manager, client: api.Client,
                                                                 ns: str) -> None:
    """Someone creates, ahead of the controller, the ControllerRevision the next template hashes to,
    holding another template: the controller counts a collision and names its own revision anew."""
    client.create("apps/v1", "statefulsets", _sts("sq", 1, claims=False), namespace=ns)
    _bring_up(client, ns, "sq", 1)
    stored = client.get("apps/v1", "statefulsets", "sq", namespace=ns)
    template = copy.deepcopy(stored["spec"]["template"])
    template["spec"]["containers"][0]["image"] = "nginx:2"
    squatted = plan.revision_name("sq", plan.revision_hash(plan.revision_data(template), 0))
    evil = copy.deepcopy(template)
    evil["spec"]["containers"][0]["image"] = "evil:1"
    client.create("apps/v1", "controllerrevisions", {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": squatted, "labels": {"app": "sq"}}, "data": plan.revision_data(evil), "revision": 99},
        namespace=ns)
    client.patch("apps/v1", "statefulsets", "sq", {"spec": {"template": template}}, namespace=ns)
    support.wait_for(lambda: _status(client, ns, "sq").get("collisionCount") == 1, timeout=20, what="a collision")
    status = _status(client, ns, "sq")
    assert status["updateRevision"] not in (squatted, stored["status"]["updateRevision"])
    support.wait_for(lambda: (_live(client, ns).get("sq-0") or {}).get("metadata", {}).get("labels", {}).get(
        REVISION) == status["updateRevision"], timeout=20, what="sq-0 at the controller's own revision")
    assert _live(client, ns)["sq-0"]["spec"]["containers"][0]["image"] == "nginx:2"
    rogue = client.get("apps/v1", "controllerrevisions", squatted, namespace=ns)
    assert not rogue["metadata"].get("ownerReferences")  # not adopted either


def test_revision_history_is_trimmed_to_the_limit(controller_manager, client: api.Client, ns: str) -> None:
    client.create("apps/v1", "statefulsets", _sts("hist", 0, claims=False, revisionHistoryLimit=1), namespace=ns)
    seen = [support.wait_for(lambda: _status(client, ns, "hist").get("updateRevision"), timeout=20, what="rev 1")]
    for tag in (2, 3, 4):
        client.patch("apps/v1", "statefulsets", "hist", {"spec": {"template": helpers.pod_template(
            {"app": "hist"}, image=f"nginx:{tag}")}}, namespace=ns)
        seen.append(support.wait_for(lambda: (r := _status(client, ns, "hist").get("updateRevision")) not in seen
                                     and r, timeout=20, what=f"the revision of nginx:{tag}"))

    def revisions() -> dict[int, str]:
        return {r["revision"]: r["metadata"]["name"]
                for r in client.list("apps/v1", "controllerrevisions", namespace=ns)["items"]}

    try:
        support.wait_for(lambda: sorted(revisions()) == [3, 4], timeout=20, what="history trimmed to 1 + the current")
    except AssertionError:
        raise AssertionError(f"{revisions()} {_status(client, ns, 'hist')}") from None
    assert _status(client, ns, "hist")["updateRevision"] == revisions()[4]


def test_retention_policy_deletes_scaled_down_claims_only(controller_manager, client: api.Client, ns: str) -> None:
    policy = {"whenScaled": "Delete", "whenDeleted": "Retain"}
    client.create("apps/v1", "statefulsets", _sts("pg", 3, persistentVolumeClaimRetentionPolicy=policy), namespace=ns)
    _bring_up(client, ns, "pg", 3)
    client.patch("apps/v1", "statefulsets", "pg", {"spec": {"replicas": 1}}, namespace=ns)
    support.wait_for(lambda: _claims(client, ns) == {"data-pg-0"}, timeout=40, what="claims of pg-1, pg-2 gone")
    assert set(_pods(client, ns)) == {"pg-0"}
    # whenDeleted Retain: deleting the set keeps pg-0's claim
    client.delete("apps/v1", "statefulsets", "pg", namespace=ns)
    support.wait_for(lambda: not _pods(client, ns), timeout=30, what="pods collected")
    assert _claims(client, ns) == {"data-pg-0"}


def test_when_deleted_delete_hands_claims_to_the_set(controller_manager, client: api.Client, ns: str) -> None:
    policy = {"whenDeleted": "Delete"}
    sts = client.create("apps/v1", "statefulsets", _sts("kv", 2, persistentVolumeClaimRetentionPolicy=policy),
                        namespace=ns)
    _bring_up(client, ns, "kv", 2)
    claim = client.get("v1", "persistentvolumeclaims", "data-kv-1", namespace=ns)
    assert [r["uid"] for r in claim["metadata"]["ownerReferences"]] == [sts["metadata"]["uid"]]
    client.patch("apps/v1", "statefulsets", "kv", {"spec": {"replicas": 1}}, namespace=ns)
    support.wait_for(lambda: set(_pods(client, ns)) == {"kv-0"}, timeout=30, what="scaled to 1")
    assert _claims(client, ns) == {"data-kv-0", "data-kv-1"}  # whenScaled Retain
    client.delete("apps/v1", "statefulsets", "kv", namespace=ns)
    support.wait_for(lambda: not _claims(client, ns), timeout=40, what="claims collected with the set")


def test_a_claim_being_deleted_holds_its_pod_back(controller_manager, client: api.Client, ns: str) -> None:
    client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-hb-0", "finalizers": ["example.com/hold"]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, namespace=ns)
    client.delete("v1", "persistentvolumeclaims", "data-hb-0", namespace=ns)
    old_uid = client.get("v1", "persistentvolumeclaims", "data-hb-0", namespace=ns)["metadata"]["uid"]
    client.create("apps/v1", "statefulsets", _sts("hb", 1), namespace=ns)
    support.wait_for(lambda: any(e.get("reason") == "FailedCreate" and "pvc data-hb-0 is being deleted" in
                                 e.get("message", "") for e in client.list("v1", "events", namespace=ns)["items"]),
                     timeout=20, what="the FailedCreate event")
    assert "hb-0" not in _pods(client, ns)
    client.patch("v1", "persistentvolumeclaims", "data-hb-0", {"metadata": {"finalizers": None}}, namespace=ns)
    support.wait_for(lambda: "hb-0" in _pods(client, ns), timeout=20, what="hb-0 once the claim is gone")
    claim = client.get("v1", "persistentvolumeclaims", "data-hb-0", namespace=ns)
    assert claim["metadata"]["uid"] != old_uid and not claim["metadata"].get("deletionTimestamp")


def test_a_foreign_claim_is_not_taken_over(controller_manager, client: api.Client, ns: str) -> None:
    """A claim of the right name owned by someone else's controller keeps its owner."""
    owner = client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}},
                          namespace=ns)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "mine", "uid": owner["metadata"]["uid"],
           "controller": True}
    client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-fx-0", "ownerReferences": [ref]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, namespace=ns)
    client.create("apps/v1", "statefulsets", _sts("fx", 1, persistentVolumeClaimRetentionPolicy={
        "whenDeleted": "Delete"}), namespace=ns)
    support.wait_for(lambda: "fx-0" in _pods(client, ns), timeout=20, what="fx-0")
    _ready(client, ns, "fx-0")
    support.wait_for(lambda: _status(client, ns, "fx").get("readyReplicas") == 1, timeout=20, what="ready")
    claim = client.get("v1", "persistentvolumeclaims", "data-fx-0", namespace=ns)
    assert [r["uid"] for r in claim["metadata"]["ownerReferences"]] == [owner["metadata"]["uid"]]


def test_huge_parallel_set_under_quota_does_not_stall_the_controller(controller_manager, client: api.Client,
                                                                     ns: str) -> None:
    """replicas 2**31-1 is valid (int32): the controller plans a burst per sync, the quota refuses
    past 2 pods, and a set in another namespace is still served."""
    client.create("v1", "resourcequotas", {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                                           "spec": {"hard": {"pods": "2"}}}, namespace=ns)
    client.create("apps/v1", "statefulsets", _sts("huge", 2**31 - 1, claims=False, podManagementPolicy="Parallel"),
                  namespace=ns)
    support.wait_for(lambda: len(_pods(client, ns)) == 2, timeout=30, what="2 pods under the quota")
    support.wait_for(lambda: any(e.get("reason") == "FailedCreate" and "exceeded quota" in e.get("message", "")
                                 for e in client.list("v1", "events", namespace=ns)["items"]),
                     timeout=30, what="FailedCreate event")
    other = f"{ns}-b"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    client.create("apps/v1", "statefulsets", _sts("small", 1, claims=False), namespace=other)
    support.wait_for(lambda: "small-0" in _pods(client, other), timeout=20, what="the other set served")
    assert len(_pods(client, ns)) == 2
    client.delete("v1", "namespaces", other)


def test_rollout_status_messages_are_kubectls() -> None:
    def sts(status: dict, **strategy: Any) -> dict:
        spec = {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", **strategy}}
        return {"metadata": {"name": "s", "generation": 2}, "spec": spec,
                "status": {"observedGeneration": 2, "readyReplicas": 3, **status}}

    state = workloads_cmd.statefulset_rollout_state
    assert state(sts({"observedGeneration": 1})) == (False, "Waiting for statefulset spec update to be observed...")
    assert state(sts({"readyReplicas": 1})) == (False, "Waiting for 2 pods to be ready...")
    assert state(sts({"updatedReplicas": 1}, rollingUpdate={"partition": 1})) == (
        False, "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...")
    assert state(sts({"updatedReplicas": 2}, rollingUpdate={"partition": 1})) == (
        True, "partitioned roll out complete: 2 new pods have been updated...")
    assert state(sts({"updatedReplicas": 1, "updateRevision": "b", "currentRevision": "a"})) == (
        False, "waiting for statefulset rolling update to complete 1 pods at revision b...")
    assert state(sts({"currentReplicas": 3, "updateRevision": "b", "currentRevision": "b"})) == (
        True, "statefulset rolling update complete 3 pods at revision b...")
    with pytest.raises(Exception, match="only available for RollingUpdate"):
        state({"metadata": {"name": "s"}, "spec": {"updateStrategy": {"type": "OnDelete"}}})


def test_only_upstreams_mutable_fields_may_change(client: api.Client, ns: str) -> None:
    client.create("apps/v1", "statefulsets", _sts("fixed", 0), namespace=ns)
    for change in ({"serviceName": "other"}, {"podManagementPolicy": "Parallel"},
                   {"volumeClaimTemplates": []}, {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}):
        with pytest.raises(errors.ApiError) as caught:
            client.patch("apps/v1", "statefulsets", "fixed", {"spec": change}, namespace=ns)
        assert caught.value.code == 422, change
        causes = (caught.value.details or {}).get("causes") or []
        assert any(c.get("field") == "spec" and "updates to statefulset spec for fields other than" in c["message"]
                   for c in causes), causes
    changed = client.patch("apps/v1", "statefulsets", "fixed", {"spec": {
        "replicas": 0, "minReadySeconds": 3, "revisionHistoryLimit": 2, "ordinals": {"start": 1},
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"},
        "updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}, namespace=ns)
    assert changed["spec"]["minReadySeconds"] == 3 and changed["spec"]["updateStrategy"]["type"] == "OnDelete"


@pytest.mark.parametrize(("patch", "field"), [
    ({"replicas": -1}, "spec.replicas"),
    ({"replicas": 2**31}, "spec.replicas"),
    ({"selector": {"matchLabels": {"app": "other"}}}, "spec.template.metadata.labels"),
    ({"selector": {}}, "spec.selector"),
    ({"podManagementPolicy": "Random"}, "spec.podManagementPolicy"),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}},
     "spec.updateStrategy.rollingUpdate.partition"),
])
def test_hostile_specs_are_refused_naming_the_field(client: api.Client, ns: str, patch: dict, field: str) -> None:
    body = _sts("bad", 1)
    body["spec"].update(patch)
    with pytest.raises(errors.ApiError) as caught:
        client.create("apps/v1", "statefulsets", body, namespace=ns)
    assert caught.value.code == 422, caught.value
    causes = (caught.value.details or {}).get("causes") or []
    assert field in [c.get("field") for c in causes], causes
