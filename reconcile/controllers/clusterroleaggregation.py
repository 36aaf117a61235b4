"""ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the union of the rules of
every other ClusterRole its selectors match, kept current.

Upstream's controller: for each selector in order, the matching ClusterRoles sorted by name, each
rule appended unless an equal one is already there; the role is written only when that list
differs from its `rules`. Any ClusterRole change may change any aggregate (a label added, a
rule edited), so every change wakes every aggregated ClusterRole; reconciles read the informer.
This is how a CRD's `aggregate-to-view` ClusterRole reaches `view`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "rbac.authorization.k8s.io/v1"
RULE_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


def normalized(rule: Any) -> dict[str, list[str]]:
    """A rule as compared (upstream's semantic equality: an empty list is no list)."""
    if not isinstance(rule, dict):
        return {}
    return {k: list(rule[k]) for k in RULE_FIELDS if isinstance(rule.get(k), list) and rule[k]}


def aggregated_rules(target: dict[str, Any], roles: Iterable[dict[str, Any]]) -> list[dict[str, list[str]]] | None:
    """The rules `target` should hold, or None when it has no aggregationRule (not ours to manage)."""
    rule = target.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    name = (target.get("metadata") or {}).get("name")
    by_name = sorted((r for r in roles if isinstance(r, dict)), key=lambda r: (r.get("metadata") or {}).get("name", ""))
    result: list[dict[str, list[str]]] = []
    for spec in rule.get("clusterRoleSelectors") or []:
        try:
            selector = selectors.LabelSelector.from_match(spec if isinstance(spec, dict) else None)
        except errors.ApiError:
            continue  # the API server refuses such selectors; a stale one selects nothing
        for role in by_name:
            metadata = role.get("metadata") or {}
            if metadata.get("name") == name or not selector.matches(metadata.get("labels") or {}):
                continue
            for candidate in role.get("rules") or []:
                entry = normalized(candidate)
                if entry and entry not in result:
                    result.append(entry)
    return result


class ClusterRoleAggregationController:
    """Owns the `clusterrole-aggregation` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.roles = ctx.informers.get(API_VERSION, "clusterroles")
        self.controller = ctx.controller("clusterrole-aggregation", self.reconcile,
                                         lookup=lambda key: self.roles.store.get(None, key[1]))
        self.controller.watch(self.roles, to_keys=self._aggregated_keys)

    def _aggregated_keys(self, _changed: dict[str, Any]) -> list[controller_mod.Key]:
        return [("", (role.get("metadata") or {}).get("name", "")) for role in self.roles.store.list()
                if isinstance(role.get("aggregationRule"), dict)]

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        role = self.roles.store.get(None, key[1])
        if role is None:
            return None
        wanted = aggregated_rules(role, self.roles.store.list())
        if wanted is None or wanted == [normalized(r) for r in role.get("rules") or []]:
            return None
        updated = {**role, "rules": wanted}
        try:
            await self.ctx.client.replace(API_VERSION, "clusterroles", updated)
        except errors.NotFound:
            return None
        # A Conflict (the informer is behind) is retried with backoff, on what the informer has then.
        log.info("clusterrole %s: %d aggregated rules", key[1], len(wanted))
        return None
