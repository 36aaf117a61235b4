"""ReplicaSet controller: keep `spec.replicas` pods from the template, and report them in status.

Reads pods from the shared informer; its own creates and deletes are "expected" until the
informer shows them, so a burst of events during a scale-up never creates extra pods.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from reconcile.controllers import batching, context, expectations, ownership, podutil
from reconcile.core import errors, meta, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "apps/v1"
KIND = "ReplicaSet"
BURST_REPLICAS = batching.BURST_REPLICAS  # at most this many creates or deletes per sync

Key = controller_mod.Key


def pod_from_template(rs: dict[str, Any]) -> dict[str, Any]:
    """A new pod for `rs`: template labels/annotations/spec, generateName `<rs>-`, controller ref."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": f"{rs['metadata']['name']}-",
        "namespace": rs["metadata"]["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [ownership.controller_ref(rs)],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        metadata["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}


def _namespace_terminating(error: BaseException) -> bool:
    causes = ((getattr(error, "details", None) or {}).get("causes")) or []
    return isinstance(error, errors.Forbidden) and any(c.get("reason") == "NamespaceTerminating" for c in causes)


def rs_key_of_pod(pod: dict[str, Any]) -> Key | None:
    ref = meta.controller_owner(pod)
    if ref is None or ref.get("kind") != KIND or not str(ref.get("apiVersion", "")).startswith("apps/"):
        return None
    return ((pod.get("metadata") or {}).get("namespace") or "", ref.get("name") or "")


class ReplicaSetController:
    """Owns the `replicaset` engine controller and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.replicasets = ctx.informers.get(API_VERSION, "replicasets")
        self.pods = ctx.informers.get("v1", "pods")
        self.expectations = expectations.Expectations(clock=ctx.clock)
        self.controller = ctx.controller("replicaset", self.reconcile)
        self.controller.watch(self.replicasets)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # --- events -> keys -----------------------------------------------------------------------

    def _matching_sets(self, pod: dict[str, Any]) -> list[Key]:
        """ReplicaSets that could adopt an orphan pod."""
        md = pod.get("metadata") or {}
        namespace = md.get("namespace") or ""
        keys = []
        for rs in self.replicasets.store.by_index("namespace", namespace):
            try:
                if selectors.LabelSelector.from_match((rs.get("spec") or {}).get("selector")).matches(md.get("labels")):
                    keys.append((namespace, rs["metadata"]["name"]))
            except errors.ApiError:
                continue
        return keys

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._pod_deleted(pod)  # a pod first seen while terminating is as good as gone
            return
        key = rs_key_of_pod(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.controller.enqueue(key)
            return
        for other in self._matching_sets(pod):
            self.controller.enqueue(other)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_key, new_key = rs_key_of_pod(old), rs_key_of_pod(new)
        if (new.get("metadata") or {}).get("deletionTimestamp") and not (old.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            self._pod_deleted(new)
        for key in {old_key, new_key} - {None}:
            self.controller.enqueue(key)  # type: ignore[arg-type]
        if new_key is None:
            labels_changed = (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
            if labels_changed or old_key is not None:
                for other in self._matching_sets(new):
                    self.controller.enqueue(other)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = rs_key_of_pod(pod)
        if key is None:
            return
        uid = (pod.get("metadata") or {}).get("uid")
        if uid:
            self.expectations.deletion_observed(key, uid)
        self.controller.enqueue(key)

    # --- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        rs = self.replicasets.store.get(namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return None
        spec = rs.get("spec") or {}
        try:
            selector = selectors.LabelSelector.from_match(spec.get("selector"))
        except errors.ApiError as exc:
            await self.ctx.event(rs, reason="SelectorParsingFailed", message=str(exc), type="Warning")
            return None
        needs_sync = self.expectations.satisfied(key)
        active = [p for p in self.pods.store.by_index("namespace", namespace) if podutil.is_active(p)]
        pods, raced = await ownership.claim(self.ctx.client, "v1", "pods", rs, selector, active)
        manage_error: BaseException | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            manage_error = await self._manage(key, rs, pods)
        status, wait = self._status(rs, pods, selector, manage_error)
        await self._write_status(rs, status)
        if manage_error is not None:
            raise manage_error
        if raced:
            return controller_mod.Result(requeue_after=0.05)
        if wait is not None:
            return controller_mod.Result(requeue_after=wait + 0.05)
        return None

    async def _manage(self, key: Key, rs: dict[str, Any], pods: list[dict[str, Any]]) -> BaseException | None:
        """Create or delete pods towards spec.replicas; returns the first error, if any."""
        wanted = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(pods) - wanted
        name = rs["metadata"]["name"]
        if diff < 0:
            count = batching.per_sync(-diff, burst=self.ctx.burst_replicas)
            self.expectations.expect_creations(key, count)
            created_names: list[str] = []

            async def create_one() -> None:
                created = await self.ctx.client.create("v1", "pods", pod_from_template(rs),
                                                       namespace=rs["metadata"]["namespace"])
                created_names.append(created["metadata"]["name"])

            done, error = await batching.slow_start(count, create_one)
            if error is not None and _namespace_terminating(error):
                error = None  # the namespace controller is emptying it; nothing to retry (as upstream)
            if done < count:
                self.expectations.creation_observed(key, count=count - done)  # those will never show up
            if created_names:
                message = (f"Created pod: {created_names[0]}" if len(created_names) == 1
                           else f"Created {len(created_names)} pods")
                await self.ctx.event(rs, reason="SuccessfulCreate", message=message)
            if error is not None:
                await self.ctx.event(rs, reason="FailedCreate", message=f"Error creating: {error}", type="Warning")
            return error
        if diff > 0:
            victims = sorted(pods, key=podutil.deletion_rank)[: batching.per_sync(diff, burst=self.ctx.burst_replicas)]
            self.expectations.expect_deletions(key, [p["metadata"]["uid"] for p in victims])
            deleted: list[str] = []
            first_error: BaseException | None = None
            for batch_start in range(0, len(victims), batching.MAX_IN_FLIGHT):
                batch = victims[batch_start: batch_start + batching.MAX_IN_FLIGHT]
                results = await asyncio.gather(*(self._delete_pod(key, p) for p in batch), return_exceptions=True)
                for pod, result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        first_error = first_error or result
                    else:
                        deleted.append(pod["metadata"]["name"])
            if deleted:
                message = f"Deleted pod: {deleted[0]}" if len(deleted) == 1 else f"Deleted {len(deleted)} pods"
                await self.ctx.event(rs, reason="SuccessfulDelete", message=message)
            return first_error
        log.debug("replicaset %s has its %d pods", name, wanted)
        return None

    async def _delete_pod(self, key: Key, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        try:
            await self.ctx.client.delete("v1", "pods", md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"]})
        except errors.NotFound:
            self.expectations.deletion_observed(key, md["uid"])
        except errors.Conflict:
            self.expectations.deletion_observed(key, md["uid"])  # another pod by that name now
        except Exception:
            self.expectations.deletion_observed(key, md["uid"])
            raise

    def _status(self, rs: dict[str, Any], pods: list[dict[str, Any]], selector: selectors.LabelSelector,
                error: BaseException | None) -> tuple[dict[str, Any], float | None]:
        """The status to write, and seconds until some ready pod becomes available (minReadySeconds)."""
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = self.ctx.clock.wall()
        ready = available = fully = 0
        wait: float | None = None
        for pod in pods:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            remaining = podutil.available_in(pod, min_ready, now)
            if remaining is None:
                continue
            ready += 1
            if remaining <= 0:
                available += 1
            else:
                wait = remaining if wait is None else min(wait, remaining)
        old_status = rs.get("status") or {}
        conditions = [c for c in old_status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if error is not None and isinstance(error, errors.ApiError):
            previous = next((c for c in old_status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
            conditions.append({
                "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": str(error),
                "lastTransitionTime": (previous or {}).get("lastTransitionTime") or meta.format_time(now),
            })
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation") or 0),
            "selector": str(selector),
        }
        if conditions:
            status["conditions"] = conditions
        return status, wait

    async def _write_status(self, rs: dict[str, Any], status: dict[str, Any]) -> None:
        old = rs.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()) and ("conditions" in status or not old.get("conditions")):
            return
        patch = {"status": {**status, "conditions": status.get("conditions")}}
        try:
            await self.ctx.client.patch(API_VERSION, "replicasets", rs["metadata"]["name"], patch,
                                        namespace=rs["metadata"]["namespace"], subresource="status")
        except errors.NotFound:
            pass
