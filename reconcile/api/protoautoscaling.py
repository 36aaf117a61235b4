"""Protobuf tables of autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscaler: what `kubectl
autoscale` posts (kubectl 1.32 sends autoscaling/v1, in protobuf only) and client-go's typed v2
clients send. Field numbers are upstream's k8s.io/api autoscaling/v1 and v2 generated.proto. The
messages are complete but for status (the server fills it) and v2's `tolerance` (4, a beta field
newer than 1.32), which is refused with the 400 that says to send JSON."""

from __future__ import annotations

from reconcile.api.protometa import LABEL_SELECTOR, OBJECT_META, QUANTITY
from reconcile.core.protomessages import INT32, STRING, Field, Message

CROSS_VERSION_OBJECT_REFERENCE = Message("CrossVersionObjectReference", (
    Field(1, "kind", STRING), Field(2, "name", STRING), Field(3, "apiVersion", STRING)))

V1_SPEC = Message("HorizontalPodAutoscalerSpec", (
    Field(1, "scaleTargetRef", CROSS_VERSION_OBJECT_REFERENCE), Field(2, "minReplicas", INT32, pointer=True),
    Field(3, "maxReplicas", INT32), Field(4, "targetCPUUtilizationPercentage", INT32, pointer=True)))

METRIC_TARGET = Message("MetricTarget", (
    Field(1, "type", STRING), Field(2, "value", QUANTITY), Field(3, "averageValue", QUANTITY),
    Field(4, "averageUtilization", INT32, pointer=True)))
METRIC_IDENTIFIER = Message("MetricIdentifier", (Field(1, "name", STRING), Field(2, "selector", LABEL_SELECTOR)))
METRIC_SPEC = Message("MetricSpec", (
    Field(1, "type", STRING),
    Field(2, "object", Message("ObjectMetricSource", (
        Field(1, "describedObject", CROSS_VERSION_OBJECT_REFERENCE), Field(2, "target", METRIC_TARGET),
        Field(3, "metric", METRIC_IDENTIFIER)))),
    Field(3, "pods", Message("PodsMetricSource", (Field(1, "metric", METRIC_IDENTIFIER),
                                                  Field(2, "target", METRIC_TARGET)))),
    Field(4, "resource", Message("ResourceMetricSource", (Field(1, "name", STRING), Field(2, "target", METRIC_TARGET)))),
    Field(7, "containerResource", Message("ContainerResourceMetricSource", (
        Field(1, "name", STRING), Field(2, "target", METRIC_TARGET), Field(3, "container", STRING)))),
    Field(5, "external", Message("ExternalMetricSource", (Field(1, "metric", METRIC_IDENTIFIER),
                                                          Field(2, "target", METRIC_TARGET))))))
SCALING_RULES = Message("HPAScalingRules", (
    Field(3, "stabilizationWindowSeconds", INT32, pointer=True), Field(1, "selectPolicy", STRING, pointer=True),
    Field(2, "policies", Message("HPAScalingPolicy", (
        Field(1, "type", STRING), Field(2, "value", INT32), Field(3, "periodSeconds", INT32))), repeated=True)),
    upstream=frozenset(range(1, 5)))
V2_SPEC = Message("HorizontalPodAutoscalerSpec", (
    Field(1, "scaleTargetRef", CROSS_VERSION_OBJECT_REFERENCE), Field(2, "minReplicas", INT32, pointer=True),
    Field(3, "maxReplicas", INT32), Field(4, "metrics", METRIC_SPEC, repeated=True),
    Field(5, "behavior", Message("HorizontalPodAutoscalerBehavior", (
        Field(1, "scaleUp", SCALING_RULES), Field(2, "scaleDown", SCALING_RULES))))))

MESSAGES: dict[tuple[str, str], Message] = {
    ("autoscaling/v1", "HorizontalPodAutoscaler"): Message("HorizontalPodAutoscaler", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", V1_SPEC))),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Message("HorizontalPodAutoscaler", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", V2_SPEC))),
}
