"""Server-side apply with the real kubectl 1.32 and the official Python client: field ownership,
removal of an un-sent field, conflicts between managers (kubectl's own error text), --force-conflicts,
apply/scale/re-apply, the client-side to server-side upgrade, and hostile bodies (400/422, never 500)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import dynamic
from kubernetes.client.rest import ApiException

from tests import support
from tests.compat.conftest import kubectl

APPLY = {"Content-Type": "application/apply-patch+yaml"}


@pytest.fixture(scope="module")
def http(api_server: str) -> Iterator[httpx.Client]:
    with support.connection(api_server).http_client() as client:
        yield client


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"ssa-{uuid.uuid4().hex[:6]}"
    assert http.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": name}}).status_code == 201
    return name


def _run(env: dict[str, str], *args: str, manifest: dict[str, Any] | None = None) -> subprocess.CompletedProcess[bytes]:
    data = yaml.safe_dump(manifest).encode() if manifest is not None else None
    return kubectl(env, *args, input=data)


def _ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _cm(name: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _deployment(name: str, replicas: int | None = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def _get(http: httpx.Client, path: str) -> dict[str, Any]:
    response = http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def _managers(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])}


def test_apply_server_side_creates_and_removes_an_unsent_field(module_env: dict[str, str], http: httpx.Client,
                                                               ns: str) -> None:
    out = _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-",
                   manifest=_cm("c1", {"a": "1", "b": "2"}, team="x")))
    assert out.strip() == "configmap/c1 serverside-applied"
    stored = _get(http, f"/api/v1/namespaces/{ns}/configmaps/c1")
    assert _managers(stored) == {("kubectl", "Apply")}
    # kubectl shows managedFields only when asked, as upstream
    hidden = yaml.safe_load(_ok(_run(module_env, "get", "-n", ns, "configmap", "c1", "-o", "yaml")))
    assert "managedFields" not in hidden["metadata"]
    shown = yaml.safe_load(_ok(_run(module_env, "get", "-n", ns, "configmap", "c1", "-o", "yaml",
                                    "--show-managed-fields")))
    assert shown["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}},
                                                                  "f:metadata": {"f:labels": {"f:team": {}}}}
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c1", {"a": "1"})))
    after = _get(http, f"/api/v1/namespaces/{ns}/configmaps/c1")
    assert after["data"] == {"a": "1"} and "labels" not in after["metadata"]


def test_two_field_managers_conflict_then_force(module_env: dict[str, str], http: httpx.Client, ns: str) -> None:
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c2", {"a": "1"})))
    failed = _run(module_env, "apply", "--server-side", "--field-manager=other", "-n", ns, "-f", "-",
                  manifest=_cm("c2", {"a": "2"}))
    assert failed.returncode == 1
    stderr = failed.stderr.decode()
    assert 'error: Apply failed with 1 conflict: conflict with "kubectl": .data.a' in stderr, stderr
    assert "Please review the fields above--they currently have other managers" in stderr
    assert "--force-conflicts" in stderr
    assert _get(http, f"/api/v1/namespaces/{ns}/configmaps/c2")["data"] == {"a": "1"}
    _ok(_run(module_env, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-n", ns, "-f", "-",
             manifest=_cm("c2", {"a": "2"})))
    stored = _get(http, f"/api/v1/namespaces/{ns}/configmaps/c2")
    assert stored["data"] == {"a": "2"} and _managers(stored) == {("other", "Apply")}


def test_apply_scale_reapply_conflicts_on_replicas(module_env: dict[str, str], http: httpx.Client, ns: str) -> None:
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_deployment("web")))
    _ok(_run(module_env, "scale", "-n", ns, "deployment/web", "--replicas=3"))
    failed = _run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_deployment("web"))
    assert failed.returncode == 1
    stderr = failed.stderr.decode()
    assert "Apply failed with 1 conflict: conflict with " in stderr and ": .spec.replicas" in stderr, stderr
    assert 'with subresource "scale" using apps/v1 at ' in stderr, stderr
    # dropping replicas from the file leaves them to the scaler
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_deployment("web", None)))
    assert _get(http, f"/apis/apps/v1/namespaces/{ns}/deployments/web")["spec"]["replicas"] == 3


def test_client_side_apply_then_server_side_apply(module_env: dict[str, str], http: httpx.Client, ns: str) -> None:
    _ok(_run(module_env, "apply", "-n", ns, "-f", "-", manifest=_cm("c3", {"a": "1"})))
    stored = _get(http, f"/api/v1/namespaces/{ns}/configmaps/c3")
    assert ("kubectl-client-side-apply", "Update") in _managers(stored)
    # a changed value is no conflict with the client-side manager: kubectl takes over what it applied before
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c3", {"a": "2"})))
    upgraded = _get(http, f"/api/v1/namespaces/{ns}/configmaps/c3")
    # kubectl moved the client-side manager's fields into its Apply entry (csaupgrade)
    assert ("kubectl", "Apply") in _managers(upgraded)
    assert ("kubectl-client-side-apply", "Update") not in _managers(upgraded)
    assert upgraded["data"] == {"a": "2"}
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c3", {"b": "2"})))
    assert _get(http, f"/api/v1/namespaces/{ns}/configmaps/c3")["data"] == {"b": "2"}


def test_python_client_applies(module_env: dict[str, str], http: httpx.Client, ns: str) -> None:
    api = k8s_config.new_client_from_config(config_file=module_env["KUBECONFIG"])
    try:
        core = k8s.CoreV1Api(api)
        created = core.patch_namespaced_config_map("py", ns, _cm("py", {"a": "1"}), field_manager="py",
                                                   _content_type="application/apply-patch+yaml")
        assert created.data == {"a": "1"}
        assert [(m.manager, m.operation) for m in created.metadata.managed_fields] == [("py", "Apply")]
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("py", ns, _cm("py", {"a": "2"}), field_manager="other",
                                             _content_type="application/apply-patch+yaml")
        assert caught.value.status == 409
        assert json.loads(caught.value.body)["details"]["causes"][0]["field"] == ".data.a"
        forced = core.patch_namespaced_config_map("py", ns, _cm("py", {"a": "2"}), field_manager="other", force=True,
                                                  _content_type="application/apply-patch+yaml")
        assert forced.data == {"a": "2"}
        client = dynamic.DynamicClient(api)
        configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
        applied = client.server_side_apply(configmaps, body=_cm("dyn", {"x": "1"}), name="dyn", namespace=ns,
                                           field_manager="py-dyn")
        assert applied.data.x == "1"
        assert _managers(_get(http, f"/api/v1/namespaces/{ns}/configmaps/dyn")) == {("py-dyn", "Apply")}
    finally:
        api.close()


@pytest.mark.parametrize(("body", "params", "code"), [
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h", "managedFields": "garbage"}}, {}, 400),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h", "managedFields": [{"x": 1}]}}, {}, 400),
    ({"apiVersion": "v9", "kind": "ConfigMap", "metadata": {"name": "h"}}, {}, 400),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h"}}, {}, 400),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}, "data": {"a": 5}}, {}, 422),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}}, {"fieldManager": ""}, 422),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}}, {"force": "maybe"}, 400),
])
def test_hostile_apply_bodies_are_refused(http: httpx.Client, ns: str, body: Any, params: dict[str, str],
                                          code: int) -> None:
    query = {"fieldManager": "h", **params}
    response = http.patch(f"/api/v1/namespaces/{ns}/configmaps/h", content=json.dumps(body), headers=APPLY,
                          params=query)
    assert response.status_code == code, response.text
    assert response.json()["kind"] == "Status"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/h").status_code == 404


def test_a_huge_applied_configuration_is_bounded(http: httpx.Client, ns: str, tmp_path: Path) -> None:
    huge = _cm("big", {f"k{i}": "x" * 100 for i in range(40_000)})  # ~4.5 MB: over the request limit
    response = http.patch(f"/api/v1/namespaces/{ns}/configmaps/big", content=json.dumps(huge), headers=APPLY,
                          params={"fieldManager": "h"})
    assert 400 <= response.status_code < 500, response.status_code
    fits = _cm("big", {f"k{i}": "x" for i in range(5_000)})
    response = http.patch(f"/api/v1/namespaces/{ns}/configmaps/big", content=json.dumps(fits), headers=APPLY,
                          params={"fieldManager": "h"})
    assert response.status_code == 201, response.text


def test_diff_server_side_shows_what_an_apply_would_change(module_env: dict[str, str], http: httpx.Client,
                                                           ns: str) -> None:
    _ok(_run(module_env, "apply", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c4", {"a": "1", "b": "2"})))
    same = _run(module_env, "diff", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c4", {"a": "1", "b": "2"}))
    assert same.returncode == 0 and same.stdout == b"", same.stderr.decode()
    changed = _run(module_env, "diff", "--server-side", "-n", ns, "-f", "-", manifest=_cm("c4", {"a": "9"}))
    assert changed.returncode == 1, changed.stderr.decode()
    text = changed.stdout.decode()
    assert "-  a: \"1\"" in text and "+  a: \"9\"" in text and "-  b: \"2\"" in text, text
    assert _get(http, f"/api/v1/namespaces/{ns}/configmaps/c4")["data"] == {"a": "1", "b": "2"}  # a dry run
