"""PodDisruptionBudgets (policy/v1): what upstream's ValidatePodDisruptionBudget checks beyond the
schema: minAvailable and maxUnavailable not both set, each a non-negative int or a percent of at
most 100% (`core.disruption`), and a selector whose In/NotIn requirements have values and whose
Exists/DoesNotExist have none. The status starts empty (the schema's zero values) and is the
disruption controller's and the eviction subresource's to write.
"""

from __future__ import annotations

from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import disruption, errors


def _selector_causes(selector: Any) -> list[base.Cause]:
    if not isinstance(selector, dict):
        return []
    causes: list[base.Cause] = []
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        if not isinstance(expr, dict):
            continue
        field = f"spec.selector.matchExpressions[{i}].values"
        values = expr.get("values") or []
        if expr.get("operator") in ("In", "NotIn") and not values:
            causes.append(errors.cause(field, "Required value: must be specified when `operator` is 'In' or "
                                              "'NotIn'", "FieldValueRequired"))
        if expr.get("operator") in ("Exists", "DoesNotExist") and values:
            causes.append(errors.cause(field, "Forbidden: may not be specified when `operator` is 'Exists' or "
                                              "'DoesNotExist'", "FieldValueForbidden"))
    return causes


class PodDisruptionBudgetStrategy(base.BuiltinStrategy):
    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return []
        return disruption.spec_causes(spec) + _selector_causes(spec.get("selector"))
