"""Escalation prevention (an admission plugin): nobody grants permissions they do not hold.

Upstream's policy-based RBAC storage, on create and update (an update that only touches the
fields garbage collection needs is let through):
- a Role or ClusterRole: the writer must already hold every permission in its rules, or be
  allowed the verb `escalate` on it; a ClusterRole with an `aggregationRule` (it can gather
  anything) needs `*` on everything;
- a RoleBinding or ClusterRoleBinding: the writer must hold every permission of the role it
  references (in the binding's namespace), or be allowed the verb `bind` on that role.
Members of `system:masters` are exempt, as upstream's EscalationAllowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconcile.api import admission, authn, authz
from reconcile.api.rbac import rules as rules_mod
from reconcile.core import errors

GROUP = "rbac.authorization.k8s.io"
ROLES = ("roles", "clusterroles")
BINDINGS = ("rolebindings", "clusterrolebindings")
PRIVILEGED_GROUP = "system:masters"
GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")

# (user, namespace) -> every rule that applies to the user there (RBAC's and the other authorizers')
RulesFor = Callable[[authn.UserInfo, str], list[rules_mod.PolicyRule]]
# (kind, name, namespace) -> the rules of the role a binding references, or None when it is missing
RoleRules = Callable[[str, str, str], tuple[rules_mod.PolicyRule, ...] | None]


def only_gc_fields_changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    if old is None or new is None:
        return False

    def trimmed(obj: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in GC_FIELDS}
        return dict(obj, metadata=metadata)

    return trimmed(old) == trimmed(new)


def missing_message(user: authn.UserInfo, missing: list[rules_mod.PolicyRule], problems: list[str]) -> str:
    """Upstream's ConfirmNoEscalation error text."""
    described = sorted({rule.compact_string() for rule in rules_mod.compact(missing)})
    message = (f"user {rules_mod.go_quote(user.name)} (groups={rules_mod.go_quoted_list(user.groups)}) is attempting "
               f"to grant RBAC permissions not currently held:\n" + "\n".join(described))
    if problems:
        message += f"; resolution errors: [{', '.join(problems)}]"
    return message


class EscalationCheck(admission.Plugin):
    name = "RBACEscalation"

    def __init__(self, authorizer: authz.Authorizer, rules_for: Callable[[authn.UserInfo, str], Any],
                 role_rules: RoleRules) -> None:
        self.authorizer = authorizer
        self._rules_for = rules_for  # (user, namespace) -> authorizers.Rules
        self.role_rules = role_rules

    async def validate(self, attributes: admission.Attributes) -> None:
        resource = attributes.resource
        if resource.group != GROUP or attributes.subresource or attributes.operation not in (
                admission.CREATE, admission.UPDATE):
            return
        if resource.plural not in ROLES and resource.plural not in BINDINGS:
            return
        user = attributes.user
        if PRIVILEGED_GROUP in user.groups:
            return
        if attributes.operation == admission.UPDATE and only_gc_fields_changed(attributes.old, attributes.obj):
            return
        obj = attributes.obj or {}
        namespace = (attributes.namespace or "") if resource.namespaced else ""
        if resource.plural in ROLES:
            await self._check_role(attributes, obj, namespace)
        else:
            await self._check_binding(attributes, obj, namespace)

    async def _allowed(self, user: authn.UserInfo, verb: str, plural: str, name: str, namespace: str) -> bool:
        decision = await self.authorizer.authorize(authz.Attributes(user, verb, True, "", GROUP, "*", plural, "",
                                                                    namespace, name))
        return decision.allowed

    def _confirm(self, attributes: admission.Attributes, wanted: tuple[rules_mod.PolicyRule, ...] | list[
            rules_mod.PolicyRule], namespace: str, *, message: str | None = None) -> None:
        held = self._rules_for(attributes.user, namespace)
        owned = [*held.resource_rules, *held.non_resource_rules]
        covered, missing = rules_mod.covers(owned, wanted)
        if covered:
            return
        raise _forbidden(attributes, message or missing_message(attributes.user, missing, held.errors))

    async def _check_role(self, attributes: admission.Attributes, obj: dict[str, Any], namespace: str) -> None:
        plural = attributes.resource.plural
        if await self._allowed(attributes.user, "escalate", plural, attributes.name, namespace):
            return
        self._confirm(attributes, rules_mod.parse_rules(obj.get("rules")), namespace)
        if plural == "clusterroles" and (obj.get("aggregationRule") or (attributes.old or {}).get("aggregationRule")):
            self._confirm(attributes, rules_mod.FULL_AUTHORITY, namespace,
                          message="must have cluster-admin privileges to use the aggregationRule")

    async def _check_binding(self, attributes: admission.Attributes, obj: dict[str, Any], namespace: str) -> None:
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind)
        if plural is None:
            return  # validation refuses the roleRef
        if await self._allowed(attributes.user, "bind", plural, name, namespace):
            return
        wanted = self.role_rules(kind, name, namespace)
        if wanted is None:
            raise errors.NotFound.for_resource(plural, name, GROUP)
        self._confirm(attributes, wanted, namespace)


def _forbidden(attributes: admission.Attributes, why: str) -> errors.Forbidden:
    resource = attributes.resource
    return errors.Forbidden(f'{resource.plural}.{GROUP} "{attributes.name}" is forbidden: {why}',
                            details={"name": attributes.name, "group": GROUP, "kind": resource.plural})
