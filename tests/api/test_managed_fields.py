"""Field ownership over HTTP against a real API server: managedFields on every write, server-side
apply (prune, conflicts, force, create), client-supplied managedFields, and hostile apply bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api import helpers
from tests.api.helpers import APPLY, JSONPATCH, MERGE, assert_status, cm_path, deploy_path


def _apply(client: httpx.Client, path: str, body: Any, manager: str | None = "mgr", **params: str) -> httpx.Response:
    if manager is not None:
        params["fieldManager"] = manager
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.patch(path, content=content, headers=APPLY, params=params)


def _managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def _fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    [entry] = [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager]
    return entry["fieldsV1"]


def test_apply_creates_owns_and_prunes(client: httpx.Client, ns: str) -> None:
    path = cm_path(ns, "owned")
    created = _apply(client, path, helpers.configmap("owned", {"a": "1", "b": "2"}, labels={"team": "x"}))
    assert created.status_code == 201, created.text
    obj = created.json()
    entry = obj["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["fieldsType"]) == \
        ("mgr", "Apply", "v1", "FieldsV1")
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:team": {}}}}
    assert entry["time"].endswith("Z")
    # GET returns them too
    assert client.get(path).json()["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    # re-apply without b and without the label: both go
    again = _apply(client, path, helpers.configmap("owned", {"a": "1"}))
    assert again.status_code == 200, again.text
    assert again.json()["data"] == {"a": "1"} and "labels" not in again.json()["metadata"]
    # the same apply again is a no-op: no new resourceVersion
    rv = again.json()["metadata"]["resourceVersion"]
    assert _apply(client, path, helpers.configmap("owned", {"a": "1"})).json()["metadata"]["resourceVersion"] == rv


def test_two_managers_conflict_and_force_takes_over(client: httpx.Client, ns: str) -> None:
    path = cm_path(ns, "fight")
    assert _apply(client, path, helpers.configmap("fight", {"a": "1"}), "one").status_code == 201
    conflict = _apply(client, path, helpers.configmap("fight", {"a": "2"}), "two")
    status = assert_status(conflict, 409, "Conflict")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "one": .data.a'
    assert status["details"] == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "one"',
                                             "field": ".data.a"}]}
    assert client.get(path).json()["data"] == {"a": "1"}
    # same value: shared
    shared = _apply(client, path, helpers.configmap("fight", {"a": "1"}), "two")
    assert shared.status_code == 200 and sorted(_managers(shared.json())) == [("one", "Apply"), ("two", "Apply")]
    forced = _apply(client, path, helpers.configmap("fight", {"a": "3"}), "two", force="true")
    assert forced.status_code == 200 and forced.json()["data"] == {"a": "3"}
    assert _managers(forced.json()) == [("two", "Apply")]  # one owned nothing else: its entry goes


def test_update_entries_from_create_patch_and_put(client: httpx.Client, ns: str) -> None:
    created = client.post(cm_path(ns), json=helpers.configmap("upd", {"a": "1"}),
                          headers={"User-Agent": "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"})
    assert created.status_code == 201
    assert _managers(created.json()) == [("kubectl", "Update")]
    assert _fields(created.json(), "kubectl") == {"f:data": {".": {}, "f:a": {}}}
    patched = client.patch(cm_path(ns, "upd"), json={"data": {"a": "2"}}, headers=MERGE,
                           params={"fieldManager": "kubectl-edit"})
    assert sorted(_managers(patched.json())) == [("kubectl", "Update"), ("kubectl-edit", "Update")]
    assert _fields(patched.json(), "kubectl-edit") == {"f:data": {"f:a": {}}}
    # an apply of the field an Update manager owns conflicts, naming it with its apiVersion and time
    conflict = _apply(client, cm_path(ns, "upd"), helpers.configmap("upd", {"a": "3"}), "kubectl")
    status = assert_status(conflict, 409, "Conflict")
    assert status["message"].startswith('Apply failed with 1 conflict: conflict with "kubectl-edit" using v1 at ')
    assert status["message"].endswith(": .data.a")
    # PUT of what GET returned keeps the entries (they are the stored ones); managedFields: [] resets them
    current = client.get(cm_path(ns, "upd")).json()
    current["data"]["b"] = "x"
    put = client.put(cm_path(ns, "upd"), json=current, params={"fieldManager": "kubectl-replace"})
    assert ("kubectl-replace", "Update") in _managers(put.json())
    reset = client.patch(cm_path(ns, "upd"), json={"metadata": {"managedFields": []}}, headers=MERGE)
    assert reset.status_code == 200 and "managedFields" not in reset.json()["metadata"]


def test_client_supplied_managed_fields_replace_the_stored_ones(client: httpx.Client, ns: str) -> None:
    created = client.post(cm_path(ns), json=helpers.configmap("sup", {"a": "1"}), params={"fieldManager": "c"})
    entries = created.json()["metadata"]["managedFields"]
    entries[0]["manager"] = "renamed"
    replaced = client.patch(cm_path(ns, "sup"), headers=JSONPATCH,
                            json=[{"op": "replace", "path": "/metadata/managedFields", "value": entries}])
    assert replaced.status_code == 200, replaced.text
    assert _managers(replaced.json()) == [("renamed", "Update")]


@pytest.mark.parametrize(("entries", "field"), [
    ([{"manager": "m", "operation": "Delete", "fieldsType": "FieldsV1", "fieldsV1": {}}],
     "metadata.managedFields[0].operation"),
    ([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {}}],
     "metadata.managedFields[0].fieldsType"),
    ([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"bogus": {}}}],
     "metadata.managedFields[0].fieldsV1"),
    ([{"manager": "m" * 200, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}],
     "metadata.managedFields[0].manager"),
    (["garbage"], "metadata.managedFields[0]"),
    ("garbage", "metadata.managedFields"),
])
def test_bad_managed_fields_are_422_naming_the_field(client: httpx.Client, ns: str, entries: Any, field: str) -> None:
    body = helpers.configmap("bad", {"a": "1"})
    body["metadata"]["managedFields"] = entries
    created = client.post(cm_path(ns), json=body)
    status = assert_status(created, 422, "Invalid")
    assert any(c.get("field", "").startswith(field) for c in status["details"]["causes"]), status
    assert client.post(cm_path(ns), json=helpers.configmap("bad")).status_code == 201
    patched = client.patch(cm_path(ns, "bad"), headers=MERGE, json={"metadata": {"managedFields": entries}})
    assert_status(patched, 422, "Invalid")


def test_hostile_apply_bodies(client: httpx.Client, ns: str) -> None:
    path = cm_path(ns, "hostile")
    assert_status(_apply(client, path, helpers.configmap("hostile"), None), 422, "Invalid")
    wrong_version = {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "hostile"}}
    status = assert_status(_apply(client, path, wrong_version), 400, "BadRequest")
    assert status["message"] == "Incorrect version specified in apply patch. Specified patch version: v2, expected: v1"
    assert_status(_apply(client, path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hostile"}}),
                  400, "BadRequest")
    assert_status(_apply(client, path, {"kind": "ConfigMap", "metadata": {"name": "hostile"}}), 400, "BadRequest")
    with_managed = helpers.configmap("hostile")
    with_managed["metadata"]["managedFields"] = [{"manager": "x"}]
    status = assert_status(_apply(client, path, with_managed), 400, "BadRequest")
    assert status["message"] == "metadata.managedFields must be nil"
    assert_status(_apply(client, path, "a: [unclosed"), 400)
    assert_status(_apply(client, path, "- just\n- a list\n"), 400)
    too_long = _apply(client, path, helpers.configmap("hostile"), "m" * 129)
    assert_status(too_long, 422, "Invalid")
    force_on_merge = client.patch(path, json={}, headers=MERGE, params={"force": "true"})
    assert_status(force_on_merge, 422, "Invalid")
    assert client.get(path).status_code == 404
    # a big configuration: thousands of keys apply, own and prune without error
    big = helpers.configmap("hostile", {f"k{i}": "v" for i in range(3000)})
    assert _apply(client, path, big).status_code == 201
    small = _apply(client, path, helpers.configmap("hostile", {"k0": "v"}))
    assert small.status_code == 200 and small.json()["data"] == {"k0": "v"}


def test_apply_then_scale_then_reapply_conflicts_on_replicas(client: httpx.Client, ns: str) -> None:
    path = deploy_path(ns, "web")
    created = _apply(client, path, helpers.deployment("web", replicas=1), "kubectl")
    assert created.status_code == 201, created.text
    fields = _fields(created.json(), "kubectl")
    containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(containers) == {'k:{"name":"main"}', 'k:{"name":"side"}'}
    assert containers['k:{"name":"main"}']["f:env"] == {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}}
    scaled = client.patch(f"{path}/scale", json={"spec": {"replicas": 3}}, headers=MERGE,
                          params={"fieldManager": "kubectl-scale"})
    assert scaled.status_code == 200, scaled.text
    live = client.get(path).json()
    scale_entry = [e for e in live["metadata"]["managedFields"] if e["manager"] == "kubectl-scale"][0]
    assert scale_entry["subresource"] == "scale" and scale_entry["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    conflict = _apply(client, path, helpers.deployment("web", replicas=1), "kubectl")
    status = assert_status(conflict, 409, "Conflict")
    assert status["details"]["causes"][0]["field"] == ".spec.replicas"
    assert 'conflict with "kubectl-scale" with subresource "scale" using apps/v1' in status["message"]
    # dropping replicas from the config resolves it; the scaler keeps the field
    config = helpers.deployment("web")
    del config["spec"]["replicas"]
    ok = _apply(client, path, config, "kubectl")
    assert ok.status_code == 200 and ok.json()["spec"]["replicas"] == 3


def test_two_appliers_share_a_list_by_merge_key(client: httpx.Client, ns: str) -> None:
    path = deploy_path(ns, "shared")
    assert _apply(client, path, helpers.deployment("shared"), "a").status_code == 201
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shared"},
               "spec": {"template": {"spec": {"containers": [{"name": "extra", "image": "envoy:1"}]}}}}
    added = _apply(client, path, sidecar, "b")
    assert added.status_code == 200, added.text
    names = [c["name"] for c in added.json()["spec"]["template"]["spec"]["containers"]]
    assert names == ["main", "side", "extra"]
    # a drops "side" from its config: it goes, b's container stays
    config = helpers.deployment("shared")
    config["spec"]["template"]["spec"]["containers"].pop()
    pruned = _apply(client, path, config, "a")
    assert [c["name"] for c in pruned.json()["spec"]["template"]["spec"]["containers"]] == ["main", "extra"]


def test_reapplying_a_port_without_protocol_keeps_one_port(client: httpx.Client, ns: str) -> None:
    """The defaulted `protocol` is part of the port's key: a re-apply matches the stored port
    instead of adding a second one (upstream defaults the applied configuration first)."""
    path = deploy_path(ns, "ports")
    config = helpers.deployment("ports")
    config["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    created = _apply(client, path, config)
    assert created.status_code == 201, created.text
    config["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    again = _apply(client, path, config)
    assert again.status_code == 200, again.text
    main = again.json()["spec"]["template"]["spec"]["containers"][0]
    assert main["ports"] == [{"containerPort": 80, "protocol": "TCP"}] and main["image"] == "nginx:1.26"
    ports = _fields(again.json(), "mgr")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']["f:ports"]
    assert list(ports) == ['k:{"containerPort":80,"protocol":"TCP"}']


def test_reapplying_a_service_keeps_what_the_server_allocated(client: httpx.Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/services/svc"
    config = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
              "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    created = _apply(client, path, config)
    assert created.status_code == 201, created.text
    ip = created.json()["spec"]["clusterIP"]
    config["spec"]["ports"].append({"name": "b", "port": 81})
    config["spec"]["ports"][0]["name"] = "a"
    again = _apply(client, path, config)
    assert again.status_code == 200, again.text
    assert again.json()["spec"]["clusterIP"] == ip
    assert [(p["port"], p.get("protocol")) for p in again.json()["spec"]["ports"]] == [(80, "TCP"), (81, "TCP")]
    config["spec"]["ports"].pop()
    pruned = _apply(client, path, config)
    assert pruned.status_code == 200, pruned.text
    assert [p["port"] for p in pruned.json()["spec"]["ports"]] == [80]
