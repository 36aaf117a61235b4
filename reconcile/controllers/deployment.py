"""Deployment controller: one ReplicaSet per pod template, rolled by RollingUpdate or Recreate.

Follows upstream's sync loop (pkg/controller/deployment): claim ReplicaSets, find or create
the one whose template matches (by `pod-template-hash`), then scale new up / old down within
maxSurge / maxUnavailable, and derive status and conditions from the ReplicaSets' statuses.
Every RS write carries the resourceVersion it was computed from, so a decision made on a
stale cache fails with 409 and is re-made from fresh state.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from reconcile.client import decoding
from reconcile.controllers import context, ownership, rollout
from reconcile.core import errors, meta, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "apps/v1"
KIND = "Deployment"
Key = controller_mod.Key
RETRY_SOON = controller_mod.Result(requeue_after=0.05)


class _Stale(Exception):
    """A write lost a race with another writer; reconcile again from the cache."""


class DeploymentController:
    """Owns the `deployment` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.deployments = ctx.informers.get(API_VERSION, "deployments")
        self.replicasets = ctx.informers.get(API_VERSION, "replicasets")
        self.controller = ctx.controller("deployment", self.reconcile)
        self.controller.watch(self.deployments)
        self.controller.watch(self.replicasets, to_keys=self._rs_keys)

    def _rs_keys(self, rs: dict[str, Any]) -> list[Key]:
        """The owning Deployment, or for an orphan every Deployment that could adopt it."""
        md = rs.get("metadata") or {}
        namespace = md.get("namespace") or ""
        ref = meta.controller_owner(rs)
        if ref is not None:
            return [(namespace, ref.get("name") or "")] if ref.get("kind") == KIND else []
        keys = []
        for d in self.deployments.store.by_index("namespace", namespace):
            try:
                if selectors.LabelSelector.from_match((d.get("spec") or {}).get("selector")).matches(md.get("labels")):
                    keys.append((namespace, d["metadata"]["name"]))
            except errors.ApiError:
                continue
        return keys

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        d = self.deployments.store.get(namespace, name)
        if d is None:
            return None
        try:
            return await _Sync(self, copy.deepcopy(d)).run()
        except _Stale:
            return RETRY_SOON
        except errors.Conflict:
            return RETRY_SOON


class _Sync:
    """One reconcile of one Deployment; collects the status to write at the end."""

    def __init__(self, owner: DeploymentController, d: dict[str, Any]) -> None:
        self.ctx = owner.ctx
        self.owner = owner
        self.d = d
        self.namespace = d["metadata"]["namespace"]
        self.now = self.ctx.clock.wall()
        # the status being built: starts from the current one, conditions are edited in place
        self.status: dict[str, Any] = copy.deepcopy(d.get("status") or {})
        self.selector = selectors.LabelSelector.match_nothing()  # set by run()
        self.rss: list[dict[str, Any]] = []  # the claimed ReplicaSets, replaced as they are written

    # --- entry ------------------------------------------------------------------------------------

    async def run(self) -> controller_mod.Result | None:
        d = self.d
        spec = d.get("spec") or {}
        try:
            selector = selectors.LabelSelector.from_match(spec.get("selector"))
        except errors.ApiError as exc:
            await self.ctx.event(d, reason="SelectorParsingFailed", message=str(exc), type="Warning")
            return None
        self.selector = selector
        if selector.empty:
            await self.ctx.event(d, reason="SelectingAll", type="Warning",
                                 message="This deployment is selecting all pods. A non-empty selector is required.")
            return None
        candidates = self.owner.replicasets.store.by_index("namespace", self.namespace)
        rss, raced = await ownership.claim(self.ctx.client, API_VERSION, "replicasets", d, selector, candidates)
        if raced:
            return RETRY_SOON
        self.rss = [copy.deepcopy(rs) for rs in rss]
        if d["metadata"].get("deletionTimestamp"):
            return await self.sync_status_only()
        self.check_paused_conditions()
        if spec.get("paused") or await self.is_scaling_event():
            return await self.sync(paused=bool(spec.get("paused")))
        if rollout.is_rolling(d):
            return await self.rolling()
        return await self.recreate()

    # --- finding the new ReplicaSet ---------------------------------------------------------------

    def split(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        template = (self.d.get("spec") or {}).get("template")
        matching = [rs for rs in rollout.by_age(self.rss) if rollout.same_template((rs.get("spec") or {}).get("template"), template)]
        new = matching[0] if matching else None
        olds = [rs for rs in self.rss if rs is not new]
        return new, olds

    async def get_new(self, *, create: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The new RS (revision synced to max(old)+1) and the old ones (upstream getAllReplicaSetsAndSyncRevision)."""
        new, olds = self.split()
        new_revision = max([rollout.revision(rs) for rs in olds], default=0) + 1
        if new is not None:
            new = await self.sync_new_annotations(new, new_revision)
            if rollout.condition(self.status, "Progressing") is None:
                rollout.set_condition(self.status, rollout.new_condition(
                    "Progressing", "True", rollout.FOUND_NEW_RS, f'Found new replica set "{new["metadata"]["name"]}"',
                    self.now))
            await self.set_deployment_revision(rollout.revision(new))
            return new, olds
        if not create:
            return None, olds
        new = await self.create_new(olds, new_revision)
        await self.set_deployment_revision(new_revision)
        return new, olds

    def rs_annotations(self, revision: int) -> dict[str, str]:
        d = self.d
        annotations = {k: v for k, v in ((d["metadata"].get("annotations") or {}).items())
                       if k not in rollout.SKIPPED_ANNOTATIONS}
        annotations[rollout.REVISION] = str(revision)
        annotations[rollout.DESIRED] = str(rollout.replicas(d))
        annotations[rollout.MAX_REPLICAS] = str(rollout.replicas(d) + rollout.max_surge(d))
        return annotations

    async def sync_new_annotations(self, rs: dict[str, Any], new_revision: int) -> dict[str, Any]:
        """Bump a reused RS's revision (rollback) and carry the Deployment's annotations; minReadySeconds too."""
        current = rs["metadata"].get("annotations") or {}
        wanted = self.rs_annotations(max(new_revision, rollout.revision(rs)))
        wanted[rollout.DESIRED] = current.get(rollout.DESIRED, wanted[rollout.DESIRED])
        wanted[rollout.MAX_REPLICAS] = current.get(rollout.MAX_REPLICAS, wanted[rollout.MAX_REPLICAS])
        if current.get(rollout.REVISION) and rollout.revision(rs) < new_revision:
            # rolled back to this ReplicaSet: it keeps the revisions it held (kubectl rollout history)
            history = rollout.revision_history(current.get(rollout.REVISION_HISTORY), current[rollout.REVISION])
            if history is not None:
                wanted[rollout.REVISION_HISTORY] = history
        patch: dict[str, Any] = {}
        if any(current.get(k) != v for k, v in wanted.items()):
            patch["metadata"] = {"annotations": wanted}
        min_ready = (self.d.get("spec") or {}).get("minReadySeconds")
        if (rs.get("spec") or {}).get("minReadySeconds") != min_ready:
            patch["spec"] = {"minReadySeconds": min_ready}
        if not patch:
            return rs
        return await self.patch_rs(rs, patch)

    async def set_deployment_revision(self, revision: int) -> None:
        annotations = self.d["metadata"].get("annotations") or {}
        if annotations.get(rollout.REVISION) == str(revision):
            return
        patch = {"metadata": {"annotations": {rollout.REVISION: str(revision)},
                              "resourceVersion": self.d["metadata"]["resourceVersion"]}}
        try:
            updated = await self.ctx.client.patch(API_VERSION, "deployments", self.d["metadata"]["name"], patch,
                                                  namespace=self.namespace)
        except errors.NotFound:
            raise _Stale() from None
        self.d["metadata"] = updated["metadata"]

    async def create_new(self, olds: list[dict[str, Any]], revision: int) -> dict[str, Any]:
        d = self.d
        spec = d.get("spec") or {}
        collisions = (d.get("status") or {}).get("collisionCount")
        pod_hash = rollout.template_hash(spec.get("template") or {}, collisions)
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta.pop("creationTimestamp", None)
        tmeta.setdefault("labels", {})[rollout.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[rollout.HASH_LABEL] = pod_hash
        size = rollout.new_rs_replicas(d, olds, None)
        body = {
            "apiVersion": API_VERSION,
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": self.namespace,
                "labels": dict(tmeta["labels"]),
                "annotations": self.rs_annotations(revision),
                "ownerReferences": [ownership.controller_ref(d)],
            },
            "spec": {"replicas": size, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }
        try:
            rs = await self.ctx.client.create(API_VERSION, "replicasets", body, namespace=self.namespace)
        except errors.AlreadyExists:
            return await self.on_name_taken(body["metadata"]["name"])
        self.rss.append(rs)
        name = rs["metadata"]["name"]
        if size > 0:
            await self.ctx.event(d, reason="ScalingReplicaSet", message=f"Scaled up replica set {name} from 0 to {size}")
        rollout.remove_condition(self.status, "Progressing")
        rollout.set_condition(self.status, rollout.new_condition(
            "Progressing", "True", rollout.NEW_RS_CREATED, f'Created new replica set "{name}"', self.now))
        return rs

    async def on_name_taken(self, name: str) -> dict[str, Any]:
        """Our cache missed an RS we created earlier, or a hash collision: use it, or bump collisionCount."""
        try:
            existing = await self.ctx.client.get(API_VERSION, "replicasets", name, namespace=self.namespace)
        except errors.NotFound:
            raise _Stale() from None
        problems = decoding.problems(existing)
        if problems:  # our informer skips it, so it will never show up there: not a race, a bad object
            raise ValueError(f"ReplicaSet {name} exists but does not decode: {'; '.join(problems[:3])}")
        if ownership.owned_by(existing, self.d["metadata"]["uid"]) and rollout.same_template(
            (existing.get("spec") or {}).get("template"), (self.d.get("spec") or {}).get("template")
        ):
            raise _Stale()  # ours: the informer will show it; decide again from there
        count = int((self.d.get("status") or {}).get("collisionCount") or 0) + 1
        await self.ctx.client.patch(API_VERSION, "deployments", self.d["metadata"]["name"],
                                    {"status": {"collisionCount": count}}, namespace=self.namespace,
                                    subresource="status")
        raise _Stale()

    # --- scaling ----------------------------------------------------------------------------------

    async def patch_rs(self, rs: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        patch = copy.deepcopy(patch)
        patch.setdefault("metadata", {})["resourceVersion"] = rs["metadata"]["resourceVersion"]
        try:
            updated = await self.ctx.client.patch(API_VERSION, "replicasets", rs["metadata"]["name"], patch,
                                                  namespace=self.namespace)
        except (errors.Conflict, errors.NotFound):
            raise _Stale() from None
        self.rss = [updated if r["metadata"]["uid"] == updated["metadata"]["uid"] else r for r in self.rss]
        return updated

    async def scale(self, rs: dict[str, Any], size: int) -> tuple[bool, dict[str, Any]]:
        """Set an RS's replicas (and the desired/max annotations); records ScalingReplicaSet."""
        d = self.d
        annotations = rs["metadata"].get("annotations") or {}
        desired, max_total = str(rollout.replicas(d)), str(rollout.replicas(d) + rollout.max_surge(d))
        old_size = rollout.replicas(rs)
        if old_size == size and annotations.get(rollout.DESIRED) == desired \
                and annotations.get(rollout.MAX_REPLICAS) == max_total:
            return False, rs
        updated = await self.patch_rs(rs, {"metadata": {"annotations": {rollout.DESIRED: desired,
                                                                          rollout.MAX_REPLICAS: max_total}},
                                           "spec": {"replicas": size}})
        if old_size != size:
            direction = "up" if size > old_size else "down"
            await self.ctx.event(d, reason="ScalingReplicaSet",
                                 message=f"Scaled {direction} replica set {rs['metadata']['name']} from {old_size} to {size}")
        return old_size != size, updated

    async def is_scaling_event(self) -> bool:
        new, olds = await self.get_new(create=False)
        want = str(rollout.replicas(self.d))
        for rs in [r for r in [new, *olds] if r is not None and rollout.replicas(r) > 0]:
            desired = (rs["metadata"].get("annotations") or {}).get(rollout.DESIRED)
            if desired is not None and desired != want:
                return True
        return False

    # --- strategies -------------------------------------------------------------------------------

    async def rolling(self) -> controller_mod.Result | None:
        d = self.d
        new, olds = await self.get_new(create=True)
        assert new is not None
        want = rollout.replicas(d)
        if rollout.replicas(new) != want:
            size = want if rollout.replicas(new) > want else rollout.new_rs_replicas(d, self.rss, new)
            scaled, new = await self.scale(new, size)
            if scaled:
                return await self.sync_rollout_status(new)
        olds = [rs for rs in self.rss if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        if await self.reconcile_olds(new, olds):
            return await self.sync_rollout_status(new)
        if rollout.complete(d, rollout.calculate_status(d, self.rss, new, self.now, selector=str(self.selector))):
            await self.cleanup(new)
        return await self.sync_rollout_status(new)

    async def reconcile_olds(self, new: dict[str, Any], olds: list[dict[str, Any]]) -> bool:
        """Scale old RSs down without going under replicas - maxUnavailable (upstream reconcileOldReplicaSets)."""
        d = self.d
        if sum(rollout.replicas(rs) for rs in olds) == 0:
            return False
        all_pods = sum(rollout.replicas(rs) for rs in self.rss)
        min_available = rollout.replicas(d) - rollout.max_unavailable(d)
        new_unavailable = rollout.replicas(new) - rollout.safe_available(new)
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        scaled_total = 0
        # first, old RSs' unhealthy replicas: they hold no availability, only block the rollout
        for rs in rollout.by_age(olds):
            unhealthy = rollout.replicas(rs) - rollout.safe_available(rs)
            if rollout.replicas(rs) == 0 or unhealthy <= 0 or scaled_total >= max_scaled_down:
                continue
            count = min(max_scaled_down - scaled_total, unhealthy)
            await self.scale(rs, rollout.replicas(rs) - count)
            scaled_total += count
        # then healthy ones, as far as availability allows
        available = sum(rollout.safe_available(rs) for rs in self.rss)
        budget = available - min_available
        olds_now = [rs for rs in self.rss if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        scaled_down = 0
        for rs in rollout.by_age(olds_now):
            if scaled_down >= budget:
                break
            if rollout.replicas(rs) == 0:
                continue
            count = min(rollout.replicas(rs), budget - scaled_down)
            await self.scale(rs, rollout.replicas(rs) - count)
            scaled_down += count
        return scaled_total + scaled_down > 0

    async def recreate(self) -> controller_mod.Result | None:
        new, olds = await self.get_new(create=False)
        scaled = False
        for rs in [r for r in olds if rollout.replicas(r) > 0]:
            did, _ = await self.scale(rs, 0)
            scaled = scaled or did
        if scaled:
            return await self.sync_rollout_status(new)
        olds = [rs for rs in self.rss if new is None or rs["metadata"]["uid"] != new["metadata"]["uid"]]
        if any(_pods_remain(rs) for rs in olds):
            return await self.sync_rollout_status(new)
        if new is None:
            new, _ = await self.get_new(create=True)
        assert new is not None
        _, new = await self.scale(new, rollout.replicas(self.d))
        if rollout.complete(self.d, rollout.calculate_status(self.d, self.rss, new, self.now,
                                                             selector=str(self.selector))):
            await self.cleanup(new)
        return await self.sync_rollout_status(new)

    async def sync(self, *, paused: bool) -> controller_mod.Result | None:
        """Scaling (and paused) deployments: resize proportionally, no rollout (upstream sync)."""
        new, olds = await self.get_new(create=False)
        await self.proportional_scale(new, olds)
        if paused:
            await self.cleanup(new)
        new, _ = self.split()
        return await self.write_status(new, progress=False)

    async def proportional_scale(self, new: dict[str, Any] | None, olds: list[dict[str, Any]]) -> None:
        d = self.d
        want = rollout.replicas(d)
        everything = [rs for rs in [new, *olds] if rs is not None]
        active = [rs for rs in everything if rollout.replicas(rs) > 0]
        if not everything:
            return
        if len(active) <= 1:
            target = active[0] if active else (new or rollout.by_age(olds, newest_first=True)[0])
            await self.scale(target, want)
            return
        if new is not None and rollout.replicas(new) == want and rollout.safe_available(new) == want:
            for rs in olds:
                if rollout.replicas(rs) > 0:
                    await self.scale(rs, 0)
            return
        if not rollout.is_rolling(d):
            return
        allowed = want + rollout.max_surge(d) if want > 0 else 0
        current = sum(rollout.replicas(rs) for rs in active)
        to_add = allowed - current
        if to_add == 0:
            for rs in active:
                await self.scale(rs, rollout.replicas(rs))  # refresh the desired-replicas annotations
            return
        order = sorted(active, key=lambda rs: (rollout.replicas(rs), rollout.created(rs)), reverse=to_add > 0)
        sizes = {rs["metadata"]["uid"]: rollout.replicas(rs) for rs in active}
        added = 0
        for rs in order:
            share = int(to_add * rollout.replicas(rs) / current) if current else 0
            share = max(share, -sizes[rs["metadata"]["uid"]])
            sizes[rs["metadata"]["uid"]] += share
            added += share
        leftover = to_add - added
        first = order[0]["metadata"]["uid"]
        sizes[first] = max(0, sizes[first] + leftover)
        for rs in order:
            await self.scale(rs, sizes[rs["metadata"]["uid"]])

    async def cleanup(self, new: dict[str, Any] | None) -> None:
        """Delete the oldest zero-size RSs beyond revisionHistoryLimit."""
        limit = (self.d.get("spec") or {}).get("revisionHistoryLimit", 10)
        if limit is None:
            return
        olds = [rs for rs in self.rss if (new is None or rs["metadata"]["uid"] != new["metadata"]["uid"])
                and not rs["metadata"].get("deletionTimestamp")]
        extra = len(olds) - int(limit)
        for rs in sorted(olds, key=rollout.revision):
            if extra <= 0:
                break
            if rollout.replicas(rs) != 0 or _pods_remain(rs):
                continue
            try:
                await self.ctx.client.delete(API_VERSION, "replicasets", rs["metadata"]["name"],
                                             namespace=self.namespace, preconditions={"uid": rs["metadata"]["uid"]})
            except (errors.NotFound, errors.Conflict):
                pass
            extra -= 1

    # --- status -----------------------------------------------------------------------------------

    def check_paused_conditions(self) -> None:
        if rollout.deadline(self.d) is None:
            return
        cond = rollout.condition(self.status, "Progressing")
        if cond is not None and cond.get("reason") == rollout.TIMED_OUT:
            return
        paused_now = bool((self.d.get("spec") or {}).get("paused"))
        was_paused = cond is not None and cond.get("reason") == rollout.PAUSED
        if paused_now and not was_paused:
            rollout.set_condition(self.status, rollout.new_condition(
                "Progressing", "Unknown", rollout.PAUSED, "Deployment is paused", self.now))
        elif not paused_now and was_paused:
            rollout.set_condition(self.status, rollout.new_condition(
                "Progressing", "Unknown", rollout.RESUMED, "Deployment is resumed", self.now))

    async def sync_status_only(self) -> controller_mod.Result | None:
        new, _ = self.split()
        return await self.write_status(new, progress=False)

    async def sync_rollout_status(self, new: dict[str, Any] | None) -> controller_mod.Result | None:
        return await self.write_status(new, progress=True)

    async def write_status(self, new: dict[str, Any] | None, *, progress: bool) -> controller_mod.Result | None:
        d = self.d
        status = rollout.calculate_status({**d, "status": self.status}, self.rss, new, self.now,
                                          selector=str(self.selector))
        paused = bool((d.get("spec") or {}).get("paused"))
        name = new["metadata"]["name"] if new else ""
        if progress and rollout.deadline(d) is not None and not paused:
            current = rollout.condition(status, "Progressing")
            if rollout.complete(d, status):
                rollout.set_condition(status, rollout.new_condition(
                    "Progressing", "True", rollout.NEW_RS_AVAILABLE,
                    f'ReplicaSet "{name}" has successfully progressed.', self.now))
            elif rollout.progressing(d, status):
                cond = rollout.new_condition("Progressing", "True", rollout.RS_UPDATED,
                                             f'ReplicaSet "{name}" is progressing.', self.now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime") or cond["lastTransitionTime"]
                    rollout.remove_condition(status, "Progressing")
                rollout.set_condition(status, cond)
            elif rollout.timed_out(d, status, self.now):
                rollout.set_condition(status, rollout.new_condition(
                    "Progressing", "False", rollout.TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.',
                    self.now))
        old = d.get("status") or {}
        if status != old:
            try:
                await self.ctx.client.patch(API_VERSION, "deployments", d["metadata"]["name"], {"status": status},
                                            namespace=self.namespace, subresource="status")
            except errors.NotFound:
                return None
        if progress and not paused and not rollout.complete(d, status):
            remaining = rollout.seconds_to_deadline(d, status, self.now)
            if remaining is not None:
                return controller_mod.Result(requeue_after=max(remaining, 0.0) + 1.0)
        return None


def _pods_remain(rs: dict[str, Any]) -> bool:
    """The RS may still have pods: its status says so, or it has not caught up with its spec yet."""
    status = rs.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    return rollout.status_of(rs, "replicas") > 0 or observed < int(rs["metadata"].get("generation") or 0)
