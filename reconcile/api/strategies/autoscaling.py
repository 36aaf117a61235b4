"""HorizontalPodAutoscalers (autoscaling/v2, stored; v1 arrives converted): what upstream's
ValidateHorizontalPodAutoscaler checks beyond the schema, and its v2 behavior defaults.

- minReplicas >= 1 (scale to zero is an alpha gate upstream, off), maxReplicas >= 1 and >= minReplicas;
- scaleTargetRef's kind and name set;
- each metric carries the source its type names, with a target whose type has its value
  (Utilization: averageUtilization > 0; Value / AverageValue: the quantity);
- behavior: stabilizationWindowSeconds in [0, 3600], each policy's value > 0 and periodSeconds in
  (0, 1800]. A behavior given with parts unset gets upstream's defaults for them
  (`core.hpabehavior.with_defaults`); no behavior stays absent, as upstream stores it. No metrics
  are 80% average cpu utilization (upstream's v2 default, which its reads show whatever version
  wrote the object).
"""

from __future__ import annotations

from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, hpabehavior, hpaconversion

SOURCES = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods", "Object": "object",
           "External": "external"}
MAX_WINDOW_SECONDS, MAX_PERIOD_SECONDS = 3600, 1800
DEFAULT_CPU_UTILIZATION = 80


def _invalid(field: str, value: Any, why: str) -> base.Cause:
    return errors.cause(field, f"Invalid value: {value}: {why}")


def _required(field: str, why: str = "") -> base.Cause:
    return errors.cause(field, f"Required value{': ' + why if why else ''}", "FieldValueRequired")


def spec_causes(spec: dict[str, Any]) -> list[base.Cause]:
    causes: list[base.Cause] = []
    ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
    for name in ("kind", "name"):
        if not ref.get(name):
            causes.append(_required(f"spec.scaleTargetRef.{name}"))
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        causes.append(_invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if isinstance(high, int):
        if high < 1:
            causes.append(_invalid("spec.maxReplicas", high, "must be greater than 0"))
        elif isinstance(low, int) and high < low:
            causes.append(_invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    for index, metric in enumerate(spec.get("metrics") or []):
        causes += _metric_causes(f"spec.metrics[{index}]", metric)
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for direction in ("scaleUp", "scaleDown"):
            if isinstance(behavior.get(direction), dict):
                causes += _rules_causes(f"spec.behavior.{direction}", behavior[direction])
    return causes


def _metric_causes(path: str, metric: Any) -> list[base.Cause]:
    if not isinstance(metric, dict):
        return []
    kind = metric.get("type")
    causes: list[base.Cause] = []
    for other, key in SOURCES.items():
        if other != kind and metric.get(key) is not None:
            causes.append(errors.cause(f"{path}.{key}", "Forbidden: must populate the given metric source only",
                                       "FieldValueForbidden"))
    source = metric.get(SOURCES.get(kind, ""))
    if not isinstance(source, dict):
        return causes + [_required(f"{path}.{SOURCES.get(kind, 'type')}",
                                   "must populate information for the given metric source")]
    target = source.get("target") if isinstance(source.get("target"), dict) else {}
    target_type = target.get("type")
    if target_type == "Utilization":
        utilization = target.get("averageUtilization")
        if utilization is None:
            causes.append(_required(f"{path}.{SOURCES[kind]}.target.averageUtilization",
                                    "must set either a target raw value or a target utilization"))
        elif utilization < 1:
            causes.append(_invalid(f"{path}.{SOURCES[kind]}.target.averageUtilization", utilization,
                                   "must be greater than 0"))
    elif target_type in ("Value", "AverageValue"):
        field = "value" if target_type == "Value" else "averageValue"
        if target.get(field) is None:
            causes.append(_required(f"{path}.{SOURCES[kind]}.target.{field}",
                                    f"must set {field} when the target type is {target_type}"))
    return causes


def _rules_causes(path: str, rules: dict[str, Any]) -> list[base.Cause]:
    causes: list[base.Cause] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int) and not 0 <= window <= MAX_WINDOW_SECONDS:
        causes.append(_invalid(f"{path}.stabilizationWindowSeconds", window,
                               f"must be greater than or equal to zero and less than or equal to {MAX_WINDOW_SECONDS}"))
    for index, policy in enumerate(rules.get("policies") or []):
        if not isinstance(policy, dict):
            continue
        value, period = policy.get("value"), policy.get("periodSeconds")
        if isinstance(value, int) and value <= 0:
            causes.append(_invalid(f"{path}.policies[{index}].value", value, "must be greater than zero"))
        if isinstance(period, int) and not 0 < period <= MAX_PERIOD_SECONDS:
            causes.append(_invalid(f"{path}.policies[{index}].periodSeconds", period,
                                   f"must be greater than zero and less than or equal to {MAX_PERIOD_SECONDS}"))
    return causes


class HorizontalPodAutoscalerStrategy(base.BuiltinStrategy):
    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("metrics"):
            spec["metrics"] = [hpaconversion.cpu_metric(DEFAULT_CPU_UTILIZATION)]
        if isinstance(spec.get("behavior"), dict):
            spec["behavior"] = hpabehavior.with_defaults(spec["behavior"])

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec")
        return spec_causes(spec) if isinstance(spec, dict) else []
