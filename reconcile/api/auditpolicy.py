"""The audit policy: upstream's `audit.k8s.io/v1` Policy file, and which level a request is logged at.

Rules are tried in order and the first that matches a request decides its level (`None`, `Metadata`,
`Request`, `RequestResponse`); a request no rule matches is not logged, as upstream. A rule matches
when every field it sets matches: `users`, `userGroups` (any of them), `verbs`, and either
`resources`/`namespaces` (resource requests only) or `nonResourceURLs` (the others only; a trailing
`*` is a prefix). `resources` entries name a `group` ("" is the core group), `resources` (`pods`,
`pods/log`, `*`, `*/status`, `pods/*`) and optionally `resourceNames`. `omitStages` (policy-wide and
per rule) and `omitManagedFields` behave as upstream's.

Matching reads the authorization attributes the pipeline builds anyway (`authz.Attributes`), so the
policy sees exactly what RBAC sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconcile.api import authz

API_VERSION = "audit.k8s.io/v1"
NONE, METADATA, REQUEST, REQUEST_RESPONSE = "None", "Metadata", "Request", "RequestResponse"
LEVELS = (NONE, METADATA, REQUEST, REQUEST_RESPONSE)
RECEIVED, STARTED, COMPLETE, PANIC = "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"
STAGES = (RECEIVED, STARTED, COMPLETE, PANIC)


class PolicyError(ValueError):
    """The policy file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str
    resources: tuple[str, ...]  # empty: every resource of the group
    resource_names: tuple[str, ...]  # empty: any name

    def matches(self, attributes: authz.Attributes) -> bool:
        if self.group != attributes.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and attributes.name not in self.resource_names:
            return False
        resource, subresource = attributes.resource, attributes.subresource
        combined = f"{resource}/{subresource}" if subresource else resource
        for pattern in self.resources:
            if pattern in (combined, "*"):
                return True
            if subresource and pattern.startswith("*/") and pattern[2:] == subresource:
                return True
            if pattern.endswith("/*") and pattern[:-2] == resource:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None  # None: the policy's setting

    def matches(self, attributes: authz.Attributes) -> bool:
        user = attributes.user
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not any(group in self.user_groups for group in user.groups):
            return False
        if self.verbs and attributes.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not attributes.resource_request:
                return False
            if self.namespaces and attributes.namespace not in self.namespaces:
                return False
            return not self.resources or any(r.matches(attributes) for r in self.resources)
        if self.non_resource_urls:
            if attributes.resource_request:
                return False
            path = attributes.path
            return any(path == url or (url.endswith("*") and path.startswith(url[:-1]))
                       for url in self.non_resource_urls)
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    """How one request is audited."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool


NOT_LOGGED = Decision(NONE, frozenset(), False)


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def decide(self, attributes: authz.Attributes) -> Decision:
        for rule in self.rules:
            if rule.matches(attributes):
                if rule.level == NONE:
                    return NOT_LOGGED
                managed = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                return Decision(rule.level, self.omit_stages | rule.omit_stages, managed)
        return NOT_LOGGED


# What `reconcile up` writes when auditing is on: credentials-bearing bodies (Secrets, ConfigMaps, token
# requests and reviews) at Metadata only, reads at Metadata, writes with their request body; the
# noisiest system traffic (health checks, heartbeats, events) not at all. Modelled on the policies
# GKE and kube-up ship.
DEFAULT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
# the RequestReceived stage doubles every line and says little the ResponseComplete one does not
omitStages: ["RequestReceived"]
rules:
  # health checks and version probes
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/version/"]
  # heartbeats and leader election renew a Lease every few seconds
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  # Events are written by components at a high rate and are themselves a record
  - level: None
    resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
  # bodies that carry credentials: who touched them, never what is in them
  - level: Metadata
    resources:
      - {group: "", resources: [secrets, configmaps, serviceaccounts/token]}
      - {group: authentication.k8s.io, resources: [tokenreviews, tokenrequests]}
  - level: Metadata
    verbs: [get, list, watch]
  - level: Request
    omitManagedFields: true
"""


def load(path: str | Path) -> Policy:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read the audit policy {path}: {exc.strerror or exc}") from None
    try:
        return parse(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not YAML: {exc}") from None
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def default_policy() -> Policy:
    return parse(yaml.safe_load(DEFAULT_POLICY))


def parse(document: Any) -> Policy:
    if not isinstance(document, Mapping) or document.get("kind") != "Policy" \
            or document.get("apiVersion") != API_VERSION:
        raise PolicyError(f"expected an {API_VERSION} Policy")
    _no_unknown(document, {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}, "")
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError("a policy with no rules logs nothing: at least one rule is required")
    return Policy(tuple(_rule(rule, f"rules[{i}]") for i, rule in enumerate(rules)),
                  _stages(document.get("omitStages"), "omitStages"),
                  _flag(document.get("omitManagedFields"), "omitManagedFields") or False)


def _rule(rule: Any, where: str) -> Rule:
    if not isinstance(rule, Mapping):
        raise PolicyError(f"{where}: must be an object")
    _no_unknown(rule, {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs",
                       "omitStages", "omitManagedFields"}, where)
    level = rule.get("level")
    if level not in LEVELS:
        raise PolicyError(f"{where}.level: must be one of {', '.join(LEVELS)}, not {level!r}")
    resources = tuple(_group_resources(entry, f"{where}.resources[{j}]")
                      for j, entry in enumerate(_list(rule.get("resources"), f"{where}.resources")))
    namespaces = frozenset(_strings(rule.get("namespaces"), f"{where}.namespaces"))
    urls = tuple(_strings(rule.get("nonResourceURLs"), f"{where}.nonResourceURLs"))
    if urls and (resources or namespaces):
        raise PolicyError(f"{where}: a rule applies to resources or to nonResourceURLs, not both")
    for url in urls:
        if not url.startswith("/") or "*" in url[:-1]:
            raise PolicyError(f"{where}.nonResourceURLs: {url!r} must start with / and may end with * only")
    return Rule(level=level, users=frozenset(_strings(rule.get("users"), f"{where}.users")),
                user_groups=frozenset(_strings(rule.get("userGroups"), f"{where}.userGroups")),
                verbs=frozenset(_strings(rule.get("verbs"), f"{where}.verbs")), resources=resources,
                namespaces=namespaces, non_resource_urls=urls,
                omit_stages=_stages(rule.get("omitStages"), f"{where}.omitStages"),
                omit_managed_fields=_flag(rule.get("omitManagedFields"), f"{where}.omitManagedFields"))


def _group_resources(entry: Any, where: str) -> GroupResources:
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{where}: must be an object with group, resources, resourceNames")
    _no_unknown(entry, {"group", "resources", "resourceNames"}, where)
    group = entry.get("group") or ""
    if not isinstance(group, str):
        raise PolicyError(f"{where}.group: must be a string")
    resources = tuple(_strings(entry.get("resources"), f"{where}.resources"))
    names = tuple(_strings(entry.get("resourceNames"), f"{where}.resourceNames"))
    if names and not resources:
        raise PolicyError(f"{where}.resourceNames: needs resources")
    return GroupResources(group, resources, names)


def _stages(value: Any, where: str) -> frozenset[str]:
    stages = _strings(value, where)
    for stage in stages:
        if stage not in STAGES:
            raise PolicyError(f"{where}: {stage!r} is not one of {', '.join(STAGES)}")
    return frozenset(stages)


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise PolicyError(f"{where}: must be true or false")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{where}: must be a list")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    if not all(isinstance(item, str) for item in items):
        raise PolicyError(f"{where}: must be a list of strings")
    return items


def _no_unknown(obj: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        raise PolicyError(f"{where + ': ' if where else ''}unknown field(s) {', '.join(unknown)}")
