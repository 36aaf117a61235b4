"""Taints and tolerations, as upstream's v1helper: which toleration tolerates which taint."""

from __future__ import annotations

from collections.abc import Iterable

from reconcile.scheduler import nodeinfo, podinfo

FILTER_EFFECTS = ("NoSchedule", "NoExecute")


def tolerates(toleration: podinfo.Toleration, taint: nodeinfo.Taint) -> bool:
    """Toleration.ToleratesTaint: an empty effect matches all effects; `Exists` with an empty key matches all keys."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("Equal", ""):
        return toleration.value == taint.value  # (validation allows an empty key only with Exists)
    return False


def tolerated(taint: nodeinfo.Taint, tolerations: Iterable[podinfo.Toleration]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def first_untolerated(
    taints: Iterable[nodeinfo.Taint], tolerations: list[podinfo.Toleration], *, effects: tuple[str, ...] = FILTER_EFFECTS
) -> nodeinfo.Taint | None:
    """The first taint with one of `effects` that no toleration tolerates (upstream reports only that one)."""
    for taint in taints:
        if taint.effect in effects and not tolerated(taint, tolerations):
            return taint
    return None


def count_untolerated(taints: Iterable[nodeinfo.Taint], tolerations: list[podinfo.Toleration], *, effect: str) -> int:
    return sum(1 for taint in taints if taint.effect == effect and not tolerated(taint, tolerations))
