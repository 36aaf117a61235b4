"""StatefulSet controller: pods with stable names and claims, created, replaced and updated in order.

One sync follows upstream's (pkg/controller/statefulset): resolve the current and update
ControllerRevisions, read each ordinal's pod from the shared informer, let statefulsetplan
decide what to create or delete next, make claims before the pods that mount them, keep the
claims' ownerReferences in line with persistentVolumeClaimRetentionPolicy (the garbage collector
does the deleting), trim revision history, and write status only when it changed. Pods have
fixed names, so a decision made on a stale cache fails with AlreadyExists / a uid precondition
instead of making a second pod: no expectations are needed, unlike the ReplicaSet controller.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from reconcile.controllers import context, ownership, podutil, rollout
from reconcile.controllers import statefulsetplan as plan
from reconcile.core import errors, meta, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "apps/v1"
KIND = "StatefulSet"
Key = controller_mod.Key
RETRY_SOON = controller_mod.Result(requeue_after=0.05)
CLAIM_RECHECK = 1.0  # seconds: look again at a claim being deleted that holds a pod back


def _owner_key(obj: dict[str, Any]) -> Key | None:
    ref = meta.controller_owner(obj)
    if ref is None or ref.get("kind") != KIND or not str(ref.get("apiVersion", "")).startswith("apps/"):
        return None
    return ((obj.get("metadata") or {}).get("namespace") or "", ref.get("name") or "")


def pod_view(pod: dict[str, Any], ordinal: int, min_ready: int, now: Any) -> plan.PodView:
    md = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    terminating = bool(md.get("deletionTimestamp"))
    ready = phase == "Running" and podutil.is_ready(pod) and not terminating
    remaining = podutil.available_in(pod, min_ready, now) if ready else None
    return plan.PodView(ordinal, (md.get("labels") or {}).get(plan.REVISION_LABEL, ""), terminating=terminating,
                        finished=phase in ("Failed", "Succeeded"), ready=ready,
                        available=remaining is not None and remaining <= 0)


def _pod_ref(pod: dict[str, Any]) -> dict[str, Any]:
    md = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Pod", "name": md["name"], "uid": md["uid"], "controller": True,
            "blockOwnerDeletion": True}


class StatefulSetController:
    """Owns the `statefulset` engine controller and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.sets = ctx.informers.get(API_VERSION, "statefulsets")
        self.pods = ctx.informers.get("v1", "pods")
        self.revisions = ctx.informers.get(API_VERSION, "controllerrevisions")
        self.claims = ctx.informers.get("v1", "persistentvolumeclaims")
        self.controller = ctx.controller("statefulset", self.reconcile)
        self.controller.watch(self.sets)
        self.controller.watch(self.pods, to_keys=self._owned_keys)
        self.controller.watch_owned(self.revisions, owner_kind=KIND, owner_api_version=API_VERSION)

    def _owned_keys(self, obj: dict[str, Any]) -> list[Key]:
        """The owning set; for an orphan pod every set whose selector matches it (adoption)."""
        key = _owner_key(obj)
        if key is not None:
            return [key]
        md = obj.get("metadata") or {}
        if meta.controller_owner(obj) is not None:
            return []
        namespace = md.get("namespace") or ""
        keys = []
        for sts in self.sets.store.by_index("namespace", namespace):
            try:
                if selectors.LabelSelector.from_match((sts.get("spec") or {}).get("selector")).matches(md.get("labels")):
                    keys.append((namespace, sts["metadata"]["name"]))
            except errors.ApiError:
                continue
        return keys

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        sts = self.sets.store.get(namespace, name)
        if sts is None:
            return None
        try:
            return await _Sync(self, copy.deepcopy(sts)).run()
        except errors.Conflict:
            return RETRY_SOON


class _Sync:
    """One reconcile of one StatefulSet."""

    def __init__(self, owner: StatefulSetController, sts: dict[str, Any]) -> None:
        self.ctx = owner.ctx
        self.owner = owner
        self.sts = sts
        self.md = sts["metadata"]
        self.name = self.md["name"]
        self.namespace = self.md["namespace"]
        self.spec: dict[str, Any] = sts.get("spec") or {}
        self.now = self.ctx.clock.wall()

    # --- entry ------------------------------------------------------------------------------------

    async def run(self) -> controller_mod.Result | None:
        try:
            selector = selectors.LabelSelector.from_match(self.spec.get("selector"))
        except errors.ApiError as exc:
            await self.ctx.event(self.sts, reason="SelectorParsingFailed", message=str(exc), type="Warning")
            return None
        if selector.empty:
            return None  # validation refuses it; one stored straight into etcd selects nothing here
        candidates = [p for p in self.owner.pods.store.by_index("namespace", self.namespace)
                      if plan.ordinal_of(self.name, (p.get("metadata") or {}).get("name") or "") is not None]
        pods, raced = await ownership.claim(self.ctx.client, "v1", "pods", self.sts, selector, candidates)
        revisions = [r for r in self.owner.revisions.store.by_index("namespace", self.namespace)
                     if ownership.owned_by(r, self.md["uid"])]
        if await self.revisions_lag(revisions):
            return RETRY_SOON
        current, update, collisions = await self.resolve_revisions(revisions)
        if current is None or update is None:
            return RETRY_SOON
        by_ordinal = {plan.ordinal_of(self.name, p["metadata"]["name"]): p for p in pods}
        min_ready = int(self.spec.get("minReadySeconds") or 0)
        views = {o: pod_view(p, o, min_ready, self.now) for o, p in by_ordinal.items() if o is not None}
        settings = self.settings(current["metadata"]["name"], update["metadata"]["name"])
        error: BaseException | None = None
        blocked = False
        if not self.md.get("deletionTimestamp"):
            templates = {current["metadata"]["name"]: plan.template_of(current.get("data") or {}),
                         update["metadata"]["name"]: plan.template_of(update.get("data") or {})}
            try:
                blocked = await self.manage(settings, views, by_ordinal, templates)
            except errors.ApiError as exc:
                error = exc
        await self.trim_history(revisions, current, update, by_ordinal.values())
        await self.write_status(views, settings, collisions, selector)
        if error is not None:
            raise error
        if raced:
            return RETRY_SOON
        if blocked:  # a claim being deleted holds a pod back; claim events do not map to sets
            return controller_mod.Result(requeue_after=CLAIM_RECHECK)
        waits = [podutil.available_in(p, min_ready, self.now) for p in by_ordinal.values()]
        pending = [w for w in waits if w is not None and w > 0]
        return controller_mod.Result(requeue_after=min(pending) + 0.05) if pending else None

    def settings(self, current: str, update: str) -> plan.Settings:
        strategy = self.spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") != "OnDelete"
        rolling_update = strategy.get("rollingUpdate") or {}
        replicas = int(self.spec.get("replicas", 1) or 0)
        return plan.Settings(
            replicas=replicas,
            start=int((self.spec.get("ordinals") or {}).get("start") or 0),
            ordered=self.spec.get("podManagementPolicy", "OrderedReady") != "Parallel",
            rolling=rolling,
            partition=int(rolling_update.get("partition") or 0),
            max_unavailable=plan.resolve_max_unavailable(rolling_update.get("maxUnavailable"), replicas),
            current_revision=current,
            update_revision=update,
            burst=self.ctx.burst_replicas,
        )

    # --- revisions ----------------------------------------------------------------------------------

    async def revisions_lag(self, revisions: list[dict[str, Any]]) -> bool:
        """True when the status names an update revision the revision informer has not shown yet
        (the status event outran it): numbering from that cache would reuse a revision number."""
        name = (self.sts.get("status") or {}).get("updateRevision")
        if not name or any(r["metadata"]["name"] == name for r in revisions):
            return False
        try:
            await self.ctx.client.get(API_VERSION, "controllerrevisions", name, namespace=self.namespace)
        except errors.NotFound:
            return False  # deleted meanwhile: nothing to wait for
        return True

    async def resolve_revisions(self, revisions: list[dict[str, Any]]
                                ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
        """(current, update, collisionCount), creating or promoting the update revision (upstream
        getStatefulSetRevisions): an equal newest revision is reused, an equal older one gets the
        next revision number (a rollback), otherwise a new one is made, named by its hash."""
        status = self.sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        template = self.spec.get("template") or {}
        data = plan.revision_data(template)
        ordered = sorted(revisions, key=lambda r: (int(r.get("revision") or 0), r["metadata"]["name"]))
        top = int(ordered[-1].get("revision") or 0) if ordered else 0
        equal = [r for r in ordered if rollout.same_template(plan.template_of(r.get("data") or {}), template)]
        update: dict[str, Any] | None
        if equal and equal[-1] is ordered[-1]:
            update = equal[-1]
        elif equal:
            update = await self.ctx.client.patch(API_VERSION, "controllerrevisions", equal[-1]["metadata"]["name"],
                                                 {"revision": top + 1}, namespace=self.namespace)
        else:
            update, collisions = await self.create_revision(data, top + 1, collisions)
        if update is None:
            return None, None, collisions
        current = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")), None)
        return current or update, update, collisions

    async def create_revision(self, data: dict[str, Any], number: int,
                              collisions: int) -> tuple[dict[str, Any] | None, int]:
        template = self.spec.get("template") or {}
        for _ in range(5):
            hash_ = plan.revision_hash(data, collisions)
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels[plan.HASH_LABEL] = hash_
            metadata: dict[str, Any] = {"name": plan.revision_name(self.name, hash_), "namespace": self.namespace,
                                        "labels": labels, "ownerReferences": [ownership.controller_ref(self.sts)]}
            if self.md.get("annotations"):
                metadata["annotations"] = dict(self.md["annotations"])
            body = {"apiVersion": API_VERSION, "kind": "ControllerRevision", "metadata": metadata,
                    "data": data, "revision": number}
            try:
                return await self.ctx.client.create(API_VERSION, "controllerrevisions", body,
                                                    namespace=self.namespace), collisions
            except errors.AlreadyExists:
                existing = await self.ctx.client.get(API_VERSION, "controllerrevisions", metadata["name"],
                                                     namespace=self.namespace)
                if (ownership.owned_by(existing, self.md["uid"])
                        and rollout.same_template(plan.template_of(existing.get("data") or {}), template)):
                    return existing, collisions
                collisions += 1  # a hash collision with someone else's revision: probe the next name
        return None, collisions

    async def trim_history(self, revisions: list[dict[str, Any]], current: dict[str, Any], update: dict[str, Any],
                           pods: Any) -> None:
        keep = {current["metadata"]["name"], update["metadata"]["name"]}
        keep |= {((p.get("metadata") or {}).get("labels") or {}).get(plan.REVISION_LABEL) for p in pods}
        limit = int(self.spec.get("revisionHistoryLimit", 10) if self.spec.get("revisionHistoryLimit") is not None
                    else 10)
        listed = [(r["metadata"]["name"], int(r.get("revision") or 0)) for r in revisions]
        for name in plan.history_to_trim(listed, {k for k in keep if k}, limit):
            try:
                await self.ctx.client.delete(API_VERSION, "controllerrevisions", name, namespace=self.namespace)
            except errors.NotFound:
                pass

    # --- pods and claims ----------------------------------------------------------------------------

    async def manage(self, settings: plan.Settings, views: dict[int, plan.PodView],
                     pods: dict[int | None, dict[str, Any]], templates: dict[str, dict[str, Any]]) -> bool:
        """Carry out the plan; True when a pod had to wait for a claim being deleted."""
        want = plan.wanted(settings)
        blocked = False
        for ordinal, pod in pods.items():
            if ordinal is not None and ordinal in want and (pod.get("status") or {}).get("phase") == "Pending":
                await self.ensure_claims(ordinal)
        await self.update_claim_owners(settings, pods)
        for action in plan.plan(settings, views):
            if action.verb == "create":
                if not await self.ensure_claims(action.ordinal):
                    blocked = True
                    continue
                await self.create_pod(action.ordinal, action.revision, templates[action.revision])
            else:
                await self.delete_pod(pods[action.ordinal], action.reason)
        return blocked

    async def ensure_claims(self, ordinal: int) -> bool:
        """Create the ordinal's missing claims; False when one is being deleted (the pod must wait)."""
        policy = self.spec.get("persistentVolumeClaimRetentionPolicy")
        for template in plan.claim_templates(self.sts):
            name = plan.claim_name(template["metadata"]["name"], self.name, ordinal)
            existing = self.owner.claims.store.get(self.namespace, name)
            if existing is not None:
                if (existing.get("metadata") or {}).get("deletionTimestamp"):
                    await self.ctx.event(self.sts, reason="FailedCreate", type="Warning",
                                         message=f"pvc {name} is being deleted")
                    return False
                continue
            claim = plan.new_claim(self.sts, template, ordinal)
            set_owned, _ = plan.claim_owners(policy, scaled_down=False)
            if set_owned:
                claim["metadata"]["ownerReferences"] = [ownership.controller_ref(self.sts)]
            try:
                await self.ctx.client.create("v1", "persistentvolumeclaims", claim, namespace=self.namespace)
            except errors.AlreadyExists:
                continue
            except errors.ApiError as exc:
                pod = plan.pod_name(self.name, ordinal)
                await self.ctx.event(self.sts, reason="FailedCreate", type="Warning",
                                     message=f"create Claim {name} for Pod {pod} in StatefulSet {self.name} "
                                             f"failed error: {exc}")
                raise
            await self.ctx.event(self.sts, reason="SuccessfulCreate",
                                 message=f"create Claim {name} Pod {plan.pod_name(self.name, ordinal)} "
                                         f"in StatefulSet {self.name} success")
        return True

    async def create_pod(self, ordinal: int, revision: str, template: dict[str, Any]) -> None:
        pod = plan.new_pod(self.sts, template, ordinal, revision, ownership.controller_ref(self.sts))
        name = pod["metadata"]["name"]
        try:
            await self.ctx.client.create("v1", "pods", pod, namespace=self.namespace)
        except errors.AlreadyExists:
            return  # the cache had not seen it yet
        except errors.ApiError as exc:
            await self.ctx.event(self.sts, reason="FailedCreate", type="Warning",
                                 message=f"create Pod {name} in StatefulSet {self.name} failed error: {exc}")
            raise
        await self.ctx.event(self.sts, reason="SuccessfulCreate",
                             message=f"create Pod {name} in StatefulSet {self.name} successful")

    async def delete_pod(self, pod: dict[str, Any], reason: str) -> None:
        md = pod["metadata"]
        try:
            await self.ctx.client.delete("v1", "pods", md["name"], namespace=self.namespace,
                                         preconditions={"uid": md["uid"]})
        except (errors.NotFound, errors.Conflict):
            return  # gone already, or another pod holds the name now
        except errors.ApiError as exc:
            await self.ctx.event(self.sts, reason="FailedDelete", type="Warning",
                                 message=f"delete Pod {md['name']} in StatefulSet {self.name} failed error: {exc}")
            raise
        log.debug("statefulset %s/%s: deleted %s (%s)", self.namespace, self.name, md["name"], reason)
        await self.ctx.event(self.sts, reason="SuccessfulDelete",
                             message=f"delete Pod {md['name']} in StatefulSet {self.name} successful")

    async def update_claim_owners(self, settings: plan.Settings, pods: dict[int | None, dict[str, Any]]) -> None:
        """Claims of live ordinals belong to the set under whenDeleted=Delete; a condemned pod's
        claims to that pod under whenScaled=Delete (so they go after it). Claims another
        controller owns, or of pods not this set's, are left alone (upstream)."""
        policy = self.spec.get("persistentVolumeClaimRetentionPolicy")
        want = plan.wanted(settings)
        set_uid = self.md["uid"]
        for ordinal, pod in pods.items():
            if ordinal is None:
                continue
            set_owned, pod_owned = plan.claim_owners(policy, scaled_down=ordinal not in want)
            for template in plan.claim_templates(self.sts):
                name = plan.claim_name(template["metadata"]["name"], self.name, ordinal)
                claim = self.owner.claims.store.get(self.namespace, name)
                if claim is None or (claim.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                cmd = claim["metadata"]
                refs = list(cmd.get("ownerReferences") or [])
                controller = meta.controller_owner(claim)
                ours = {set_uid} | {r.get("uid") for r in refs if r.get("kind") == "Pod"
                                    and r.get("name") == pod["metadata"]["name"]}
                if controller is not None and controller.get("uid") not in ours:
                    continue
                wanted_refs = ([ownership.controller_ref(self.sts)] if set_owned else []) + (
                    [_pod_ref(pod)] if pod_owned else [])
                unwanted = {u for u in ours if u not in {r["uid"] for r in wanted_refs}} - {None}
                new_refs = plan.owner_refs(refs, wanted_refs, unwanted)
                if new_refs == refs:
                    continue
                try:
                    await self.ctx.client.patch("v1", "persistentvolumeclaims", name,
                                                {"metadata": {"ownerReferences": new_refs or None,
                                                              "resourceVersion": cmd["resourceVersion"]}},
                                                namespace=self.namespace)
                except errors.NotFound:
                    continue

    # --- status -------------------------------------------------------------------------------------

    async def write_status(self, views: dict[int, plan.PodView], settings: plan.Settings, collisions: int,
                           selector: selectors.LabelSelector) -> None:
        old = self.sts.get("status") or {}
        counts = plan.compute_status(list(views.values()), current_revision=settings.current_revision,
                                     update_revision=settings.update_revision)
        status: dict[str, Any] = {
            **counts,
            "observedGeneration": int(self.md.get("generation") or 0),
            "currentRevision": settings.current_revision,
            "updateRevision": settings.update_revision,
            "collisionCount": collisions,
            "selector": str(selector),
        }
        if settings.rolling and plan.rollout_complete(counts, settings.replicas):
            status["currentRevision"] = settings.update_revision
            status["currentReplicas"] = counts["updatedReplicas"]
        if all(old.get(k) == v for k, v in status.items()):
            return
        # Under the resourceVersion this sync read: a status computed from a stale cache (one that
        # missed our last write, say collisionCount) conflicts and the sync runs again, instead of
        # writing an older count back over a newer one.
        body = {"metadata": {"resourceVersion": self.md["resourceVersion"]}, "status": status}
        try:
            await self.ctx.client.patch(API_VERSION, "statefulsets", self.name, body,
                                        namespace=self.namespace, subresource="status")
        except errors.NotFound:
            pass
