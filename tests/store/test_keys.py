"""Key layout."""

from __future__ import annotations

from reconcile.store import keys


def test_layout() -> None:
    assert keys.resource_prefix("apps", "deployments") == "apps/deployments/"
    assert keys.resource_prefix("", "pods") == "core/pods/"
    assert keys.namespace_prefix("", "pods", "default") == "core/pods/default/"
    assert keys.object_key("apps", "deployments", "default", "web") == "apps/deployments/default/web"
    assert keys.object_key("", "nodes", None, "n1") == "core/nodes/n1"
    assert keys.object_key("", "namespaces", "", "default") == "core/namespaces/default"


def test_prefix_end() -> None:
    assert keys.prefix_end(b"/a/") == b"/a0"
    assert keys.prefix_end(b"a\xff") == b"b"
    assert keys.prefix_end(b"\xff\xff") == b"\0"
