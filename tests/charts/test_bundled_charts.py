"""The bundled charts (charts/): each rendered with its defaults and with a values file equals the
checked-in YAML under tests/charts/golden/ (UPDATE_GOLDEN=1 rewrites them after a deliberate change)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reconcile.charting import chart, render, schema, values

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
RELEASE = render.ReleaseInfo("demo", "default")
CASES = [(name, variant) for name in ("webapp", "kvstore", "guestbook") for variant in ("defaults", "values")]


def rendered(name: str, variant: str) -> render.Rendered:
    user = {}
    if variant == "values":
        source = GOLDEN / f"{name}-values.input.yaml"
        user = values.user_values([(str(source), source.read_text())], [])
    return render.render(chart.load(ROOT / "charts" / name), user, RELEASE)


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_golden(name: str, variant: str) -> None:
    out = rendered(name, variant)
    text = render.to_manifest(out.documents + out.hooks)
    golden = GOLDEN / f"{name}-{variant}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} differs: render it again and review (UPDATE_GOLDEN=1)"
    for doc in yaml.safe_load_all(text):  # each is a parsable object with a name
        assert doc["metadata"]["name"]


def test_webapp_options_add_objects_and_notes() -> None:
    defaults = rendered("webapp", "defaults")
    assert sorted(d.obj["kind"] for d in defaults.documents) == ["Deployment", "Service"]
    assert [h.hook_events for h in defaults.hooks] == [["test"]]
    assert "reconcile chart test demo -n default" in defaults.notes
    full = rendered("webapp", "values")
    assert sorted(d.obj["kind"] for d in full.documents) == [
        "ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]
    assert full.hooks == []


def test_webapp_schema_rejects_bad_values() -> None:
    with pytest.raises(schema.SchemaError) as caught:
        render.render(chart.load(ROOT / "charts" / "webapp"), values.parse_set("replicaCount=-1,service.port=0"),
                      RELEASE)
    assert caught.value.problems == ["replicaCount: -1 is less than the minimum of 0",
                                     "service.port: 0 is less than the minimum of 1"]


def test_guestbook_passes_values_to_its_dependency_and_can_turn_it_off() -> None:
    out = rendered("guestbook", "values")
    kv = next(d.obj for d in out.documents if d.obj["kind"] == "Deployment" and d.obj["metadata"]["name"] == "demo-kvstore")
    assert kv["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MAX_KEY_LENGTH", "value": "16"}]
    assert any(d.obj["kind"] == "PersistentVolumeClaim" for d in out.documents)
    guestbook = chart.load(ROOT / "charts" / "guestbook")
    with pytest.raises(render.RenderError, match="kvstore.enabled is false: set externalStore"):
        render.render(guestbook, {"kvstore": {"enabled": False}}, RELEASE)
    alone = render.render(guestbook, {"kvstore": {"enabled": False}, "externalStore": "http://store"}, RELEASE)
    assert not any("kvstore" in d.template for d in alone.documents)


def test_the_starter_chart_renders(tmp_path: Path) -> None:
    from reconcile.charting import starter

    for relative, text in starter.files("mine").items():
        (tmp_path / "mine" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mine" / relative).write_text(text)
    out = render.render(chart.load(tmp_path / "mine"), {}, RELEASE)
    assert sorted(d.obj["kind"] for d in out.documents) == ["Deployment", "Service"]
    assert out.hooks[0].obj["metadata"]["name"] == "demo-mine-test"
