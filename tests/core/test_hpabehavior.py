"""HPA behavior (`core.hpabehavior`): upstream's stabilization windows and rate policies, with the
reasons its conditions carry; and the property that the result always lies within [min, max]."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import hpabehavior as hb

UP, DOWN = hb.effective_rules(None, 300)
NOW = 1000.0


def _normalize(desired: int, current: int, low: int = 1, high: int = 10, recs=(), ups=(), downs=(),
               up: hb.Rules = UP, down: hb.Rules = DOWN) -> hb.Outcome:
    return hb.normalize(desired, current, low, high, list(recs), list(ups), list(downs), up, down, NOW)


def test_default_rules() -> None:
    assert UP == hb.Rules(0.0, "Max", (("Pods", 4, 15), ("Percent", 100, 15)))
    assert DOWN == hb.Rules(300.0, "Max", (("Percent", 100, 15),))


def test_scale_down_waits_for_the_highest_recent_recommendation() -> None:
    held = _normalize(2, 6, recs=[(NOW - 100, 6), (NOW - 50, 4)])
    assert (held.replicas, held.able_reason) == (6, "ScaleDownStabilized")
    assert _normalize(2, 6, recs=[(NOW - 400, 6), (NOW - 350, 4)]).replicas == 2, "outside the window"


def test_scale_up_is_limited_by_the_policies() -> None:
    limited = _normalize(50, 2, high=100)
    assert (limited.replicas, limited.limited, limited.limit_reason) == (6, True, "ScaleUpLimit")  # 2 + 4 pods
    assert _normalize(50, 10, high=100).replicas == 20  # 100% of 10 beats 4 pods
    # a scale-up 5 s ago spent the period: the period started at 2 replicas
    assert _normalize(50, 6, high=100, ups=[hb.Event(NOW - 5, 4)]).replicas == 6
    clamped = _normalize(50, 10, high=12)
    assert (clamped.replicas, clamped.limit_reason) == (12, "TooManyReplicas")


def test_bounds_and_disabled_directions() -> None:
    assert _normalize(0, 3, low=2).replicas == 2
    assert _normalize(0, 3, low=2).limit_reason == "TooFewReplicas"
    off = hb.Rules(0, "Disabled", ())
    assert _normalize(1, 3, down=off).limit_reason == "ScalingDisabled"
    within = _normalize(4, 4)
    assert (within.replicas, within.limited, within.limit_reason) == (4, False, "DesiredWithinRange")
    assert within.able_reason == "ReadyForNewScale"


def test_given_behavior_defaults() -> None:
    full = hb.with_defaults({"scaleDown": {"stabilizationWindowSeconds": 30}})
    assert full["scaleDown"] == {"stabilizationWindowSeconds": 30, "selectPolicy": "Max",
                                 "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert hb.effective_rules(full, 300)[1].window == 30


policy = st.tuples(st.sampled_from(["Pods", "Percent"]), st.integers(1, 200), st.integers(1, 1800))
rules = st.builds(hb.Rules, st.floats(0, 3600), st.sampled_from(["Max", "Min", "Disabled"]),
                  st.lists(policy, max_size=3).map(tuple))
events = st.lists(st.builds(hb.Event, st.floats(0, NOW), st.integers(1, 50)), max_size=5)


@given(st.integers(0, 500), st.integers(1, 300), st.integers(1, 50), st.integers(0, 100),
       st.lists(st.tuples(st.floats(0, NOW), st.integers(0, 500)), max_size=8), events, events, rules, rules)
def test_the_result_is_within_min_and_max(desired, current, low, span, recs, ups, downs, up, down) -> None:
    """Whatever the recommendation, history and policies, a replica count within [min, max] stays
    within it, and one outside never moves further out."""
    high = low + span
    out = _normalize(desired, current, low, high, recs, ups, downs, up, down).replicas
    if low <= current <= high:
        assert low <= out <= high
    else:
        assert min(low, current) <= out <= max(high, current)


@given(st.integers(1, 300), st.integers(1, 50), st.integers(0, 100), rules, rules)
def test_no_change_asked_is_no_change(current, low, span, up, down) -> None:
    high = low + span
    if low <= current <= high:
        assert _normalize(current, current, low, high, up=up, down=down).replicas == current
