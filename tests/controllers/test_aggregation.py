"""The ClusterRole aggregation controller: the pure union, and the real controller-manager keeping
`view`/`edit`/`admin` (and any aggregated ClusterRole) current."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.client import api
from reconcile.controllers import clusterroleaggregation as agg
from reconcile.core import errors
from tests import support

RBAC = "rbac.authorization.k8s.io/v1"
TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"


def cr(name: str, rules: list[dict], labels: dict | None = None, selectors: list[dict] | None = None) -> dict:
    out: dict = {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
                 "rules": rules}
    if selectors is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return out


GET_PODS = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
LIST_NODES = {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]}


def test_union_in_selector_then_name_order_without_duplicates_or_itself() -> None:
    target = cr("agg", [LIST_NODES], selectors=[{"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "1"}}])
    roles = [
        target,
        cr("z", [GET_PODS], {"a": "1"}),
        cr("m", [LIST_NODES, {**GET_PODS, "resourceNames": []}], {"a": "1", "b": "1"}),
        cr("b-only", [{"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]}], {"b": "1"}),
        cr("unlabelled", [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
    ]
    assert agg.aggregated_rules(target, roles) == [LIST_NODES, GET_PODS,
                                                   {"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]}]
    assert agg.aggregated_rules(cr("plain", [GET_PODS]), roles) is None  # no aggregationRule: not managed
    assert agg.aggregated_rules(cr("none", [], selectors=[]), roles) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3", "r4"]), st.booleans(),
                          st.lists(st.sampled_from(["get", "list", "watch"]), min_size=1, max_size=2)),
                max_size=6, unique_by=lambda t: t[0]))
def test_the_union_holds_exactly_the_selected_rules(spec: list[tuple[str, bool, list[str]]]) -> None:
    roles = [cr(name, [{"verbs": verbs, "apiGroups": [""], "resources": [name]}], {"pick": "yes"} if picked else {})
             for name, picked, verbs in spec]
    target = cr("target", [], selectors=[{"matchLabels": {"pick": "yes"}}])
    result = agg.aggregated_rules(target, [target, *roles])
    assert result is not None
    expected = [agg.normalized(r["rules"][0]) for r in sorted(roles, key=lambda r: r["metadata"]["name"])
                if r["metadata"]["labels"]]
    assert result == expected
    assert agg.aggregated_rules(target, [target, *reversed(roles)]) == result  # order of the cache is irrelevant


def _rules(client: api.Client, name: str) -> list[dict]:
    return client.get(RBAC, "clusterroles", name).get("rules") or []


def _rules_once(client: api.Client, name: str, check: Callable[[list[dict]], bool], *, what: str) -> list[dict]:
    """The role's rules once `check` holds for them (polled; an empty list counts)."""
    def met() -> tuple[list[dict]] | None:
        rules = _rules(client, name)
        return (rules,) if check(rules) else None

    return support.wait_for(met, timeout=30, what=what)[0]


def test_default_roles_are_aggregated(client: api.Client, controller_manager) -> None:
    def view_has_pods() -> bool:
        return any("pods" in (r.get("resources") or []) for r in _rules(client, "view"))

    support.wait_for(view_has_pods, timeout=30, what="view aggregated from system:aggregate-to-view")
    view = _rules(client, "view")
    assert not any("secrets" in (r.get("resources") or []) for r in view)

    def edit_and_admin_complete() -> bool:
        edit, admin = _rules(client, "edit"), _rules(client, "admin")
        return all(rule in edit for rule in view) and all(rule in admin for rule in edit) and \
            any("rolebindings" in (r.get("resources") or []) for r in admin)

    support.wait_for(edit_and_admin_complete, timeout=30, what="edit ⊇ view, admin ⊇ edit")


def test_a_crd_aggregate_to_view_role_reaches_view_and_leaves_it(client: api.Client, controller_manager) -> None:
    name = f"widgets-view-{uuid.uuid4().hex[:6]}"
    widget_rule = {"verbs": ["get", "list", "watch"], "apiGroups": [f"{name}.example.com"], "resources": ["widgets"]}
    client.create(RBAC, "clusterroles", cr(name, [widget_rule], {TO_VIEW: "true"}))
    view = _rules_once(client, "view", lambda rules: widget_rule in rules, what="the CRD's rule in view")
    assert widget_rule in view
    admin = _rules_once(client, "admin", lambda rules: widget_rule in rules, what="and through edit in admin")
    assert widget_rule in admin
    more = {"verbs": ["get"], "apiGroups": [f"{name}.example.com"], "resources": ["widgets/status"]}

    def add_rule() -> None:
        current = client.get(RBAC, "clusterroles", name)
        current["rules"].append(more)
        client.replace(RBAC, "clusterroles", current)

    api.retry_on_conflict(add_rule)
    view = _rules_once(client, "view", lambda rules: more in rules, what="an edited rule follows")
    assert more in view and widget_rule in view
    client.patch(RBAC, "clusterroles", name, {"metadata": {"labels": {TO_VIEW: None}}})
    view = _rules_once(client, "view", lambda rules: widget_rule not in rules and more not in rules,
                       what="the rules leave view with the label")
    assert widget_rule not in view and more not in view


def test_a_users_aggregated_role_and_a_hand_edit_is_undone(client: api.Client, controller_manager) -> None:
    suffix = uuid.uuid4().hex[:6]
    client.create(RBAC, "clusterroles", cr(f"part-{suffix}", [GET_PODS], {f"team-{suffix}": "yes"}))
    client.create(RBAC, "clusterroles", cr(f"whole-{suffix}", [], selectors=[{"matchLabels": {f"team-{suffix}": "yes"}}]))
    whole = _rules_once(client, f"whole-{suffix}", lambda rules: rules == [GET_PODS], what="aggregated")
    assert whole == [GET_PODS]

    def hand_edit() -> None:
        current = client.get(RBAC, "clusterroles", f"whole-{suffix}")
        current["rules"] = [LIST_NODES]
        client.replace(RBAC, "clusterroles", current)

    api.retry_on_conflict(hand_edit)
    whole = _rules_once(client, f"whole-{suffix}", lambda rules: rules == [GET_PODS],
                        what="the controller puts the union back")
    assert whole == [GET_PODS]
    client.delete(RBAC, "clusterroles", f"part-{suffix}")
    whole = _rules_once(client, f"whole-{suffix}", lambda rules: rules == [], what="a deleted part leaves")
    assert whole == []
    try:
        client.delete(RBAC, "clusterroles", f"whole-{suffix}")
    except errors.NotFound:
        pass
