"""The PodDisruptionBudget arithmetic (`core.disruption`): upstream's rounding, flooring and
health rules, with properties over the whole input space where they fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import disruption, errors

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(name: str, *, ready: bool = True, deleting: bool = False) -> dict:
    md = {"name": name, **({"deletionTimestamp": _stamp(NOW)} if deleting else {})}
    return {"metadata": md, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize("value, total, expected", [(2, 10, 2), ("50%", 3, 2), ("34%", 3, 2), ("0%", 5, 0),
                                                    ("100%", 7, 7), ("1%", 1, 1), ("10%", 0, 0)])
def test_percentages_round_up(value: object, total: int, expected: int) -> None:
    assert disruption.scaled(value, total) == expected


@given(st.integers(0, 100), st.integers(0, 10_000))
def test_a_percent_is_the_smallest_count_covering_it(percent: int, total: int) -> None:
    scaled = disruption.scaled(f"{percent}%", total)
    assert scaled * 100 >= percent * total and (scaled - 1) * 100 < percent * total or scaled == 0
    assert 0 <= scaled <= total


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_disruptions_allowed_is_never_negative_and_zero_without_expected_pods(healthy: int, desired: int,
                                                                             expected: int) -> None:
    allowed = disruption.disruptions_allowed(healthy, desired, expected)
    assert allowed >= 0
    assert allowed == (max(0, healthy - desired) if expected > 0 else 0)


@given(st.integers(0, 100), st.integers(0, 200), st.integers(0, 200))
def test_max_unavailable_desires_scale_minus_its_share(percent: int, pods: int, scale: int) -> None:
    expected, desired = disruption.expected_and_desired({"maxUnavailable": f"{percent}%"}, pods, scale)
    assert expected == scale
    assert desired == max(0, scale - disruption.scaled(f"{percent}%", scale))


def test_min_available_int_counts_matching_pods_percent_counts_scale() -> None:
    assert disruption.expected_and_desired({"minAvailable": 2}, 5, None) == (5, 2)
    assert disruption.expected_and_desired({"minAvailable": "50%"}, 5, 3) == (3, 2)
    assert disruption.expected_and_desired({"maxUnavailable": 1}, 5, 4) == (4, 3)
    assert disruption.expected_and_desired({}, 5, None) == (0, 0)
    assert not disruption.needs_scale({"minAvailable": 1}) and disruption.needs_scale({"minAvailable": "1%"})
    assert disruption.needs_scale({"maxUnavailable": 0})


@pytest.mark.parametrize("spec, fields", [
    ({"minAvailable": 1}, []), ({"maxUnavailable": "100%"}, []), ({}, []),
    ({"minAvailable": 1, "maxUnavailable": 1}, ["spec"]),
    ({"minAvailable": -1}, ["spec.minAvailable"]), ({"maxUnavailable": "101%"}, ["spec.maxUnavailable"]),
    ({"minAvailable": "5"}, ["spec.minAvailable"]), ({"minAvailable": True}, ["spec.minAvailable"]),
])
def test_spec_validation_names_the_field(spec: dict, fields: list[str]) -> None:
    assert [c["field"] for c in disruption.spec_causes(spec)] == fields


def test_healthy_pods_leave_out_unready_deleting_and_recently_evicted() -> None:
    pods = [_pod("a"), _pod("b", ready=False), _pod("c", deleting=True), _pod("d"), _pod("e")]
    recent, stale = _stamp(NOW - timedelta(seconds=30)), _stamp(NOW - timedelta(minutes=3))
    kept, recheck = disruption.still_disrupted(pods, {"d": recent, "e": stale, "c": recent, "gone": recent}, NOW)
    assert kept == {"d": recent}  # e timed out, c is being deleted, gone is gone
    assert recheck == NOW - timedelta(seconds=30) + disruption.DELETION_TIMEOUT
    assert disruption.current_healthy(pods, kept, NOW) == 2  # a and e


def test_condition_keeps_its_transition_time_until_it_flips() -> None:
    first = disruption.with_condition({"disruptionsAllowed": 1}, 3, "t1")
    assert first["conditions"] == [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                                    "message": "", "observedGeneration": 3, "lastTransitionTime": "t1"}]
    same = disruption.with_condition(first, 3, "t2")
    assert same["conditions"][0]["lastTransitionTime"] == "t1"
    flipped = disruption.with_condition({**first, "disruptionsAllowed": 0}, 3, "t3")
    assert flipped["conditions"][0]["reason"] == "InsufficientPods" and flipped["conditions"][0]["lastTransitionTime"] == "t3"


@given(st.integers(0, 20), st.integers(0, 5), st.integers(0, 5))
def test_spending_takes_exactly_one_or_refuses_with_429(allowed: int, generation: int, observed: int) -> None:
    pdb = {"metadata": {"name": "p", "generation": generation},
           "status": {"disruptionsAllowed": allowed, "observedGeneration": observed, "desiredHealthy": 2,
                      "currentHealthy": 2 + allowed}}
    if observed < generation or allowed == 0:
        with pytest.raises(errors.TooManyRequests) as refused:
            disruption.spend(pdb, "pod", "now")
        assert refused.value.message == disruption.VIOLATION
        assert refused.value.details["causes"][0]["reason"] == "DisruptionBudget"
        return
    status = disruption.spend(pdb, "pod", "now")
    assert status["disruptionsAllowed"] == allowed - 1 and status["disruptedPods"] == {"pod": "now"}
    assert "disruptedPods" not in disruption.spend(pdb, "pod", "now", dry_run=True)
