"""Disruption controller (policy/v1 PodDisruptionBudget status, upstream's pkg/controller/disruption).

For each PDB: the pods of its namespace its selector matches; the expected count and the desired
healthy count (`core.disruption.expected_and_desired`: minAvailable as an int counts the matching
pods, a percent or maxUnavailable is resolved against the scale of the pods' controllers: a
Deployment through its ReplicaSet, a bare ReplicaSet, a StatefulSet); the healthy pods (Ready, not
being deleted, not evicted in the last two minutes per status.disruptedPods); and from them
disruptionsAllowed and the DisruptionAllowed condition (SufficientPods / InsufficientPods). A pod
whose controller cannot be found makes the sync fail safe, as upstream: no disruption allowed,
reason SyncFailed. The status is written only when it changed, with the PDB's resourceVersion (the
eviction subresource writes the same status; a conflict is read again).
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context
from reconcile.core import disruption, errors, meta, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "policy/v1"
Key = controller_mod.Key


class NoController(Exception):
    """A pod's controller (or its scale) cannot be found: the budget cannot be computed."""


def _md(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, dict) else {}


def _replicas(obj: dict[str, Any]) -> int:
    value = _spec(obj).get("replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def selector_of(pdb: dict[str, Any]) -> selectors.LabelSelector | None:
    """The PDB's selector, None when it selects nothing (absent or invalid); `{}` selects every pod."""
    raw = _spec(pdb).get("selector")
    if not isinstance(raw, dict):
        return None
    try:
        return selectors.LabelSelector.from_match(raw)
    except (errors.ApiError, ValueError, TypeError, AttributeError):
        return None


class DisruptionController:
    """Owns the `disruption` engine controller (upstream's name) and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.pdbs = ctx.informers.get(API_VERSION, "poddisruptionbudgets")
        self.pods = ctx.informers.get("v1", "pods")
        self.replicasets = ctx.informers.get("apps/v1", "replicasets")
        self.deployments = ctx.informers.get("apps/v1", "deployments")
        self.statefulsets = ctx.informers.get("apps/v1", "statefulsets")
        self.controller = ctx.controller("disruption", self.reconcile,
                                         lookup=lambda key: self.pdbs.store.get(*key))
        self.controller.watch(self.pdbs)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: (self._pod_changed(old),
                                                                                    self._pod_changed(new)),
                              on_delete=self._pod_changed)
        for workloads in (self.replicasets, self.deployments, self.statefulsets):  # scale changes
            workloads.add_handler(on_add=self._namespace_changed, on_update=lambda _, new: self._namespace_changed(new),
                                  on_delete=self._namespace_changed)

    def _budgets_of(self, pod: dict[str, Any]) -> list[Key]:
        namespace = _md(pod).get("namespace") or ""
        labels = _md(pod).get("labels") or {}
        found = []
        for pdb in self.pdbs.store.by_index("namespace", namespace):
            selector = selector_of(pdb)
            if selector is not None and selector.matches(labels if isinstance(labels, dict) else {}):
                found.append((namespace, _md(pdb).get("name")))
        return found

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        for key in self._budgets_of(pod):
            self.controller.enqueue(key)

    def _namespace_changed(self, obj: dict[str, Any]) -> None:
        namespace = _md(obj).get("namespace") or ""
        for pdb in self.pdbs.store.by_index("namespace", namespace):
            self.controller.enqueue((namespace, _md(pdb).get("name")))

    # --- the expected scale --------------------------------------------------------------------

    def _scale_of(self, ref: dict[str, Any], namespace: str) -> tuple[str, int] | None:
        """(controller uid, its replicas) for a pod's controller reference, as upstream's finders:
        a ReplicaSet owned by a Deployment counts as the Deployment."""
        kind, name, uid = ref.get("kind"), ref.get("name"), ref.get("uid")
        group = str(ref.get("apiVersion") or "").partition("/")[0]
        if group not in ("apps", "extensions"):
            return None
        if kind == "StatefulSet":
            found = self.statefulsets.store.get(namespace, name)
            return (uid, _replicas(found)) if found is not None and _md(found).get("uid") == uid else None
        if kind != "ReplicaSet":
            return None
        rs = self.replicasets.store.get(namespace, name)
        if rs is None or _md(rs).get("uid") != uid:
            return None
        owner = meta.controller_owner(rs)
        if owner is None or owner.get("kind") != "Deployment":
            return uid, _replicas(rs)
        deploy = self.deployments.store.get(namespace, owner.get("name"))
        if deploy is None or _md(deploy).get("uid") != owner.get("uid"):
            return None
        return owner["uid"], _replicas(deploy)

    def expected_scale(self, pods: list[dict[str, Any]]) -> tuple[int, list[str]]:
        """getExpectedScale: the sum of the replicas of the pods' controllers (each counted once),
        and the names of the pods without a controller (left out, as upstream)."""
        scales: dict[str, int] = {}
        unmanaged = []
        for pod in pods:
            ref = meta.controller_owner(pod)
            if ref is None:
                unmanaged.append(_md(pod).get("name") or "")
                continue
            if ref.get("uid") in scales:
                continue
            found = self._scale_of(ref, _md(pod).get("namespace") or "")
            if found is None:
                raise NoController(f'found no controllers for pod "{_md(pod).get("name")}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    # --- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        pdb = self.pdbs.store.get(namespace, name)
        if pdb is None:
            return None
        now = self.ctx.clock.wall()
        selector = selector_of(pdb)
        pods = [] if selector is None else [p for p in self.pods.store.by_index("namespace", namespace)
                                            if selector.matches(_md(p).get("labels") or {})]
        spec = _spec(pdb)
        recheck = None
        try:
            scale = None
            if disruption.needs_scale(spec):
                scale, unmanaged = self.expected_scale(pods)
                if unmanaged:
                    await self.ctx.event(pdb, reason="UnmanagedPods", type="Warning", message=(
                        f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. "
                        "As a result, the status of the PDB cannot be calculated correctly, which may result in "
                        "undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the "
                        "PDB to an integer value."))
            expected, desired = disruption.expected_and_desired(spec, len(pods), scale)
            old_status = pdb.get("status") if isinstance(pdb.get("status"), dict) else {}
            disrupted, recheck = disruption.still_disrupted(pods, old_status.get("disruptedPods"), now)
            healthy = disruption.current_healthy(pods, disrupted, now)
            status = self._status(pdb, healthy=healthy, desired=desired, expected=expected, disrupted=disrupted)
        except (NoController, ValueError) as exc:
            await self.ctx.event(pdb, reason="CalculateExpectedPodCountFailed", type="Warning",
                                 message=f"Failed to calculate the number of expected pods: {exc}")
            status = self._failed(pdb, str(exc))
        if not pods:
            await self.ctx.event(pdb, reason="NoPods", message="No matching pods found")
        written = await self._write(pdb, status)
        if not written:
            return controller_mod.Result(requeue_after=0.05)
        if recheck is not None:
            return controller_mod.Result(requeue_after=max(0.0, (recheck - now).total_seconds()))
        return None

    def _status(self, pdb: dict[str, Any], *, healthy: int, desired: int, expected: int,
                disrupted: dict[str, str]) -> dict[str, Any]:
        old = pdb.get("status") if isinstance(pdb.get("status"), dict) else {}
        generation = _md(pdb).get("generation") or 0
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "disruptionsAllowed": disruption.disruptions_allowed(healthy, desired, expected),
            "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        return disruption.with_condition(status, generation, meta.now_rfc3339())

    def _failed(self, pdb: dict[str, Any], message: str) -> dict[str, Any]:
        """failSafe: no disruption allowed, the DisruptionAllowed condition False with SyncFailed."""
        old = dict(pdb.get("status")) if isinstance(pdb.get("status"), dict) else {}
        old["disruptionsAllowed"] = 0
        for field in ("currentHealthy", "desiredHealthy", "expectedPods"):
            old.setdefault(field, 0)
        return disruption.with_condition(old, _md(pdb).get("generation") or 0, meta.now_rfc3339(),
                                         reason=disruption.SYNC_FAILED, message=message)

    async def _write(self, pdb: dict[str, Any], status: dict[str, Any]) -> bool:
        """PUT /status with the cached resourceVersion, unless nothing changed; False on a conflict."""
        if _same(pdb.get("status") or {}, status):
            return True
        body = {**pdb, "status": status}
        try:
            await self.ctx.client.replace(API_VERSION, "poddisruptionbudgets", body,
                                          namespace=_md(pdb).get("namespace"), subresource="status")
        except errors.Conflict:
            return False
        except errors.NotFound:
            return True
        return True


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal but for the conditions' lastTransitionTime (kept unless the status flips anyway)."""
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                      for c in status.get("conditions") or [] if isinstance(c, dict)]
        return {**status, "conditions": conditions}
    return strip(old) == strip(new)
