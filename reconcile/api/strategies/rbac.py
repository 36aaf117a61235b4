"""Roles, ClusterRoles, RoleBindings and ClusterRoleBindings: upstream's RBAC validation.

A rule needs verbs; a resource rule needs apiGroups and resources; a non-resource rule has only
URLs and verbs and exists only in ClusterRoles. A binding's roleRef names a Role or ClusterRole
of `rbac.authorization.k8s.io` (a ClusterRoleBinding only a ClusterRole) and never changes
(delete and re-create to point a binding elsewhere, as upstream); subjects are User, Group
(`apiGroup` defaulted to rbac.authorization.k8s.io) or ServiceAccount (`apiGroup` ""; cluster
bindings must name its namespace). Escalation checks are admission's (`rbac.escalation`).
"""

from __future__ import annotations

import json
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, names, selectors

GROUP = "rbac.authorization.k8s.io"


def _go_strings(values: Any) -> str:
    """Go's `%#v` of a []string, as upstream's field.Invalid prints a rule's list."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values or []) + "}"


def rule_causes(rules: Any, *, namespaced: bool) -> list[base.Cause]:
    causes: list[base.Cause] = []
    for index, rule in enumerate(rules or []):
        path = f"rules[{index}]"
        if not rule.get("verbs"):
            causes.append(errors.cause(f"{path}.verbs", "Required value: verbs must contain at least one value",
                                       "FieldValueRequired"))
        urls = rule.get("nonResourceURLs")
        if urls:
            if namespaced:
                causes.append(errors.cause(f"{path}.nonResourceURLs", f"Invalid value: {_go_strings(urls)}: "
                                           "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(errors.cause(f"{path}.nonResourceURLs", f"Invalid value: {_go_strings(urls)}: "
                                           "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            causes.append(errors.cause(f"{path}.apiGroups", "Required value: resource rules must supply at least "
                                       "one api group", "FieldValueRequired"))
        if not rule.get("resources"):
            causes.append(errors.cause(f"{path}.resources", "Required value: resource rules must supply at least "
                                       "one resource", "FieldValueRequired"))
    return causes


class RoleStrategy(base.BuiltinStrategy):
    """Role and ClusterRole."""

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        causes = rule_causes(obj.get("rules"), namespaced=resource.namespaced)
        aggregation = obj.get("aggregationRule")
        if isinstance(aggregation, dict):
            selector_list = aggregation.get("clusterRoleSelectors") or []
            if not selector_list:
                causes.append(errors.cause("aggregationRule.clusterRoleSelectors", "Required value: at least one "
                                           "clusterRoleSelector required if aggregationRule is non-nil",
                                           "FieldValueRequired"))
            for index, selector in enumerate(selector_list):
                try:
                    selectors.LabelSelector.from_match(selector)
                except (errors.ApiError, ValueError) as exc:
                    causes.append(errors.cause(f"aggregationRule.clusterRoleSelectors[{index}]",
                                               f"Invalid value: {exc}"))
        return causes


def _role_ref_text(ref: dict[str, Any]) -> str:
    return (f'rbac.RoleRef{{APIGroup:{json.dumps(ref.get("apiGroup", ""))}, Kind:{json.dumps(ref.get("kind", ""))}, '
            f'Name:{json.dumps(ref.get("name", ""))}}}')


class BindingStrategy(base.BuiltinStrategy):
    """RoleBinding and ClusterRoleBinding."""

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        """Upstream's defaults: User and Group subjects are of the RBAC API group."""
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and subject.get("kind") in ("User", "Group") and not subject.get("apiGroup"):
                subject["apiGroup"] = GROUP

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        causes: list[base.Cause] = []
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != GROUP:
            causes.append(errors.cause("roleRef.apiGroup", f'Unsupported value: {json.dumps(ref.get("apiGroup", ""))}: '
                                       f'supported values: "{GROUP}"', "FieldValueNotSupported"))
        kinds = ("Role", "ClusterRole") if resource.namespaced else ("ClusterRole",)
        if ref.get("kind") not in kinds:
            supported = ", ".join(f'"{k}"' for k in kinds)
            causes.append(errors.cause("roleRef.kind", f'Unsupported value: {json.dumps(ref.get("kind", ""))}: '
                                       f"supported values: {supported}", "FieldValueNotSupported"))
        name = ref.get("name") or ""
        if not name:
            causes.append(errors.cause("roleRef.name", "Required value", "FieldValueRequired"))
        else:
            causes += [errors.cause("roleRef.name", f"Invalid value: {json.dumps(name)}: {problem}")
                       for problem in _path_segment_errors(name)]
        for index, subject in enumerate(obj.get("subjects") or []):
            causes += subject_causes(subject, f"subjects[{index}]", namespaced=resource.namespaced)
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        if (old.get("roleRef") or {}) != (new.get("roleRef") or {}):
            causes.append(errors.cause("roleRef", f"Invalid value: {_role_ref_text(new.get('roleRef') or {})}: "
                                       "cannot change roleRef"))
        return causes


def _path_segment_errors(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def subject_causes(subject: dict[str, Any], path: str, *, namespaced: bool) -> list[base.Cause]:
    causes: list[base.Cause] = []
    name, kind, group = subject.get("name") or "", subject.get("kind"), subject.get("apiGroup") or ""
    if not name:
        causes.append(errors.cause(f"{path}.name", "Required value", "FieldValueRequired"))
    if kind == "ServiceAccount":
        if name:
            causes += [errors.cause(f"{path}.name", f"Invalid value: {json.dumps(name)}: {problem}")
                       for problem in names.dns1123_subdomain_errors(name)]
        if group:
            causes.append(errors.cause(f"{path}.apiGroup", f'Unsupported value: {json.dumps(group)}: supported '
                                       'values: ""', "FieldValueNotSupported"))
        if not namespaced and not subject.get("namespace"):
            causes.append(errors.cause(f"{path}.namespace", "Required value", "FieldValueRequired"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            causes.append(errors.cause(f"{path}.apiGroup", f'Unsupported value: {json.dumps(group)}: supported '
                                       f'values: "{GROUP}"', "FieldValueNotSupported"))
    else:
        causes.append(errors.cause(f"{path}.kind", f'Unsupported value: {json.dumps(kind or "")}: supported values: '
                                   '"ServiceAccount", "User", "Group"', "FieldValueNotSupported"))
    return causes
