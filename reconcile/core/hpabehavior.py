"""An HPA's scaling behavior, pure: upstream's defaults for `spec.behavior`, the stabilization of
recommendations and the scale-up / scale-down rate policies (normalizeDesiredReplicasWithBehaviors
in pkg/controller/podautoscaler/horizontal.go), with the reasons and messages its conditions carry.

An HPA without a behavior is treated as one with the default rules (scale up by at most 4 pods or
100% per 15 s, no scale-up stabilization; scale down by up to 100% per 15 s after the controller's
downscale stabilization window, 300 s by default). Upstream runs an older path for it (a scale-up
limit of max(2x, 4) per sync); the two agree on what a 15 s sync does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

DEFAULT_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]}
DEFAULT_SCALE_DOWN = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
DOWNSCALE_STABILIZATION_SECONDS = 300.0


def _rules_with_defaults(rules: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(rules) if isinstance(rules, dict) else {}
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = copy.deepcopy(value)
    return out


def with_defaults(behavior: dict[str, Any]) -> dict[str, Any]:
    """A given behavior with upstream's defaults for what it leaves unset (the scale-down window
    stays unset: the controller's flag decides it)."""
    out = dict(behavior)
    out["scaleUp"] = _rules_with_defaults(behavior.get("scaleUp"), DEFAULT_SCALE_UP)
    out["scaleDown"] = _rules_with_defaults(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN)
    return out


@dataclass(frozen=True)
class Rules:
    window: float
    select: str  # Max, Min, Disabled
    policies: tuple[tuple[str, int, int], ...]  # (Pods|Percent, value, periodSeconds)

    @classmethod
    def of(cls, rules: dict[str, Any], default_window: float) -> Rules:
        window = rules.get("stabilizationWindowSeconds")
        return cls(float(default_window if window is None else window), rules.get("selectPolicy") or "Max",
                   tuple((p["type"], int(p["value"]), int(p["periodSeconds"])) for p in rules.get("policies") or []))


def effective_rules(behavior: dict[str, Any] | None, downscale_window: float) -> tuple[Rules, Rules]:
    """(scale-up, scale-down) rules of an HPA's behavior, defaults filled in."""
    full = with_defaults(behavior or {})
    return Rules.of(full["scaleUp"], 0), Rules.of(full["scaleDown"], downscale_window)


@dataclass(frozen=True)
class Event:
    """A rescale the controller made: when, and by how many replicas (always positive)."""

    at: float
    change: int


@dataclass(frozen=True)
class Outcome:
    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limit_reason: str
    limit_message: str


def stabilize(desired: int, current: int, recommendations: list[tuple[float, int]], up: Rules, down: Rules,
              now: float) -> tuple[int, str, str]:
    """The recommendation after the stabilization windows: no higher than the lowest recommendation
    within the scale-up window, no lower than the highest within the scale-down window."""
    up_bound = down_bound = desired
    for at, replicas in recommendations:
        if at > now - up.window:
            up_bound = min(up_bound, replicas)
        if at > now - down.window:
            down_bound = max(down_bound, replicas)
    result = min(max(current, up_bound), down_bound)
    if result == desired:
        return result, "ReadyForNewScale", "recommended size matches current size"
    if result < desired:
        return result, "ScaleUpStabilized", ("recent recommendations were lower than current one, applying the "
                                             "lowest recent recommendation")
    return result, "ScaleDownStabilized", ("recent recommendations were higher than current one, applying the "
                                           "highest recent recommendation")


def _changed_within(period: int, events: list[Event], now: float) -> int:
    return sum(e.change for e in events if e.at > now - period)


def scale_up_limit(current: int, ups: list[Event], downs: list[Event], rules: Rules, now: float) -> int:
    if rules.select == "Disabled":
        return current
    picks: list[int] = []
    for kind, value, period in rules.policies:
        start = current - _changed_within(period, ups, now) + _changed_within(period, downs, now)
        picks.append(start + value if kind == "Pods" else math.ceil(start * (1 + value / 100)))
    if not picks:
        return current
    return min(picks) if rules.select == "Min" else max(picks)


def scale_down_limit(current: int, ups: list[Event], downs: list[Event], rules: Rules, now: float) -> int:
    if rules.select == "Disabled":
        return current
    picks: list[int] = []
    for kind, value, period in rules.policies:
        start = current + _changed_within(period, downs, now) - _changed_within(period, ups, now)
        picks.append(start - value if kind == "Pods" else int(start * (1 - value / 100)))
    if not picks:
        return current
    return max(picks) if rules.select == "Min" else min(picks)


def limit_rate(desired: int, current: int, low: int, high: int, ups: list[Event], downs: list[Event],
               up: Rules, down: Rules, now: float) -> tuple[int, str, str]:
    """The stabilized recommendation bounded by [minReplicas, maxReplicas] and the rate policies."""
    if desired > current:
        if up.select == "Disabled":
            return current, "ScalingDisabled", "scaling up is disabled"
        limit = max(scale_up_limit(current, ups, downs, up, now), current)
        if high > limit:
            allowed, reason, message = limit, "ScaleUpLimit", ("the desired replica count is increasing faster "
                                                               "than the maximum scale rate")
        else:
            allowed, reason, message = high, "TooManyReplicas", ("the desired replica count is more than the "
                                                                 "maximum replica count")
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        if down.select == "Disabled":
            return current, "ScalingDisabled", "scaling down is disabled"
        limit = min(scale_down_limit(current, ups, downs, down, now), current)
        if low < limit:
            allowed, reason, message = limit, "ScaleDownLimit", ("the desired replica count is decreasing faster "
                                                                 "than the maximum scale rate")
        else:
            allowed, reason, message = low, "TooFewReplicas", ("the desired replica count is less than the "
                                                               "minimum replica count")
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def normalize(desired: int, current: int, low: int, high: int, recommendations: list[tuple[float, int]],
              ups: list[Event], downs: list[Event], up: Rules, down: Rules, now: float) -> Outcome:
    """What to scale to: the stabilized recommendation, then rate-limited and clamped to [low, high]."""
    stabilized, able_reason, able_message = stabilize(desired, current, recommendations, up, down, now)
    replicas, reason, message = limit_rate(stabilized, current, low, high, ups, downs, up, down, now)
    return Outcome(replicas, able_reason, able_message, replicas != stabilized, reason, message)
