"""A pod's spec after creation (upstream's ValidatePodUpdate, `reconcile.core.podupdate`): an update
of the pod itself may change images, lower activeDeadlineSeconds and add tolerations; anything
else is a 422 Forbidden on `spec` naming what changed. /status and /binding are not bound by it,
and a merge patch, a PUT of what was read and a server-side apply that changes nothing pass."""

from __future__ import annotations

import httpx

from tests.api import helpers

FORBIDDEN = "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"


def _pod(client: httpx.Client, ns: str, name: str = "p", **spec: object) -> dict:
    obj = helpers.pod(name)
    obj["spec"].update(spec)
    return helpers.create(client, helpers.pod_path(ns), obj)


def _merge(client: httpx.Client, ns: str, patch: dict, name: str = "p") -> httpx.Response:
    return client.patch(helpers.pod_path(ns, name), json=patch,
                        headers={"Content-Type": "application/merge-patch+json"})


def test_a_changed_command_is_forbidden_naming_the_field(client, ns):
    _pod(client, ns)
    answer = _merge(client, ns, {"spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                                          "command": ["sleep", "1"]}]}})
    status = helpers.assert_status(answer, 422, "Invalid")
    [cause] = status["details"]["causes"]
    assert cause["field"] == "spec" and cause["reason"] == "FieldValueForbidden", cause
    assert cause["message"].startswith(FORBIDDEN), cause
    assert "spec.containers[0].command" in cause["message"], cause
    assert "command" not in client.get(helpers.pod_path(ns, "p")).json()["spec"]["containers"][0]


def test_images_labels_and_a_lower_deadline_may_change(client, ns):
    _pod(client, ns, activeDeadlineSeconds=600)
    answer = _merge(client, ns, {"metadata": {"labels": {"tier": "web"}}, "spec": {
        "activeDeadlineSeconds": 300, "containers": [{"name": "c", "image": "busybox:1.37"}]}})
    assert answer.status_code == 200, answer.text
    spec = answer.json()["spec"]
    assert spec["containers"][0]["image"] == "busybox:1.37" and spec["activeDeadlineSeconds"] == 300
    # a PUT of what was read is no change at all
    live = client.get(helpers.pod_path(ns, "p")).json()
    assert client.put(helpers.pod_path(ns, "p"), json=live).status_code == 200


def test_a_higher_or_removed_deadline_is_refused(client, ns):
    _pod(client, ns, activeDeadlineSeconds=60)
    status = helpers.assert_status(_merge(client, ns, {"spec": {"activeDeadlineSeconds": 120}}), 422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.activeDeadlineSeconds"
    assert "must be less than or equal to previous value" in status["message"]
    status = helpers.assert_status(_merge(client, ns, {"spec": {"activeDeadlineSeconds": None}}), 422, "Invalid")
    assert "must not update from a positive integer to nil value" in status["message"]


def test_tolerations_may_be_added_but_not_changed(client, ns):
    kept = {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    _pod(client, ns, tolerations=[kept])
    added = {"key": "b", "operator": "Exists", "effect": "NoSchedule"}
    answer = _merge(client, ns, {"spec": {"tolerations": [{**kept, "tolerationSeconds": 10}, added]}})
    assert answer.status_code == 200, answer.text
    status = helpers.assert_status(_merge(client, ns, {"spec": {"tolerations": [added]}}), 422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.tolerations", status


def test_status_and_binding_are_not_bound_by_it(client, ns):
    _pod(client, ns)
    status = client.patch(helpers.pod_path(ns, "p") + "/status", json={"status": {"phase": "Running"}},
                          headers={"Content-Type": "application/merge-patch+json"})
    assert status.status_code == 200, status.text
    bound = client.post(helpers.pod_path(ns, "p") + "/binding", json={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}})
    assert bound.status_code == 201, bound.text
    assert client.get(helpers.pod_path(ns, "p")).json()["spec"]["nodeName"] == "n1"
    # but the node of a pod is not changed by an update
    status = helpers.assert_status(_merge(client, ns, {"spec": {"nodeName": "n2"}}), 422, "Invalid")
    assert "spec.nodeName" in status["message"]


def test_a_repeated_server_side_apply_passes_and_a_changed_one_is_refused(client, ns):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}

    def apply(obj: dict) -> httpx.Response:
        return client.patch(helpers.pod_path(ns, "p"), json=obj, params={"fieldManager": "t", "force": "true"},
                            headers={"Content-Type": "application/apply-patch+yaml"})

    assert apply(manifest).status_code == 201
    assert apply(manifest).status_code == 200
    changed = {**manifest, "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "args": ["x"]}]}}
    helpers.assert_status(apply(changed), 422, "Invalid")
