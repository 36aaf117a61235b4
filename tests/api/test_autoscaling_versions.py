"""One HorizontalPodAutoscaler through both served versions against a real API server: stored as
autoscaling/v2, read, listed, watched, replaced and patched as autoscaling/v1 with the conversion
upstream makes (targetCPUUtilizationPercentage is the cpu Utilization metric), v2-only fields kept
across v1 writes, tables alike for both; server-side apply of the v1 form with field ownership in
v1's paths."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api import helpers

V1, V2 = "/apis/autoscaling/v1", "/apis/autoscaling/v2"
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}


def _path(base: str, ns: str, name: str | None = None) -> str:
    path = f"{base}/namespaces/{ns}/horizontalpodautoscalers"
    return f"{path}/{name}" if name else path


def _v2(name: str) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 50}}}, MEMORY],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}


def test_v1_views_and_writes_of_a_v2_object(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, _path(V2, ns), _v2("web"))
    assert created["spec"]["minReplicas"] == 1
    read = client.get(_path(V1, ns, "web")).json()
    assert read["apiVersion"] == "autoscaling/v1"
    assert read["spec"] == {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}
    assert read["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    listed = client.get(_path(V1, ns)).json()
    assert listed["kind"] == "HorizontalPodAutoscalerList" and listed["apiVersion"] == "autoscaling/v1"
    assert [item["apiVersion"] for item in listed["items"]] == ["autoscaling/v1"]

    patched = client.patch(_path(V1, ns, "web"), json={"spec": {"targetCPUUtilizationPercentage": 70}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"]["targetCPUUtilizationPercentage"] == 70
    stored = client.get(_path(V2, ns, "web")).json()
    assert stored["spec"]["metrics"][1] == MEMORY, "the v2-only metric survives a v1 patch"
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert stored["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60

    replaced = dict(patched.json())
    replaced["spec"] = dict(replaced["spec"], maxReplicas=8)
    put = client.put(_path(V1, ns, "web"), json=replaced)
    assert put.status_code == 200, put.text
    assert client.get(_path(V2, ns, "web")).json()["spec"]["maxReplicas"] == 8

    bad = client.patch(_path(V1, ns, "web"), json={"spec": {"maxReplicas": 0}},
                       headers={"Content-Type": "application/merge-patch+json"})
    helpers.assert_status(bad, 422, "Invalid")
    assert [c["field"] for c in bad.json()["details"]["causes"]] == ["spec.maxReplicas"]
    unknown = client.post(_path(V1, ns), json={**read, "metadata": {"name": "u"},
                                               "spec": {**read["spec"], "metrics": []}})
    helpers.assert_status(unknown, 400, "BadRequest")
    assert 'unknown field "spec.metrics"' in unknown.json()["message"]


APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _apply(client: httpx.Client, ns: str, manager: str, spec: dict[str, Any], **params: str) -> httpx.Response:
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "app"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"}, **spec}}
    return client.patch(_path(V1, ns, "app"), params={"fieldManager": manager, **params}, json=body, headers=APPLY)


def test_server_side_apply_of_the_v1_form(client: httpx.Client, ns: str) -> None:
    created = _apply(client, ns, "me", {"maxReplicas": 3, "targetCPUUtilizationPercentage": 60})
    assert created.status_code == 201, created.text
    entry = created.json()["metadata"]["managedFields"][0]
    assert entry["manager"] == "me" and "f:targetCPUUtilizationPercentage" in entry["fieldsV1"]["f:spec"]
    changed = _apply(client, ns, "me", {"maxReplicas": 4, "targetCPUUtilizationPercentage": 70})
    assert changed.status_code == 200 and changed.json()["spec"]["maxReplicas"] == 4, changed.text
    conflict = _apply(client, ns, "other", {"maxReplicas": 4, "targetCPUUtilizationPercentage": 90})
    helpers.assert_status(conflict, 409, "Conflict")
    assert ".spec.targetCPUUtilizationPercentage" in conflict.json()["message"]
    forced = _apply(client, ns, "other", {"maxReplicas": 4, "targetCPUUtilizationPercentage": 90}, force="true")
    assert forced.status_code == 200 and forced.json()["spec"]["targetCPUUtilizationPercentage"] == 90
    stored = client.get(_path(V2, ns, "app")).json()
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 90
    wrong = client.patch(_path(V1, ns, "app"), params={"fieldManager": "me"}, headers=APPLY,
                         json={"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"})
    helpers.assert_status(wrong, 400, "BadRequest")


def test_watch_and_tables_of_the_v1_version(client: httpx.Client, ns: str) -> None:
    helpers.create(client, _path(V2, ns), _v2("shop"))
    lines = list(helpers.watch_lines(client, _path(V1, ns), {"timeoutSeconds": "1"}))
    assert lines and all(line["object"]["apiVersion"] == "autoscaling/v1" for line in lines)
    assert lines[0]["object"]["spec"]["targetCPUUtilizationPercentage"] == 50
    table_headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    for base in (V1, V2):
        table = client.get(_path(base, ns), headers=table_headers).json()
        assert [c["name"] for c in table["columnDefinitions"]] == [
            "Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
        assert table["rows"][0]["cells"][2] == "cpu: <unknown>/50%, memory: <unknown>/100Mi"
