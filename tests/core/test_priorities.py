"""Pod priority rules (`core.priorities`), pure: PriorityClass validation, the global default among
several, and a new pod's resolution; properties over the whole value range where they fit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import priorities

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _pc(name: str, value: int, **fields: object) -> dict:
    return {"metadata": {"name": name}, "value": value, **fields}


@given(INT32)
def test_user_values_up_to_one_billion_are_allowed(value: int) -> None:
    causes = priorities.class_causes(_pc("mine", value))
    assert (causes == []) == (value <= priorities.HIGHEST_USER_DEFINABLE)
    assert all(c["field"] == "value" and c["reason"] == "FieldValueForbidden" for c in causes)


@given(st.text(alphabet="abcdefghij-", min_size=1, max_size=20), INT32)
def test_system_names_are_only_the_two_as_they_are(suffix: str, value: int) -> None:
    name = priorities.SYSTEM_PREFIX + suffix
    known = priorities.SYSTEM_CLASSES.get(name)
    causes = priorities.class_causes(_pc(name, value))
    assert (causes == []) == (known is not None and known[0] == value)
    assert all(c["field"] == "metadata.name" for c in causes)


def test_the_system_classes_validate_and_refuse_to_be_default() -> None:
    for name in priorities.SYSTEM_CLASSES:
        assert priorities.class_causes(priorities.system_class(name)) == []
        made_default = {**priorities.system_class(name), "globalDefault": True}
        assert priorities.class_causes(made_default)[0]["message"].endswith(
            f"globalDefault of {name} PriorityClass must be false")


USER_VALUES = st.integers(min_value=-(2**31), max_value=priorities.HIGHEST_USER_DEFINABLE)


@given(USER_VALUES, USER_VALUES, st.sampled_from(priorities.POLICIES), st.sampled_from(priorities.POLICIES))
def test_value_and_policy_never_change(before: int, after: int, old_policy: str, new_policy: str) -> None:
    old, new = _pc("c", before, preemptionPolicy=old_policy), _pc("c", after, preemptionPolicy=new_policy)
    fields = [c["field"] for c in priorities.class_update_causes(old, new)]
    assert fields == [f for f, changed in (("value", before != after), ("preemptionPolicy", old_policy != new_policy))
                      if changed]


@given(st.lists(st.tuples(INT32, st.booleans()), max_size=8))
def test_the_default_is_the_lowest_valued_global_default(specs: list[tuple[int, bool]]) -> None:
    classes = [_pc(f"c{i}", value, globalDefault=default) for i, (value, default) in enumerate(specs)]
    found = priorities.default_class(classes)
    defaults = [value for value, default in specs if default]
    assert (found is None) == (not defaults)
    if found is not None:
        assert found["value"] == min(defaults) and found["globalDefault"]


@given(INT32, st.sampled_from(priorities.POLICIES), st.one_of(st.none(), INT32),
       st.sampled_from([None, *priorities.POLICIES]))
def test_a_pod_is_refused_exactly_when_it_disagrees(value: int, policy: str, stated: int | None,
                                                   stated_policy: str | None) -> None:
    resolved = priorities.resolved_from(_pc("c", value, preemptionPolicy=policy))
    spec = {k: v for k, v in (("priority", stated), ("preemptionPolicy", stated_policy)) if v is not None}
    refusal = priorities.disagreement(spec, resolved)
    agrees = stated in (None, value) and stated_policy in (None, policy)
    assert (refusal is None) == agrees
    if refusal is None:
        priorities.apply(spec, resolved)
        assert spec == {"priorityClassName": "c", "priority": value, "preemptionPolicy": policy}
        assert priorities.of_pod({"spec": spec}) == value


def test_no_class_and_no_default_is_priority_zero_and_preempting() -> None:
    spec: dict = {}
    priorities.apply(spec, priorities.NO_DEFAULT)
    assert spec == {"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}
    assert priorities.of_pod({}) == 0 and priorities.of_pod({"spec": {"priority": True}}) == 0
