"""RBAC policy rules as pure data: matching a request, covering other rules, describing them.

Upstream's semantics exactly (`plugin/pkg/auth/authorizer/rbac` and `pkg/registry/rbac/validation`):
- verbs and apiGroups match by equality or `*`;
- resources match `*`, `resource`, `resource/subresource`, or `*/subresource` for any resource's
  subresource (never a bare resource);
- resourceNames, when given, must contain the request's name (so a list or create, which has no
  name, never matches a rule with resourceNames);
- nonResourceURLs match by equality, `*`, or a prefix ending in `*` (`/healthz*`).

Nothing here does I/O; the authorizer, the escalation check and the rules review build on it,
and unit and property tests exercise it directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ALL = "*"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """`rbacv1.PolicyRule`, with each list kept in its stored order (tuples, so rules hash)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Any) -> PolicyRule:
        """A stored rule (schema-checked already; anything odd reads as an empty list)."""
        if not isinstance(rule, dict):
            return cls()
        return cls(_strings(rule.get("verbs")), _strings(rule.get("apiGroups")), _strings(rule.get("resources")),
                   _strings(rule.get("resourceNames")), _strings(rule.get("nonResourceURLs")))

    def to_dict(self) -> dict[str, list[str]]:
        """The wire form, empty lists left out (as upstream's omitempty)."""
        out: dict[str, list[str]] = {"verbs": list(self.verbs)}
        for key, value in (("apiGroups", self.api_groups), ("resources", self.resources),
                           ("resourceNames", self.resource_names), ("nonResourceURLs", self.non_resource_urls)):
            if value:
                out[key] = list(value)
        return out

    def compact_string(self) -> str:
        """Upstream's `PolicyRule.CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
        parts = []
        for label, value in (("APIGroups", self.api_groups), ("Resources", self.resources),
                             ("NonResourceURLs", self.non_resource_urls), ("ResourceNames", self.resource_names),
                             ("Verbs", self.verbs)):
            if value:
                parts.append(f"{label}:{go_quoted_list(value)}")
        return "{" + ", ".join(parts) + "}"


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def go_quoted_list(values: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_rules(rules: Any) -> tuple[PolicyRule, ...]:
    if not isinstance(rules, list):
        return ()
    return tuple(PolicyRule.from_dict(rule) for rule in rules)


# --- matching a request ------------------------------------------------------------------------------------------


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    """`combined` is `resource` or `resource/subresource`."""
    for candidate in rule.resources:
        if candidate == ALL or candidate == combined:
            return True
        if subresource and len(candidate) == len(subresource) + 2 and candidate.startswith("*/") \
                and candidate.endswith(subresource):
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    for candidate in rule.non_resource_urls:
        if candidate == ALL or candidate == path:
            return True
        if candidate.endswith(ALL) and path.startswith(candidate.rstrip(ALL)):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Request:
    """What a rule is matched against: the parts of `authz.Attributes` that rules look at."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def allows(rule: PolicyRule, request: Request) -> bool:
    """Upstream's `RuleAllows`."""
    if not verb_matches(rule, request.verb):
        return False
    if not request.resource_request:
        return non_resource_url_matches(rule, request.path)
    combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    return (api_group_matches(rule, request.api_group) and resource_matches(rule, combined, request.subresource)
            and resource_name_matches(rule, request.name))


def any_allows(rules: Iterable[PolicyRule], request: Request) -> bool:
    return any(allows(rule, request) for rule in rules)


# --- one set of rules covering another (escalation prevention) --------------------------------------------------


def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """Upstream's `BreakdownRule`: one rule per (group, resource, verb[, name]) and per (URL, verb)."""
    out: list[PolicyRule] = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    out.extend(PolicyRule((verb,), (group,), (resource,), (name,)) for name in rule.resource_names)
                else:
                    out.append(PolicyRule((verb,), (group,), (resource,)))
    for url in rule.non_resource_urls:
        out.extend(PolicyRule((verb,), non_resource_urls=(url,)) for verb in rule.verbs)
    return out


def _has_all(values: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(w in values for w in wanted)


def _resources_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if ALL in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owned: str, wanted: str) -> bool:
    return owned == wanted or (owned.endswith(ALL) and wanted.startswith(owned.rstrip(ALL)))


def rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """Upstream's `ruleCovers`: `owner` grants everything `sub` does."""
    verbs = ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)
    groups = ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)
    resources = _resources_cover(owner.resources, sub.resources)
    urls = all(any(_url_covers(o, w) for o in owner.non_resource_urls) for w in sub.non_resource_urls)
    if not sub.resource_names:
        names = not owner.resource_names
    else:
        names = not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)
    return verbs and groups and resources and names and urls


def covers(owner_rules: Sequence[PolicyRule], wanted_rules: Iterable[PolicyRule]) -> tuple[bool, list[PolicyRule]]:
    """Upstream's `Covers`: whether `owner_rules` grant every permission of `wanted_rules`, and the
    (broken down) permissions they miss."""
    missing: list[PolicyRule] = []
    for rule in wanted_rules:
        for sub in breakdown(rule):
            if not any(rule_covers(owner, sub) for owner in owner_rules):
                missing.append(sub)
    return not missing, missing


def compact(rules: Iterable[PolicyRule]) -> list[PolicyRule]:
    """Upstream's `CompactRules`: simple resource rules differing only in their verb become one rule."""
    merged: dict[tuple[str, str], list[str]] = {}
    order: list[PolicyRule | tuple[str, str]] = []
    for rule in rules:
        simple = (len(rule.api_groups) == 1 and len(rule.resources) == 1 and not rule.resource_names
                  and not rule.non_resource_urls)
        if not simple:
            order.append(rule)
            continue
        key = (rule.api_groups[0], rule.resources[0])
        if key not in merged:
            merged[key] = []
            order.append(key)
        merged[key].extend(v for v in rule.verbs if v not in merged[key])
    out: list[PolicyRule] = []
    for item in order:
        if isinstance(item, PolicyRule):
            out.append(item)
        else:
            out.append(PolicyRule(tuple(merged[item]), (item[0],), (item[1],)))
    return out


# Every permission there is: what a ClusterRole's aggregationRule needs (it can gather anything).
FULL_AUTHORITY = (PolicyRule((ALL,), (ALL,), (ALL,)), PolicyRule((ALL,), non_resource_urls=(ALL,)))
