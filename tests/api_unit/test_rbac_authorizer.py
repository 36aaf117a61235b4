"""The RBAC authorizer over an index of objects, the authorization chain, escalation checks, the token
file, impersonation and the default policy's reconciliation (pure or in memory)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import admission, authenticators, authn, authorizers, authz, impersonation, tokens
from reconcile.api.rbac import authorizer as rbac_authorizer
from reconcile.api.rbac import bootstrap, escalation, index, policy
from reconcile.core import errors

G = "rbac.authorization.k8s.io"


def role(name: str, rules: list[dict], namespace: str | None = None, labels: dict | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "rules": rules}


def binding(name: str, role_kind: str, role_name: str, subjects: list[dict], namespace: str | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata, "roleRef": {"apiGroup": G, "kind": role_kind, "name": role_name},
            "subjects": subjects}


def user(name: str) -> dict:
    return {"kind": "User", "apiGroup": G, "name": name}


def group(name: str) -> dict:
    return {"kind": "Group", "apiGroup": G, "name": name}


def sa(name: str, namespace: str | None = None) -> dict:
    out = {"kind": "ServiceAccount", "name": name}
    if namespace:
        out["namespace"] = namespace
    return out


class Objects:
    """An in-memory stand-in for the four watch caches."""

    def __init__(self) -> None:
        self.by_plural: dict[str, list[dict]] = {p: [] for p in index.PLURALS}

    def __call__(self, plural: str) -> list[dict]:
        return self.by_plural[plural]


@pytest.fixture
def world() -> tuple[Objects, index.RuleIndex, rbac_authorizer.RBACAuthorizer]:
    objects = Objects()
    idx = index.RuleIndex(objects)
    objects.by_plural["clusterroles"] = [
        role("view", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}]),
        role("nodes", [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]),
        role("health", [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
    ]
    objects.by_plural["roles"] = [
        role("cm-editor", [{"verbs": ["update"], "apiGroups": [""], "resources": ["configmaps"],
                            "resourceNames": ["app"]}], namespace="team"),
    ]
    objects.by_plural["clusterrolebindings"] = [
        binding("nodes-readers", "ClusterRole", "nodes", [group("ops")]),
        binding("health", "ClusterRole", "health", [group("system:authenticated")]),
        binding("broken", "ClusterRole", "missing", [user("carol")]),
        binding("sa-no-namespace", "ClusterRole", "nodes", [sa("lost")]),
    ]
    objects.by_plural["rolebindings"] = [
        binding("viewers", "ClusterRole", "view", [user("alice"), sa("builder")], namespace="team"),
        binding("cm", "Role", "cm-editor", [group("devs")], namespace="team"),
    ]
    return objects, idx, rbac_authorizer.RBACAuthorizer(idx)


def attrs(u: authn.UserInfo, verb: str, resource: str = "", *, ns: str = "", name: str = "", sub: str = "",
          group_: str = "", path: str = "") -> authz.Attributes:
    if path:
        return authz.Attributes(u, verb, False, path)
    return authz.Attributes(u, verb, True, "", group_, "v1", resource, sub, ns, name)


ALICE = authn.UserInfo("alice", groups=("system:authenticated",))
BOB = authn.UserInfo("bob", groups=("devs", "system:authenticated"))
OPS = authn.UserInfo("olga", groups=("ops",))
BUILDER = authn.UserInfo("system:serviceaccount:team:builder", groups=("system:serviceaccounts",))


def test_role_bindings_grant_only_in_their_namespace(world) -> None:
    _, _, rbac = world
    allowed = rbac.decide(attrs(ALICE, "list", "pods", ns="team"))
    assert allowed.allowed
    assert allowed.reason == 'RBAC: allowed by RoleBinding "viewers/team" of ClusterRole "view" to User "alice"'
    assert rbac.decide(attrs(ALICE, "get", "pods", ns="team", sub="log")).allowed
    assert not rbac.decide(attrs(ALICE, "list", "pods", ns="other")).allowed
    assert not rbac.decide(attrs(ALICE, "list", "pods")).allowed  # all namespaces: only cluster bindings count
    assert not rbac.decide(attrs(ALICE, "delete", "pods", ns="team", name="x")).allowed


def test_cluster_bindings_groups_and_urls(world) -> None:
    _, _, rbac = world
    assert rbac.decide(attrs(OPS, "get", "nodes", name="n1")).allowed
    assert rbac.decide(attrs(OPS, "get", "nodes", ns="any", name="n1")).allowed
    assert not rbac.decide(attrs(ALICE, "get", "nodes", name="n1")).allowed
    assert rbac.decide(attrs(ALICE, "get", path="/healthz")).allowed
    assert not rbac.decide(attrs(OPS, "get", path="/healthz")).allowed  # olga lacks system:authenticated


def test_resource_names_and_roles(world) -> None:
    _, _, rbac = world
    assert rbac.decide(attrs(BOB, "update", "configmaps", ns="team", name="app")).allowed
    assert not rbac.decide(attrs(BOB, "update", "configmaps", ns="team", name="other")).allowed


def test_service_accounts_default_to_the_binding_namespace(world) -> None:
    _, _, rbac = world
    decision = rbac.decide(attrs(BUILDER, "get", "pods", ns="team", name="p"))
    assert decision.allowed and decision.reason.endswith('to ServiceAccount "builder/team"')
    other = authn.UserInfo("system:serviceaccount:other:builder")
    assert not rbac.decide(attrs(other, "get", "pods", ns="team", name="p")).allowed
    lost = authn.UserInfo("system:serviceaccount::lost")
    assert not rbac.decide(attrs(lost, "get", "nodes", name="n")).allowed  # a cluster SA subject needs its namespace


def test_missing_role_is_a_reason_not_an_allow(world) -> None:
    _, _, rbac = world
    decision = rbac.decide(attrs(authn.UserInfo("carol"), "get", "pods", ns="team"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found'


def test_the_index_follows_changes_only_when_told(world) -> None:
    objects, idx, rbac = world
    assert not rbac.decide(attrs(ALICE, "get", "nodes", name="n")).allowed
    objects.by_plural["clusterrolebindings"].append(binding("alice-nodes", "ClusterRole", "nodes", [user("alice")]))
    assert not rbac.decide(attrs(ALICE, "get", "nodes", name="n")).allowed  # the snapshot is kept...
    idx.changed()
    assert rbac.decide(attrs(ALICE, "get", "nodes", name="n")).allowed  # ...until a cache event says otherwise


def test_a_missing_cache_keeps_the_index_dirty() -> None:
    ready: dict[str, list[dict]] = {}
    idx = index.RuleIndex(lambda plural: ready.get(plural))
    assert idx.rules_for(ALICE, "team") == ([], [])
    ready.update({p: [] for p in index.PLURALS})
    ready["clusterroles"] = [role("r", [{"verbs": ["get"], "nonResourceURLs": ["/x"]}])]
    ready["clusterrolebindings"] = [binding("b", "ClusterRole", "r", [user("alice")])]
    found, problems = idx.rules_for(ALICE, "")
    assert len(found) == 1 and not problems


def test_a_decision_reads_only_the_users_bindings() -> None:
    """O(bindings of the user): a cluster of many bindings for others costs nothing per decision."""
    objects = Objects()
    objects.by_plural["clusterroles"] = [role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])]
    objects.by_plural["rolebindings"] = [binding(f"b{i}", "ClusterRole", "r", [user(f"u{i}")], namespace="ns")
                                         for i in range(2000)]
    idx = index.RuleIndex(objects)
    grants = list(idx.grants(authn.UserInfo("u7"), "ns"))
    assert [g.binding.name for g in grants] == ["b7"]


# --- the chain ---------------------------------------------------------------------------------------------------


async def test_chain_masters_first_then_first_allow() -> None:
    class Never:
        async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
            return authz.Decision(False, "not me")

    chain = authorizers.Chain([Never(), authorizers.AlwaysDeny()])
    master = authn.UserInfo("root", groups=("system:masters",))
    assert (await chain.authorize(attrs(master, "delete", "nodes", name="n"))).allowed
    denied = await chain.authorize(attrs(ALICE, "get", "pods", ns="x"))
    assert not denied.allowed and denied.reason == "not me"
    assert (await authorizers.build(["AlwaysAllow"], rbac=None).authorize(attrs(ALICE, "get", "pods"))).allowed
    with pytest.raises(ValueError):
        authorizers.parse_modes("RBAC,Bogus")
    with pytest.raises(ValueError):
        authorizers.parse_modes("RBAC,RBAC")
    assert authorizers.parse_modes(" RBAC ") == ["RBAC"]


def test_chain_rules_for(world) -> None:
    _, _, rbac = world
    chain = authorizers.build(["RBAC"], rbac=rbac)
    found = chain.rules_for(ALICE, "team")
    assert [r.resources for r in found.resource_rules] == [("pods", "pods/log")]
    assert [r.non_resource_urls for r in found.non_resource_rules] == [("/healthz",)]
    assert not found.incomplete
    broken = chain.rules_for(authn.UserInfo("carol"), "")
    assert broken.incomplete and broken.errors
    everything = authorizers.build(["AlwaysAllow"], rbac=None).rules_for(ALICE, "team")
    assert everything.resource_rules[0].verbs == ("*",)


# --- escalation ----------------------------------------------------------------------------------------------------


class _Resource:
    def __init__(self, plural: str, kind: str, namespaced: bool) -> None:
        self.group, self.plural, self.kind, self.namespaced = G, plural, kind, namespaced


def _admit(plural: str, kind: str, namespaced: bool, obj: dict, u: authn.UserInfo, *,
           old: dict | None = None) -> admission.Attributes:
    return admission.Attributes(admission.UPDATE if old else admission.CREATE, _Resource(plural, kind, namespaced),  # type: ignore[arg-type]
                                None, obj["metadata"].get("namespace"), obj["metadata"]["name"], obj, old, u, False)


async def test_escalation_roles_and_bindings(world) -> None:
    _, idx, rbac = world
    chain = authorizers.build(["RBAC"], rbac=rbac)
    check = escalation.EscalationCheck(chain, chain.rules_for, idx.role_rules)
    within = role("mine", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], namespace="team")
    await check.validate(_admit("roles", "Role", True, within, ALICE))  # alice holds get pods in team
    beyond = role("more", [{"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}], namespace="team")
    with pytest.raises(errors.Forbidden) as refused:
        await check.validate(_admit("roles", "Role", True, beyond, ALICE))
    assert refused.value.message == (
        'roles.rbac.authorization.k8s.io "more" is forbidden: user "alice" (groups=["system:authenticated"]) is '
        'attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], '
        'Verbs:["delete"]}')
    bind_view = binding("x", "ClusterRole", "view", [user("eve")], namespace="team")
    await check.validate(_admit("rolebindings", "RoleBinding", True, bind_view, ALICE))  # holds view in team
    with pytest.raises(errors.Forbidden):
        await check.validate(_admit("rolebindings", "RoleBinding", True,
                                    binding("x", "ClusterRole", "view", [user("eve")], namespace="elsewhere"), ALICE))
    with pytest.raises(errors.NotFound):
        await check.validate(_admit("rolebindings", "RoleBinding", True,
                                    binding("x", "ClusterRole", "nope", [user("eve")], namespace="team"), ALICE))
    master = authn.UserInfo("root", groups=("system:masters",))
    await check.validate(_admit("clusterroles", "ClusterRole", False, role("all", policy.cluster_roles()[0]["rules"]),
                                master))


async def test_aggregation_rule_needs_full_authority(world) -> None:
    _, idx, rbac = world
    chain = authorizers.build(["RBAC"], rbac=rbac)
    check = escalation.EscalationCheck(chain, chain.rules_for, idx.role_rules)
    aggregated = {"metadata": {"name": "agg"}, "rules": [],
                  "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}
    with pytest.raises(errors.Forbidden) as refused:
        await check.validate(_admit("clusterroles", "ClusterRole", False, aggregated, OPS))
    assert refused.value.message.endswith("must have cluster-admin privileges to use the aggregationRule")


async def test_gc_only_updates_pass(world) -> None:
    _, idx, rbac = world
    chain = authorizers.build(["RBAC"], rbac=rbac)
    check = escalation.EscalationCheck(chain, chain.rules_for, idx.role_rules)
    old = role("big", [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}])
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/keep"]
    await check.validate(_admit("clusterroles", "ClusterRole", False, new, OPS, old=old))
    new["rules"] = new["rules"] + [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]
    with pytest.raises(errors.Forbidden):
        await check.validate(_admit("clusterroles", "ClusterRole", False, new, OPS, old=old))


# --- tokens and the authentication chain ------------------------------------------------------------------------------


async def test_token_file_and_bearer_tokens() -> None:
    table = tokens.TokenFile.parse('t1,alice,1,"a,b"\n\nt2,bob,2\n,nobody,3\n')
    assert len(table) == 2
    assert await table.authenticate_token("t1") == authn.UserInfo("alice", "1", ("a", "b"))
    assert await table.authenticate_token("t3") is None
    with pytest.raises(ValueError, match="at least 3 columns"):
        tokens.TokenFile.parse("t,alice\n")
    chain = authenticators.Chain([tokens.BearerToken([table])], anonymous=True)
    bob = await chain.authenticate(authn.Credentials({"authorization": "Bearer t2"}))
    assert bob == authn.UserInfo("bob", "2", ("system:authenticated",))
    assert await chain.authenticate(authn.Credentials({})) == authn.ANONYMOUS
    assert await chain.authenticate(authn.Credentials({"authorization": "Basic abc"})) == authn.ANONYMOUS
    with pytest.raises(errors.Unauthorized) as bad:
        await chain.authenticate(authn.Credentials({"authorization": "Bearer nope"}))
    assert bad.value.message == "Unauthorized"
    strict = authenticators.Chain([tokens.BearerToken([table])], anonymous=False)
    assert await strict.authenticate(authn.Credentials({})) is None
    assert isinstance(authenticators.build(authenticators.Settings()), authn.TrustEveryone)


# --- impersonation ----------------------------------------------------------------------------------------------------


class Allow:
    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)  # (resource, name)
        self.asked: list[authz.Attributes] = []

    async def authorize(self, attributes: authz.Attributes) -> authz.Decision:
        self.asked.append(attributes)
        return authz.Decision((attributes.resource, attributes.name) in self.allowed)


async def test_impersonation_checks_every_part() -> None:
    allow = Allow(("users", "bob"), ("groups", "g1"))
    headers = {"impersonate-user": "bob"}
    acting = await impersonation.impersonate(headers, ALICE, allow)
    assert acting == authn.UserInfo("bob", groups=("system:authenticated",))
    acting = await impersonation.impersonate({"impersonate-user": "bob", "impersonate-group": "g1"}, ALICE, allow)
    assert acting.groups == ("g1", "system:authenticated")
    with pytest.raises(impersonation.Refused) as refused:
        await impersonation.impersonate({"impersonate-user": "bob", "impersonate-group": "g2"}, ALICE, allow)
    assert (refused.value.attributes.verb, refused.value.attributes.resource, refused.value.attributes.name) == (
        "impersonate", "groups", "g2")
    with pytest.raises(errors.InternalError):
        await impersonation.impersonate({"impersonate-group": "g1"}, ALICE, allow)
    sa_allow = Allow(("serviceaccounts", "builder"))
    acting = await impersonation.impersonate({"impersonate-user": "system:serviceaccount:team:builder"}, ALICE,
                                             sa_allow)
    assert acting.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    assert sa_allow.asked[0].namespace == "team"
    assert impersonation.requested({"Impersonate-Extra-Scopes": "x"})
    assert not impersonation.requested({"authorization": "Bearer x"})


async def test_impersonating_extras_and_uid() -> None:
    allow = Allow(("users", "bob"), ("uids", "42"), ("userextras", "read"))
    headers = {"impersonate-user": "bob", "impersonate-uid": "42", "impersonate-extra-scopes%2Fv1": "read"}
    acting = await impersonation.impersonate(headers, ALICE, allow)
    assert acting.uid == "42" and acting.extra == {"scopes/v1": ("read",)}
    extra_check = [a for a in allow.asked if a.resource == "userextras"][0]
    assert (extra_check.api_group, extra_check.subresource) == ("authentication.k8s.io", "scopes/v1")


# --- the default policy ------------------------------------------------------------------------------------------------


def test_default_policy_is_valid_and_self_consistent() -> None:
    from reconcile.api.strategies import rbac as strategy

    roles = {r["metadata"]["name"]: r for r in policy.cluster_roles()}
    for item in roles.values():
        assert strategy.rule_causes(item["rules"], namespaced=False) == []
        assert item["metadata"]["annotations"][policy.AUTOUPDATE] == "true"
    for item in policy.cluster_role_bindings():
        assert item["roleRef"]["name"] in roles  # every default binding names a default role
    assert roles["view"]["aggregationRule"] and roles["view"]["rules"] == []
    assert not any("secrets" in (r.get("resources") or []) for r in roles["system:aggregate-to-view"]["rules"])


def test_reconcile_adds_back_what_is_missing_and_honours_autoupdate_false() -> None:
    expected = policy.cluster_roles()[0]  # cluster-admin
    edited = copy.deepcopy(expected)
    edited["rules"] = [edited["rules"][1]]
    edited["metadata"]["labels"] = {"mine": "yes"}
    repaired = bootstrap.reconciled_role(edited, expected)
    assert repaired is not None
    assert expected["rules"][0] in repaired["rules"] and repaired["metadata"]["labels"]["mine"] == "yes"
    assert bootstrap.reconciled_role(repaired, expected) is None  # reconciled once, nothing more to do
    edited["metadata"]["annotations"][policy.AUTOUPDATE] = "false"
    assert bootstrap.reconciled_role(edited, expected) is None
    binding_ = policy.cluster_role_bindings()[0]
    emptied = dict(copy.deepcopy(binding_), subjects=[user("someone")])
    fixed = bootstrap.reconciled_binding(emptied, binding_)
    assert fixed is not None and fixed["subjects"] == [user("someone"), group("system:masters")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["get", "list", "watch", "create", "delete"]), unique=True),
       st.lists(st.sampled_from(["pods", "secrets", "nodes"]), unique=True, min_size=1))
def test_reconciled_roles_cover_the_default(verbs: list[str], resources: list[str]) -> None:
    from reconcile.api.rbac import rules as rules_mod

    expected = {"metadata": {"name": "x", "labels": {}, "annotations": {}},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "nodes"]}]}
    existing = {"metadata": {"name": "x"}, "rules": [{"verbs": verbs or ["get"], "apiGroups": [""],
                                                      "resources": resources}]}
    result = bootstrap.reconciled_role(existing, expected) or existing
    held = rules_mod.parse_rules(result["rules"])
    assert rules_mod.covers(held, rules_mod.parse_rules(expected["rules"]))[0]
    assert rules_mod.covers(held, rules_mod.parse_rules(existing["rules"]))[0]  # nothing taken away


# --- the decision cache -------------------------------------------------------------------------------------------


def test_cached_decisions_follow_every_change_from_the_next_decision(world) -> None:
    """A cached allow (keyed without the name while no rule lists names) must not outlive the change
    that makes names matter, nor a revoked binding: each counts from the first decision after `changed`."""
    objects, idx, rbac = world
    assert rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="a")).allowed
    assert rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="b")).allowed
    objects.by_plural["clusterroles"][0] = role("view", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                                          "resourceNames": ["a"]}])
    idx.changed()
    assert rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="a")).allowed
    assert not rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="b")).allowed
    objects.by_plural["rolebindings"] = [b for b in objects.by_plural["rolebindings"] if b["metadata"]["name"] != "viewers"]
    idx.changed()
    assert not rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="a")).allowed
    objects.by_plural["rolebindings"].append(binding("viewers", "ClusterRole", "view", [user("alice")], namespace="team"))
    idx.changed()
    assert rbac.decide(attrs(ALICE, "get", "pods", ns="team", name="a")).allowed


def test_cached_decisions_tell_users_groups_and_paths_apart(world) -> None:
    _, _, rbac = world
    assert rbac.decide(attrs(BOB, "update", "configmaps", ns="team", name="app")).allowed
    assert not rbac.decide(attrs(BOB, "update", "configmaps", ns="team", name="other")).allowed  # names matter here
    no_devs = authn.UserInfo("bob", groups=("system:authenticated",))
    assert not rbac.decide(attrs(no_devs, "update", "configmaps", ns="team", name="app")).allowed
    assert rbac.decide(attrs(ALICE, "get", path="/healthz")).allowed
    assert not rbac.decide(attrs(ALICE, "get", path="/metrics")).allowed


def test_the_decision_cache_is_bounded(world, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, rbac = world
    monkeypatch.setattr(rbac_authorizer, "CACHE_SIZE", 4)
    for i in range(20):
        assert not rbac.decide(attrs(authn.UserInfo(f"u{i}"), "get", "pods", ns="team")).allowed
    assert len(rbac._decisions) <= 4 and len(rbac._names_matter) <= 4


_SUBJECTS = st.sampled_from([user("alice"), user("bob"), group("devs"), group("ops"), sa("builder", "team")])
_RULES = st.lists(st.fixed_dictionaries({
    "verbs": st.lists(st.sampled_from(["get", "list", "update", "*"]), min_size=1, max_size=2),
    "apiGroups": st.just([""]),
    "resources": st.lists(st.sampled_from(["pods", "configmaps", "*"]), min_size=1, max_size=2),
}, optional={"resourceNames": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2)}), max_size=2)
_CHANGES = st.one_of(
    st.tuples(st.just("role"), st.sampled_from(["r1", "r2"]), _RULES),
    st.tuples(st.just("binding"), st.sampled_from(["b1", "b2"]), st.tuples(st.sampled_from(["r1", "r2"]),
                                                                           st.lists(_SUBJECTS, max_size=2))),
    st.tuples(st.just("unbind"), st.sampled_from(["b1", "b2"]), st.none()),
)
_USERS = st.sampled_from([ALICE, BOB, OPS, BUILDER, authn.UserInfo("bob", groups=("ops",))])
_ASKS = st.tuples(_USERS, st.sampled_from(["get", "list", "update"]), st.sampled_from(["pods", "configmaps"]),
                  st.sampled_from(["team", "other"]), st.sampled_from(["", "a", "b"]))


@given(st.lists(st.one_of(st.tuples(st.just("change"), _CHANGES), st.tuples(st.just("ask"), _ASKS)), max_size=40))
@settings(max_examples=150, deadline=None)
def test_a_cached_decision_is_always_the_uncached_one(steps: list) -> None:
    """Whatever the order of RBAC changes and requests, the cache answers what a fresh evaluation does."""
    objects = Objects()
    idx = index.RuleIndex(objects)
    rbac = rbac_authorizer.RBACAuthorizer(idx)
    for what, step in steps:
        if what == "change":
            kind, name, value = step
            if kind == "role":
                objects.by_plural["roles"] = [r for r in objects.by_plural["roles"] if r["metadata"]["name"] != name]
                objects.by_plural["roles"].append(role(name, value, namespace="team"))
            else:
                objects.by_plural["rolebindings"] = [b for b in objects.by_plural["rolebindings"]
                                                     if b["metadata"]["name"] != name]
                if kind == "binding":
                    objects.by_plural["rolebindings"].append(binding(name, "Role", value[0], value[1], namespace="team"))
            idx.changed()
            continue
        u, verb, resource, ns, name = step
        asked = attrs(u, verb, resource, ns=ns, name=name)
        fresh = rbac_authorizer.RBACAuthorizer(index.RuleIndex(objects)).decide_uncached(asked)
        assert rbac.decide(asked) == fresh


def test_the_authenticated_group_is_added_once_per_user_object() -> None:
    carol = authn.UserInfo("carol", "7", ("devs",), {"scopes": ("a",)})
    first = authenticators.with_authenticated(carol)
    assert first == authn.UserInfo("carol", "7", ("devs", "system:authenticated")) and first.extra == carol.extra
    assert authenticators.with_authenticated(carol) is first  # the token file returns one object per user
    twin = authn.UserInfo("carol", "7", ("devs",), {"scopes": ("b",)})  # equal but for extra: not the same answer
    assert authenticators.with_authenticated(twin).extra == {"scopes": ("b",)}
    assert authenticators.with_authenticated(authn.ANONYMOUS) is authn.ANONYMOUS
