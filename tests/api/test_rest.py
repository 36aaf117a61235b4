"""CRUD and REST semantics over raw HTTP against a real API server on a real etcd."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests import support
from tests.api import helpers
from tests.api.helpers import (
    APPLY,
    JSONPATCH,
    MERGE,
    STRATEGIC,
    assert_status,
    cm_path,
    deploy_path,
    pod_path,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- metadata the server owns ---


def test_create_sets_server_metadata(client: httpx.Client, ns: str) -> None:
    body = helpers.configmap("cfg", {"a": "1"})
    body["metadata"].update(uid="client-uid", creationTimestamp="2000-01-01T00:00:00Z")
    created = helpers.create(client, cm_path(ns), body)
    meta = created["metadata"]
    assert meta["uid"] != "client-uid" and re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert RFC3339.match(meta["creationTimestamp"]) and meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["namespace"] == ns and created["data"] == {"a": "1"}
    fetched = client.get(cm_path(ns, "cfg")).json()
    assert fetched["metadata"]["resourceVersion"] == meta["resourceVersion"]
    assert fetched["metadata"]["uid"] == meta["uid"]


def test_create_refuses_a_resource_version(client: httpx.Client, ns: str) -> None:
    """As upstream: a resourceVersion on a create is a client mistake (a copy of a live object), not ignored."""
    body = helpers.configmap("with-rv")
    body["metadata"]["resourceVersion"] = "999"
    response = client.post(cm_path(ns), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "resourceVersion should not be set on objects to be created"
    assert client.get(cm_path(ns, "with-rv")).status_code == 404


def test_resource_version_is_the_etcd_revision(client: httpx.Client, ns: str) -> None:
    first = helpers.create(client, cm_path(ns), helpers.configmap("a"))
    second = helpers.create(client, cm_path(ns), helpers.configmap("b"))
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    listing = client.get(cm_path(ns)).json()
    assert int(listing["metadata"]["resourceVersion"]) >= int(second["metadata"]["resourceVersion"])
    updated = client.put(cm_path(ns, "a"), json=dict(first, data={"x": "y"})).json()
    assert int(updated["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])


def test_generation_bumps_only_on_spec_change(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    assert created["metadata"]["generation"] == 1
    labelled = client.patch(deploy_path(ns, "web"), json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE).json()
    assert labelled["metadata"]["generation"] == 1
    scaled = client.patch(deploy_path(ns, "web"), json={"spec": {"replicas": 3}}, headers=MERGE).json()
    assert scaled["metadata"]["generation"] == 2
    status = client.patch(deploy_path(ns, "web") + "/status", json={"status": {"replicas": 3}}, headers=MERGE).json()
    assert status["metadata"]["generation"] == 2


def test_generate_name(client: httpx.Client, ns: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    names = {helpers.create(client, cm_path(ns), body)["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3 and all(re.fullmatch(r"gen-[a-z0-9]{5}", n) for n in names)


def test_default_namespaces_exist(client: httpx.Client) -> None:
    listing = client.get("/api/v1/namespaces").json()
    assert {"default", "kube-system", "kube-node-lease"} <= set(helpers.names(listing))


def test_namespace_must_exist(client: httpx.Client) -> None:
    response = client.post(cm_path("nope"), json=helpers.configmap("x"))
    assert_status(response, 404, "NotFound", 'namespaces "nope" not found')
    assert client.get(cm_path("nope", "x")).status_code == 404


# --- errors ---


def test_stale_put_conflicts(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    fresh = client.put(deploy_path(ns, "web"), json=dict(created, spec=dict(created["spec"], replicas=2)))
    assert fresh.status_code == 200
    stale = client.put(deploy_path(ns, "web"), json=dict(created, spec=dict(created["spec"], replicas=5)))
    assert_status(stale, 409, "Conflict",
                  'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
                  "please apply your changes to the latest version and try again")
    assert client.get(deploy_path(ns, "web")).json()["spec"]["replicas"] == 2


def test_create_twice_already_exists(client: httpx.Client, ns: str) -> None:
    helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    response = client.post(deploy_path(ns), json=helpers.deployment("web"))
    status = assert_status(response, 409, "AlreadyExists", 'deployments.apps "web" already exists')
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


def test_missing_object_not_found(client: httpx.Client, ns: str) -> None:
    status = assert_status(client.get(deploy_path(ns, "web")), 404, "NotFound", 'deployments.apps "web" not found')
    assert status["details"]["name"] == "web"
    assert_status(client.get(cm_path(ns, "web")), 404, "NotFound", 'configmaps "web" not found')
    assert_status(client.delete(deploy_path(ns, "web")), 404, "NotFound")
    assert_status(client.patch(deploy_path(ns, "web"), json={}, headers=MERGE), 404, "NotFound")


# --- finalizers and deletion ---


def test_finalizers_defer_deletion(client: httpx.Client, ns: str) -> None:
    body = helpers.configmap("fin")
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    helpers.create(client, cm_path(ns), body)
    deleted = client.delete(cm_path(ns, "fin"))
    assert deleted.status_code == 200 and deleted.json()["metadata"]["deletionTimestamp"]
    live = client.get(cm_path(ns, "fin")).json()
    assert RFC3339.match(live["metadata"]["deletionTimestamp"])
    adding = client.patch(cm_path(ns, "fin"), headers=JSONPATCH,
                          json=[{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/c"}])
    status = assert_status(adding, 422, "Invalid")
    assert "finalizers" in status["message"]
    one = client.patch(cm_path(ns, "fin"), json={"metadata": {"finalizers": ["example.com/b"]}}, headers=MERGE)
    assert one.status_code == 200 and one.json()["metadata"]["finalizers"] == ["example.com/b"]
    assert client.get(cm_path(ns, "fin")).status_code == 200
    last = client.patch(cm_path(ns, "fin"), json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert last.status_code == 200
    assert_status(client.get(cm_path(ns, "fin")), 404, "NotFound")


def test_delete_returns_status_and_removes(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    response = client.delete(deploy_path(ns, "web"))
    assert response.status_code == 200
    body = response.json()
    if body["kind"] == "Status":
        assert body["status"] == "Success" and body["details"]["uid"] == created["metadata"]["uid"]
    else:
        assert body["metadata"]["uid"] == created["metadata"]["uid"]
    assert client.get(deploy_path(ns, "web")).status_code == 404


# --- subresources ---


def test_status_subresource(client: httpx.Client, ns: str) -> None:
    body = helpers.deployment("web")
    body["status"] = {"replicas": 7}
    created = helpers.create(client, deploy_path(ns), body)
    assert "replicas" not in (created.get("status") or {})  # status is ignored on create
    with_status = client.put(deploy_path(ns, "web") + "/status",
                             json=dict(created, status={"replicas": 4}, spec=dict(created["spec"], replicas=9)))
    assert with_status.status_code == 200, with_status.text
    assert with_status.json()["status"]["replicas"] == 4 and with_status.json()["spec"]["replicas"] == 1
    main = client.patch(deploy_path(ns, "web"), json={"spec": {"replicas": 2}, "status": {"replicas": 0}}, headers=MERGE)
    assert main.json()["spec"]["replicas"] == 2 and main.json()["status"]["replicas"] == 4
    got = client.get(deploy_path(ns, "web") + "/status").json()
    assert got["status"]["replicas"] == 4 and got["spec"]["replicas"] == 2


def test_scale_subresource(client: httpx.Client, ns: str) -> None:
    helpers.create(client, deploy_path(ns), helpers.deployment("web", replicas=2))
    scale = client.get(deploy_path(ns, "web") + "/scale").json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["metadata"]["name"] == "web"
    assert scale["status"]["selector"] == "app=web"
    put = client.put(deploy_path(ns, "web") + "/scale", json=dict(scale, spec={"replicas": 4}))
    assert put.status_code == 200 and put.json()["spec"]["replicas"] == 4
    patched = client.patch(deploy_path(ns, "web") + "/scale", json={"spec": {"replicas": 5}}, headers=MERGE)
    assert patched.json()["spec"]["replicas"] == 5
    assert client.get(deploy_path(ns, "web")).json()["spec"]["replicas"] == 5
    stale = client.put(deploy_path(ns, "web") + "/scale", json=dict(scale, spec={"replicas": 1}))
    assert_status(stale, 409, "Conflict")
    assert client.get(cm_path(ns, "x") + "/scale").status_code == 404


# --- query options ---


def test_dry_run_stores_nothing(client: httpx.Client, ns: str) -> None:
    response = client.post(cm_path(ns), json=helpers.configmap("dry"), params={"dryRun": "All"})
    assert response.status_code == 201 and response.json()["metadata"]["name"] == "dry"
    assert client.get(cm_path(ns, "dry")).status_code == 404
    helpers.create(client, cm_path(ns), helpers.configmap("real", {"a": "1"}))
    patched = client.patch(cm_path(ns, "real"), json={"data": {"a": "2"}}, headers=MERGE, params={"dryRun": "All"})
    assert patched.json()["data"]["a"] == "2"
    assert client.delete(cm_path(ns, "real"), params={"dryRun": "All"}).status_code == 200
    assert client.get(cm_path(ns, "real")).json()["data"]["a"] == "1"


def test_field_validation_modes(client: httpx.Client, ns: str) -> None:
    body = helpers.deployment("web")
    body["spec"]["bogus"] = True
    strict = client.post(deploy_path(ns), json=body)
    status = assert_status(strict, 400, "BadRequest")
    assert 'unknown field "spec.bogus"' in status["message"]
    assert client.get(deploy_path(ns, "web")).status_code == 404
    warn = client.post(deploy_path(ns), json=body, params={"fieldValidation": "Warn"})
    assert warn.status_code == 201 and "spec.bogus" in warn.headers.get("warning", "")
    assert warn.headers["warning"].startswith("299 - ")
    assert "bogus" not in warn.json()["spec"]
    body["metadata"]["name"] = "web2"
    ignore = client.post(deploy_path(ns), json=body, params={"fieldValidation": "Ignore"})
    assert ignore.status_code == 201 and "warning" not in ignore.headers and "bogus" not in ignore.json()["spec"]


# --- patches ---


def test_merge_patch(client: httpx.Client, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("m", {"a": "1", "b": "2"}))
    patched = client.patch(cm_path(ns, "m"), json={"data": {"a": None, "c": "3"}}, headers=MERGE)
    assert patched.status_code == 200 and patched.json()["data"] == {"b": "2", "c": "3"}


def test_json_patch_and_failing_test(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, cm_path(ns), helpers.configmap("j", {"a": "1"}))
    rv = created["metadata"]["resourceVersion"]
    ok = client.patch(cm_path(ns, "j"), headers=JSONPATCH, json=[
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/data/b", "value": "2"},
    ])
    assert ok.status_code == 200 and ok.json()["data"] == {"a": "1", "b": "2"}
    failing = client.patch(cm_path(ns, "j"), headers=JSONPATCH, json=[
        {"op": "test", "path": "/data/a", "value": "nope"},
        {"op": "add", "path": "/data/c", "value": "3"},
    ])
    assert_status(failing, 422, "Invalid")
    assert client.get(cm_path(ns, "j")).json()["data"] == {"a": "1", "b": "2"}


def test_strategic_merge_patch_containers_by_name(client: httpx.Client, ns: str) -> None:
    helpers.create(client, deploy_path(ns), helpers.deployment("web"))
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
        "containers": [{"name": "main", "image": "nginx:1.26"}],
    }}}}
    response = client.patch(deploy_path(ns, "web"), json=patch, headers=STRATEGIC)
    assert response.status_code == 200, response.text
    containers = response.json()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["side", "main"]
    main = containers[1]
    assert main["image"] == "nginx:1.26" and main["env"] == [{"name": "A", "value": "1"}]
    assert containers[0]["image"] == "busybox:1.36"
    assert response.json()["metadata"]["generation"] == 2


def test_apply_patch(client: httpx.Client, ns: str) -> None:
    body = helpers.configmap("applied", {"a": "1"})
    missing_manager = client.patch(cm_path(ns, "applied"), json=body, headers=APPLY)
    assert_status(missing_manager, 422, "Invalid")  # upstream: PatchOptions is invalid
    assert "fieldManager" in missing_manager.json()["message"]
    assert client.get(cm_path(ns, "applied")).status_code == 404
    created = client.patch(cm_path(ns, "applied"), json=body, headers=APPLY, params={"fieldManager": "test"})
    assert created.status_code == 201 and created.json()["data"] == {"a": "1"}
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  b: '2'\n"
    updated = client.patch(cm_path(ns, "applied"), content=yaml_body, headers=APPLY, params={"fieldManager": "test"})
    assert updated.status_code == 200 and updated.json()["data"]["b"] == "2"


def test_strategic_patch_on_custom_resource_is_415(client: httpx.Client, ns: str, crd_group: str) -> None:
    helpers.create(client, helpers.widget_path(crd_group, ns), helpers.widget("w", crd_group))
    response = client.patch(helpers.widget_path(crd_group, ns, "w"), json={"spec": {"size": 2}}, headers=STRATEGIC)
    assert_status(response, 415, "UnsupportedMediaType")
    merged = client.patch(helpers.widget_path(crd_group, ns, "w"), json={"spec": {"size": 2}}, headers=MERGE)
    assert merged.status_code == 200 and merged.json()["spec"]["size"] == 2


# --- list: selectors, paging, resourceVersion ---


def test_label_selectors(client: httpx.Client, ns: str) -> None:
    for name, labels in {"a": {"app": "web", "tier": "fe"}, "b": {"app": "db"}, "c": {"app": "web", "env": "x"},
                         "d": {}}.items():
        helpers.create(client, cm_path(ns), helpers.configmap(name, labels=labels))
    cases = {
        "app=web": ["a", "c"], "app==web": ["a", "c"], "app!=web": ["b", "d"], "app in (web,db)": ["a", "b", "c"],
        "app notin (web)": ["b", "d"], "tier": ["a"], "!tier": ["b", "c", "d"], "app=web,!env": ["a"],
        "app in (web),tier notin (be)": ["a", "c"],
    }
    for selector, expected in cases.items():
        listing = client.get(cm_path(ns), params={"labelSelector": selector})
        assert listing.status_code == 200, listing.text
        assert helpers.names(listing.json()) == expected, selector
    assert_status(client.get(cm_path(ns), params={"labelSelector": "app in (web"}), 400, "BadRequest")


def test_field_selectors(client: httpx.Client, ns: str) -> None:
    helpers.create(client, pod_path(ns), helpers.pod("p1", node="n1"))
    helpers.create(client, pod_path(ns), helpers.pod("p2", node="n2"))
    client.patch(pod_path(ns, "p2") + "/status", json={"status": {"phase": "Running"}}, headers=MERGE)
    by_node = client.get(pod_path(ns), params={"fieldSelector": "spec.nodeName=n1"}).json()
    assert helpers.names(by_node) == ["p1"]
    by_phase = client.get(pod_path(ns), params={"fieldSelector": "status.phase==Running"}).json()
    assert helpers.names(by_phase) == ["p2"]
    by_name = client.get(pod_path(ns), params={"fieldSelector": "metadata.name!=p1"}).json()
    assert helpers.names(by_name) == ["p2"]
    across = client.get("/api/v1/pods", params={"fieldSelector": f"metadata.namespace={ns},spec.nodeName=n2"}).json()
    assert helpers.names(across) == ["p2"]
    unsupported = client.get(pod_path(ns), params={"fieldSelector": "spec.bogus=x"})
    assert_status(unsupported, 400, "BadRequest", "field label not supported: spec.bogus")
    assert_status(client.get(cm_path(ns), params={"fieldSelector": "spec.nodeName=n1"}), 400, "BadRequest",
                  "field label not supported: spec.nodeName")


def test_event_field_selectors(client: httpx.Client, ns: str) -> None:
    for name, kind in (("e1", "Pod"), ("e2", "Deployment")):
        helpers.create(client, f"/api/v1/namespaces/{ns}/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": name}, "reason": "Test", "type": "Normal",
            "message": "hello", "involvedObject": {"kind": kind, "name": "web", "namespace": ns, "uid": f"uid-{name}"},
        })
    selector = f"involvedObject.name=web,involvedObject.namespace={ns},involvedObject.kind=Deployment,involvedObject.uid=uid-e2"
    listing = client.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": selector})
    assert listing.status_code == 200 and helpers.names(listing.json()) == ["e2"]
    both = client.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": "reason=Test,type=Normal"}).json()
    assert helpers.names(both) == ["e1", "e2"]


def test_limit_and_continue(client: httpx.Client, ns: str) -> None:
    for i in range(7):
        helpers.create(client, cm_path(ns), helpers.configmap(f"c{i}"))
    first = client.get(cm_path(ns), params={"limit": 3}).json()
    rv = first["metadata"]["resourceVersion"]
    seen = helpers.names(first)
    assert len(seen) == 3 and first["metadata"]["continue"]
    helpers.create(client, cm_path(ns), helpers.configmap("c9-late"))  # not in the snapshot
    token = first["metadata"]["continue"]
    pages = 1
    while token:
        page = client.get(cm_path(ns), params={"limit": 3, "continue": token}).json()
        assert page["metadata"]["resourceVersion"] == rv
        seen += helpers.names(page)
        token = page["metadata"].get("continue", "")
        pages += 1
    assert seen == [f"c{i}" for i in range(7)] and pages == 3
    assert_status(client.get(cm_path(ns), params={"continue": "!!garbage"}), 400, "BadRequest")


def test_resource_version_semantics(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, cm_path(ns), helpers.configmap("rv"))
    rv = int(created["metadata"]["resourceVersion"])
    for value in ("0", str(rv), ""):
        listing = client.get(cm_path(ns), params={"resourceVersion": value} if value else {})
        assert listing.status_code == 200 and "rv" in helpers.names(listing.json())
        assert int(listing.json()["metadata"]["resourceVersion"]) >= (rv if value != "0" else 0)
    got = client.get(cm_path(ns, "rv"), params={"resourceVersion": str(rv)})
    assert got.status_code == 200 and got.json()["metadata"]["resourceVersion"] == str(rv)
    started = time.monotonic()
    future = client.get(cm_path(ns), params={"resourceVersion": str(rv + 10_000_000)})
    status = assert_status(future, 504, "Timeout")
    assert status["message"].startswith(f"Too large resource version: {rv + 10_000_000}")
    assert time.monotonic() - started < 10
    assert_status(client.get(cm_path(ns), params={"resourceVersion": "abc"}), 400)


def test_delete_collection(client: httpx.Client, ns: str) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        helpers.create(client, cm_path(ns), helpers.configmap(name, labels={"app": app}))
    response = client.delete(cm_path(ns), params={"labelSelector": "app=x"})
    assert response.status_code == 200 and helpers.names(response.json()) == ["a", "b"]
    assert helpers.names(client.get(cm_path(ns)).json()) == ["c"]


# --- tables ---


def test_pod_table(client: httpx.Client, ns: str) -> None:
    helpers.create(client, pod_path(ns), helpers.pod("p1", node="n1"))
    response = client.get(pod_path(ns), headers={"Accept": helpers.TABLE_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json;as=Table;v=v1;g=meta.k8s.io")
    table = response.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c.get("priority", 0)) for c in table["columnDefinitions"]]
    assert columns[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)]
    assert ("IP", 1) in columns and ("Node", 1) in columns
    row = table["rows"][0]
    assert row["cells"][0] == "p1" and row["cells"][1] == "0/1"
    assert row["cells"][columns.index(("Node", 1))] == "n1"
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "p1"
    single = client.get(pod_path(ns, "p1"), headers={"Accept": helpers.TABLE_ACCEPT}).json()
    assert single["kind"] == "Table" and len(single["rows"]) == 1


def test_custom_resource_table(client: httpx.Client, ns: str, crd_group: str) -> None:
    helpers.create(client, helpers.widget_path(crd_group, ns), helpers.widget("w", crd_group, size=3, color="blue"))
    table = client.get(helpers.widget_path(crd_group, ns), headers={"Accept": helpers.TABLE_ACCEPT}).json()
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Size", "Color", "Age"]
    assert table["rows"][0]["cells"][:3] == ["w", 3, "blue"]


# --- discovery, openapi, version, health ---


def test_legacy_discovery(client: httpx.Client) -> None:
    assert client.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in client.get("/apis").json()["groups"]}
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    resources = {r["name"]: r for r in client.get("/apis/apps/v1").json()["resources"]}
    assert resources["deployments"]["kind"] == "Deployment" and "deploy" in resources["deployments"]["shortNames"]
    assert {"deployments/status", "deployments/scale"} <= set(resources)
    core = {r["name"] for r in client.get("/api/v1").json()["resources"]}
    assert {"pods", "pods/log", "pods/status", "configmaps", "namespaces", "events"} <= core


def test_aggregated_discovery(client: httpx.Client) -> None:
    response = client.get("/apis", headers={"Accept": helpers.DISCOVERY_ACCEPT})
    assert response.headers["content-type"] == helpers.DISCOVERY_CONTENT_TYPE
    body = response.json()
    assert body["kind"] == "APIGroupDiscoveryList" and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and "all" in deploy["categories"]
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    core = client.get("/api", headers={"Accept": helpers.DISCOVERY_ACCEPT})
    assert core.headers["content-type"] == helpers.DISCOVERY_CONTENT_TYPE
    assert core.json()["items"][0]["metadata"]["name"] == ""


def test_openapi_v3(client: httpx.Client) -> None:
    index = client.get("/openapi/v3").json()
    assert "apis/apps/v1" in index["paths"] and "api/v1" in index["paths"]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    document = client.get(url).json()
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    params = {p["name"] for p in patch.get("parameters", [])} | {
        p["name"] for p in document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].get("parameters", [])}
    assert "fieldValidation" in params
    assert any(s.get("x-kubernetes-group-version-kind") for s in document["components"]["schemas"].values())
    assert client.get("/openapi/v3/apis/nope.example.com/v1").status_code == 404
    v2 = client.get("/openapi/v2")
    assert v2.status_code == 200 and v2.json()["swagger"] == "2.0"
    definitions = v2.json()["definitions"]
    assert definitions.keys() >= document["components"]["schemas"].keys()
    assert "#/components/" not in v2.text, "references point into the v2 document"
    put = v2.json()["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["put"]
    assert put["parameters"][0]["in"] == "body" and put["responses"]["200"]["schema"]["$ref"].startswith("#/definitions/")
    proto = client.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert proto.status_code == 200 and proto.headers["content-type"].endswith(".v2.v1.0+protobuf")
    assert proto.content.startswith(b"\x0a\x032.0")


def test_version_and_health(client: httpx.Client) -> None:
    for path in ("/version", "/version/"):
        version = client.get(path).json()
        assert version["major"] == "1" and version["minor"] == "32" and version["gitVersion"].startswith("v1.32")
    for path in ("/healthz", "/readyz", "/livez"):
        response = client.get(path)
        assert response.status_code == 200 and response.text == "ok"


# --- CRD lifecycle ---


def test_crd_lifecycle(client: httpx.Client, ns: str) -> None:
    group = f"{helpers.unique('life')}.example.com"
    started = time.monotonic()
    helpers.install_crd(client, helpers.widget_crd(group, plural="gadgets", kind="Gadget"), timeout=1.0)

    def in_aggregated() -> bool:
        items = client.get("/apis", headers={"Accept": helpers.DISCOVERY_ACCEPT}).json()["items"]
        return any(i["metadata"]["name"] == group for i in items)

    def in_openapi() -> bool:
        return f"apis/{group}/v1" in client.get("/openapi/v3").json()["paths"]

    support.wait_for(in_aggregated, timeout=1.0, what="CRD in aggregated discovery")
    support.wait_for(in_openapi, timeout=1.0, what="CRD in openapi")
    assert time.monotonic() - started < 2.0
    path = f"/apis/{group}/v1/namespaces/{ns}/gadgets"
    obj = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"color": "red"}}
    created = helpers.create(client, path, obj)
    assert created["spec"]["size"] == 1  # schema default applied
    deleted = client.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")
    assert deleted.status_code == 200

    def gone() -> bool:
        return (client.get(f"/apis/{group}/v1").status_code == 404 and not in_aggregated() and not in_openapi()
                and client.get(path).status_code == 404)

    support.wait_for(gone, timeout=2.0, what="CRD endpoints removed")
    helpers.install_crd(client, helpers.widget_crd(group, plural="gadgets", kind="Gadget"))
    assert client.get(path).json()["items"] == []  # its objects went with it


@pytest.fixture(scope="module")
def crd_group(client: httpx.Client) -> str:
    group = f"{helpers.unique('rest')}.example.com"
    helpers.install_crd(client, helpers.widget_crd(group))
    return group


def test_patch_with_stale_resource_version_conflicts(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, cm_path(ns), helpers.configmap("pre", {"a": "1"}))
    rv = created["metadata"]["resourceVersion"]
    client.patch(cm_path(ns, "pre"), json={"data": {"a": "2"}}, headers=MERGE)
    stale = client.patch(cm_path(ns, "pre"), json={"metadata": {"resourceVersion": rv}, "data": {"a": "3"}}, headers=MERGE)
    assert_status(stale, 409, "Conflict")
    precondition = client.request("DELETE", cm_path(ns, "pre"),
                                  json={"preconditions": {"resourceVersion": rv}})
    assert_status(precondition, 409, "Conflict")
    assert client.get(cm_path(ns, "pre")).json()["data"] == {"a": "2"}


def test_put_on_missing_object_is_404(client: httpx.Client, ns: str) -> None:
    response = client.put(cm_path(ns, "ghost"), json=helpers.configmap("ghost"))
    assert_status(response, 404, "NotFound", 'configmaps "ghost" not found')
    assert client.get(cm_path(ns, "ghost")).status_code == 404


def test_list_across_namespaces(client: httpx.Client, ns: str) -> None:
    other = helpers.make_namespace(client)
    helpers.create(client, deploy_path(ns), helpers.deployment("one"))
    helpers.create(client, deploy_path(other), helpers.deployment("two"))
    listing = client.get("/apis/apps/v1/deployments").json()
    assert listing["kind"] == "DeploymentList" and listing["apiVersion"] == "apps/v1"
    mine = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listing["items"]}
    assert {(ns, "one"), (other, "two")} <= mine
    assert helpers.names(client.get(deploy_path(ns)).json()) == ["one"]


def test_custom_resource_status_and_scale(client: httpx.Client, ns: str, crd_group: str) -> None:
    path = helpers.widget_path(crd_group, ns, "sw")
    helpers.create(client, helpers.widget_path(crd_group, ns), helpers.widget("sw", crd_group, size=2))
    status = client.patch(path + "/status", json={"status": {"size": 2, "phase": "Ready"}, "spec": {"size": 9}},
                          headers=MERGE)
    assert status.status_code == 200 and status.json()["spec"]["size"] == 2
    main = client.patch(path, json={"spec": {"size": 3}, "status": {"phase": "Lost"}}, headers=MERGE).json()
    assert main["status"]["phase"] == "Ready" and main["spec"]["size"] == 3 and main["metadata"]["generation"] == 2
    scale = client.get(path + "/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 2
    patched = client.patch(path + "/scale", json={"spec": {"replicas": 5}}, headers=MERGE)
    assert patched.status_code == 200 and client.get(path).json()["spec"]["size"] == 5
    invalid = client.patch(path, json={"spec": {"color": "green"}}, headers=MERGE)
    assert assert_status(invalid, 422, "Invalid")["details"]["causes"][0]["field"] == "spec.color"


def test_table_include_object(client: httpx.Client, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("tbl", {"a": "1"}))
    headers = {"Accept": helpers.TABLE_ACCEPT}
    full = client.get(cm_path(ns), headers=headers, params={"includeObject": "Object"}).json()
    assert full["rows"][0]["object"]["data"] == {"a": "1"}
    bare = client.get(cm_path(ns), headers=headers, params={"includeObject": "None"}).json()
    assert not bare["rows"][0].get("object")


async def test_continue_after_compaction_is_410(client: httpx.Client, ns: str, etcd_endpoint: str) -> None:
    from reconcile.store import etcd

    for i in range(4):
        helpers.create(client, cm_path(ns), helpers.configmap(f"x{i}", labels={"keep": "yes" if i % 2 else "no"}))
    first = client.get(cm_path(ns), params={"limit": 1, "labelSelector": "keep=yes"}).json()
    assert helpers.names(first) == ["x1"] and first["metadata"]["continue"]
    second = client.get(cm_path(ns), params={"limit": 1, "labelSelector": "keep=yes",
                                             "continue": first["metadata"]["continue"]}).json()
    assert helpers.names(second) == ["x3"] and not second["metadata"].get("continue")
    helpers.create(client, cm_path(ns), helpers.configmap("after"))
    async with etcd.EtcdStore([etcd_endpoint], prefix="/compactor-only") as store:
        await store.compact(await store.current_revision())
    expired = client.get(cm_path(ns), params={"limit": 1, "labelSelector": "keep=yes",
                                              "continue": first["metadata"]["continue"]})
    status = assert_status(expired, 410, "Expired")
    assert status["message"].startswith("The provided continue parameter is too old")
