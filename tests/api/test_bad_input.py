"""Hostile or broken requests: each gets the right error fast, stores nothing, and the server keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api import helpers
from tests.api.helpers import assert_status, cm_path, deploy_path

BILLION_LAUGHS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
data: {x: *i}
"""


@pytest.fixture(autouse=True)
def server_still_serves(client: httpx.Client) -> Iterator[None]:
    """After every bad request the server must still answer normal ones."""
    yield
    assert client.get("/readyz").text == "ok"
    assert client.get("/api/v1/namespaces/default").status_code == 200


def _nothing_stored(client: httpx.Client, ns: str) -> None:
    assert client.get(cm_path(ns)).json()["items"] == []
    assert client.get(deploy_path(ns)).json()["items"] == []


def test_invalid_json_and_yaml(client: httpx.Client, ns: str) -> None:
    bad_json = client.post(cm_path(ns), content=b'{"apiVersion": "v1", "kind": ', headers={"Content-Type": "application/json"})
    assert_status(bad_json, 400, "BadRequest")
    bad_yaml = client.post(cm_path(ns), content=b"a: [\n b", headers={"Content-Type": "application/yaml"})
    status = assert_status(bad_yaml, 400, "BadRequest")
    assert "yaml" in status["message"].lower()
    not_object = client.post(cm_path(ns), content=b"[1, 2, 3]", headers={"Content-Type": "application/json"})
    assert_status(not_object, 400, "BadRequest")
    empty = client.post(cm_path(ns), content=b"", headers={"Content-Type": "application/json"})
    assert_status(empty, 400, "BadRequest")
    bad_patch = client.patch(cm_path("default", "kube-root-ca"), content=b"{nope",
                             headers={"Content-Type": "application/merge-patch+json"})
    assert bad_patch.status_code in (400, 404)
    _nothing_stored(client, ns)


def test_yaml_body_is_accepted_when_valid(client: httpx.Client, ns: str) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\ndata:\n  a: '1'\n"
    created = client.post(cm_path(ns), content=body, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201 and created.json()["data"] == {"a": "1"}


def test_unknown_kinds_and_paths(client: httpx.Client, ns: str) -> None:
    not_found = "the server could not find the requested resource"
    assert_status(client.post(f"/apis/nope.example.com/v1/namespaces/{ns}/foos", json={}), 404, "NotFound", not_found)
    assert_status(client.get(f"/api/v1/namespaces/{ns}/foos"), 404, "NotFound", not_found)
    assert_status(client.get("/apis/apps/v9/deployments"), 404, "NotFound")
    assert_status(client.get("/apis/nope.example.com"), 404, "NotFound")
    assert_status(client.get(cm_path(ns, "x") + "/bogus"), 404, "NotFound")
    # as kube-apiserver's: empty details, present (kubectl 1.32's debug reads details.name of a 404)
    assert client.get(cm_path(ns, "x") + "/bogus").json()["details"] == {}
    wrong_kind = client.post(cm_path(ns), json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    assert_status(wrong_kind, 400, "BadRequest")
    _nothing_stored(client, ns)


def test_missing_namespace(client: httpx.Client, ns: str) -> None:
    missing = client.post(deploy_path("does-not-exist"), json=helpers.deployment("web"))
    assert_status(missing, 404, "NotFound", 'namespaces "does-not-exist" not found')
    no_namespace = client.post("/api/v1/configmaps", json=helpers.configmap("x"))
    assert 400 <= no_namespace.status_code < 500
    assert client.get("/api/v1/configmaps", params={"fieldSelector": "metadata.name=x"}).json()["items"] == []


def test_schema_violations_name_each_field(client: httpx.Client, ns: str) -> None:
    body = helpers.deployment("bad")
    body["metadata"]["name"] = "Bad_Name"
    body["metadata"]["labels"] = {"bad key!": "x"}
    body["spec"]["replicas"] = -1
    body["spec"]["template"]["spec"]["containers"][0]["image"] = 5
    response = client.post(deploy_path(ns), json=body)
    status = assert_status(response, 422, "Invalid")
    assert status["message"].startswith('Deployment.apps "Bad_Name" is invalid: ')
    assert status["details"]["kind"] == "Deployment" and status["details"]["name"] == "Bad_Name"
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert {"metadata.name", "metadata.labels", "spec.replicas", "spec.template.spec.containers[0].image"} <= fields
    replicas = next(c for c in status["details"]["causes"] if c["field"] == "spec.replicas")
    assert "greater than or equal to 0" in replicas["message"]
    no_containers = helpers.deployment("bad2")
    del no_containers["spec"]["template"]["spec"]["containers"]
    missing = assert_status(client.post(deploy_path(ns), json=no_containers), 422, "Invalid")
    assert any("containers" in c["field"] for c in missing["details"]["causes"]), missing
    _nothing_stored(client, ns)


def test_invalid_update_leaves_object_unchanged(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, deploy_path(ns), helpers.deployment("web", replicas=2))
    bad = client.patch(deploy_path(ns, "web"), json={"spec": {"replicas": "many"}},
                       headers={"Content-Type": "application/merge-patch+json"})
    assert_status(bad, 422, "Invalid")
    live = client.get(deploy_path(ns, "web")).json()
    assert live["spec"]["replicas"] == 2 and live["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_body_over_3mib_is_413_fast(client: httpx.Client, ns: str) -> None:
    big = helpers.configmap("big", {"blob": "x" * (3 * 1024 * 1024 + 10)})
    started = time.monotonic()
    response = client.post(cm_path(ns), json=big)
    assert time.monotonic() - started < 2.0
    assert_status(response, 413, "RequestEntityTooLarge")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must apply while streaming
        yield b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"blob":"'
        for _ in range(40):
            yield b"y" * 100_000
        yield b'"}}'

    streamed = client.post(cm_path(ns), content=chunks(), headers={"Content-Type": "application/json"})
    assert_status(streamed, 413)
    _nothing_stored(client, ns)


def test_object_over_etcd_limit_is_4xx(client: httpx.Client, ns: str) -> None:
    big = helpers.configmap("huge", {"blob": "z" * (2 * 1024 * 1024)})
    started = time.monotonic()
    response = client.post(cm_path(ns), json=big)
    assert time.monotonic() - started < 5.0
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["kind"] == "Status"
    helpers.create(client, cm_path(ns), helpers.configmap("grow", {"blob": "a"}))
    grow = client.put(cm_path(ns, "grow"), json=helpers.configmap("grow", {"blob": "b" * (2 * 1024 * 1024)}))
    assert 400 <= grow.status_code < 500
    assert client.get(cm_path(ns, "grow")).json()["data"] == {"blob": "a"}
    assert client.get(cm_path(ns, "huge")).status_code == 404


def test_yaml_bomb_is_refused_fast(client: httpx.Client, ns: str) -> None:
    started = time.monotonic()
    response = client.post(cm_path(ns), content=BILLION_LAUGHS, headers={"Content-Type": "application/yaml"})
    elapsed = time.monotonic() - started
    assert 400 <= response.status_code < 500 and elapsed < 0.5, (response.status_code, elapsed)
    assert response.json()["kind"] == "Status"
    patch = client.patch(cm_path(ns, "bomb"), content=BILLION_LAUGHS,
                         headers={"Content-Type": "application/apply-patch+yaml"}, params={"fieldManager": "t"})
    assert 400 <= patch.status_code < 500
    _nothing_stored(client, ns)


def test_a_json_patch_that_doubles_itself_is_refused_fast(client: httpx.Client, ns: str) -> None:
    """Found writing tests/fuzz: each `copy` of a map into itself doubles the object; 40 of them (2 KB)
    froze the server (the patch ran on its event loop) instead of being refused."""
    created = helpers.create(client, cm_path(ns), helpers.configmap("doubling"))
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"seed": "x"}}]
    ops += [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/c{i}"} for i in range(40)]
    started = time.monotonic()
    response = client.patch(cm_path(ns, "doubling"), json=ops, headers=helpers.JSONPATCH)
    assert time.monotonic() - started < 2.0
    assert_status(response, 413, "RequestEntityTooLarge")
    assert client.get(cm_path(ns, "doubling")).json() == created


def test_protobuf_body_of_a_kind_without_a_table_is_415(client: httpx.Client, ns: str) -> None:
    body = b"k8s\x00\n\x0b\n\x02v1\x12\x05Event\x12\x06\n\x04name"
    response = client.post(f"/api/v1/namespaces/{ns}/events", content=body,
                           headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert_status(response, 415, "UnsupportedMediaType")


def test_malformed_protobuf_pod_is_400(client: httpx.Client, ns: str) -> None:
    """Pods are read in protobuf (client-go's typed create); a metadata that is not a message is a 400."""
    body = b"k8s\x00\n\x09\n\x02v1\x12\x03Pod\x12\x06\n\x04name"
    response = client.post(f"/api/v1/namespaces/{ns}/pods", content=body,
                           headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert_status(response, 400, "BadRequest")
    assert "protobuf Pod: metadata" in response.json()["message"]


def test_malformed_protobuf_configmap_is_400(client: httpx.Client, ns: str) -> None:
    """ConfigMaps are read in protobuf (kubectl create configmap); bytes that are not one are a 400."""
    body = b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x06\n\x04name"
    response = client.post(cm_path(ns), content=body, headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert_status(response, 400, "BadRequest")
    assert "protobuf ConfigMap: metadata" in response.json()["message"]
    _nothing_stored(client, ns)


def test_unsupported_patch_type_is_415(client: httpx.Client, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("p"))
    response = client.patch(cm_path(ns, "p"), content=b"{}", headers={"Content-Type": "text/plain"})
    assert_status(response, 415, "UnsupportedMediaType")


def test_protobuf_accept_still_gets_json(client: httpx.Client) -> None:
    response = client.get("/api/v1/namespaces/default",
                          headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.json()["metadata"]["name"] == "default"


# --- found by tests/fuzz ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"dryRun": 5}, {"dryRun": "All"}, {"dryRun": {"All": 1}}, {"dryRun": ["Nope"]}, {"dryRun": [["All"]]},
    {"gracePeriodSeconds": "5"}, {"gracePeriodSeconds": 1.5}, {"gracePeriodSeconds": True},
    {"gracePeriodSeconds": 2**63}, {"propagationPolicy": ["Orphan"]}, {"orphanDependents": "yes"},
    {"preconditions": {"uid": 5}}, {"preconditions": "x"}, {"kind": "Pod"}, {"apiVersion": "x", "kind": "DeleteOptions"},
    {"orphanDependents": True, "propagationPolicy": "Orphan"},
])
def test_malformed_delete_options_are_400_and_delete_nothing(client: httpx.Client, ns: str, options: dict) -> None:
    """A `dryRun` of 5 was a 500; "All" as a string, or a map, passed for a dry run (by Python's
    `in`) and the delete answered Success having deleted nothing: DeleteOptions are typed now."""
    created = helpers.create(client, cm_path(ns), helpers.configmap("doomed"))
    response = client.request("DELETE", cm_path(ns, "doomed"), json=options)
    assert_status(response, 400, "BadRequest")
    assert client.get(cm_path(ns, "doomed")).json() == created


def test_a_grace_period_beyond_int64_is_400(client: httpx.Client, ns: str) -> None:
    """On a pod bound to a node such a grace period was stored, and encoding it failed: a 500."""
    pod = helpers.pod("bound", node="node-a")
    created = helpers.create(client, helpers.pod_path(ns), pod)
    response = client.delete(helpers.pod_path(ns, "bound"), params={"gracePeriodSeconds": str(2**64)})
    assert_status(response, 400, "BadRequest")
    assert client.get(helpers.pod_path(ns, "bound")).json() == created
    assert client.request("DELETE", helpers.pod_path(ns, "bound"), json={"dryRun": ["All"]}).status_code == 200
    assert client.get(helpers.pod_path(ns, "bound")).json() == created


@pytest.mark.parametrize("rv", [str(2**63), str(2**64), "9" * 30, "9" * 5000])
def test_a_resource_version_beyond_int64_is_400_at_once(client: httpx.Client, ns: str, rv: str) -> None:
    """Such a revision never comes: reads waited 3 s for it and answered 504 (5,000 digits: a 500)."""
    helpers.create(client, cm_path(ns), helpers.configmap("there"))
    started = time.monotonic()
    for path, params in ((cm_path(ns, "there"), {}), (cm_path(ns), {}), (cm_path(ns), {"resourceVersionMatch": "Exact"}),
                         (cm_path(ns), {"watch": "true"})):
        assert_status(client.get(path, params={"resourceVersion": rv, **params}), 400, "BadRequest")
    update = helpers.configmap("there", {"a": "b"})
    update["metadata"]["resourceVersion"] = rv
    assert_status(client.put(cm_path(ns, "there"), json=update), 400, "BadRequest")
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("field", ["ключ", "a\nb", "a\r\nX-Injected: 1", 'q"uo\\te', "x" * 20_000])
def test_warnings_quote_any_unknown_field_safely(client: httpx.Client, ns: str, field: str) -> None:
    """Under fieldValidation=Warn the warning names the unknown field: a non-latin-1 name was a 500
    and a newline dropped the connection, both after the object was stored."""
    body = helpers.configmap("warned", {"a": "1"})
    body[field] = 1
    response = client.post(cm_path(ns), json=body, params={"fieldValidation": "Warn"})
    assert response.status_code == 201, response.text
    warning = next(value for name, value in response.headers.raw if name.lower() == b"warning").decode()  # UTF-8
    assert warning.startswith('299 - "unknown field') and "\n" not in warning and "\r" not in warning
    assert "X-Injected" not in response.headers and len(warning) < 5000
    assert client.get(cm_path(ns, "warned")).json() == response.json()


@pytest.mark.parametrize("metadata", ["str", ["a"], 5])
def test_apply_that_creates_needs_object_metadata(client: httpx.Client, ns: str, metadata: Any) -> None:
    """An apply to a missing name with metadata that is not an object was a 500."""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "1"}})
    response = client.patch(cm_path(ns, "applied"), content=body, params={"fieldManager": "t"}, headers=helpers.APPLY)
    assert_status(response, 400, "BadRequest")
    assert client.get(cm_path(ns, "applied")).status_code == 404


def test_apply_that_creates_keeps_the_url_name(client: httpx.Client, ns: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})
    response = client.patch(cm_path(ns, "applied"), content=body, params={"fieldManager": "t"}, headers=helpers.APPLY)
    assert_status(response, 400, "BadRequest")
    assert client.get(cm_path(ns, "applied")).status_code == 404 and client.get(cm_path(ns, "other")).status_code == 404


@pytest.mark.parametrize("metadata", ["x", ["x"], {"resourceVersion": 5}])
def test_scale_needs_object_metadata(client: httpx.Client, ns: str, metadata: Any) -> None:
    """A Scale whose metadata was not an object was a 500 (PUT and PATCH)."""
    created = helpers.create(client, deploy_path(ns), helpers.deployment("scaled"))
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": metadata, "spec": {"replicas": 3}}
    assert_status(client.put(deploy_path(ns, "scaled") + "/scale", json=scale), 400, "BadRequest")
    patched = client.patch(deploy_path(ns, "scaled") + "/scale", json={"metadata": metadata, "spec": {"replicas": 3}},
                           headers=helpers.MERGE)
    assert_status(patched, 400, "BadRequest")
    assert client.get(deploy_path(ns, "scaled")).json() == created


def test_an_integral_float_in_an_integer_field_is_stored_as_an_integer(client: httpx.Client, ns: str) -> None:
    """`replicas: 2.0` was stored (and served) as 2.0, a float a controller then counts with."""
    body = helpers.deployment("floaty", replicas=1)
    body["spec"]["replicas"] = 2.0
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80.0}]
    created = client.post(deploy_path(ns), json=body)
    assert created.status_code == 201, created.text
    for answer in (created, client.get(deploy_path(ns, "floaty"))):
        obj = json.loads(answer.content)  # the standard library keeps 2.0 a float
        port = obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert type(obj["spec"]["replicas"]) is int and type(port) is int, answer.text
    fraction = client.patch(deploy_path(ns, "floaty"), json={"spec": {"replicas": 2.5}}, headers=helpers.MERGE)
    assert_status(fraction, 422, "Invalid")


def test_a_yaml_alias_gives_each_place_its_own_copy(client: httpx.Client, ns: str) -> None:
    """An alias shared one Python object between places, and the server changes objects after
    validating them: `data: *m` gave a ConfigMap an integer data value (a 500 as its size was
    counted), `template: {metadata: *m}` stored the Deployment's uid in its pod template."""
    configmap = b"apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: aliased\ndata: *m\n"
    created = client.post(cm_path(ns), content=configmap, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201, created.text
    assert client.get(cm_path(ns, "aliased")).json()["data"] == {"name": "aliased"}
    deployment = b"""apiVersion: apps/v1
kind: Deployment
metadata: &m {name: aliased, labels: {app: a}}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: *m
    spec: {containers: [{name: c, image: x}]}
"""
    created = client.post(deploy_path(ns), content=deployment, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["template"]["metadata"] == {"name": "aliased", "labels": {"app": "a"}}
    assert client.get(deploy_path(ns, "aliased")).json() == created.json()


@pytest.mark.parametrize("finalizers", [[{"a": 1}], [["x"]], "example.com/hold", {"a": 1}])
def test_wrong_typed_finalizers_on_an_object_being_deleted_are_422(client: httpx.Client, ns: str,
                                                                   finalizers: Any) -> None:
    """The check for finalizers added during deletion put a map in a set: 500 (found by tests/fuzz)."""
    body = helpers.configmap("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    helpers.create(client, cm_path(ns), body)
    assert client.delete(cm_path(ns, "held")).status_code == 200
    held = client.get(cm_path(ns, "held")).json()
    update = json.loads(json.dumps(held))
    update["metadata"]["finalizers"] = finalizers
    assert_status(client.put(cm_path(ns, "held"), json=update), 422, "Invalid")
    assert client.get(cm_path(ns, "held")).json() == held
    client.patch(cm_path(ns, "held"), json={"metadata": {"finalizers": None}}, headers=helpers.MERGE)
