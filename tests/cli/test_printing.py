"""Output helpers: Table columns, ages, describe rendering, explain rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from reconcile.cli import describe, explain, printing

TABLE = {
    "kind": "Table",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "priority": 0},
        {"name": "Ready", "type": "string", "priority": 0},
        {"name": "IP", "type": "string", "priority": 1},
        {"name": "Age", "type": "string", "priority": 0},
    ],
    "rows": [{"cells": ["p1", "1/1", None, "5m"], "object": {"metadata": {"name": "p1", "namespace": "ns1"}}}],
}


def test_table_rows_priority_and_namespace() -> None:
    assert printing.table_rows(TABLE) == (["NAME", "READY", "AGE"], [["p1", "1/1", "5m"]])
    assert printing.table_rows(TABLE, wide=True, with_namespace=True) == (
        ["NAMESPACE", "NAME", "READY", "IP", "AGE"], [["ns1", "p1", "1/1", "<none>", "5m"]])


def test_age_like_kubectl() -> None:
    now = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
    assert printing.age("2026-01-10T11:59:15Z", now=now) == "45s"
    assert printing.age("2026-01-10T11:55:00Z", now=now) == "5m"
    assert printing.age("2026-01-10T09:00:00Z", now=now) == "3h"
    assert printing.age("2026-01-07T12:00:00Z", now=now) == "3d"


def test_describe_render_tree_and_events() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u1"},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
    events = [{"type": "Normal", "reason": "Scaled", "message": "scaled up to 2", "source": {"component": "dc"},
               "lastTimestamp": "2026-01-10T11:59:00Z"}]
    text = describe.render(obj, events=events, now=datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC))
    assert "Name:         web" in text
    assert "Labels:       app=web" in text
    assert "  Replicas:  2" in text
    assert "      Containers:" in text and "- Name:  c" in text
    assert "Normal  Scaled  60s  dc    scaled up to 2" in text
    assert describe.render(obj, events=[]).endswith("Events:       <none>")


def test_explain_render_with_refs() -> None:
    components = {"Spec": {"type": "object", "description": "The spec.", "required": ["size"],
                           "properties": {"size": {"type": "integer", "description": "How big."},
                                          "tags": {"type": "array", "items": {"type": "string"}},
                                          "labels": {"type": "object",
                                                     "additionalProperties": {"type": "string"}}}}}
    schema = {"type": "object", "description": "A widget.",
              "properties": {"spec": {"allOf": [{"$ref": "#/components/schemas/Spec"}]}}}
    res = SimpleNamespace(group="example.com", version="v1", kind="Widget")
    top = explain.render(res, [], schema, components)
    assert "KIND:       Widget" in top and "spec\t<Object>" in top
    node = explain.child(schema, "spec", components)
    text = explain.render(res, ["spec"], node, components)
    assert "FIELD: spec <Object>" in text
    assert "size\t<integer> -required-" in text
    assert "tags\t<[]string>" in text and "labels\t<map[string]string>" in text
