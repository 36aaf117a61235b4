"""`reconcile.core.podupdate`: which spec changes an update of a pod may make (pure logic)."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import podupdate

SPEC = {"containers": [{"name": "a", "image": "x:1", "command": ["sh"]}], "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30, "tolerations": [{"key": "k", "operator": "Exists"}]}


def _with(**changes: object) -> dict:
    spec = copy.deepcopy(SPEC)
    spec.update(changes)
    return spec


def test_the_same_spec_passes():
    assert podupdate.causes(SPEC, copy.deepcopy(SPEC)) == []


def test_an_image_passes_a_command_does_not():
    assert podupdate.causes(SPEC, _with(containers=[{"name": "a", "image": "x:2", "command": ["sh"]}])) == []
    [cause] = podupdate.causes(SPEC, _with(containers=[{"name": "a", "image": "x:1", "command": ["bash"]}]))
    assert cause["field"] == "spec" and "changed: spec.containers[0].command" in cause["message"]


def test_another_container_is_a_change_even_with_only_images_differing():
    two = [{"name": "a", "image": "x:1", "command": ["sh"]}, {"name": "b", "image": "y"}]
    assert podupdate.causes(SPEC, _with(containers=two))


def test_a_negative_grace_period_may_become_1_and_nothing_else():
    negative = _with(terminationGracePeriodSeconds=-1)
    assert podupdate.causes(negative, _with(terminationGracePeriodSeconds=1)) == []
    assert podupdate.causes(SPEC, _with(terminationGracePeriodSeconds=1))


def test_scheduling_gates_may_only_go():
    gated = _with(schedulingGates=[{"name": "g1"}, {"name": "g2"}])
    assert podupdate.causes(gated, _with(schedulingGates=[{"name": "g2"}])) == []
    [cause] = podupdate.causes(gated, _with(schedulingGates=[{"name": "g3"}]))
    assert cause["field"] == "spec.schedulingGates"


def test_differences_name_each_changed_leaf():
    assert podupdate.differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 3]}}, "spec") == \
        ["spec.a.b", "spec.a.c[1]"]


@given(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=3600))
def test_images_and_added_tolerations_never_refused(image, seconds):
    changed = _with(containers=[{"name": "a", "image": image, "command": ["sh"]}],
                    tolerations=[*SPEC["tolerations"], {"key": "n", "operator": "Exists", "tolerationSeconds": seconds}])
    assert podupdate.causes(SPEC, changed) == []


@given(st.sampled_from(["restartPolicy", "dnsPolicy", "nodeName", "hostNetwork", "serviceAccountName"]),
       st.one_of(st.text(max_size=8), st.booleans()))
def test_any_other_field_changed_is_refused(key, value):
    changed = _with(**{key: value})
    if changed != SPEC:
        assert [c["field"] for c in podupdate.causes(SPEC, changed)] == ["spec"]
