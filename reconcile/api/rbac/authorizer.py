"""The RBAC authorizer: allowed iff some rule of a role bound to the user matches the request.

Deny by default; a request no rule allows gets "no opinion" (`allowed=False`), so an authorizer
chain may ask the next one (upstream's DecisionNoOpinion). The reason of an allow names the
binding, as upstream's (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "u"`),
which SubjectAccessReviews echo; a deny carries the problems met, such as a binding to a role
that does not exist.
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


class RBACAuthorizer:
    def __init__(self, index: index_mod.RuleIndex) -> None:
        self.index = index

    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        return self.decide(attributes)

    def decide(self, attributes: authz.Attributes) -> authz.Decision:
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
