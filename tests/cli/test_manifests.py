"""Loading resource files: documents, line numbers, List expansion, bad documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.cli import manifests

STREAM = """\
# leading comment
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
  bad: [unclosed
---

---
kind: ConfigMap
metadata: {name: c}
--- # trailing comment on the separator
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: d}
- apiVersion: v1
  kind: Secret
  metadata: {name: e}
"""


def test_documents_with_lines_and_errors() -> None:
    docs = manifests.parse_text(STREAM, source="f.yaml")
    assert [(d.line, d.obj["metadata"]["name"] if d.obj else None) for d in docs] == [
        (2, "a"), (10, None), (14, None), (20, "d"), (23, "e")]
    assert "YAML" in docs[1].error
    assert docs[1].where == "f.yaml:10"
    assert "apiVersion" in docs[2].error


def test_json_document_and_error_line(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}')
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    docs = manifests.load([str(good), str(bad)])
    assert docs[0].obj["metadata"]["name"] == "j"
    assert docs[1].error and docs[1].line == 4


def test_directory_and_recursion(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    assert [d.obj["metadata"]["name"] for d in manifests.load([str(tmp_path)])] == ["a"]
    assert [d.obj["metadata"]["name"] for d in manifests.load([str(tmp_path)], recursive=True)] == ["a", "b"]
    with pytest.raises(manifests.ManifestPathError):
        manifests.load([str(tmp_path / "missing.yaml")])


def test_apply_order_namespaces_then_crds() -> None:
    text = """\
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1}
"""
    kinds = [d.obj["kind"] for d in manifests.apply_order(manifests.parse_text(text, source="x"))]
    assert kinds == ["Namespace", "CustomResourceDefinition", "Widget"]
