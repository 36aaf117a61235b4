"""The authorization chain: which authorizers the server asks, in which order (`--authorization-mode`).

Upstream's union authorizer behind its privileged-group short-circuit: a member of `system:masters`
is always allowed (the API server's own loopback identity is one, so the server can never lock
itself out); then every configured authorizer in order, the first allow winning; nobody allowing
is a deny, with the reasons given joined. Every authorizer here only allows or has no opinion
(`allowed=False`), as RBAC and the Node authorizer do upstream.

The Node authorizer (`nodeauth.authorizer`) is one more mode: `--authorization-mode Node,RBAC`
asks it first for what node agents do, and RBAC for everything it has no opinion on. Another
authorizer implements `authz.Authorizer` (and `RuleResolver` if it should answer
SelfSubjectRulesReviews), gets a name in `MODES` and a branch in `build`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from reconcile.api import authn, authz
from reconcile.api.rbac import rules as rules_mod

PRIVILEGED_GROUP = "system:masters"
ALWAYS_ALLOW, ALWAYS_DENY, RBAC, NODE = "AlwaysAllow", "AlwaysDeny", "RBAC", "Node"
MODES = (ALWAYS_ALLOW, ALWAYS_DENY, RBAC, NODE)  # upstream's AuthorizationModeChoices order (less ABAC, Webhook)


@dataclass(slots=True)
class Rules:
    """What a user may do in a namespace, as a SelfSubjectRulesReview reports it."""

    resource_rules: list[rules_mod.PolicyRule] = field(default_factory=list)
    non_resource_rules: list[rules_mod.PolicyRule] = field(default_factory=list)
    incomplete: bool = False
    errors: list[str] = field(default_factory=list)


@runtime_checkable
class RuleResolver(Protocol):
    def rules_for(self, user: authn.UserInfo, namespace: str) -> tuple[list[rules_mod.PolicyRule], list[str]]:
        """The rules that apply to `user` in `namespace`, and errors met (a partial answer)."""
        ...


class AlwaysDeny:
    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        return authz.Decision(False, "")


class Chain:
    """`system:masters`, then each authorizer in order; the first allow wins."""

    def __init__(self, authorizers: Sequence[authz.Authorizer], *,
                 privileged_groups: tuple[str, ...] = (PRIVILEGED_GROUP,)) -> None:
        self.authorizers = list(authorizers)
        self.privileged_groups = privileged_groups

    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        groups = attributes.user.groups
        for group in self.privileged_groups:
            if group in groups:
                return authz.AlwaysAllow.ALLOW
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision = await authorizer.authorize(attributes)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return authz.Decision(False, ", ".join(reasons))

    def rules_for(self, user: authn.UserInfo, namespace: str) -> Rules:
        """Upstream's union `RulesFor`: every authorizer's rules, concatenated; incomplete when any
        of them cannot list its rules (AlwaysDeny lists none, which is complete)."""
        result = Rules()
        if any(group in user.groups for group in self.privileged_groups):
            result.resource_rules.append(rules_mod.FULL_AUTHORITY[0])
            result.non_resource_rules.append(rules_mod.FULL_AUTHORITY[1])
        for authorizer in self.authorizers:
            if isinstance(authorizer, authz.AlwaysAllow):
                result.resource_rules.append(rules_mod.FULL_AUTHORITY[0])
                result.non_resource_rules.append(rules_mod.FULL_AUTHORITY[1])
            elif isinstance(authorizer, RuleResolver):
                found, problems = authorizer.rules_for(user, namespace)
                for rule in found:
                    (result.non_resource_rules if rule.non_resource_urls else result.resource_rules).append(rule)
                if problems:
                    result.incomplete = True
                    result.errors.extend(problems)
            elif not isinstance(authorizer, AlwaysDeny):
                result.incomplete = True
        return result


def parse_modes(text: str) -> list[str]:
    """`--authorization-mode RBAC` or a comma-separated list (`Node,RBAC`), each known, none twice."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise ValueError("--authorization-mode: at least one mode is required")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"--authorization-mode: unknown mode {mode!r} (known: {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"--authorization-mode: a mode is listed twice: {text!r}")
    return modes


def build(modes: Sequence[str], *, rbac: authz.Authorizer | None, node: authz.Authorizer | None = None) -> Chain:
    """The chain for `modes`; `rbac` and `node` are the server's RBAC and Node authorizers (each
    needed when its mode is listed)."""
    authorizers: list[authz.Authorizer] = []
    for mode in modes:
        if mode == ALWAYS_ALLOW:
            authorizers.append(authz.AlwaysAllow())
        elif mode == ALWAYS_DENY:
            authorizers.append(AlwaysDeny())
        elif mode == RBAC:
            if rbac is None:
                raise ValueError("RBAC mode needs the RBAC authorizer")
            authorizers.append(rbac)
        elif mode == NODE:
            if node is None:
                raise ValueError("Node mode needs the Node authorizer")
            authorizers.append(node)
        else:
            raise ValueError(f"unknown authorization mode {mode!r}")
    return Chain(authorizers)
