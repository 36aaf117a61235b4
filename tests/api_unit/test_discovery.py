"""Discovery shapes (wire notes §2)."""

from __future__ import annotations

import pytest

from reconcile.api import discovery
from reconcile.core import errors


def test_legacy_api_versions() -> None:
    assert discovery.api_versions()["versions"] == ["v1"]
    assert discovery.api_versions()["kind"] == "APIVersions"


def test_api_group_list(reg) -> None:
    doc = discovery.api_group_list(reg)
    assert doc["kind"] == "APIGroupList"
    names = [g["name"] for g in doc["groups"]]
    assert "" not in names
    assert names[-1] == "example.com"  # built-in groups first
    apps = next(g for g in doc["groups"] if g["name"] == "apps")
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}


def test_api_resource_list_with_subresources(reg) -> None:
    doc = discovery.api_resource_list(reg, "apps", "v1")
    assert doc["groupVersion"] == "apps/v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    deploy = by_name["deployments"]
    assert deploy["singularName"] == "deployment" and deploy["namespaced"] and deploy["kind"] == "Deployment"
    assert deploy["shortNames"] == ["deploy"] and deploy["categories"] == ["all"]
    assert set(deploy["verbs"]) >= {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
    assert by_name["deployments/status"]["verbs"] == ["get", "patch", "update"]
    scale = by_name["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    core = {r["name"]: r for r in discovery.api_resource_list(reg, "", "v1")["resources"]}
    assert core["pods/log"]["verbs"] == ["get"]
    assert core["pods/status"]["kind"] == "Pod"
    assert "configmaps/status" not in core
    assert core["namespaces"]["namespaced"] is False
    widgets = {r["name"] for r in discovery.api_resource_list(reg, "example.com", "v1")["resources"]}
    assert widgets == {"widgets", "widgets/status"}
    with pytest.raises(errors.NotFound):
        discovery.api_resource_list(reg, "nope.io", "v1")


def test_aggregated(reg) -> None:
    core = discovery.aggregated_discovery(reg, core=True)
    assert core["kind"] == "APIGroupDiscoveryList" and core["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    groups = discovery.aggregated_discovery(reg, core=False)
    names = [i["metadata"]["name"] for i in groups["items"]]
    assert "" not in names and "example.com" in names
    apps = next(i for i in groups["items"] if i["metadata"]["name"] == "apps")
    version = apps["versions"][0]
    assert version["version"] == "v1" and version["freshness"] == "Current"
    deploy = next(r for r in version["resources"] if r["resource"] == "deployments")
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deploy["scope"] == "Namespaced" and deploy["singularResource"] == "deployment"
    subs = {s["subresource"]: s for s in deploy["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert subs["status"]["verbs"] == ["get", "patch", "update"]
    nodes = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_new_crd_shows_up_immediately(reg) -> None:
    reg.remove_crd("widgets.example.com")
    assert "example.com" not in [g["name"] for g in discovery.api_group_list(reg)["groups"]]
