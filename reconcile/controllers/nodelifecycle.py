"""Node lifecycle controller: a node whose agent went silent is marked, tainted, and its pods moved.

Health is judged from what this controller *observes*, not from timestamps compared across
machines (clock skew): each time a node's Lease `renewTime` (or its Ready heartbeat) changes, the
node's probe time becomes "now" on our own monotonic clock. A node not heard from within
`grace_period` goes `Ready=Unknown` (reason NodeStatusUnknown, as upstream) and gets the
`node.kubernetes.io/unreachable:NoExecute` taint (`not-ready` for a node whose agent reports
Ready=False). Pods on a NoExecute-tainted node are deleted once their toleration runs out —
`tolerationSeconds` of a matching toleration, or `default_toleration_seconds` for pods with none
(upstream's DefaultTolerationSeconds admission) — with grace 0, since no agent is left to stop
them; their controllers then create replacements that the scheduler puts elsewhere.

As upstream, when *every* node is unhealthy (the control plane more likely lost the nodes than
the nodes all died, e.g. after an API outage) nothing is tainted or evicted: pods would have
nowhere to go. A node that comes back is marked Ready by its own agent; this controller then
removes the taint.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.controllers import context
from reconcile.core import errors, meta
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
CONDITION_TAINTS = (UNREACHABLE, NOT_READY)
INDEX_NODE = "spec.nodeName"


@dataclass
class Settings:
    """Timing of the node lifecycle controller (seconds)."""

    grace_period: float = 50.0  # node-monitor-grace-period: silence before a node is Unknown
    default_toleration_seconds: float = 300.0  # eviction delay for pods without a matching toleration


@dataclass
class _Probe:
    """What we last saw of a node's heartbeat, and when (our monotonic clock)."""

    signature: tuple[str, str]  # (lease renewTime, Ready lastHeartbeatTime)
    seen_at: float


def _by_node(obj: dict[str, Any]) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def ready_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def ready_status(node: dict[str, Any]) -> str:
    condition = ready_condition(node)
    return str((condition or {}).get("status") or "Unknown")


def condition_taint_key(status: str) -> str | None:
    """The NoExecute taint a Ready status calls for (None when Ready)."""
    return {"True": None, "False": NOT_READY}.get(status, UNREACHABLE)


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Upstream's ToleratesTaint: effect, key and (for Equal) value must match; empty key + Exists is a wildcard."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def toleration_seconds(pod: dict[str, Any], taints: list[dict[str, Any]], *, default: float) -> float | None:
    """How long `pod` may stay on a node with these NoExecute taints (None: forever).

    Every taint must be tolerated; the shortest tolerationSeconds wins. A taint no toleration
    matches gets `default`, standing in for the DefaultTolerationSeconds admission plugin.
    """
    # A toleration that does not read as declared (not an object, tolerationSeconds not a number)
    # tolerates nothing: the pod then gets the default, never "forever" by accident.
    spec = pod.get("spec")
    declared = spec.get("tolerations") if isinstance(spec, dict) else None
    tolerations = [t for t in declared if isinstance(t, dict) and _seconds(t) is not False] \
        if isinstance(declared, list) else []
    result: float | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            seconds: float | None = default
        else:
            bounded = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
            seconds = min(bounded) if bounded else None
        if seconds is not None:
            result = max(0.0, seconds) if result is None else min(result, max(0.0, seconds))
    return result


def _seconds(toleration: dict[str, Any]) -> bool | None:
    """None: no tolerationSeconds; True: a number; False: something else."""
    value = toleration.get("tolerationSeconds")
    if value is None:
        return None
    return isinstance(value, int | float) and not isinstance(value, bool)


class NodeLifecycleController:
    """Owns the `nodelifecycle` engine controller (keys: ("", node name))."""

    def __init__(self, ctx: context.ControllerContext, *, settings: Settings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or Settings()
        self.nodes = ctx.informers.get("v1", "nodes")
        self.leases = ctx.informers.get("coordination.k8s.io/v1", "leases")
        self.pods = ctx.informers.get("v1", "pods")
        try:  # the pod informer is shared: add the index once
            self.pods.store.by_index(INDEX_NODE, "")
        except KeyError:
            self.pods.store.add_indexer(INDEX_NODE, _by_node)
        # Invariant: one entry per node this controller has seen since it started; the entry's
        # seen_at is the monotonic time at which its current signature was first observed.
        self._probes: dict[str, _Probe] = {}
        self.controller = ctx.controller("nodelifecycle", self.reconcile)
        self.controller.watch(self.nodes)
        self.controller.watch(self.leases, to_keys=self._lease_keys)
        self.controller.watch(self.pods, to_keys=self._pod_keys)

    # --- sources ---------------------------------------------------------------------------------

    @staticmethod
    def _lease_keys(lease: dict[str, Any]) -> list[controller_mod.Key]:
        md = lease.get("metadata") or {}
        return [("", md.get("name") or "")] if md.get("namespace") == LEASE_NAMESPACE else []

    def _pod_keys(self, pod: dict[str, Any]) -> list[controller_mod.Key]:
        """Only pods on a NoExecute-tainted node need us (every other pod change is not our business)."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return []
        node = self.nodes.store.get(None, node_name)
        if node is None or not _no_execute_taints(node):
            return []
        return [("", node_name)]

    # --- health ----------------------------------------------------------------------------------

    def _signature(self, node: dict[str, Any]) -> tuple[str, str]:
        name = node["metadata"]["name"]
        lease = self.leases.store.get(LEASE_NAMESPACE, name) or {}
        renew = str((lease.get("spec") or {}).get("renewTime") or "")
        heartbeat = str((ready_condition(node) or {}).get("lastHeartbeatTime") or "")
        return renew, heartbeat

    def _silent_for(self, node: dict[str, Any]) -> float:
        """Seconds since this node's heartbeat last changed (0 on first sight: a grace period from now)."""
        name = node["metadata"]["name"]
        now = self.ctx.clock.now()
        signature = self._signature(node)
        probe = self._probes.get(name)
        if probe is None or probe.signature != signature:
            self._probes[name] = _Probe(signature, now)
            return 0.0
        return now - probe.seen_at

    def _healthy(self, node: dict[str, Any]) -> bool:
        """Ready and heard from within the grace period (read-only: a changed signature counts as heard)."""
        probe = self._probes.get(node["metadata"]["name"])
        fresh = (probe is None or probe.signature != self._signature(node)
                 or self.ctx.clock.now() - probe.seen_at < self.settings.grace_period)
        return fresh and ready_status(node) == "True"

    def _fully_disrupted(self) -> bool:
        """No node healthy: evicting would only move pods to nowhere (upstream's full disruption)."""
        nodes = self.nodes.store.list()
        return bool(nodes) and not any(self._healthy(n) for n in nodes)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        _, name = key
        node = self.nodes.store.get(None, name)
        if node is None:
            self._probes.pop(name, None)
            return None
        waits: list[float] = []
        silent = self._silent_for(node)
        grace = self.settings.grace_period
        if silent >= grace:
            before = ready_status(node)
            node = await self._mark_unknown(node)
            if before != "Unknown":  # the disruption state may have changed for every node
                for other in self.nodes.store.keys():
                    if other[1] != name:
                        self.controller.enqueue(other)
        else:
            waits.append(grace - silent)
        if self._fully_disrupted():
            await self._set_condition_taint(node, None)
            # look again soon: a healthy node elsewhere ends the disruption
            waits.append(max(1.0, grace / 10))
        else:
            node = await self._set_condition_taint(node, condition_taint_key(ready_status(node)))
            next_eviction = await self._evict(node)
            if next_eviction is not None:
                waits.append(next_eviction)
        return controller_mod.Result(requeue_after=max(0.05, min(waits))) if waits else None

    async def _mark_unknown(self, node: dict[str, Any]) -> dict[str, Any]:
        """Every condition -> Unknown (NodeStatusUnknown), keeping the last heartbeat; pods -> not Ready."""
        conditions = (node.get("status") or {}).get("conditions") or []
        if ready_condition(node) is not None and all(c.get("status") == "Unknown" for c in conditions):
            return node
        now = meta.format_time(self.ctx.clock.wall())
        updated = copy.deepcopy(node)
        new_conditions = []
        for condition in conditions or [{"type": "Ready"}]:
            changed = dict(condition)
            if changed.get("status") != "Unknown":
                changed["lastTransitionTime"] = now
            changed.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
            new_conditions.append(changed)
        updated.setdefault("status", {})["conditions"] = new_conditions
        result = await self.ctx.client.replace("v1", "nodes", updated, subresource="status")
        log.info("node %s: no heartbeat for %.1fs; Ready=Unknown", node["metadata"]["name"],
                 self.settings.grace_period)
        await self.ctx.event(node, reason="NodeNotReady", message=f"Node {node['metadata']['name']} status is now: "
                             "NodeNotReady", type="Normal")
        await self._mark_pods_not_ready(node["metadata"]["name"], now)
        return result

    async def _mark_pods_not_ready(self, node_name: str, now: str) -> None:
        """As upstream's MarkPodsNotReady: endpoints and rollouts stop counting pods nobody runs any more."""
        for pod in self.pods.store.by_index(INDEX_NODE, node_name):
            declared = (pod.get("status") or {}).get("conditions")
            conditions = [c for c in declared if isinstance(c, dict)] if isinstance(declared, list) else []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            new = [dict(c, status="False", lastTransitionTime=now) if c.get("type") == "Ready" else c
                   for c in conditions]
            md = pod["metadata"]
            try:
                await self.ctx.client.patch("v1", "pods", md["name"], {"status": {"conditions": new}},
                                            namespace=md.get("namespace"), subresource="status")
            except errors.NotFound:
                continue

    async def _set_condition_taint(self, node: dict[str, Any], wanted: str | None) -> dict[str, Any]:
        """Make the node carry exactly the condition taint `wanted` (or none); other taints are kept."""
        taints = (node.get("spec") or {}).get("taints") or []
        present = [t for t in taints if t.get("key") in CONDITION_TAINTS and t.get("effect") == "NoExecute"]
        if [t.get("key") for t in present] == ([wanted] if wanted else []):
            return node
        kept = [t for t in taints if t not in present]
        if wanted:
            kept.append({"key": wanted, "effect": "NoExecute", "timeAdded": meta.format_time(self.ctx.clock.wall())})
        updated = copy.deepcopy(node)
        updated.setdefault("spec", {})["taints"] = kept
        if not kept:
            updated["spec"].pop("taints")
        result = await self.ctx.client.replace("v1", "nodes", updated)
        log.info("node %s: condition taint %s", node["metadata"]["name"], wanted or "removed")
        return result

    async def _evict(self, node: dict[str, Any]) -> float | None:
        """Delete the pods whose toleration of the node's NoExecute taints ran out; seconds to the next one."""
        taints = _no_execute_taints(node)
        if not taints:
            return None
        now = self.ctx.clock.wall()
        added = min((_time_added(t) or now) for t in taints)
        next_due: float | None = None
        for pod in list(self.pods.store.by_index(INDEX_NODE, node["metadata"]["name"])):
            md = pod["metadata"]
            if md.get("deletionTimestamp") and md.get("deletionGracePeriodSeconds") == 0:
                continue
            seconds = toleration_seconds(pod, taints, default=self.settings.default_toleration_seconds)
            if seconds is None:
                continue
            due = (added - now).total_seconds() + seconds
            if due > 0:
                next_due = due if next_due is None else min(next_due, due)
                continue
            try:
                await self.ctx.client.delete("v1", "pods", md["name"], namespace=md.get("namespace"),
                                             grace_period_seconds=0, preconditions={"uid": md["uid"]})
            except (errors.NotFound, errors.Conflict):
                continue
            log.info("node %s: evicted pod %s/%s", node["metadata"]["name"], md.get("namespace"), md["name"])
            await self.ctx.event(pod, reason="TaintManagerEviction",
                                 message=f"Marking for deletion Pod {md.get('namespace')}/{md['name']}")
        return next_due


def _no_execute_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def _time_added(taint: dict[str, Any]) -> Any:
    text = taint.get("timeAdded")
    if not text:
        return None
    try:
        return meta.parse_time(str(text))
    except ValueError:
        return None
