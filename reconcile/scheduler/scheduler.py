"""The scheduler loop: watch pods and nodes, decide one pod at a time, bind concurrently.

A decision is synchronous over the in-memory snapshot (no await between reading the cache
and assuming the result), so decisions never race each other. The chosen pod is *assumed*
on its node at once, before its binding is written or seen back through the watch, so a
burst of pods never overcommits a node. Bindings (and status writes) then run concurrently,
at most `max_in_flight` at a time. The binding subresource is a compare-and-swap on the
server: a pod is never bound twice, and a 409 means someone else bound it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from reconcile.client import aio, decoding
from reconcile.client import informer as informer_mod
from reconcile.core import errors, meta, priorities
from reconcile.engine import badobjects, events, supervision, workqueue
from reconcile.engine import clock as clock_mod
from reconcile.engine import metrics as metrics_mod
from reconcile.scheduler import eventqueue, filters, framework, nodeinfo, podinfo, volumebinding
from reconcile.scheduler import queue as queue_mod

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
MAX_IN_FLIGHT = 8  # bindings and status writes at once (more only adds idle connections to scan)
TERMINAL_PHASES = ("Succeeded", "Failed")


class VolumeTaken(Exception):
    """A static volume the plan chose was bound to another claim meanwhile: the pod is tried again."""


def _key(obj: dict[str, Any]) -> podinfo.Key:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")


def _assigned(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _scheduling_inputs(pod: dict[str, Any]) -> tuple[Any, Any]:
    """What an owner's update must change for a pending pod to deserve another try now."""
    return (pod.get("spec"), (pod.get("metadata") or {}).get("labels"))


class Scheduler:
    """One scheduler: `start_informers()` (always), then `run()` (while leading) until `stop()`."""

    def __init__(
        self,
        client: aio.AsyncClient,
        *,
        writer: Any = None,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        clock: clock_mod.Clock | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        record_events: bool = True,
        metrics: metrics_mod.Metrics | None = None,
    ) -> None:
        self.client = client
        self.writer: Any = writer or client  # writes go through the leader fence when there is one
        self.scheduler_name = scheduler_name
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.rng = rng or random.Random()
        self.snapshot = nodeinfo.Snapshot()
        self.queue = queue_mod.SchedulingQueue(clock=self.clock, priority_of=self._priority_of)
        self.events: eventqueue.EventQueue | None = None
        recorder: events.EventRecorder | None = None
        if record_events:
            recorder = events.EventRecorder(self.writer, component=scheduler_name, clock=self.clock)
            self.events = eventqueue.EventQueue(recorder, busy=self._busy)
        # A pod or node the scheduler cannot parse is skipped (and reported, an Event on it), never
        # queued: it could not be placed, and it must not take the informer down with it.
        self.reporter = badobjects.Reporter(component=scheduler_name, metrics=metrics, recorder=recorder)
        self.pods = informer_mod.Informer(client, "v1", "pods", check=decoding.checked(podinfo.from_pod))
        self.nodes = informer_mod.Informer(client, "v1", "nodes", check=decoding.checked(nodeinfo.parse_node))
        self.namespaces = informer_mod.Informer(client, "v1", "namespaces")
        # VolumeBinding reads claims, volumes and classes; any change may help a pod waiting on them
        self.claims = informer_mod.Informer(client, "v1", "persistentvolumeclaims")
        self.volumes = informer_mod.Informer(client, "v1", "persistentvolumes")
        self.classes = informer_mod.Informer(client, "storage.k8s.io/v1", "storageclasses")
        for informer in (self.pods, self.nodes, self.namespaces, self.claims, self.volumes, self.classes):
            self.reporter.watch(informer)
        for informer in (self.claims, self.volumes, self.classes):
            informer.add_handler(on_add=self._volumes_changed, on_update=lambda _old, new: self._volumes_changed(new),
                                 on_delete=self._volumes_changed)
        # Restarts an informer whose task ended; /readyz and /healthz report through it. On real time,
        # as the informers' own reconnect backoff (the scheduler's clock drives its queue only).
        self.supervisor = supervision.InformerSupervisor(
            lambda: self._informers(), name="scheduler", metrics=metrics)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted)
        self.namespaces.add_handler(
            on_add=self._namespace_changed,
            on_update=lambda _old, new: self._namespace_changed(new),
            on_delete=self._namespace_deleted,
        )
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0  # slots taken (bindings and status writes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._syncing = False
        self._run_task: asyncio.Task[Any] | None = None
        # Counters for tests, benchmarks and logs.
        self.bound = 0
        self.attempts = 0
        self.unschedulable_attempts = 0

    def _priority_of(self, key: podinfo.Key) -> int:
        """The queue's order: the pod's spec.priority as the Priority admission set it (0 if gone)."""
        pod = self.pods.store.get(*key)
        return priorities.of_pod(pod) if pod is not None else priorities.DEFAULT_PRIORITY

    # --- lifecycle --------------------------------------------------------------------------------

    def _informers(self) -> tuple[informer_mod.Informer, ...]:
        return (self.namespaces, self.nodes, self.classes, self.volumes, self.claims, self.pods)

    async def start_informers(self) -> None:
        for informer in self._informers():
            await informer.start()
        await self.supervisor.start()

    async def stop_informers(self) -> None:
        await self.supervisor.stop()
        for informer in reversed(self._informers()):
            await informer.stop()
        await self.reporter.drain(timeout=2.0)

    async def wait_synced(self, *, timeout: float | None = None) -> None:
        for informer in self._informers():
            await informer.wait_synced(timeout=timeout)

    async def run(self) -> None:
        """Schedule pods until `stop()`; the informers must be started (see `start_informers`)."""
        self._run_task = asyncio.current_task()
        self._syncing = True
        try:
            await self.wait_synced()
        finally:
            self._syncing = False
        if self.events is not None:
            self.events.start()
        while not self._stopping:
            try:
                key = await self.queue.pop()
            except workqueue.ShutDown:
                return
            if self._stopping:  # a shut-down queue still hands out what it holds: leave it
                self.queue.done(key)
                return
            await self._slots.acquire()
            self._in_flight += 1
            handed_off = False
            try:
                handed_off = self._cycle(key)
            except Exception:
                log.exception("scheduling %s/%s failed", *key)
                self.queue.retry_later(key)
            finally:
                if not handed_off:
                    self._release()
                self.queue.done(key)

    def _release(self) -> None:
        self._in_flight -= 1
        self._slots.release()
        if self.events is not None:
            self.events.notify()

    def _busy(self) -> bool:
        """Bindings are waiting or being written: events wait (see eventqueue)."""
        return self._in_flight > 0 or len(self.queue.active) > 0

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop taking pods; let in-flight bindings and writes finish (within `timeout`)."""
        self._stopping = True
        self.queue.shut_down()
        if self._syncing and self._run_task is not None:
            self._run_task.cancel()  # still waiting for the first lists: nothing to finish
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.events is not None:
            await self.events.stop(timeout=min(timeout, 5.0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one scheduling cycle ---------------------------------------------------------------------

    def responsible_for(self, pod: dict[str, Any]) -> bool:
        name = (pod.get("spec") or {}).get("schedulerName")
        return not name or name == self.scheduler_name

    def _cycle(self, key: podinfo.Key) -> bool:
        """Decide for one pod, synchronously; True when a task took over the slot."""
        pod = self.pods.store.get(*key)
        if pod is None or _assigned(pod) or _deleting(pod) or not self.responsible_for(pod):
            self.queue.delete(key)
            return False
        if key in self.snapshot.assumed:
            return False  # our binding of it is in flight
        self.attempts += 1
        info = podinfo.from_pod(pod)
        volume_state = volumebinding.prefilter(pod, self.claims.store.get, lambda name: self.volumes.store.get(None, name),
                                               lambda name: self.classes.store.get(None, name),
                                               in_use=lambda ns, claim: self._claim_in_use(key, ns, claim),
                                               all_volumes=self.volumes.store.list)
        decision = framework.schedule(info, self.snapshot, rng=self.rng, volume_state=volume_state)
        if decision.node is None:
            self.unschedulable_attempts += 1
            self.queue.mark_unschedulable(key, decision.failed_plugins)
            self._spawn(self._report_unschedulable(pod, decision.message))
            return True
        self.snapshot.assume(info, decision.node)
        plan = None
        if volume_state is not None and volume_state.delayed:
            plan = volumebinding.plan_for(volume_state, self.snapshot.nodes[decision.node])
        self._spawn(self._bind(pod, decision.node, volume_plan=plan))
        return True

    def _claim_in_use(self, key: podinfo.Key, namespace: str, claim: str) -> bool:
        """Another pod, scheduled or assumed and not finished, names the claim."""
        for other in self.pods.store.by_index("namespace", namespace):
            other_key = _key(other)
            if other_key == key or _terminal(other):
                continue
            if (_assigned(other) or other_key in self.snapshot.assumed) and claim in volumebinding.volumes.claim_names(other):
                return True
        return False

    async def _bind_volumes(self, namespace: str, plan: volumebinding.Plan, node: str) -> None:
        """VolumeBinding's PreBind: a matched static volume gets the claim's claimRef, as upstream's
        BindPodVolumes (only while it is still free: its resourceVersion from the cache, so a volume
        another pod's claim took meanwhile fails this binding, which is retried); the claims to
        provision learn the node (the binder provisions there)."""
        for claim_name, volume_name in plan.static:
            claim = self.claims.store.get(namespace, claim_name)
            volume = self.volumes.store.get(None, volume_name)
            if claim is None or volume is None or (volume.get("spec") or {}).get("claimRef"):
                raise VolumeTaken(f'persistentvolume "{volume_name}" is no longer available')
            md = claim.get("metadata") or {}
            try:
                await self.writer.patch("v1", "persistentvolumes", volume_name, {
                    "metadata": {"resourceVersion": (volume.get("metadata") or {}).get("resourceVersion"),
                                 "annotations": {volumebinding.volumes.BOUND_BY_CONTROLLER: "yes"}},
                    "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                          "namespace": namespace, "name": claim_name, "uid": md.get("uid"),
                                          "resourceVersion": md.get("resourceVersion")}}})
            except (errors.Conflict, errors.NotFound) as exc:  # not "the pod is bound": try the pod again
                raise VolumeTaken(f'persistentvolume "{volume_name}" changed: {exc}') from None
        for claim_name in plan.provision:
            await self.writer.patch("v1", "persistentvolumeclaims", claim_name, {"metadata": {"annotations": {
                volumebinding.volumes.SELECTED_NODE: node}}}, namespace=namespace)

    async def _bind(self, pod: dict[str, Any], node: str, *, volume_plan: volumebinding.Plan | None = None) -> None:
        key = _key(pod)
        namespace, name = key
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": (pod.get("metadata") or {}).get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            if volume_plan is not None:
                await self._bind_volumes(namespace, volume_plan, node)
            await self.writer.request("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/binding", json=body)
        except (errors.Conflict, errors.NotFound) as exc:
            # Bound by someone else (or by an earlier attempt of ours), or gone: the watch tells the truth.
            log.info("binding %s/%s to %s dropped: %s", namespace, name, node, exc)
            self.snapshot.forget(key)
            self.queue.delete(key)
            return
        except Exception as exc:
            log.warning("binding %s/%s to %s failed: %s", namespace, name, node, exc)
            self.snapshot.forget(key)
            if not self._stopping:
                self.queue.retry_later(key)
            self._event(pod, "FailedScheduling", f"Binding rejected: {exc}", "Warning")
            return
        finally:
            self._release()
        self.bound += 1
        self.queue.succeeded(key)
        self._event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}", "Normal")

    async def _report_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        """PodScheduled=False/Unschedulable with the FitError message (written only when it changes), and an Event."""
        namespace, name = _key(pod)
        try:
            conditions = list((pod.get("status") or {}).get("conditions") or [])
            current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
            if current is None or (current.get("status"), current.get("reason"), current.get("message")) != (
                "False",
                "Unschedulable",
                message,
            ):
                condition = {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": (
                        current.get("lastTransitionTime")
                        if current is not None and current.get("status") == "False"
                        else meta.format_time(self.clock.wall())
                    ),
                }
                others = [c for c in conditions if c.get("type") != "PodScheduled"]
                await self.writer.patch(
                    "v1",
                    "pods",
                    name,
                    {"status": {"conditions": [*others, condition]}},
                    namespace=namespace,
                    subresource="status",
                )
        except errors.NotFound:
            return
        except errors.ApiError as exc:
            log.warning("status of unschedulable pod %s/%s not written: %s", namespace, name, exc)
        finally:
            self._release()
        self._event(pod, "FailedScheduling", message, "Warning")

    def _event(self, pod: dict[str, Any], reason: str, message: str, type: str) -> None:
        if self.events is not None:
            self.events.post(pod, reason, message, type)

    # --- informer handlers (sync: they only touch the snapshot and the queue) -------------------

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        if _assigned(pod):
            if _terminal(pod):
                return
            self.snapshot.add_pod(podinfo.from_pod(pod))
            self.queue.delete(key)
            self.queue.move(filters.INTER_POD_AFFINITY)
        elif self.responsible_for(pod) and not _deleting(pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = _key(new)
        if _assigned(new):
            if _terminal(new):
                if self.snapshot.remove_pod(key) is not None:
                    self.queue.move()  # its resources are free again
                return
            known = self.snapshot.pods.get(key)
            confirming = key in self.snapshot.assumed
            self.snapshot.add_pod(podinfo.from_pod(new))
            if known is None or confirming:
                self.queue.delete(key)
            if known is None or known.labels != ((new.get("metadata") or {}).get("labels") or {}):
                self.queue.move(filters.INTER_POD_AFFINITY)
            return
        if key in self.snapshot.assumed or not self.responsible_for(new):
            return
        if _deleting(new):
            self.queue.delete(key)
        elif _scheduling_inputs(old) != _scheduling_inputs(new):
            self.queue.add(key)  # the owner changed what scheduling reads; our own status writes do not count

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        self.queue.delete(key)
        if self.snapshot.remove_pod(key) is not None:
            self.queue.move()

    def _node_added(self, node: dict[str, Any]) -> None:
        self.snapshot.set_node(node)
        self.queue.move()

    def _node_updated(self, _old: dict[str, Any], new: dict[str, Any]) -> None:
        before = self.snapshot.set_node(new)
        info = self.snapshot.nodes.get((new.get("metadata") or {}).get("name") or "")
        if info is not None and before != info.fingerprint():
            self.queue.move()

    def _node_deleted(self, node: dict[str, Any]) -> None:
        self.snapshot.remove_node((node.get("metadata") or {}).get("name") or "")

    def _namespace_changed(self, namespace: dict[str, Any]) -> None:
        metadata = namespace.get("metadata") or {}
        labels = dict(metadata.get("labels") or {})
        if self.snapshot.namespace_labels.get(metadata.get("name") or "") != labels:
            self.snapshot.namespace_labels[metadata.get("name") or ""] = labels
            self.queue.move(filters.INTER_POD_AFFINITY)

    def _volumes_changed(self, _obj: dict[str, Any]) -> None:
        self.queue.move(volumebinding.NAME)

    def _namespace_deleted(self, namespace: dict[str, Any]) -> None:
        self.snapshot.namespace_labels.pop((namespace.get("metadata") or {}).get("name") or "", None)


class InformersRunnable:
    """The scheduler's informers as a Manager runnable that runs whether or not we lead (warm standby)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def start(self) -> None:
        await self.scheduler.start_informers()

    async def stop(self) -> None:
        await self.scheduler.stop_informers()
