"""The HPA controller against a real etcd, API server and controller-manager: a Deployment's pods
report cpu usage as node agents do (the agent's own HTTPS server and Summary API document,
`reconcile.node.server` and `reconcile.node.stats`, with the figures set by the test instead of
sampled from Docker), the API server serves them as metrics.k8s.io PodMetrics, and the HPA scales
the Deployment up, then down once the (shortened) stabilization window has passed. Also the real
kubectl 1.32: `kubectl autoscale` (a protobuf autoscaling/v1 body) stores what its dry run prints,
`kubectl get hpa` shows upstream's columns, `kubectl describe hpa` works; and bad bounds are a 422
naming the field."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors
from reconcile.node import server as agent_server
from reconcile.node import stats, tls
from tests import prerequisites, support
from tests.controllers import helpers

WINDOW = 3  # the HPA's scale-down stabilization window, seconds (upstream's default is 300)
REQUEST_MILLIS = 100
REASON_UP = "cpu resource utilization (percentage of request) above target"


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    """The API server reaches node agents as `reconcile up` runs it: its kubelet client certificate,
    the cluster CA for the agents' serving certificates."""
    pki = support.shared_pki()
    return ("--kubelet-client-certificate", str(pki.apiserver_kubelet_client.cert),
            "--kubelet-client-key", str(pki.apiserver_kubelet_client.key),
            "--kubelet-certificate-authority", str(pki.ca.cert))


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    """A short HPA sync period; the node stays Ready without heartbeats for the module's length."""
    process = helpers.ControllerManagerProcess(api_server, extra_args=(
        "--horizontal-pod-autoscaler-sync-period", "0.5", "--node-monitor-grace-period", "3600"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


class StatsAgent:
    """A node agent's Summary API on 127.0.0.1 (its HTTPS server, its document), in a thread of its
    own; `usage` (pod name -> millicores) is what the pods use, set by the test. Only the pods the
    watcher knows are reported, each under its uid, as the agent reports the pods it runs."""

    def __init__(self, name: str, watcher: helpers.PodWatcher) -> None:
        self.name = name
        self.watcher = watcher
        self.usage_millis: dict[str, int] = {}
        self.default_millis = 0
        pki = support.shared_pki()
        pki.ensure(nodes=[name])
        serving = pki.node_serving(name)
        context = tls.server_context(tls.ServingFiles(serving.cert, serving.key), client_ca_file=str(pki.ca.cert))
        app = agent_server.create_app(None, None, stats=self.summary)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.server = agent_server.AgentServer(app, host="127.0.0.1", port=0, ssl_context=context)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def summary(self) -> dict[str, Any]:
        now = time.time()
        usages = {}
        for pod in list(self.watcher.pods.values()):
            md = pod["metadata"]
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            millis = self.usage_millis.get(md["name"], self.default_millis)
            key = stats.PodKey(md["namespace"], md["name"], md["uid"])
            usages[(key, "main")] = stats.Usage(nano_cores=millis * 1_000_000, working_set=1 << 20, at=now, window=1.0)
        return stats.summary(self.name, usages, now=now)

    def __enter__(self) -> StatsAgent:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _node(client: api.Client, name: str, port: int) -> None:
    """The Node as its agent registers it: where its agent listens, Ready."""
    client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.patch("v1", "nodes", name, {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}]}}, subresource="status")


def _deployment(name: str, node: str) -> dict[str, Any]:
    body = helpers.deployment(name, replicas=1)
    template = body["spec"]["template"]["spec"]
    template["nodeName"] = node
    template["containers"][0]["resources"] = {"requests": {"cpu": f"{REQUEST_MILLIS}m"}}
    return body


def _hpa(name: str, *, low: int = 1, high: int = 4, behavior: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": low, "maxReplicas": high,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                               "averageUtilization": 50}}}]}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": spec}


def _replicas(client: api.Client, ns: str, name: str) -> int:
    return int(client.get("apps/v1", "deployments", name, namespace=ns)["spec"]["replicas"])


def _condition(hpa: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in (hpa.get("status") or {}).get("conditions") or [] if c["type"] == kind)


def _events(client: api.Client, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in client.list("v1", "events", namespace=ns).get("items") or []
            if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler" and e["involvedObject"]["name"] == name]


def test_hpa_scales_a_deployment_up_then_down_after_the_window(controller_manager, client: api.Client, ns: str,
                                                              api_server: str, kube_env: dict[str, str]) -> None:
    node = f"hpa-{uuid.uuid4().hex[:6]}"
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True) as watcher, StatsAgent(node, watcher) as agent:
        _node(client, node, agent.port)
        client.create("apps/v1", "deployments", _deployment("web", node), namespace=ns)
        support.wait_for(lambda: sum(helpers.is_ready(p) for p in watcher.pods.values()) == 1, timeout=30,
                         what="the first pod Ready")
        agent.default_millis = 2 * REQUEST_MILLIS  # 200% of the request against a 50% target
        behavior = {"scaleDown": {"stabilizationWindowSeconds": WINDOW}}
        client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("web", behavior=behavior), namespace=ns)

        support.wait_for(lambda: _replicas(client, ns, "web") == 4, timeout=60, interval=0.2,
                         what="scaled up to maxReplicas")
        hpa = support.wait_for(lambda: (h := client.get("autoscaling/v2", "horizontalpodautoscalers", "web",
                                                        namespace=ns))["status"].get("desiredReplicas") == 4 and h,
                               timeout=30, what="the HPA's status")
        assert hpa["status"]["lastScaleTime"]
        assert _condition(hpa, "ScalingActive")["reason"] == "ValidMetricFound"
        assert _condition(hpa, "AbleToScale")["status"] == "True"
        rescales = [e["message"] for e in _events(client, ns, "web") if e["reason"] == "SuccessfulRescale"]
        assert rescales and rescales[0] == f"New size: 4; reason: {REASON_UP}", rescales

        support.wait_for(lambda: sum(helpers.is_ready(p) for p in watcher.pods.values()) == 4, timeout=60,
                         what="four pods Ready")

        def settled() -> bool:
            # the sync that scaled saw 1 replica; a later one reports the 4 (kubectl's REPLICAS column)
            status = client.get("autoscaling/v2", "horizontalpodautoscalers", "web", namespace=ns)["status"]
            current = ((status.get("currentMetrics") or [{}])[0].get("resource") or {}).get("current") or {}
            return current.get("averageUtilization") == 200 and status.get("currentReplicas") == 4

        support.wait_for(settled, timeout=30, what="the current utilization and 4 current replicas in status")
        row = _kubectl(kube_env, "get", "hpa", "web", "-n", ns, "--no-headers").stdout.split()
        assert row[1:7] == ["Deployment/web", "cpu:", "200%/50%", "1", "4", "4"], row
        described = _kubectl(kube_env, "describe", "hpa", "web", "-n", ns)
        assert described.returncode == 0, described.stderr
        assert "resource cpu on pods  (as a percentage of request):  200% (200m) / 50%" in described.stdout, \
            described.stdout
        assert "AbleToScale" in described.stdout and "ScalingActive   True    ValidMetricFound" in described.stdout
        assert "SuccessfulRescale" in described.stdout and f"New size: 4; reason: {REASON_UP}" in described.stdout
        quiet_since = time.monotonic()
        agent.default_millis = REQUEST_MILLIS // 10  # 10%: one pod is enough
        support.wait_for(lambda: _replicas(client, ns, "web") == 1, timeout=60, interval=0.2,
                         what="scaled down to minReplicas")
        assert time.monotonic() - quiet_since >= WINDOW, "scaled down before the stabilization window passed"
        messages = [e["message"] for e in _events(client, ns, "web") if e["reason"] == "SuccessfulRescale"]
        assert "New size: 1; reason: All metrics below target" in messages, messages


def test_a_memory_average_value_target(controller_manager, client: api.Client, ns: str, api_server: str) -> None:
    """Each pod's working set (1 MiB, as the agent reports it) against an AverageValue of 512Ki: twice
    the target, so one pod becomes two; the status carries the average (upstream's milli quantity)."""
    node = f"hpa-{uuid.uuid4().hex[:6]}"
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True) as watcher, StatsAgent(node, watcher) as agent:
        _node(client, node, agent.port)
        client.create("apps/v1", "deployments", _deployment("mem", node), namespace=ns)
        hpa = _hpa("mem", high=2)  # stays at two: each new pod reports the same working set
        hpa["spec"]["metrics"] = [{"type": "Resource", "resource": {
            "name": "memory", "target": {"type": "AverageValue", "averageValue": "512Ki"}}}]
        client.create("autoscaling/v2", "horizontalpodautoscalers", hpa, namespace=ns)
        support.wait_for(lambda: _replicas(client, ns, "mem") == 2, timeout=60, interval=0.2, what="two replicas")
        status = support.wait_for(lambda: (client.get("autoscaling/v2", "horizontalpodautoscalers", "mem",
                                                      namespace=ns)["status"].get("currentMetrics") or [None])[0],
                                  timeout=30, what="the current metric")
        assert status == {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "1048576"}}}
        rescales = [e["message"] for e in _events(client, ns, "mem") if e["reason"] == "SuccessfulRescale"]
        assert rescales == ["New size: 2; reason: memory resource above target"], rescales


def test_an_hpa_without_metrics_for_its_pods_is_not_scaling_active(controller_manager, client: api.Client,
                                                                  ns: str) -> None:
    """Pods nobody reports usage for: ScalingActive False with upstream's reason, the size kept."""
    client.create("apps/v1", "deployments", _deployment("idle", "nowhere"), namespace=ns)
    client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("idle"), namespace=ns)

    def inactive() -> dict[str, Any] | None:
        hpa = client.get("autoscaling/v2", "horizontalpodautoscalers", "idle", namespace=ns)
        conditions = {c["type"]: c for c in (hpa.get("status") or {}).get("conditions") or []}
        active = conditions.get("ScalingActive")
        return active if active and active["status"] == "False" else None

    active = support.wait_for(inactive, timeout=30, what="ScalingActive False")
    assert active["reason"] == "FailedGetResourceMetric"
    assert active["message"].startswith("the HPA was unable to compute the replica count: ")
    assert _replicas(client, ns, "idle") == 1


def test_bad_bounds_are_a_422_naming_the_field(client: api.Client, ns: str) -> None:
    with pytest.raises(errors.Invalid) as caught:
        client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("bad", low=3, high=2), namespace=ns)
    assert caught.value.code == 422
    assert [(c["field"], c["message"]) for c in caught.value.causes] == [
        ("spec.maxReplicas", "Invalid value: 2: must be greater than or equal to `minReplicas`")]
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad1"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": 0, "maxReplicas": 2}}
    with pytest.raises(errors.Invalid) as caught:
        client.create("autoscaling/v1", "horizontalpodautoscalers", v1, namespace=ns)
    assert [c["field"] for c in caught.value.causes] == ["spec.minReplicas"]
    no_target = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad2"},
                 "spec": {"maxReplicas": 2}}
    with pytest.raises(errors.Invalid) as caught:
        client.create("autoscaling/v1", "horizontalpodautoscalers", no_target, namespace=ns)
    assert "spec.scaleTargetRef" in caught.value.causes[0]["field"]


# --- the real kubectl 1.32 ------------------------------------------------------------------------


def _kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    found = prerequisites.require_kubectl()
    return subprocess.run([found, *args], capture_output=True, text=True, env=env, timeout=60)


def test_kubectl_autoscale_get_and_describe(client: api.Client, ns: str, kube_env: dict[str, str]) -> None:
    client.create("apps/v1", "deployments", _deployment("shop", "nowhere"), namespace=ns)
    args = ("autoscale", "deployment", "shop", "-n", ns, "--min=1", "--max=5", "--cpu-percent=50")
    printed = _kubectl(kube_env, *args, "--dry-run=client", "-o", "json")
    assert printed.returncode == 0, printed.stderr
    done = _kubectl(kube_env, *args)
    assert done.returncode == 0 and done.stdout.strip() == "horizontalpodautoscaler.autoscaling/shop autoscaled", \
        done.stderr
    dry = json.loads(printed.stdout)
    stored = client.get("autoscaling/v1", "horizontalpodautoscalers", "shop", namespace=ns)
    assert {k: stored[k] for k in ("apiVersion", "kind", "spec", "status")} == \
        {k: dry[k] for k in ("apiVersion", "kind", "spec", "status")}
    as_v2 = client.get("autoscaling/v2", "horizontalpodautoscalers", "shop", namespace=ns)
    assert as_v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]

    table = _kubectl(kube_env, "get", "hpa", "-n", ns)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert row.split()[:6] == ["shop", "Deployment/shop", "cpu:", "<unknown>/50%", "1", "5"]
    assert row.split()[6] in ("0", "1"), "REPLICAS: 0 until the controller's first look, then the target's 1"

    described = _kubectl(kube_env, "describe", "hpa", "shop", "-n", ns)
    assert described.returncode == 0, described.stderr
    assert "Reference:" in described.stdout and "Deployment/shop" in described.stdout
    assert "Min replicas:" in described.stdout and "Max replicas:" in described.stdout

    too_low = _kubectl(kube_env, "patch", "hpa", "shop", "-n", ns, "--type=merge",
                       "-p", '{"spec":{"minReplicas":6}}')
    assert too_low.returncode == 1
    assert "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`" in too_low.stderr
