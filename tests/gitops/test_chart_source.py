"""A Sync whose source is a chart in the repository, rendered by the charts renderer (injected as
`render.ChartRenderer`, as the process wiring does: gitops never imports charting), with values
from spec.chart.values and a ConfigMap (valuesFrom), against a real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconcile.charting import chart as chart_mod
from reconcile.charting import render as chart_render
from reconcile.gitops import artifacts, syncs
from tests.gitops import syncsupport as s

CHART = {
    "charts/app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    "charts/app/values.yaml": "greeting: hello\nsize: small\ncolour: grey\n",
    "charts/app/templates/cm.yaml.j2": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ release.name }}-settings\n"
        "data:\n  greeting: {{ values.greeting | quote }}\n  size: {{ values.size | quote }}\n"
        "  colour: {{ values.colour | quote }}\n"),
}


def chart_renderer(folder: Path, values: dict[str, Any], release: str, namespace: str
                   ) -> list[tuple[str, int, dict[str, Any]]]:
    rendered = chart_render.render(chart_mod.load(folder), values, chart_render.ReleaseInfo(release, namespace))
    return [(doc.template, doc.index, doc.obj) for doc in rendered.documents]


@pytest.fixture
def store(tmp_path: Path) -> artifacts.ArtifactStore:
    return artifacts.ArtifactStore(tmp_path / "artifacts")


async def test_a_chart_with_values_and_values_from_a_config_map(ac: Any, store: artifacts.ArtifactStore) -> None:
    ns = await s.namespace(ac)
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "overrides"},
                                         "data": {"values.yaml": "size: large\n"}}, namespace=ns)
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", CHART))
    await s.sync(ac, ns, "web", "repo", chart={"path": "charts/app", "values": {"greeting": "hi", "size": "medium"},
                                               "valuesFrom": [{"kind": "ConfigMap", "name": "overrides"}]})
    outcome = await syncs.sync_once(ac, store, await s.get_sync(ac, ns, "web"), renderer=chart_renderer)
    assert outcome.ready, outcome.message
    live = await ac.get("v1", "configmaps", "web-settings", namespace=ns)
    assert live["data"] == {"greeting": "hi", "size": "large", "colour": "grey"}  # chart < values < valuesFrom
    # a template error names the chart's file; nothing else is applied
    broken = dict(CHART)
    broken["charts/app/templates/cm.yaml.j2"] = "{{ values.missing.deeper }}"
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", broken))
    outcome = await syncs.sync_once(ac, store, await s.get_sync(ac, ns, "web"), renderer=chart_renderer)
    assert outcome.reason == "BuildFailed" and "spec.chart.path charts/app" in outcome.message
    # a missing valuesFrom key is named
    await s.update_spec(ac, ns, "web", chart={"path": "charts/app", "valuesFrom": [
        {"kind": "ConfigMap", "name": "overrides", "valuesKey": "nope.yaml"}]})
    outcome = await syncs.sync_once(ac, store, await s.get_sync(ac, ns, "web"), renderer=chart_renderer)
    assert outcome.reason == "BuildFailed" and "ConfigMap overrides has no key nope.yaml" in outcome.message
