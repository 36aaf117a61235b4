"""PriorityClasses and the Priority admission through a real API server (real etcd): the two system
classes at start, upstream's validation (422 naming the field) and refusals (403), one global
default, and new pods' priority and preemption policy resolved from their class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api import helpers

PCS = "/apis/scheduling.k8s.io/v1/priorityclasses"


def priority_class(name: str, value: int, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **fields}


def _causes(response: httpx.Response) -> list[tuple[str, str]]:
    return [(c.get("field", ""), c["message"]) for c in response.json()["details"]["causes"]]


@pytest.fixture
def high(client: httpx.Client) -> Iterator[str]:
    name = helpers.unique("high")
    helpers.create(client, PCS, priority_class(name, 1000, description="x"))
    yield name
    client.delete(f"{PCS}/{name}")


def test_the_system_classes_exist_and_stay(client: httpx.Client) -> None:
    node = client.get(f"{PCS}/system-node-critical").json()
    cluster = client.get(f"{PCS}/system-cluster-critical").json()
    assert (node["value"], cluster["value"]) == (2000001000, 2000000000)
    assert node["preemptionPolicy"] == cluster["preemptionPolicy"] == "PreemptLowerPriority"
    assert "globalDefault" not in node and node["description"].startswith("Used for system critical pods")
    refused = client.delete(f"{PCS}/system-node-critical")
    helpers.assert_status(refused, 403, "Forbidden", 'priorityclasses.scheduling.k8s.io "system-node-critical" is '
                                                     "forbidden: this is a system priority class and cannot be deleted")
    changed = client.patch(f"{PCS}/system-cluster-critical", json={"value": 5}, headers=helpers.MERGE)
    helpers.assert_status(changed, 422, "Invalid")
    assert ("value", "Forbidden: may not be changed in an update.") in _causes(changed)


@pytest.mark.parametrize("body, field, message", [
    (priority_class("too-high", 1_000_000_001), "value",
     "Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    (priority_class("system-mine", 10), "metadata.name",
     "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: "
     "system-mine is not a known system priority class"),
    (priority_class("system-node-critical", 10), "metadata.name",
     "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: "
     "value of system-node-critical PriorityClass must be 2000001000"),
    (priority_class("bad-policy", 10, preemptionPolicy="Sometimes"), "preemptionPolicy",
     'Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"'),
    (priority_class("empty-policy", 10, preemptionPolicy=""), "preemptionPolicy", "Required value"),
], ids=["above-the-ceiling", "reserved-prefix", "system-name-other-value", "unknown-policy", "empty-policy"])
def test_bad_priority_classes_are_422_naming_the_field(client: httpx.Client, body: dict, field: str,
                                                      message: str) -> None:
    refused = client.post(PCS, json=body)
    helpers.assert_status(refused, 422, "Invalid")
    assert (field, message) in _causes(refused), refused.json()
    assert client.get(f"{PCS}/{body['metadata']['name']}").status_code in (404, 200)  # 200: the system one


def test_value_and_policy_are_immutable(client: httpx.Client, high: str) -> None:
    created = client.get(f"{PCS}/{high}").json()
    assert created["preemptionPolicy"] == "PreemptLowerPriority"  # defaulted
    refused = client.patch(f"{PCS}/{high}", json={"value": 7, "preemptionPolicy": "Never"}, headers=helpers.MERGE)
    helpers.assert_status(refused, 422, "Invalid")
    assert _causes(refused) == [("value", "Forbidden: may not be changed in an update."),
                                ("preemptionPolicy", 'Invalid value: "Never": field is immutable')]
    described = client.patch(f"{PCS}/{high}", json={"description": "changed"}, headers=helpers.MERGE)
    assert described.status_code == 200 and described.json()["description"] == "changed"


def test_pods_get_their_class_priority_and_policy(client: httpx.Client, ns: str, high: str) -> None:
    never = helpers.unique("never")
    helpers.create(client, PCS, priority_class(never, 5, preemptionPolicy="Never"))
    try:
        pod = helpers.pod("p1")
        pod["spec"]["priorityClassName"] = high
        spec = helpers.create(client, helpers.pod_path(ns), pod)["spec"]
        assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == (
            high, 1000, "PreemptLowerPriority")
        pod = helpers.pod("p2")
        pod["spec"].update(priorityClassName=never, priority=5)  # agreeing with the class: admitted
        spec = helpers.create(client, helpers.pod_path(ns), pod)["spec"]
        assert (spec["priority"], spec["preemptionPolicy"]) == (5, "Never")
        plain = helpers.create(client, helpers.pod_path(ns), helpers.pod("p3"))["spec"]
        assert "priorityClassName" not in plain
        assert (plain["priority"], plain["preemptionPolicy"]) == (0, "PreemptLowerPriority")
        # an update that leaves them out keeps them (upstream's admission copies them over)
        stored = client.get(helpers.pod_path(ns, "p1")).json()
        del stored["spec"]["priority"], stored["spec"]["preemptionPolicy"]
        stored["metadata"]["labels"] = {"x": "y"}
        updated = client.put(helpers.pod_path(ns, "p1"), json=stored)
        assert updated.status_code == 200, updated.text
        assert (updated.json()["spec"]["priority"], updated.json()["spec"]["preemptionPolicy"]) == (
            1000, "PreemptLowerPriority")
    finally:
        client.delete(f"{PCS}/{never}")


@pytest.mark.parametrize("spec, message", [
    ({"priorityClassName": "no-such-class"}, "no PriorityClass with name no-such-class was found"),
    ({"priorityClassName": "HIGH", "priority": 7},
     "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed "
     "1000 from the given PriorityClass name"),
    ({"priority": 3}, "the integer value of priority (3) must not be provided in pod spec; priority admission "
                      "controller computed 0 from the given PriorityClass name"),
    ({"priorityClassName": "HIGH", "preemptionPolicy": "Never"},
     "the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller "
     "computed PreemptLowerPriority from the given PriorityClass name"),
], ids=["unknown-class", "priority-disagrees", "priority-without-class", "policy-disagrees"])
def test_pods_that_disagree_with_their_class_are_403(client: httpx.Client, ns: str, high: str,
                                                     spec: dict[str, Any], message: str) -> None:
    pod = helpers.pod("refused")
    pod["spec"].update({k: (high if v == "HIGH" else v) for k, v in spec.items()})
    refused = client.post(helpers.pod_path(ns), json=pod)
    helpers.assert_status(refused, 403, "Forbidden", f'pods "refused" is forbidden: {message}')
    assert client.get(helpers.pod_path(ns, "refused")).status_code == 404


def test_one_global_default_and_pods_without_a_class_get_it(client: httpx.Client, ns: str, high: str) -> None:
    first, second = helpers.unique("default-a"), helpers.unique("default-b")
    helpers.create(client, PCS, priority_class(first, 50, globalDefault=True))
    try:
        refused = client.post(PCS, json=priority_class(second, 60, globalDefault=True))
        helpers.assert_status(refused, 403, "Forbidden", f'priorityclasses.scheduling.k8s.io "{second}" is '
                                                         f"forbidden: PriorityClass {first} is already marked as "
                                                         "default. Only one default can exist")
        marked = client.patch(f"{PCS}/{high}", json={"globalDefault": True}, headers=helpers.MERGE)
        helpers.assert_status(marked, 403, "Forbidden")
        assert f"PriorityClass {first} is already marked as default" in marked.json()["message"]
        again = client.patch(f"{PCS}/{first}", json={"description": "still the default"}, headers=helpers.MERGE)
        assert again.status_code == 200, again.text  # the default itself may be updated
        spec = helpers.create(client, helpers.pod_path(ns), helpers.pod("defaulted"))["spec"]
        assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == (
            first, 50, "PreemptLowerPriority")
    finally:
        client.delete(f"{PCS}/{first}")
    assert "priorityClassName" not in helpers.create(client, helpers.pod_path(ns), helpers.pod("after"))["spec"]


def test_priority_classes_print_upstreams_columns(client: httpx.Client, high: str) -> None:
    table = client.get(PCS, headers={"Accept": helpers.TABLE_ACCEPT}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert rows[high][1:3] == [1000, False] and rows[high][4] == "PreemptLowerPriority"
    assert rows["system-node-critical"][1] == 2000001000
