"""Regression tests of issue 8 ("a trustworthy API server"), each reproduced against a real server.

Hostile and malformed requests get a clear 4xx (never a 500), nothing half-written is stored,
nothing written is altered, and the list contract holds exactly as upstream's.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from reconcile.store import etcd, keys
from tests import support
from tests.api import helpers
from tests.api.helpers import MERGE, assert_status, cm_path, deploy_path, pod_path

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def pod(name: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **metadata},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def deployment(name: str, replicas: Any = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


# --- one bad object never reaches storage --------------------------------------------------------


@pytest.mark.parametrize("owner_references", [["str"], [{"apiVersion": "v1", "kind": "Pod", "name": 5, "uid": "u"}],
                                              [{"kind": "Pod", "name": "p", "uid": "u"}], "not-a-list"])
def test_malformed_owner_references_are_refused(client: httpx.Client, ns: str, owner_references: Any) -> None:
    response = client.post(pod_path(ns), json=pod("bad-owner", ownerReferences=owner_references))
    status = assert_status(response, 422, "Invalid")
    assert any(c["field"].startswith("metadata.ownerReferences") for c in status["details"]["causes"]), status
    assert client.get(pod_path(ns, "bad-owner")).status_code == 404


def test_malformed_metadata_on_update_is_refused(client: httpx.Client, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("cm"))
    response = client.patch(cm_path(ns, "cm"), json={"metadata": {"finalizers": [1]}}, headers=MERGE)
    assert_status(response, 422, "Invalid")
    assert "finalizers" not in client.get(cm_path(ns, "cm")).json()["metadata"]


@pytest.mark.parametrize("replicas", [1099511627776, 2**31, -(2**31) - 1])
def test_int32_fields_are_range_checked(client: httpx.Client, ns: str, replicas: int) -> None:
    status = assert_status(client.post(deploy_path(ns), json=deployment("big", replicas)), 422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.replicas"]


def test_scale_refuses_more_than_int32(client: httpx.Client, ns: str) -> None:
    helpers.create(client, deploy_path(ns), deployment("web"))
    response = client.patch(deploy_path(ns, "web") + "/scale", json={"spec": {"replicas": 2**31}}, headers=MERGE)
    assert_status(response, 422, "Invalid")
    assert client.get(deploy_path(ns, "web")).json()["spec"]["replicas"] == 1


# --- nothing written is lost or altered ------------------------------------------------------------


def test_secret_string_data_is_merged_into_data_and_never_stored(client: httpx.Client, ns: str) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"kept": base64.b64encode(b"old").decode(), "both": base64.b64encode(b"data").decode()},
            "stringData": {"plain": "hello", "both": "stringData wins"}}
    created = helpers.create(client, secret_path(ns), body)
    decoded = {k: base64.b64decode(v).decode() for k, v in created["data"].items()}
    assert decoded == {"kept": "old", "both": "stringData wins", "plain": "hello"}
    assert "stringData" not in created
    stored = client.get(secret_path(ns, "s")).json()
    assert stored["data"] == created["data"] and "stringData" not in stored
    patched = client.patch(secret_path(ns, "s"), json={"stringData": {"plain": "again"}}, headers=MERGE).json()
    assert base64.b64decode(patched["data"]["plain"]) == b"again" and "stringData" not in patched
    assert base64.b64decode(patched["data"]["kept"]) == b"old"


@pytest.mark.parametrize("data", [{"a b": "x"}, {"..": "x"}, {"a/b": "x"}])
def test_config_map_keys_must_be_file_names(client: httpx.Client, ns: str, data: dict[str, str]) -> None:
    status = assert_status(client.post(cm_path(ns), json=helpers.configmap("keys", data)), 422, "Invalid")
    assert status["details"]["causes"][0]["field"] == f"data[{next(iter(data))}]"


def test_secret_data_must_be_base64(client: httpx.Client, ns: str) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b64"}, "data": {"k": "not base64!"}}
    assert_status(client.post(secret_path(ns), json=body), 422, "Invalid")


def test_an_immutable_config_map_keeps_its_data(client: httpx.Client, ns: str) -> None:
    body = helpers.configmap("frozen", {"a": "1"})
    body["immutable"] = True
    helpers.create(client, cm_path(ns), body)
    assert_status(client.patch(cm_path(ns, "frozen"), json={"data": {"a": "2"}}, headers=MERGE), 422, "Invalid")
    assert_status(client.patch(cm_path(ns, "frozen"), json={"immutable": False}, headers=MERGE), 422, "Invalid")
    assert client.get(cm_path(ns, "frozen")).json()["data"] == {"a": "1"}


def test_yaml_keys_decode_as_strings_and_none_is_dropped(client: httpx.Client, ns: str) -> None:
    """YAML 1.1 reads `on` as true and `1` as an integer; as kubectl does, they become "true" and "1"."""
    text = f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\n  namespace: {ns}\ndata:\n  on: "4"\n  1: "y"\n'
    created = client.post(cm_path(ns), content=text, headers=YAML)
    assert created.status_code == 201, created.text
    assert created.json()["data"] == {"true": "4", "1": "y"}


def test_created_built_ins_with_a_status_answer_with_one(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, deploy_path(ns), deployment("with-status"))
    assert created["status"] == {}
    assert helpers.create(client, pod_path(ns), pod("p"))["status"]["phase"] == "Pending"
    assert "status" not in helpers.create(client, cm_path(ns), helpers.configmap("no-status"))


def test_pods_and_templates_get_upstream_defaults(client: httpx.Client, ns: str) -> None:
    """As upstream defaults them, so a pod template read back and written again is the same template."""
    created = helpers.create(client, pod_path(ns), pod("defaults"))
    container = created["spec"]["containers"][0]
    assert container["resources"] == {} and container["imagePullPolicy"] == "Always"  # busybox: no tag
    assert (container["terminationMessagePath"], container["terminationMessagePolicy"]) == (
        "/dev/termination-log", "File")
    body = deployment("tmpl")
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.36"
    template = helpers.create(client, deploy_path(ns), body)["spec"]["template"]["spec"]["containers"][0]
    assert template["imagePullPolicy"] == "IfNotPresent" and template["resources"] == {}


# --- an object written around the API (corrupt in etcd) ---------------------------------------------


async def test_a_corrupt_stored_object_never_breaks_lists_or_watches(
        server_process: support.ApiServerProcess, etcd_endpoint: str, client: httpx.Client, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("good"))
    watch_rv = client.get(cm_path(ns)).json()["metadata"]["resourceVersion"]
    async with etcd.EtcdStore([etcd_endpoint], prefix=server_process.prefix) as store:
        await store.create(keys.object_key("", "configmaps", ns, "bad-json"), b"{not json")
        await store.create(keys.object_key("", "configmaps", ns, "bad-meta"), b'{"metadata": ["x"]}')
    helpers.create(client, cm_path(ns), helpers.configmap("after"))
    with client.stream("GET", cm_path(ns), params={"watch": "true", "resourceVersion": watch_rv,
                                                   "timeoutSeconds": "5"}) as stream:
        names = []
        for line in stream.iter_lines():
            event = orjson.loads(line)
            names.append(event["object"]["metadata"]["name"])
            if names[-1] == "after":
                break
    assert names == ["after"]  # the corrupt ones are left out, the stream goes on
    assert helpers.names(client.get(cm_path(ns)).json()) == ["after", "good"]
    assert helpers.names(client.get("/api/v1/configmaps", params={"fieldSelector": f"metadata.namespace={ns}"})
                         .json()) == ["after", "good"]
    status = assert_status(client.get(cm_path(ns, "bad-json")), 500, "InternalError")
    assert "cannot be decoded" in status["message"]
    assert_status(client.delete(cm_path(ns, "bad-json")), 500)
    unsafe = client.request("DELETE", cm_path(ns, "bad-json"),
                            json={"ignoreStoreReadErrorWithClusterBreakingPotential": True})
    assert unsafe.status_code == 200, unsafe.text
    assert client.get(cm_path(ns, "bad-json")).status_code == 404


# --- parsing as upstream ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "headers", "code"), [
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},}', JSON, 400),  # trailing comma
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", JSON, 400),  # YAML under a JSON type
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}', {"Content-Type": "text/plain"}, 415),
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "name": "y"}}', JSON, 400),  # Strict
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": 5}}', JSON, 400),
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": NaN}}', JSON, 400),
    (b"kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\ndata: {a: .inf}\n", YAML, 400),
    (b"a: &a [*a]\n", YAML, 413),
])
def test_malformed_bodies_are_refused_clearly(client: httpx.Client, ns: str, body: bytes,
                                              headers: dict[str, str], code: int) -> None:
    response = client.post(cm_path(ns), content=body, headers=headers, params={"fieldValidation": "Strict"})
    assert_status(response, code)
    assert client.get(cm_path(ns, "x")).status_code == 404


def test_duplicate_keys_pass_unless_strict(client: httpx.Client, ns: str) -> None:
    body = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}, "data": {"a": "1", "a": "2"}}'
    response = client.post(cm_path(ns), content=body, headers=JSON, params={"fieldValidation": "Ignore"})
    assert response.status_code == 201 and response.json()["data"] == {"a": "2"}


def test_an_array_body_on_scale_is_a_bad_request(client: httpx.Client, ns: str) -> None:
    helpers.create(client, deploy_path(ns), deployment("arr"))
    assert_status(client.put(deploy_path(ns, "arr") + "/scale", json=[1, 2]), 400)
    assert_status(client.patch(deploy_path(ns, "arr") + "/scale", json=[{"op": "add"}], headers=MERGE), 400)


# --- the list and watch contract --------------------------------------------------------------------


def _token(**fields: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", **fields})).decode().rstrip("=")


def test_a_forged_continue_token_reads_nothing_else(client: httpx.Client, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hidden"}, "stringData": {"k": "v"}}
    helpers.create(client, secret_path(ns), secret)
    rv = client.get(cm_path(ns)).json()["metadata"]["resourceVersion"]
    for start in (f"core/secrets/{ns}/", "../secrets/x", "a\x00b"):
        response = client.get("/api/v1/namespaces/default/services",
                              params={"limit": 5, "continue": _token(rv=int(rv), start=start)})
        assert_status(response, 400, "BadRequest")
    # a real token of one namespace's list does not page another's, nor the same list with other selectors
    for i in range(3):
        helpers.create(client, cm_path(ns), helpers.configmap(f"c{i}"))
    token = client.get(cm_path(ns), params={"limit": 1}).json()["metadata"]["continue"]
    assert_status(client.get(cm_path("default"), params={"limit": 1, "continue": token}), 400)
    assert_status(client.get("/api/v1/secrets", params={"limit": 1, "continue": token}), 400)
    assert_status(client.get(cm_path(ns), params={"limit": 1, "continue": token, "labelSelector": "a=b"}), 400)
    assert client.get(cm_path(ns), params={"limit": 1, "continue": token}).status_code == 200


@pytest.mark.parametrize("params", [
    {"limit": "-1"}, {"limit": "-100000"}, {"limit": "x"},
    {"resourceVersion": "-5"}, {"resourceVersion": "abc"},
    {"resourceVersionMatch": "Exact"}, {"resourceVersionMatch": "Sometime", "resourceVersion": "1"},
    {"resourceVersionMatch": "Exact", "resourceVersion": "0"},
    {"watch": "garbage"}, {"watch": "true", "resourceVersion": "-1"},
])
def test_bad_list_options_are_400(client: httpx.Client, ns: str, params: dict[str, str]) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("one"))
    assert_status(client.get(cm_path(ns), params=params), 400)


def test_negative_limits_never_drop_items(client: httpx.Client, ns: str) -> None:
    for i in range(3):
        helpers.create(client, cm_path(ns), helpers.configmap(f"n{i}"))
    assert_status(client.get(cm_path(ns), params={"limit": "-1"}), 400)
    assert helpers.names(client.get(cm_path(ns), params={"limit": "0"}).json()) == ["n0", "n1", "n2"]


def test_resource_version_match_exact_serves_that_snapshot(client: httpx.Client, ns: str) -> None:
    first = helpers.create(client, cm_path(ns), helpers.configmap("snap", {"v": "1"}))
    rv = first["metadata"]["resourceVersion"]
    client.patch(cm_path(ns, "snap"), json={"data": {"v": "2"}}, headers=MERGE)
    helpers.create(client, cm_path(ns), helpers.configmap("later"))
    exact = client.get(cm_path(ns), params={"resourceVersion": rv, "resourceVersionMatch": "Exact"}).json()
    assert exact["metadata"]["resourceVersion"] == rv
    assert [(i["metadata"]["name"], i["data"]) for i in exact["items"]] == [("snap", {"v": "1"})]
    newer = client.get(cm_path(ns), params={"resourceVersion": rv, "resourceVersionMatch": "NotOlderThan"}).json()
    assert helpers.names(newer) == ["later", "snap"]


# --- hostile bodies never freeze the server ---------------------------------------------------------

HOSTILE = {
    "yaml flow list of 1.4M scalars": (b"[" + b"0," * 1_400_000 + b"0]", "application/yaml"),
    "yaml block list of 700k scalars": (b"- 0\n" * 700_000, "application/yaml"),  # over the YAML cap
    "yaml document of 190k keys": ("".join(f"k{i}: v\n" for i in range(190_000)).encode(), "application/yaml"),
    "yaml block list of 200k scalars": (b"- 0\n" * 200_000, "application/yaml"),  # under it: the node limit
    "yaml document of 60k keys": ("".join(f"k{i}: v\n" for i in range(60_000)).encode(), "application/yaml"),
    "yaml alias bomb": (b"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                        b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                        b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "application/yaml"),
    "json nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "application/json"),
    "yaml nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "application/yaml"),
    "json list of 1.4M scalars": (b"[" + b"0," * 1_400_000 + b"0]", "application/json"),
    "json map of 190k keys": (orjson.dumps({f"k{i}": i for i in range(190_000)}), "application/json"),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_each_hostile_body_is_a_client_error(client: httpx.Client, ns: str, kind: str) -> None:
    body, content_type = HOSTILE[kind]
    assert len(body) < 3 * 1024 * 1024
    response = client.post(cm_path(ns), content=body, headers={"Content-Type": content_type}, timeout=30)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["kind"] == "Status"


async def test_the_server_answers_others_while_hostile_bodies_are_in_flight(api_server: str, ns: str) -> None:
    """Health and reads are served while a flood of hostile bodies is decoded (they go to worker
    processes), not after it: every probe answered before the last hostile body did."""
    kinds = [HOSTILE["yaml block list of 200k scalars"], HOSTILE["yaml document of 60k keys"],
             HOSTILE["json list of 1.4M scalars"]]
    verify = support.connection(api_server).ssl_context()
    async with httpx.AsyncClient(base_url=api_server, timeout=60.0, verify=verify,
                                 limits=httpx.Limits(max_connections=40)) as attacker, \
            httpx.AsyncClient(base_url=api_server, timeout=60.0, verify=verify) as prober:
        helpers_cm = await prober.post(cm_path(ns), json=helpers.configmap("probe"))
        assert helpers_cm.status_code == 201
        answered: list[float] = []

        async def attack(body: bytes, content_type: str) -> None:
            response = await attacker.post(cm_path(ns), content=body, headers={"Content-Type": content_type})
            assert 400 <= response.status_code < 500, response.text[:200]
            answered.append(time.monotonic())

        attacks = [asyncio.create_task(attack(*kind)) for kind in kinds for _ in range(8)]
        probes: list[float] = []
        while not all(task.done() for task in attacks) and len(probes) < 200:
            assert (await prober.get("/healthz")).status_code == 200
            assert (await prober.get(cm_path(ns, "probe"))).status_code == 200
            probes.append(time.monotonic())
        await asyncio.gather(*attacks)
    assert len(probes) >= 3, "the probes did not get through while the bodies were in flight"
    assert probes[2] < max(answered)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_body_decoder_workers_end_with_the_server(etcd_endpoint: str, ending: str) -> None:
    """Large bodies are decoded in worker processes; none may outlive the server however it ends
    (they once lingered, blocked on their own queue, after every server stopped)."""
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry")
    server.start()
    try:
        assert server.process is not None
        with server.connection.http_client() as client:
            response = client.post(cm_path("default"), content=b"kind: ConfigMap\n", headers=YAML)
        assert response.status_code == 422  # decoded (in a worker: YAML always is), then refused: no name
        workers = support.wait_for(lambda: _children(server.process.pid), what="decoder workers")
        if ending == "SIGKILL":
            server.process.kill()
            server.process.wait()
        else:
            server.stop()
        support.wait_for(lambda: not any(_running(pid) for pid in workers), timeout=10,
                         what="the decoder workers to exit")
    finally:
        server.stop()
