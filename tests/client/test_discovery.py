"""Discovery parsing and name resolution (no server needed)."""

from __future__ import annotations

import pytest

from reconcile.client import discovery
from reconcile.core import errors

AGGREGATED = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "items": [
        {
            "metadata": {"name": "apps"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "deployments",
                            "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                            "scope": "Namespaced",
                            "singularResource": "deployment",
                            "verbs": ["get", "list", "watch"],
                            "shortNames": ["deploy"],
                            "categories": ["all"],
                            "subresources": [{"subresource": "status"}, {"subresource": "scale"}],
                        }
                    ],
                },
                {"version": "v1beta1", "resources": [{"resource": "old", "responseKind": {"kind": "Old"}}]},
            ],
        }
    ],
}

LEGACY_CORE = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get"],
            "shortNames": ["po"],
            "categories": ["all"],
        },
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "events", "singularName": "", "namespaced": True, "kind": "Event", "shortNames": ["ev"]},
        {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "shortNames": ["ns"],
        },
    ],
}

OTHER_EVENTS = discovery.ApiResource("events.k8s.io", "v1", "events", "event", "Event", True)


def resources() -> list[discovery.ApiResource]:
    return [
        OTHER_EVENTS,
        *discovery.parse_aggregated(AGGREGATED),
        *discovery.parse_resource_list(LEGACY_CORE),
    ]


def test_parse_aggregated_takes_preferred_version() -> None:
    (deploy,) = discovery.parse_aggregated(AGGREGATED)
    assert deploy == discovery.ApiResource(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        True,
        ("deploy",),
        ("get", "list", "watch"),
        ("all",),
        ("status", "scale"),
    )
    assert deploy.api_version == "apps/v1" and deploy.group_resource == "deployments.apps"


def test_parse_legacy_folds_subresources_and_defaults_singular() -> None:
    pods, events, namespaces = discovery.parse_resource_list(LEGACY_CORE)
    assert pods.subresources == ("status", "log") and pods.api_version == "v1" and pods.group == ""
    assert events.singular == "event"  # empty singularName falls back to kind.lower(), as kopf does
    assert not namespaces.namespaced


@pytest.mark.parametrize(
    ("name", "plural", "group"),
    [
        ("po", "pods", ""),
        ("PODS", "pods", ""),
        ("pod", "pods", ""),
        ("Pod", "pods", ""),
        ("deploy", "deployments", "apps"),
        ("Deployment", "deployments", "apps"),
        ("deployments.apps", "deployments", "apps"),
        ("deployment.apps", "deployments", "apps"),
        ("deployments.v1.apps", "deployments", "apps"),
        ("events", "events", ""),  # core wins over events.k8s.io
        ("events.events.k8s.io", "events", "events.k8s.io"),
        ("ns", "namespaces", ""),
    ],
)
def test_resolve(name: str, plural: str, group: str) -> None:
    found = discovery.resolve(resources(), name)
    assert (found.plural, found.group) == (plural, group)


def test_resolve_miss() -> None:
    with pytest.raises(errors.NotFound, match='resource type "widgets"'):
        discovery.resolve(resources(), "widgets")


def test_for_kind() -> None:
    assert discovery.for_kind(resources(), "apps/v1", "Deployment").plural == "deployments"
    assert discovery.for_kind(resources(), "apps/v1beta1", "Deployment").version == "v1beta1"
    with pytest.raises(errors.NotFound):
        discovery.for_kind(resources(), "v1", "Deployment")
