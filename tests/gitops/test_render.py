"""Rendering a Sync's path: folders, multi-document files, bounded YAML, errors that name where."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.gitops import render

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_folder_recursive_sorted_multi_document(tmp_path: Path) -> None:
    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "b.yaml").write_text(CM.format(name="b1") + "---\n---\n" + CM.format(name="b2"))
    (tmp_path / "app" / "a.yml").write_text(CM.format(name="a"))
    (tmp_path / "app" / "sub" / "c.yaml").write_text(CM.format(name="c"))
    (tmp_path / "app" / "notes.txt").write_text("not a manifest")
    docs = render.render_folder(tmp_path, "app")
    assert [(d.source, d.index, d.obj["metadata"]["name"]) for d in docs] == [
        ("app/a.yml", 0, "a"), ("app/b.yaml", 0, "b1"), ("app/b.yaml", 2, "b2"), ("app/sub/c.yaml", 0, "c")]


def test_errors_name_file_document_and_field(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(CM.format(name="ok") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    with pytest.raises(render.RenderError, match=r"x\.yaml \(document 2\): field metadata\.name: Required"):
        render.render_folder(tmp_path)
    (tmp_path / "x.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(render.RenderError, match=r"x\.yaml: invalid YAML: .*line"):
        render.render_folder(tmp_path)
    (tmp_path / "x.yaml").write_text("- a\n- b\n")
    with pytest.raises(render.RenderError, match=r"must be a mapping"):
        render.render_folder(tmp_path)


def test_yaml_bomb_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 13):  # 12 levels of 9 aliases: 9**12 strings if expanded
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(render.RenderError, match=r"bomb\.yaml: more than \d+ YAML aliases"):
        render.render_folder(tmp_path)


def test_big_file_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "MAX_FILE_BYTES", 100)
    (tmp_path / "big.yaml").write_text(CM.format(name="x" * 200))
    with pytest.raises(render.RenderError, match=r"big\.yaml: larger than the limit"):
        render.render_folder(tmp_path)


def test_paths_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.yaml").write_text(CM.format(name="secret"))
    (root / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    with pytest.raises(render.RenderError, match="leaves the artifact"):
        render.render_folder(root)
    with pytest.raises(render.RenderError, match="leaves the artifact"):
        render.render_folder(root, "../")


def test_chart_values_merge_and_renderer(tmp_path: Path) -> None:
    values = render.chart_values({"a": 1, "nested": {"x": 1, "y": 2}},
                                 [("ConfigMap vals key values.yaml", "nested:\n  y: 3\nb: 2\n")])
    assert values == {"a": 1, "b": 2, "nested": {"x": 1, "y": 3}}
    (tmp_path / "chart").mkdir()
    seen = {}

    def renderer(path: Path, vals: dict, release: str, namespace: str) -> list:
        seen.update(path=path, vals=vals, release=release, namespace=namespace)
        return [("templates/cm.yaml", 0, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})]

    docs = render.render_chart(tmp_path, "chart", values, renderer, "rel", "ns")
    assert docs[0].where == "chart/templates/cm.yaml (document 1)"
    assert seen["release"] == "rel" and seen["vals"]["b"] == 2
    with pytest.raises(render.RenderError, match="no chart renderer"):
        render.render_chart(tmp_path, "chart", {}, None, "rel", "ns")
    with pytest.raises(render.RenderError, match="values must be a mapping"):
        render.chart_values({}, [("cm", "- 1\n")])
