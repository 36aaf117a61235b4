"""HorizontalPodAutoscaler controller (upstream's pkg/controller/podautoscaler, resource metrics).

Every `sync_period` (15 s, upstream's --horizontal-pod-autoscaler-sync-period) each HPA is looked
at again: its target's `/scale` gives the replicas and the pod selector; the pods come from the
shared pod informer and their usage from the served `metrics.k8s.io/v1beta1` PodMetrics (what the
node agents report); `core.replicacalc` turns them into a recommendation per metric, the largest
wins, and `core.hpabehavior` stabilizes it (scale-down window 300 s by default) and bounds it by
the rate policies and [minReplicas, maxReplicas]. A change is written through `/scale`, with a
SuccessfulRescale Event; the status (replicas, current metrics, lastScaleTime, the AbleToScale /
ScalingActive / ScalingLimited conditions with upstream's reasons) after every sync.

Metric sources: Resource and ContainerResource metrics (Utilization and AverageValue targets). Pods, Object and
External metrics need a custom or external metrics API, which this server does not serve: such an
HPA's ScalingActive is False (FailedGetPodsMetric and the like), as upstream's is without an adapter.
Recommendations and rescale events live in memory, as upstream's: a new leader starts afresh.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from reconcile.client import discovery
from reconcile.client import informer as informer_mod
from reconcile.controllers import context, hpainputs
from reconcile.core import errors, hpabehavior, meta, replicacalc, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

SYNC_PERIOD = 15.0
CONFLICT_RETRY = 0.5
METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
SOURCES = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods", "Object": "object",
           "External": "external"}
FAILED_GET = {"Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
              "External": "FailedGetExternalMetric", "Resource": "FailedGetResourceMetric",
              "ContainerResource": "FailedGetContainerResourceMetric"}


@dataclass
class _Memory:
    """What the controller remembers of one HPA between syncs."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    ups: list[hpabehavior.Event] = field(default_factory=list)
    downs: list[hpabehavior.Event] = field(default_factory=list)


@dataclass
class _Metric:
    replicas: int
    status: dict[str, Any]
    name: str  # "cpu resource utilization (percentage of request)"


class MetricError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class HorizontalPodAutoscalerController:
    """Owns the `horizontal-pod-autoscaler` engine controller."""

    def __init__(self, ctx: context.ControllerContext, *, sync_period: float = SYNC_PERIOD,
                 downscale_stabilization: float = hpabehavior.DOWNSCALE_STABILIZATION_SECONDS,
                 tolerance: float = replicacalc.TOLERANCE) -> None:
        self.ctx = ctx
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        self.tolerance = tolerance
        self.hpas = ctx.informers.get("autoscaling/v2", "horizontalpodautoscalers")
        self.pods = ctx.informers.get("v1", "pods")
        self.controller = ctx.controller("horizontal-pod-autoscaler", self.reconcile,
                                         lookup=lambda key: self.hpas.store.get(*key))
        self.hpas.add_handler(on_add=self._changed, on_update=lambda old, new: self._spec_changed(old, new),
                              on_delete=self._deleted)
        self._memory: dict[controller_mod.Key, _Memory] = {}

    def _changed(self, hpa: dict[str, Any]) -> None:
        self.controller.queue.add(controller_mod.own_key(hpa))

    def _spec_changed(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """A spec change is looked at now; the controller's own status writes wait for the period."""
        if old.get("spec") != new.get("spec"):
            self._changed(new)

    def _deleted(self, hpa: dict[str, Any]) -> None:
        self._memory.pop(controller_mod.own_key(hpa), None)

    # --- one sync -----------------------------------------------------------------------------

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        namespace, name = key
        hpa = self.hpas.store.get(namespace, name)
        if hpa is None:
            self._memory.pop(key, None)
            return None
        try:
            await self._sync(key, hpa)
        except errors.Conflict:
            return controller_mod.Result(requeue_after=CONFLICT_RETRY)
        except errors.NotFound:
            return None
        return controller_mod.Result(requeue_after=self.sync_period)

    async def _sync(self, key: controller_mod.Key, hpa: dict[str, Any]) -> None:
        namespace = key[0]
        spec = hpa.get("spec") or {}
        status = copy.deepcopy(hpa.get("status") or {})  # the informer's copy is shared: never changed
        conditions = list(status.get("conditions") or [])
        stamp = meta.format_time(self.ctx.clock.wall())
        ref = spec.get("scaleTargetRef") or {}
        try:
            target = await self.ctx.client.resource_for(ref.get("apiVersion") or "v1", ref.get("kind", ""))
            scale = await self._get_scale(target, namespace, ref.get("name", ""))
        except errors.ApiError as exc:
            message = f"the HPA controller was unable to get the target's current scale: {exc}"
            _set(conditions, "AbleToScale", "False", "FailedGetScale", message, stamp)
            await self.ctx.event(hpa, reason="FailedGetScale", message=str(exc), type="Warning")
            await self._write_status(hpa, dict(status, conditions=conditions))
            return
        _set(conditions, "AbleToScale", "True", "SucceededGetScale",
             "the HPA controller was able to get the target's current scale", stamp)
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 1))
        memory = self._memory.setdefault(key, _Memory())
        metric_statuses = status.get("currentMetrics")
        reason = ""
        if current == 0 and low != 0:
            desired = 0
            _set(conditions, "ScalingActive", "False", "ScalingDisabled",
                 "scaling is disabled since the replica count of the target is zero", stamp)
        elif current > high:
            desired, reason = high, "Current number of replicas above Spec.MaxReplicas"
        elif current < low:
            desired, reason = low, "Current number of replicas below Spec.MinReplicas"
        else:
            try:
                proposal, metric_statuses, metric_name = await self._recommend(hpa, scale, namespace, current)
            except MetricError as exc:
                _set(conditions, "ScalingActive", "False", exc.reason,
                     f"the HPA was unable to compute the replica count: {exc}", stamp)
                await self.ctx.event(hpa, reason=exc.reason, message=str(exc), type="Warning")
                await self._write_status(hpa, dict(status, conditions=conditions, currentReplicas=current))
                return
            _set(conditions, "ScalingActive", "True", "ValidMetricFound",
                 f"the HPA was able to successfully calculate a replica count from {metric_name}", stamp)
            reason = f"{metric_name} above target" if proposal > current else "All metrics below target"
            desired = self._normalize(key, hpa, memory, proposal, current, low, high, conditions, stamp)
        if desired != current:
            scale = dict(scale, spec=dict(scale.get("spec") or {}, replicas=desired))
            try:
                await self._put_scale(target, namespace, ref.get("name", ""), scale)
            except errors.ApiError as exc:
                _set(conditions, "AbleToScale", "False", "FailedUpdateScale",
                     f"the HPA controller was unable to update the target scale: {exc}", stamp)
                await self.ctx.event(hpa, reason="FailedRescale", type="Warning",
                                     message=f"New size: {desired}; reason: {reason}; error: {exc}")
                await self._write_status(hpa, dict(status, conditions=conditions))
                return
            _set(conditions, "AbleToScale", "True", "SucceededRescale",
                 f"the HPA controller was able to update the target scale to {desired}", stamp)
            await self.ctx.event(hpa, reason="SuccessfulRescale", message=f"New size: {desired}; reason: {reason}")
            self._remember_rescale(memory, current, desired, self.ctx.clock.now())
            status["lastScaleTime"] = stamp
            log.info("hpa %s/%s: %d -> %d (%s)", namespace, key[1], current, desired, reason)
        new_status = dict(status, currentReplicas=current, desiredReplicas=desired, conditions=conditions)
        if metric_statuses is not None:
            new_status["currentMetrics"] = metric_statuses
        generation = (hpa.get("metadata") or {}).get("generation")
        if generation is not None:
            new_status["observedGeneration"] = generation
        await self._write_status(hpa, new_status)

    def _normalize(self, key: controller_mod.Key, hpa: dict[str, Any], memory: _Memory, proposal: int,
                   current: int, low: int, high: int, conditions: list[dict[str, Any]], stamp: str) -> int:
        up, down = hpabehavior.effective_rules((hpa.get("spec") or {}).get("behavior"), self.downscale_stabilization)
        now = self.ctx.clock.now()
        outcome = hpabehavior.normalize(proposal, current, low, high, memory.recommendations, memory.ups,
                                        memory.downs, up, down, now)
        longest = max(up.window, down.window)
        memory.recommendations = [(at, r) for at, r in memory.recommendations if at > now - longest]
        memory.recommendations.append((now, proposal))
        _set(conditions, "AbleToScale", "True", outcome.able_reason, outcome.able_message, stamp)
        _set(conditions, "ScalingLimited", "True" if outcome.limited else "False", outcome.limit_reason,
             outcome.limit_message, stamp)
        return outcome.replicas

    @staticmethod
    def _remember_rescale(memory: _Memory, before: int, after: int, now: float) -> None:
        keep = 1800.0  # the longest policy period upstream allows
        memory.ups = [e for e in memory.ups if e.at > now - keep]
        memory.downs = [e for e in memory.downs if e.at > now - keep]
        if after > before:
            memory.ups.append(hpabehavior.Event(now, after - before))
        else:
            memory.downs.append(hpabehavior.Event(now, before - after))

    # --- metrics ------------------------------------------------------------------------------

    async def _recommend(self, hpa: dict[str, Any], scale: dict[str, Any], namespace: str,
                         current: int) -> tuple[int, list[dict[str, Any]], str]:
        """(the largest recommendation of the metrics, their statuses, the name of the metric that gave it)."""
        spec = hpa.get("spec") or {}
        metrics = spec.get("metrics") or [_default_metric()]
        selector_text = (scale.get("status") or {}).get("selector")
        if not selector_text:
            raise MetricError("InvalidSelector", "selector is required")
        selector = selectors.parse_labels(selector_text)
        pods = [p for p in self.pods.store.by_index(informer_mod.INDEX_NAMESPACE, namespace)
                if selector.matches((p.get("metadata") or {}).get("labels") or {})]
        usage = await self._pod_metrics(namespace, selector_text)
        best: _Metric | None = None
        statuses: list[dict[str, Any]] = []
        first_error: MetricError | None = None
        for metric in metrics:
            try:
                found = self._resource_metric(metric, current, pods, usage)
            except MetricError as exc:
                first_error = first_error or exc
                continue
            statuses.append(found.status)
            if best is None or found.replicas > best.replicas:
                best = found
        if best is None:
            assert first_error is not None
            raise first_error
        return best.replicas, statuses, best.name

    def _resource_metric(self, metric: dict[str, Any], current: int, pods: list[dict[str, Any]],
                         usage: list[dict[str, Any]]) -> _Metric:
        kind = metric.get("type", "")
        if kind not in ("Resource", "ContainerResource"):
            raise MetricError(FAILED_GET.get(kind, "InvalidMetricSourceType"),
                              f"unable to get metric {kind}: no custom or external metrics API is served")
        source = metric.get(SOURCES[kind]) or {}
        resource = source.get("name", "")
        target = source.get("target") or {}
        container = source.get("container") if kind == "ContainerResource" else None
        inputs = [hpainputs.pod_inputs(_only(p, container), resource) for p in pods]
        samples = hpainputs.samples([_only(m, container) for m in usage], resource)
        now = self.ctx.clock.wall().timestamp()
        what = f"{resource} container resource" if container else f"{resource} resource"
        measure = "utilization" if target.get("type") == "Utilization" else "usage"
        try:
            if target.get("type") == "Utilization" and target.get("averageUtilization") is not None:
                found = replicacalc.resource_replicas(current, int(target["averageUtilization"]), inputs, samples,
                                                      resource=resource, now=now, tolerance=self.tolerance)
                name = f"{what} utilization (percentage of request)"
            elif target.get("type") == "AverageValue" and target.get("averageValue") is not None:
                found = replicacalc.average_value_replicas(current, hpainputs.milli(target["averageValue"]), inputs,
                                                           samples, resource=resource, now=now,
                                                           tolerance=self.tolerance)
                name = what
            else:
                raise MetricError(FAILED_GET[kind], f"invalid target of the {resource} metric: "
                                                    "a Utilization or AverageValue target is required")
        except replicacalc.CalculationError as exc:
            raise MetricError(FAILED_GET[kind], f"failed to get {resource} {measure}: {exc}") from None
        current_value: dict[str, Any] = {"averageValue": hpainputs.format_milli(found.usage)}
        if found.utilization is not None:
            current_value["averageUtilization"] = found.utilization
        body: dict[str, Any] = {"name": resource, "current": current_value}
        if container:
            body["container"] = container
        return _Metric(found.replicas, {"type": kind, SOURCES[kind]: body}, name)

    async def _pod_metrics(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        try:
            response = await self.ctx.client.request("GET", METRICS_PATH.format(namespace=namespace),
                                                     params={"labelSelector": selector})
        except errors.ApiError as exc:
            raise MetricError("FailedGetResourceMetric",
                              f"unable to get metrics for resource: unable to fetch metrics from resource metrics "
                              f"API: {exc}") from None
        return list((response.json() or {}).get("items") or [])

    # --- the target's /scale, the HPA's /status -----------------------------------------------------

    @staticmethod
    def _scale_path(target: discovery.ApiResource, namespace: str, name: str) -> str:
        base = f"/apis/{target.group}/{target.version}" if target.group else f"/api/{target.version}"
        return f"{base}/namespaces/{namespace}/{target.plural}/{name}/scale"

    async def _get_scale(self, target: discovery.ApiResource, namespace: str, name: str) -> dict[str, Any]:
        return (await self.ctx.client.request("GET", self._scale_path(target, namespace, name))).json()

    async def _put_scale(self, target: discovery.ApiResource, namespace: str, name: str,
                         scale: dict[str, Any]) -> None:
        await self.ctx.client.request("PUT", self._scale_path(target, namespace, name), json=scale)

    async def _write_status(self, hpa: dict[str, Any], status: dict[str, Any]) -> None:
        if status == (hpa.get("status") or {}):
            return
        metadata = hpa.get("metadata") or {}
        await self.ctx.client.replace("autoscaling/v2", "horizontalpodautoscalers", dict(hpa, status=status),
                                      namespace=metadata.get("namespace"), subresource="status")


def _default_metric() -> dict[str, Any]:
    """No metrics: 80% average cpu utilization (upstream's v2 default)."""
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                      "averageUtilization": 80}}}


def _only(obj: dict[str, Any], container: str | None) -> dict[str, Any]:
    """A pod (or its PodMetrics) cut to one container, for a ContainerResource metric."""
    if container is None:
        return obj
    if "containers" in obj:  # PodMetrics
        return dict(obj, containers=[c for c in obj.get("containers") or [] if c.get("name") == container])
    spec = obj.get("spec") or {}
    return dict(obj, spec=dict(spec, containers=[c for c in spec.get("containers") or []
                                                 if c.get("name") == container]))


def _set(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, stamp: str) -> None:
    """setCondition: reason and message always, lastTransitionTime only when the status changes."""
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = stamp
            condition.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": kind, "status": status, "lastTransitionTime": stamp, "reason": reason,
                       "message": message})
