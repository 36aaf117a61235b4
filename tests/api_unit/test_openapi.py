"""OpenAPI v3 index and per-group/version documents (wire notes §3)."""

from __future__ import annotations

import copy

import pytest

from reconcile.api import openapi
from reconcile.core import errors


def test_index(reg) -> None:
    index = openapi.openapi_index(reg)["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                          "apis/apiextensions.k8s.io/v1", "apis/example.com/v1",
                          "apis/rbac.authorization.k8s.io/v1", "apis/authorization.k8s.io/v1",
                          "apis/authentication.k8s.io/v1", "apis/certificates.k8s.io/v1",
                          "apis/storage.k8s.io/v1"}
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    assert url.endswith(openapi.document_hash(reg, "apps", "v1"))


def test_every_kind_has_patch_with_field_validation(reg) -> None:
    for res in reg.resources():
        doc = openapi.openapi_document(reg, res.group, res.version)
        base = f"/{openapi.gv_path(res.group, res.version)}"
        scoped = f"{base}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
        patch = doc["paths"][f"{scoped}/{{name}}"]["patch"]
        assert patch["x-kubernetes-action"] == "patch"
        assert patch["x-kubernetes-group-version-kind"] == {"group": res.group, "version": res.version,
                                                            "kind": res.kind}
        assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
        smp = "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
        assert smp == res.builtin
        schema = doc["components"]["schemas"][openapi.schema_name(res.group, res.version, res.kind)]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": res.group, "version": res.version, "kind": res.kind}]


def test_paths_and_components(reg) -> None:
    doc = openapi.openapi_document(reg, "apps", "v1")
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "/apis/apps/v1/namespaces/{namespace}/deployments" in paths
    assert "/apis/apps/v1/deployments" in paths  # all-namespaces list
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale" in paths
    schemas = doc["components"]["schemas"]
    deploy = schemas["io.k8s.api.apps.v1.Deployment"]
    containers = deploy["properties"]["spec"]["properties"]["template"]["properties"]["spec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    core = openapi.openapi_document(reg, "", "v1")["paths"]
    assert "/api/v1/namespaces/{name}" in core  # cluster-scoped
    assert "com.example.v1.Widget" in openapi.openapi_document(reg, "example.com", "v1")["components"]["schemas"]


def test_hash_changes_with_content(reg) -> None:
    before = openapi.document_hash(reg, "example.com", "v1")
    apps_before = openapi.document_hash(reg, "apps", "v1")
    crd = copy.deepcopy(reg.crd("widgets.example.com"))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["new"] = {
        "type": "string"}
    reg.add_crd(crd)
    assert openapi.document_hash(reg, "example.com", "v1") != before
    assert openapi.document_hash(reg, "apps", "v1") == apps_before


def test_gv_paths() -> None:
    assert openapi.parse_gv_path("api/v1") == ("", "v1")
    assert openapi.parse_gv_path("/apis/apps/v1") == ("apps", "v1")
    with pytest.raises(errors.NotFound):
        openapi.parse_gv_path("apis/apps")
