"""The replica calculator (`core.replicacalc`) against upstream's rules: the ratio of usage to
request (or of the average usage to an AverageValue target) scales the ready pods, the tolerance holds the count, missing and unready pods only damp a
change; and properties over random pods."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import replicacalc as rc

NOW = 10_000.0
STARTED = NOW - 600  # past the cpu initialization period


def _pod(name: str, request: int = 100, **kw) -> rc.Pod:
    kw.setdefault("started", STARTED)
    kw.setdefault("ready_since", STARTED + 5)
    return rc.Pod(name, request=request, **kw)


def _sample(usage: int) -> rc.Sample:
    return rc.Sample(usage, NOW - 1, 15)


def _calc(current: int, target: int, pods: list[rc.Pod], usage: dict[str, int]) -> rc.Recommendation:
    return rc.resource_replicas(current, target, pods, {n: _sample(u) for n, u in usage.items()}, now=NOW)


def test_ratio_scales_ready_pods_rounding_up() -> None:
    pods = [_pod("a"), _pod("b")]
    found = _calc(2, 50, pods, {"a": 90, "b": 70})  # 80% of request against 50%: 1.6 x 2 pods
    assert (found.replicas, found.utilization, found.usage) == (4, 80, 80)
    assert _calc(2, 50, pods, {"a": 10, "b": 10}).replicas == 1


def test_within_tolerance_nothing_changes() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c")]
    assert _calc(3, 50, pods, {"a": 54, "b": 54, "c": 54}).replicas == 3  # 54/50 = 1.08
    assert _calc(3, 50, pods, {"a": 56, "b": 56, "c": 56}).replicas == 4  # 1.12


def test_missing_pods_count_as_full_request_when_scaling_down() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c"), _pod("d")]
    # alone, a and b say 10% of 50: scale down to 1; c and d, without metrics, count at 100%
    found = _calc(4, 50, pods, {"a": 10, "b": 10})
    assert found.replicas == 4 and found.utilization == 10, "(10+10+100+100)/400 = 55%: up, the direction reversed"


def test_missing_pods_count_as_zero_when_scaling_up() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c"), _pod("d")]
    assert _calc(4, 50, pods, {"a": 200, "b": 200}).replicas == 8  # (200+200+0+0)/400 = 100%: 2 x 4


def test_unready_pods_are_zero_in_a_scale_up_and_ignored_otherwise() -> None:
    young = NOW - 60  # inside the cpu initialization period
    pods = [_pod("a"), _pod("b"), _pod("new", started=young, ready=False, ready_since=young)]
    assert _calc(3, 50, pods, {"a": 100, "b": 100, "new": 500}).replicas == 4  # (100+100+0)/300 = 66%: 1.33 x 3
    assert _calc(3, 50, pods, {"a": 10, "b": 10, "new": 500}).replicas == 1  # down: new is left out


def test_ignored_pods_and_errors() -> None:
    pods = [_pod("a"), _pod("gone", deleting=True), _pod("waiting", phase="Pending")]
    assert _calc(1, 50, pods, {"a": 100, "gone": 0, "waiting": 0}).replicas == 2
    with pytest.raises(rc.CalculationError, match="no pods returned by selector"):
        _calc(1, 50, [], {})
    with pytest.raises(rc.CalculationError, match="did not receive metrics for targeted pods"):
        _calc(1, 50, [_pod("a")], {})
    with pytest.raises(rc.CalculationError, match="missing request for cpu in container web of Pod a"):
        _calc(1, 50, [rc.Pod("a", request=None, unrequested="web", started=STARTED)], {"a": 5})


def test_an_average_value_target_compares_the_average_usage() -> None:
    pods = [_pod("a", request=None), _pod("b", request=None)]  # no requests needed for a raw target
    samples = {"a": _sample(300), "b": _sample(100)}
    found = rc.average_value_replicas(2, 100, pods, samples, resource="memory", now=NOW)
    assert (found.replicas, found.utilization, found.usage) == (4, None, 200)
    assert rc.average_value_replicas(2, 190, pods, samples, resource="memory", now=NOW).replicas == 2  # 200/190
    # c has no sample: counted at the target on the way down, so 2 x 0.5 becomes (50+50+100)/3 = 0.67 x 3 = 2
    low = {"a": _sample(50), "b": _sample(50)}
    assert rc.average_value_replicas(3, 100, [*pods, _pod("c")], low, resource="memory", now=NOW).replicas == 2


pods_and_usage = st.lists(st.tuples(st.integers(1, 4000), st.integers(0, 8000), st.booleans()), min_size=1,
                          max_size=30)


@given(pods_and_usage, st.integers(1, 200))
def test_a_recommendation_never_moves_against_the_metric(rows, target) -> None:
    """With the target's replicas all running, scaling up only when the metric is above the target
    and down only when below, whatever pods lack metrics. (When the scale's replicas and the pods
    differ, upstream's plain ratio times the ready pods may land on either side of the replicas.)"""
    pods = [_pod(f"p{i}", request=req) for i, (req, _, _) in enumerate(rows)]
    usage = {f"p{i}": use for i, (_, use, has) in enumerate(rows) if has}
    if not usage:
        return
    current = len(pods)
    found = _calc(current, target, pods, usage)
    ratio = found.utilization / target
    if found.replicas > current:
        assert ratio > 1.0
    if found.replicas < current:
        assert ratio < 1.0


@given(st.lists(st.integers(1, 4000), min_size=1, max_size=30), st.integers(1, 200), st.floats(0.9, 1.1))
def test_usage_near_the_target_keeps_the_count(requests, target, factor) -> None:
    """Every pod at the same fraction of its request within the tolerance: nothing changes."""
    pods = [_pod(f"p{i}", request=req) for i, req in enumerate(requests)]
    usage = {f"p{i}": int(req * target * factor / 100) for i, req in enumerate(requests)}
    found = _calc(len(pods), target, pods, usage)
    if abs(1 - found.utilization / target) <= rc.TOLERANCE:
        assert found.replicas == len(pods)


@given(pods_and_usage, st.integers(1, 4000))
def test_an_average_value_recommendation_follows_the_metric(rows, target) -> None:
    pods = [_pod(f"p{i}") for i in range(len(rows))]
    usage = {f"p{i}": use for i, (_, use, has) in enumerate(rows) if has}
    if not usage:
        return
    found = rc.average_value_replicas(len(pods), target, pods, {n: _sample(u) for n, u in usage.items()},
                                      resource="memory", now=NOW)
    ratio = found.usage / target
    if found.replicas > len(pods):
        assert ratio >= 1.0
    if found.replicas < len(pods):
        assert ratio <= 1.0
