"""The official `kubernetes` Python client against the API server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import config, watch
from kubernetes.client.rest import ApiException

from tests import support
from tests.api import helpers


@pytest.fixture
def api_client(kube_env: dict[str, str]) -> Iterator[k8s.ApiClient]:
    api = config.new_client_from_config(config_file=kube_env["KUBECONFIG"])
    try:
        yield api
    finally:
        api.close()


def test_version(api_client: k8s.ApiClient) -> None:
    info = k8s.VersionApi(api_client).get_code()
    assert info.major == "1" and info.minor == "32"


def test_configmap_lifecycle(api_client: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api_client)
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="pc", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, body)
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    listed = core.list_namespaced_config_map(ns, label_selector="app=py")
    assert [c.metadata.name for c in listed.items] == ["pc"]
    patched = core.patch_namespaced_config_map("pc", ns, {"data": {"b": "2"}})  # strategic merge
    assert patched.data == {"a": "1", "b": "2"}
    replaced = core.replace_namespaced_config_map("pc", ns, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="pc", resource_version=patched.metadata.resource_version), data={"c": "3"}))
    assert replaced.data == {"c": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("pc", ns, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="pc", resource_version=patched.metadata.resource_version), data={}))
    assert conflict.value.status == 409
    core.delete_namespaced_config_map("pc", ns)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("pc", ns)
    assert missing.value.status == 404


def test_watch_stream(api_client: k8s.ApiClient, client: httpx.Client, ns: str) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w1")))
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    helpers.create(client, helpers.cm_path(ns), helpers.configmap("w2"))
    client.delete(helpers.cm_path(ns, "w1"))
    seen: list[tuple[str, str]] = []
    stream = watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5)
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "w2"), ("DELETED", "w1")]
    assert isinstance(event["object"], k8s.V1ConfigMap)


def test_watch_too_old_raises_410(api_client: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api_client)
    with pytest.raises(ApiException) as expired:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version="1", timeout_seconds=5):
            pass
    assert expired.value.status == 410


def test_custom_resource_lifecycle(api_client: k8s.ApiClient, client: httpx.Client, ns: str) -> None:
    group = f"{helpers.unique('py')}.example.com"
    ext = k8s.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(helpers.widget_crd(group))
    support.wait_for(lambda: client.get(f"/apis/{group}/v1").status_code == 200, timeout=5, what="CRD served")
    custom = k8s.CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(group, "v1", ns, "widgets", helpers.widget("w1", group))
    assert created["spec"] == {"color": "red", "size": 1} and created["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    patched = custom.patch_namespaced_custom_object(group, "v1", ns, "widgets", "w1", {"spec": {"size": 5}})  # merge
    assert patched["spec"] == {"color": "red", "size": 5}
    status = custom.patch_namespaced_custom_object_status(group, "v1", ns, "widgets", "w1", {"status": {"ok": True}})
    assert status["status"] == {"ok": True} and status["spec"]["size"] == 5
    rv = listed["metadata"]["resourceVersion"]
    events = []
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, group, "v1", ns, "widgets",
                                      resource_version=rv, timeout_seconds=5):
        events.append((event["type"], event["object"]["metadata"]["name"]))
        if len(events) == 2:
            break
    assert events == [("MODIFIED", "w1"), ("MODIFIED", "w1")]
    custom.delete_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
    assert missing.value.status == 404
    ext.delete_custom_resource_definition(f"widgets.{group}")
    support.wait_for(lambda: client.get(f"/apis/{group}/v1").status_code == 404, timeout=5, what="CRD removed")
