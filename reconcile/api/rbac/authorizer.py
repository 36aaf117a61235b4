"""The RBAC authorizer: allowed iff some rule of a role bound to the user matches the request.

Deny by default; a request no rule allows gets "no opinion" (`allowed=False`), so an authorizer
chain may ask the next one (upstream's DecisionNoOpinion). The reason of an allow names the
binding, as upstream's (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "u"`),
which SubjectAccessReviews echo; a deny carries the problems met, such as a binding to a role
that does not exist.

Decisions are cached per RBAC snapshot (`RuleIndex.snapshot()` returns a new object after any Role or
binding changed, and the cache is dropped the moment it does, so a change counts from the very next
decision after the watch cache applied it). A decision is a pure function of the snapshot, the
user's name and groups and the request's verb, group, resource, subresource, namespace and name (or
path), so the cache can only answer what `decide_uncached` would. The object name is left out of the key
when no rule that applies to the user in that namespace lists resourceNames: then no rule looks at it,
and a GET of each of 10,000 objects costs one evaluation, not 10,000.
"""

from __future__ import annotations

from reconcile.api import authn, authz
from reconcile.api.rbac import index as index_mod
from reconcile.api.rbac import rules as rules_mod


def request_of(attributes: authz.Attributes) -> rules_mod.Request:
    return rules_mod.Request(attributes.verb, attributes.resource_request, attributes.path, attributes.api_group,
                             attributes.resource, attributes.subresource, attributes.name)


def aggregate(problems: list[str]) -> str:
    """apimachinery's error aggregate text: one error as it is, several as `[a, b]`."""
    return problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"


# A bound on the cached decisions; past it the cache starts over (a burst of distinct names or users
# cannot grow it without limit, and the common keys come back within a few requests).
CACHE_SIZE = 8192


class RBACAuthorizer:
    def __init__(self, index: index_mod.RuleIndex) -> None:
        self.index = index
        self._cached_for: index_mod.Snapshot | None = None  # the snapshot the caches below describe
        self._decisions: dict[tuple[object, ...], authz.Decision] = {}
        self._names_matter: dict[tuple[str, tuple[str, ...], str], bool] = {}

    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        return self.decide(attributes)

    def decide(self, attributes: authz.Attributes) -> authz.Decision:
        """`decide_uncached`, remembered for as long as the RBAC snapshot stays the same."""
        snapshot = self.index.snapshot()
        if snapshot is not self._cached_for:
            self._decisions.clear()
            self._names_matter.clear()
            self._cached_for = snapshot
        user = attributes.user
        who = (user.name, user.groups, attributes.namespace)
        names_matter = self._names_matter.get(who)
        if names_matter is None:
            if len(self._names_matter) >= CACHE_SIZE:
                self._names_matter.clear()
            names_matter = self._names_matter[who] = any(
                rule.resource_names for grant in self.index.grants(user, attributes.namespace) for rule in grant.rules)
        if attributes.resource_request:
            key: tuple[object, ...] = (who, attributes.verb, True, attributes.api_group, attributes.resource,
                                       attributes.subresource, attributes.name if names_matter else None)
        else:
            key = (who, attributes.verb, False, attributes.path)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= CACHE_SIZE:
                self._decisions.clear()
            decision = self._decisions[key] = self.decide_uncached(attributes)
        return decision

    def decide_uncached(self, attributes: authz.Attributes) -> authz.Decision:
        """Upstream's RBAC decision, evaluated from the index's current snapshot."""
        request = request_of(attributes)
        problems: list[str] = []
        for grant in self.index.grants(attributes.user, attributes.namespace):
            if grant.error:
                problems.append(grant.error)
                continue
            for rule in grant.rules:
                if rules_mod.allows(rule, request):
                    return authz.Decision(True, f"RBAC: allowed by {grant.binding.describe(grant.subject)}")
        return authz.Decision(False, f"RBAC: {aggregate(problems)}" if problems else "")

    def rules_for(self, user: authn.UserInfo, namespace: str) -> tuple[list[rules_mod.PolicyRule], list[str]]:
        return self.index.rules_for(user, namespace)
