"""Pure helpers of the SDK: adopt, render, the decorators' registry, plugin loading, diff and state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest

import reconcile as rc
from reconcile.engine.sdk import loading, registry, state

OWNER = {
    "apiVersion": "examples.reconcile.dev/v1",
    "kind": "Website",
    "metadata": {"name": "site", "namespace": "web", "uid": "u-1", "labels": {"app": "site", "tier": "x"}},
}


def test_adopt_sets_controller_reference_namespace_labels_and_name() -> None:
    child: dict[str, Any] = {"kind": "ConfigMap", "metadata": {"labels": {"tier": "own"}}}
    rc.adopt(child, OWNER)
    meta = child["metadata"]
    assert meta["ownerReferences"] == [{
        "apiVersion": "examples.reconcile.dev/v1", "kind": "Website", "name": "site", "uid": "u-1",
        "controller": True, "blockOwnerDeletion": True,
    }]
    assert meta["namespace"] == "web"
    assert meta["labels"] == {"app": "site", "tier": "own"}
    assert meta["generateName"] == "site-"
    rc.adopt(child, OWNER)  # idempotent
    assert len(meta["ownerReferences"]) == 1
    other = {**OWNER, "metadata": {**OWNER["metadata"], "uid": "u-2"}}
    with pytest.raises(ValueError):
        rc.adopt(child, other)


def test_render_multi_document_sandboxed_and_strict(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ name }}}\ndata: {{ data | tojson }}\n"
        "---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: {{ name }}}\n"
    )
    docs = rc.render("two.yaml", directory=tmp_path, name="web", data={"a": "1"})
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service"]
    assert docs[0]["data"] == {"a": "1"}
    with pytest.raises(jinja2.UndefinedError):
        rc.render("two.yaml", directory=tmp_path, data={})
    (tmp_path / "evil.yaml").write_text("x: {{ name.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(jinja2.exceptions.SecurityError):
        rc.render("evil.yaml", directory=tmp_path, name="web")


def test_render_finds_templates_next_to_the_calling_module(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "probe.yaml").write_text("kind: Probe\nvalue: {{ v }}\n")
    (tmp_path / "plugin_mod.py").write_text(
        "import reconcile as rc\ndef make():\n    return rc.render('probe.yaml', v=3)\n"
    )
    reg = loading.load(tmp_path / "plugin_mod.py")
    assert reg.handlers == []
    module = next(m for n, m in sys.modules.items() if n.startswith("reconcile_plugin_plugin_mod_"))
    assert module.make() == [{"kind": "Probe", "value": 3}]


def test_decorators_fill_the_given_registry_with_ids_and_options() -> None:
    reg = rc.Registry()

    @rc.on.create("example.com", "v1", "things", registry=reg, retries=2, timeout=5)
    @rc.on.update("example.com/v1", "Thing", registry=reg, field="spec.a")
    def handler(**_: Any) -> None:
        pass

    @rc.timer("things", interval=3, idle=1, registry=reg, id="custom")
    def tick(**_: Any) -> None:
        pass

    kinds = [(h.kind, h.id) for h in reg.handlers]
    assert kinds == [("update", "handler/spec.a"), ("create", "handler"), ("timer", "custom")]
    assert reg.handlers[1].retries == 2 and reg.handlers[1].timeout == 5
    assert str(reg.handlers[0].resource) == "example.com/v1/Thing"
    assert reg.handlers[2].requires_finalizer
    with pytest.raises(ValueError):
        rc.on.create("example.com", "v1", "things", registry=reg)(handler)


def test_loading_a_file_twice_gives_two_full_registries(tmp_path: Path) -> None:
    plugin = tmp_path / "plug.py"
    plugin.write_text("import reconcile as rc\n@rc.on.create('things')\ndef made(**_): pass\n")
    first, second = loading.load(plugin), loading.load(str(plugin))
    assert [h.id for h in first.handlers] == [h.id for h in second.handlers] == ["made"]
    assert registry.default().handlers == []
    assert tmp_path in first.template_dirs
    with pytest.raises(loading.PluginNotFound):
        loading.load("no_such_plugin_module_xyz")


def test_diff_and_essence() -> None:
    old = {"spec": {"a": 1, "b": {"c": 2}}, "metadata": {"labels": {"x": "1"}}}
    new = {"spec": {"a": 1, "b": {"c": 3}, "d": [1]}, "metadata": {"labels": {"x": "1"}}}
    assert [tuple(d) for d in state.diff(old, new)] == [
        ("change", ("spec", "b", "c"), 2, 3),
        ("add", ("spec", "d"), None, [1]),
    ]
    body = {"apiVersion": "v1", "kind": "X", "spec": {"a": 1}, "status": {"s": 1},
            "metadata": {"name": "n", "resourceVersion": "5", "annotations": {state.LAST_HANDLED: "{}", "k": "v"}}}
    assert state.essence(body) == {"spec": {"a": 1}, "metadata": {"annotations": {"k": "v"}}}
    assert len(state.progress_key("x" * 100)) <= len(state.PROGRESS_PREFIX) + 63
    assert state.combine({"a": {"b": 1}}, {"a": {"c": None}}) == {"a": {"b": 1, "c": None}}


def test_entry_point_plugins_are_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    (tmp_path / "ep_plugin_mod.py").write_text("import reconcile as rc\n@rc.on.delete('things')\ndef gone(**_): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = importlib.metadata.EntryPoint(name="things-operator", value="ep_plugin_mod", group=loading.ENTRY_POINT_GROUP)
    monkeypatch.setattr(loading, "entry_points", lambda: {fake.name: fake})
    reg = loading.load("things-operator")
    assert [(h.kind, h.id) for h in reg.handlers] == [("delete", "gone")]
