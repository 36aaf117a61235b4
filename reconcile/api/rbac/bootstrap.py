"""Default roles and bindings, reconciled at every API server start (upstream's auto-reconcile).

A default object that is missing is created. One that exists is left alone when its
`rbac.authorization.kubernetes.io/autoupdate` annotation is "false"; otherwise what the default
has and the stored one lacks is added back (rules not covered, aggregation selectors, subjects,
labels and annotations), and nothing the stored one has is taken away, as upstream's
`reconcile` with its default of not removing extra permissions (one exception: the subjects a
default binding is known to have lost, `policy.RETIRED_SUBJECTS`). A binding whose roleRef differs
is deleted and created again (roleRef is immutable). Writes are the server's own
(`authn.SERVER`), so escalation checks do not apply; a lost race with another API server is
retried on a fresh read.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from reconcile.api import authn, registry, rest
from reconcile.api.rbac import policy
from reconcile.api.rbac import rules as rules_mod
from reconcile.core import errors

log = logging.getLogger(__name__)

ATTEMPTS = 5


def reconciled_role(existing: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    """The role to store so it holds every default permission, or None when it already does."""
    if (existing.get("metadata", {}).get("annotations") or {}).get(policy.AUTOUPDATE) == "false":
        return None
    result = copy.deepcopy(existing)
    changed = _merge_metadata(result, expected)
    if expected.get("aggregationRule"):
        wanted = expected["aggregationRule"].get("clusterRoleSelectors") or []
        current = (result.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        missing = [s for s in wanted if s not in current]
        if missing:
            result["aggregationRule"] = {"clusterRoleSelectors": [*current, *missing]}
            changed = True
        if not existing.get("aggregationRule"):
            changed = True
    else:
        held = rules_mod.parse_rules(result.get("rules"))
        added = [r for r in expected.get("rules") or []
                 if not rules_mod.covers(held, [rules_mod.PolicyRule.from_dict(r)])[0]]
        if added:
            result["rules"] = [*(result.get("rules") or []), *added]
            changed = True
    return result if changed else None


def reconciled_binding(existing: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    if (existing.get("metadata", {}).get("annotations") or {}).get(policy.AUTOUPDATE) == "false":
        return None
    result = copy.deepcopy(existing)
    changed = _merge_metadata(result, expected)
    subjects = list(result.get("subjects") or [])
    retired = policy.RETIRED_SUBJECTS.get(expected["metadata"]["name"], [])
    kept = [s for s in subjects if not any(_same_subject(s, r) for r in retired)]
    if len(kept) != len(subjects):
        subjects = kept
        changed = True
    for subject in expected.get("subjects") or []:
        if subject not in subjects:
            subjects.append(subject)
            changed = True
    result["subjects"] = subjects
    return result if changed else None


def _same_subject(subject: Any, other: dict[str, str]) -> bool:
    return isinstance(subject, dict) and all(subject.get(k) == other.get(k) for k in ("kind", "name"))


def _merge_metadata(result: dict[str, Any], expected: dict[str, Any]) -> bool:
    changed = False
    metadata = result.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        current = dict(metadata.get(field) or {})
        for key, value in (expected["metadata"].get(field) or {}).items():
            if key not in current:
                current[key] = value
                changed = True
        if current:
            metadata[field] = current
    return changed


async def reconcile(api: rest.Rest) -> int:
    """Create or repair every default object; returns how many were written."""
    roles = api.registry.get(policy.GROUP, "v1", "clusterroles")
    bindings = api.registry.get(policy.GROUP, "v1", "clusterrolebindings")
    if roles is None or bindings is None:
        raise RuntimeError("crds/ lacks the RBAC definitions")
    written = 0
    for role in policy.cluster_roles():
        written += await _ensure(api, roles, role, reconciled_role)
    for binding in policy.cluster_role_bindings():
        written += await _ensure(api, bindings, binding, reconciled_binding)
    return written


async def _ensure(api: rest.Rest, resource: registry.Resource, expected: dict[str, Any], merge: Any) -> int:
    name = expected["metadata"]["name"]
    for _ in range(ATTEMPTS):
        try:
            existing = (await api.get(resource, None, name)).obj
        except errors.NotFound:
            try:
                await api.create(resource, None, copy.deepcopy(expected), user=authn.SERVER)
                return 1
            except errors.AlreadyExists:
                continue
        if resource.plural == "clusterrolebindings" and existing.get("roleRef") != expected.get("roleRef") and \
                (existing["metadata"].get("annotations") or {}).get(policy.AUTOUPDATE) != "false":
            try:
                await api.delete(resource, None, name, options={"preconditions": {
                    "resourceVersion": existing["metadata"]["resourceVersion"]}}, user=authn.SERVER)
            except (errors.NotFound, errors.Conflict):
                pass
            continue
        updated = merge(existing, expected)
        if updated is None:
            return 0
        try:
            await api.update(resource, None, name, updated, user=authn.SERVER)
            log.info("default %s %s reconciled", resource.kind, name)
            return 1
        except (errors.Conflict, errors.NotFound):
            continue
    log.warning("default %s %s not reconciled after %d attempts", resource.kind, name, ATTEMPTS)
    return 0
