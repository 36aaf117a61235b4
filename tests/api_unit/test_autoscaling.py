"""HorizontalPodAutoscaler as a built-in kind: the v1 <-> v2 conversion (`core.hpaconversion`), the
checks beyond the schema (`strategies.autoscaling`), `kubectl get hpa` rows, and the protobuf tables
of what `kubectl autoscale` posts (`api.protoautoscaling`)."""

from __future__ import annotations

import copy

from reconcile.api import protobodies, tables, validation
from reconcile.api.strategies import autoscaling
from reconcile.core import hpaconversion
from tests.api_unit import protoencode as pe

REF = {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}
V1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
      "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}}
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}


def test_v1_cpu_target_is_the_v2_cpu_utilization_metric_and_back() -> None:
    v2 = hpaconversion.to_v2(V1)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5,
                          "metrics": [hpaconversion.cpu_metric(50)]}
    back = hpaconversion.to_v1(v2)
    assert back["spec"] == V1["spec"] and "status" not in back


def test_a_v1_update_keeps_what_v1_cannot_say() -> None:
    """Other metrics, the behavior and the conditions of the stored object survive a v1 write."""
    stored = hpaconversion.to_v2(V1)
    stored["spec"]["metrics"].append(MEMORY)
    stored["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    stored["status"] = {"desiredReplicas": 2, "conditions": [{"type": "AbleToScale", "status": "True"}]}
    changed = copy.deepcopy(V1)
    changed["spec"]["targetCPUUtilizationPercentage"] = 70
    changed["status"] = {"currentReplicas": 2, "desiredReplicas": 3}
    new = hpaconversion.to_v2(changed, stored)
    assert new["spec"]["metrics"] == [hpaconversion.cpu_metric(70), MEMORY]
    assert new["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 60}}
    assert new["status"]["conditions"] == stored["status"]["conditions"]
    assert new["status"]["desiredReplicas"] == 3
    dropped = copy.deepcopy(V1)
    del dropped["spec"]["targetCPUUtilizationPercentage"]
    assert hpaconversion.to_v2(dropped, stored)["spec"]["metrics"] == [MEMORY]


def test_v1_status_shows_the_cpu_utilization_and_zero_counts() -> None:
    stored = hpaconversion.to_v2(V1)
    stored["status"] = {"desiredReplicas": 0}
    assert hpaconversion.to_v1(stored)["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    stored["status"] = {"currentReplicas": 2, "desiredReplicas": 3, "lastScaleTime": "2026-01-01T00:00:00Z",
                        "currentMetrics": [{"type": "Resource", "resource": {
                            "name": "cpu", "current": {"averageUtilization": 81, "averageValue": "81m"}}}]}
    assert hpaconversion.to_v1(stored)["status"] == {"currentReplicas": 2, "desiredReplicas": 3,
                                                     "lastScaleTime": "2026-01-01T00:00:00Z",
                                                     "currentCPUUtilizationPercentage": 81}


def _causes(spec: dict) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in autoscaling.spec_causes(spec)]


def test_replica_bounds_name_their_field() -> None:
    assert _causes({"scaleTargetRef": REF, "minReplicas": 3, "maxReplicas": 2}) == [
        ("spec.maxReplicas", "Invalid value: 2: must be greater than or equal to `minReplicas`")]
    assert _causes({"scaleTargetRef": REF, "minReplicas": 0, "maxReplicas": 2}) == [
        ("spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1")]
    assert _causes({"scaleTargetRef": {"kind": "Deployment"}, "maxReplicas": 0}) == [
        ("spec.scaleTargetRef.name", "Required value"), ("spec.maxReplicas", "Invalid value: 0: must be greater than 0")]


def test_metrics_and_behavior_checks() -> None:
    wrong_source = {"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                           "averageUtilization": 5}}}
    causes = _causes({"scaleTargetRef": REF, "maxReplicas": 2, "metrics": [wrong_source]})
    assert [field for field, _ in causes] == ["spec.metrics[0].resource", "spec.metrics[0].pods"]
    zero = hpaconversion.cpu_metric(0)
    assert _causes({"scaleTargetRef": REF, "maxReplicas": 2, "metrics": [zero]}) == [
        ("spec.metrics[0].resource.target.averageUtilization", "Invalid value: 0: must be greater than 0")]
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 4000,
                              "policies": [{"type": "Pods", "value": 0, "periodSeconds": 2000}]}}
    assert [f for f, _ in _causes({"scaleTargetRef": REF, "maxReplicas": 2, "behavior": behavior})] == [
        "spec.behavior.scaleDown.stabilizationWindowSeconds", "spec.behavior.scaleDown.policies[0].value",
        "spec.behavior.scaleDown.policies[0].periodSeconds"]


def test_defaults_min_replicas_and_a_given_behavior(builtin_registry) -> None:
    resource = builtin_registry.get("autoscaling", "v2", "horizontalpodautoscalers")
    obj = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "a"},
           "spec": {"scaleTargetRef": REF, "maxReplicas": 3, "behavior": {"scaleUp": {"selectPolicy": "Min"}}}}
    validation.prepare(resource, obj)
    autoscaling.HorizontalPodAutoscalerStrategy().normalize(resource, obj)
    assert obj["spec"]["minReplicas"] == 1
    assert obj["spec"]["behavior"] == {
        "scaleUp": {"selectPolicy": "Min", "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
    bare = {"metadata": {"name": "b"}, "spec": {"scaleTargetRef": REF, "maxReplicas": 3}}
    autoscaling.HorizontalPodAutoscalerStrategy().normalize(resource, bare)
    assert "behavior" not in bare["spec"], "no behavior stays absent, as upstream stores it"
    assert bare["spec"]["metrics"] == [hpaconversion.cpu_metric(80)], "no metrics: 80% cpu, upstream's default"


def test_rows_follow_print_horizontal_pod_autoscaler(builtin_registry) -> None:
    resource = builtin_registry.get("autoscaling", "v2", "horizontalpodautoscalers")
    fresh = hpaconversion.to_v2(V1)
    read = hpaconversion.to_v2(V1)
    read["status"] = {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}
    many = {"metadata": {"name": "many"}, "spec": {"scaleTargetRef": REF, "maxReplicas": 4,
                                                   "metrics": [hpaconversion.cpu_metric(50), MEMORY, MEMORY]}}
    table = tables.to_table(resource, [fresh, read, many])
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    assert table["rows"][0]["cells"][:6] == ["web", "Deployment/web", "cpu: <unknown>/50%", "1", 5, 0]
    assert table["rows"][1]["cells"][2] == "cpu: 40%/50%"
    assert table["rows"][2]["cells"][2:4] == ["cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more...", "<unset>"]


def test_kubectl_autoscale_protobuf_decodes_to_its_json() -> None:
    """The v1 body `kubectl autoscale deployment web --min=1 --max=5 --cpu-percent=50` posts (gogo
    writes the non-pointer maxReplicas and the reference's strings)."""
    ref = pe.length_delimited(1, b"Deployment") + pe.length_delimited(2, b"web") + pe.length_delimited(3, b"apps/v1")
    spec = pe.length_delimited(1, ref) + pe.tag(2, 0) + pe.varint(1) + pe.tag(3, 0) + pe.varint(5) \
        + pe.tag(4, 0) + pe.varint(50)
    body = pe.envelope("autoscaling/v1", "HorizontalPodAutoscaler",
                       pe.length_delimited(1, pe.length_delimited(1, b"web")) + pe.length_delimited(2, spec))
    read = protobodies.decoder_for("autoscaling/v1", "HorizontalPodAutoscaler")
    assert read is not None
    assert read(body) == {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                          "metadata": {"name": "web"}, "spec": V1["spec"]}


def test_v2_protobuf_round_trips_metrics_and_behavior() -> None:
    obj = {"metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 9, "metrics": [hpaconversion.cpu_metric(60), MEMORY],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Min",
                                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}}
    message = protobodies.MESSAGES[("autoscaling/v2", "HorizontalPodAutoscaler")]
    read = protobodies.decode_object(pe.body("autoscaling/v2", "HorizontalPodAutoscaler", obj), message)
    assert {k: v for k, v in read.items() if k not in ("apiVersion", "kind")} == obj
