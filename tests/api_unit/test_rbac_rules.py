"""RBAC rule matching and covering (pure): upstream's semantics, cases and properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api.rbac import rules
from reconcile.api.rbac.rules import PolicyRule, Request


def r(verbs: tuple[str, ...], groups: tuple[str, ...] = (), resources: tuple[str, ...] = (),
      names: tuple[str, ...] = (), urls: tuple[str, ...] = ()) -> PolicyRule:
    return PolicyRule(verbs, groups, resources, names, urls)


def res(verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "") -> Request:
    return Request(verb, True, "", group, resource, sub, name)


def url(verb: str, path: str) -> Request:
    return Request(verb, False, path)


def test_verbs_groups_and_resources_match_by_equality_or_star() -> None:
    pods = r(("get", "list"), ("",), ("pods",))
    assert rules.allows(pods, res("get", "pods"))
    assert rules.allows(pods, res("list", "pods"))
    assert not rules.allows(pods, res("delete", "pods"))
    assert not rules.allows(pods, res("get", "pods", group="apps"))
    assert not rules.allows(pods, res("get", "secrets"))
    assert rules.allows(r(("*",), ("*",), ("*",)), res("deletecollection", "anything", group="x.io", sub="s"))
    assert rules.allows(r(("get",), ("apps",), ("*",)), res("get", "deployments", group="apps"))


def test_subresources_need_their_own_rule_or_star_slash() -> None:
    pods = r(("get",), ("",), ("pods",))
    assert not rules.allows(pods, res("get", "pods", sub="log"))
    assert rules.allows(r(("get",), ("",), ("pods/log",)), res("get", "pods", sub="log"))
    assert not rules.allows(r(("get",), ("",), ("pods/log",)), res("get", "pods"))
    scale = r(("update",), ("apps",), ("*/scale",))
    assert rules.allows(scale, res("update", "deployments", group="apps", sub="scale"))
    assert rules.allows(scale, res("update", "replicasets", group="apps", sub="scale"))
    assert not rules.allows(scale, res("update", "deployments", group="apps"))
    assert not rules.allows(scale, res("update", "deployments", group="apps", sub="status"))
    assert not rules.allows(r(("get",), ("",), ("*/log",)), res("get", "pods", sub="logs"))


def test_resource_names_restrict_to_named_objects() -> None:
    one = r(("get", "update", "list"), ("",), ("configmaps",), names=("app",))
    assert rules.allows(one, res("get", "configmaps", name="app"))
    assert not rules.allows(one, res("get", "configmaps", name="other"))
    assert not rules.allows(one, res("list", "configmaps"))  # a list has no name


def test_non_resource_urls() -> None:
    health = r(("get",), urls=("/healthz", "/apis/*"))
    assert rules.allows(health, url("get", "/healthz"))
    assert not rules.allows(health, url("get", "/healthz/etcd"))
    assert rules.allows(health, url("get", "/apis/apps/v1"))
    assert rules.allows(health, url("get", "/apis/"))
    assert not rules.allows(health, url("get", "/apis"))
    assert not rules.allows(health, url("post", "/healthz"))
    assert rules.allows(r(("*",), urls=("*",)), url("delete", "/anything"))
    assert not rules.allows(health, res("get", "healthz"))  # URL rules never match resources
    assert not rules.allows(r(("get",), ("",), ("pods",)), url("get", "/api/v1/pods"))


def test_covers_and_missing_permissions() -> None:
    admin = [r(("*",), ("*",), ("*",)), r(("*",), urls=("*",))]
    assert rules.covers(admin, [r(("get",), ("apps",), ("deployments/scale",), names=("x",))])[0]
    owner = [r(("get", "list"), ("",), ("pods", "*/status"))]
    ok, missing = rules.covers(owner, [r(("get",), ("",), ("pods", "pods/status"))])
    assert ok and not missing
    ok, missing = rules.covers(owner, [r(("get", "delete"), ("",), ("pods",))])
    assert not ok and missing == [r(("delete",), ("",), ("pods",))]
    named = [r(("get",), ("",), ("configmaps",), names=("a",))]
    assert not rules.covers(named, [r(("get",), ("",), ("configmaps",))])[0]  # unnamed asks more than named
    assert rules.covers([r(("get",), ("",), ("configmaps",))], named)[0]
    assert rules.covers([r(("get",), urls=("/logs/*",))], [r(("get",), urls=("/logs/a/b",))])[0]
    assert not rules.covers([r(("get",), urls=("/logs",))], [r(("get",), urls=("/logs/a",))])[0]


def test_compact_string_as_upstream() -> None:
    assert r(("get", "list"), ("",), ("pods",)).compact_string() == '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}'
    assert r(("get",), urls=("/x",)).compact_string() == '{NonResourceURLs:["/x"], Verbs:["get"]}'
    merged = rules.compact([r(("get",), ("",), ("pods",)), r(("list",), ("",), ("pods",)), r(("get",), urls=("/x",))])
    assert merged == [r(("get", "list"), ("",), ("pods",)), r(("get",), urls=("/x",))]


# --- properties -----------------------------------------------------------------------------------------------

words = st.sampled_from(["", "a", "b", "apps", "pods", "log", "scale", "x.io"])
verbs = st.sampled_from(["get", "list", "watch", "create", "update", "delete", "bind", "escalate"])


@st.composite
def policy_rules(draw: st.DrawFn) -> PolicyRule:
    if draw(st.booleans()):
        paths = draw(st.lists(st.sampled_from(["/a", "/a/*", "/a/b", "*", "/b*", "/"]), min_size=1, max_size=3))
        return r(tuple(draw(st.lists(verbs | st.just("*"), min_size=1, max_size=3))), urls=tuple(paths))
    resources = draw(st.lists(st.sampled_from(["pods", "pods/log", "*/scale", "*", "deployments", "deployments/scale"]),
                              min_size=1, max_size=3))
    return r(tuple(draw(st.lists(verbs | st.just("*"), min_size=1, max_size=3))),
             tuple(draw(st.lists(words | st.just("*"), min_size=1, max_size=2))), tuple(resources),
             tuple(draw(st.lists(st.sampled_from(["n1", "n2"]), max_size=2))))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    if draw(st.booleans()):
        return url(draw(verbs), draw(st.sampled_from(["/a", "/a/b", "/a/b/c", "/b", "/bc", "/"])))
    return res(draw(verbs), draw(st.sampled_from(["pods", "deployments", "nodes"])), group=draw(words),
               sub=draw(st.sampled_from(["", "log", "scale", "status"])), name=draw(st.sampled_from(["", "n1", "n3"])))


@settings(max_examples=400, deadline=None)
@given(st.lists(policy_rules(), max_size=4), requests())
def test_a_request_allowed_by_a_rule_is_allowed_by_every_rule_covering_it(owner: list[PolicyRule],
                                                                          request: Request) -> None:
    """Covering means holding every permission: whatever a covered rule allows, the owner allows."""
    for wanted in owner:
        if rules.allows(wanted, request):
            assert rules.any_allows(owner, request)
    star = list(rules.FULL_AUTHORITY)
    assert rules.any_allows(star, request)
    assert rules.covers(star, owner)[0]


@settings(max_examples=400, deadline=None)
@given(policy_rules(), policy_rules(), requests())
def test_covered_rules_never_allow_more(owner: PolicyRule, wanted: PolicyRule, request: Request) -> None:
    covered, missing = rules.covers([owner], [wanted])
    if covered and rules.allows(wanted, request):
        assert rules.allows(owner, request)
    # the missing pieces are exactly the broken-down parts no owner rule covers
    assert covered == (not missing)
    for piece in missing:
        assert piece in rules.breakdown(wanted)


@settings(max_examples=200, deadline=None)
@given(policy_rules(), requests())
def test_breakdown_allows_what_the_rule_allows(rule: PolicyRule, request: Request) -> None:
    assert rules.allows(rule, request) == rules.any_allows(rules.breakdown(rule), request)
