"""ResourceQuota, pure and over an in-memory store: quantities as upstream prints them, what each
kind of object is charged, scopes, upstream's refusals word for word, and the compare-and-swap
charge that lets exactly as many racing creates through as there are slots."""

from __future__ import annotations

import asyncio
import copy
import datetime
import decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import admission, authn, registry
from reconcile.api import quota as quota_plugin
from reconcile.core import errors
from reconcile.core import quota as q
from reconcile.core.quantities import BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, Quantity

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
REGISTRY = registry.with_builtins()


def _resource(group: str, plural: str) -> registry.Resource:
    found = REGISTRY.get(group, "v1", plural)
    assert found is not None
    return found


# --- quantities ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "shown", "fmt"), [
    ("1500", "1500", DECIMAL_SI), ("1000", "1k", DECIMAL_SI), ("0.5", "500m", DECIMAL_SI),
    ("1.2M", "1200k", DECIMAL_SI), ("2000m", "2", DECIMAL_SI), ("0.1m", "100u", DECIMAL_SI),
    ("0.0000000001", "1n", DECIMAL_SI), ("1e3", "1e3", DECIMAL_EXPONENT), ("1.5e3", "1500", DECIMAL_EXPONENT),
    ("1Gi", "1Gi", BINARY_SI), ("1.5Gi", "1536Mi", BINARY_SI), ("2048Mi", "2Gi", BINARY_SI),
    ("1000Mi", "1000Mi", BINARY_SI), ("0.5Ki", "512", BINARY_SI), ("0", "0", DECIMAL_SI), ("-1500m", "-1500m", DECIMAL_SI),
])
def test_quantities_print_as_upstream(text: str, shown: str, fmt: str) -> None:
    parsed = Quantity.parse(text)
    assert str(parsed) == shown
    assert parsed.format == fmt


def test_sums_keep_the_first_operands_format_unless_it_is_zero() -> None:
    assert str(Quantity.parse("1Gi") + Quantity.parse("512Mi")) == "1536Mi"
    assert str(Quantity.parse("1") + Quantity.parse("1Gi")) == "1073741825"
    assert str(Quantity(0) + Quantity.parse("1Gi")) == "1Gi"
    assert str(Quantity.parse("500m") + Quantity.parse("500m")) == "1"
    assert Quantity.parse("1Gi") - Quantity.parse("1024Mi") == Quantity(0)


_amounts = st.decimals(min_value=0, max_value=10**15, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(_amounts, st.sampled_from(["", "m", "k", "M", "Ki", "Mi", "Gi"]))
def test_the_printed_form_parses_back_to_the_same_value(amount: decimal.Decimal, suffix: str) -> None:
    parsed = Quantity.parse(f"{amount}{suffix}")
    again = Quantity.parse(str(parsed))
    assert again == parsed
    assert str(again) == str(parsed)


# --- what objects are charged --------------------------------------------------------------------

def _pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": list(containers), "initContainers": list(init), **spec}}


def _c(name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
       **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "x", "resources": resources, **extra}


def test_a_pod_is_charged_its_effective_requests_and_limits() -> None:
    pod = _pod(_c("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}), _c("b", {"cpu": "150m"}),
               init=(_c("sidecar", {"cpu": "50m"}, restartPolicy="Always"), _c("init", {"cpu": "1"})))
    usage = q.format_list(q.PodEvaluator().usage(pod, NOW))
    # app containers and the sidecar add up to 300m; the init container ran with the sidecar: 1050m
    assert usage == {"count/pods": "1", "cpu": "1050m", "limits.cpu": "200m", "memory": "64Mi", "pods": "1",
                     "requests.cpu": "1050m", "requests.memory": "64Mi"}
    before = _pod(_c("a", {"cpu": "100m"}), init=(_c("init", {"cpu": "1"}), _c("late", {"cpu": "50m"},
                                                                               restartPolicy="Always")))
    assert str(q.pod_aggregate(before["spec"], "requests")["cpu"]) == "1"  # a sidecar started later is not counted


def test_finished_and_long_terminating_pods_use_no_compute() -> None:
    pod = _pod(_c(requests={"cpu": "1"}))
    pod["status"] = {"phase": "Succeeded"}
    assert q.format_list(q.PodEvaluator().usage(pod, NOW)) == {"count/pods": "1"}
    pod["status"] = {"phase": "Running"}
    pod["metadata"].update(deletionTimestamp="2026-01-01T11:59:00Z", deletionGracePeriodSeconds=30)
    assert q.format_list(q.PodEvaluator().usage(pod, NOW)) == {"count/pods": "1"}
    pod["metadata"]["deletionGracePeriodSeconds"] = 120  # still within its grace period
    assert q.PodEvaluator().usage(pod, NOW)["pods"] == Quantity(1)


def test_pod_scopes() -> None:
    evaluator = q.PodEvaluator()
    best_effort = _pod(_c())
    burstable = _pod(_c(requests={"memory": "1Mi"}))
    deadline = _pod(_c(), activeDeadlineSeconds=60)
    assert evaluator.matches_scope(q.BEST_EFFORT, best_effort) and not evaluator.matches_scope(q.BEST_EFFORT, burstable)
    assert evaluator.matches_scope(q.NOT_BEST_EFFORT, burstable)
    assert evaluator.matches_scope(q.TERMINATING, deadline) and evaluator.matches_scope(q.NOT_TERMINATING, best_effort)
    assert not q.Evaluator("", "configmaps").matches_scope(q.BEST_EFFORT, {})  # scopes select pods only


def test_compute_quota_requires_every_container_to_declare() -> None:
    pod = _pod(_c("a", {"cpu": "1"}), _c("b"), init=(_c("i", limits={"cpu": "1"}),))
    assert q.PodEvaluator().constraints(["requests.cpu", "limits.cpu", "pods", "requests.storage"], pod) == \
        "must specify limits.cpu for: a,b; requests.cpu for: b,i"
    assert q.PodEvaluator().constraints(["pods", "count/pods"], pod) is None


def test_services_and_claims() -> None:
    node_port = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}
    assert q.format_list(q.ServiceEvaluator().usage(node_port, NOW)) == {
        "count/services": "1", "services": "1", "services.nodeports": "2"}
    balancer = {"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                         "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}}
    assert q.format_list(q.ServiceEvaluator().usage(balancer, NOW)) == {
        "count/services": "1", "services": "1", "services.loadbalancers": "1", "services.nodeports": "1"}
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "10Gi"}}}}
    assert q.format_list(q.ClaimEvaluator().usage(claim, NOW)) == {
        "count/persistentvolumeclaims": "1", "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "fast.storageclass.storage.k8s.io/requests.storage": "10Gi", "persistentvolumeclaims": "1",
        "requests.storage": "10Gi"}
    assert q.ClaimEvaluator().matching(["gold.storageclass.storage.k8s.io/requests.storage", "pods"]) == [
        "gold.storageclass.storage.k8s.io/requests.storage"]


def test_object_counts_and_aliases() -> None:
    assert q.evaluator_for("", "configmaps").usage({}, NOW) == {"count/configmaps": Quantity(1),
                                                                 "configmaps": Quantity(1)}
    assert q.evaluator_for("apps", "deployments").names == {"count/deployments.apps"}
    assert q.evaluator_for("", "events") is None
    assert q.resource_of("count/deployments.apps") == ("apps", "deployments")
    assert q.resource_of("requests.cpu") == ("", "pods")
    assert q.resource_of("secrets") == ("", "secrets")
    assert q.resource_of("services.nodeports") == ("", "services")
    assert q.resource_of("something.odd") is None


def test_usage_of_a_quota_counts_what_is_in_scope() -> None:
    quota = {"spec": {"hard": {"pods": "5", "requests.cpu": "2"}, "scopes": [q.NOT_BEST_EFFORT]}}
    pods = [_pod(_c(requests={"cpu": "500m"})), _pod(_c()), _pod(_c(requests={"cpu": "250m"}))]
    used = q.usage_of(q.PodEvaluator(), quota, ["pods", "requests.cpu", "configmaps"], pods, NOW)
    assert q.format_list(used) == {"pods": "2", "requests.cpu": "750m"}
    assert q.format_list(q.usage_of(q.PodEvaluator(), quota, ["pods"], [], NOW)) == {"pods": "0"}


@pytest.mark.parametrize(("spec", "messages"), [
    ({"hard": {"pods": "-1"}}, ['spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0']),
    ({"hard": {"widgets": "1"}}, ['spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota']),
    ({"hard": {"pods": "1"}, "scopes": ["BestEffort", "NotBestEffort"]},
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: conflicting scopes']),
    ({"hard": {"cpu": "1"}, "scopes": ["BestEffort"]},
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort"}: unsupported scope applied to resource']),
    ({"hard": {"count/deployments.apps": "1", "requests.nvidia.com/gpu": "2", "pods": "3", "cpu": "1"},
      "scopes": ["Terminating"]}, []),
])
def test_quota_validation(spec: dict[str, Any], messages: list[str]) -> None:
    causes = q.validate_quota({"spec": spec})
    assert [f"{c['field']}: {c['message']}" for c in causes] == messages


# --- the plugin, over an in-memory store -----------------------------------------------------------

class Store:
    """Quotas with resourceVersions; `list` serves a snapshot that never catches up (the stalest
    possible cache), so correctness rests on the compare-and-swap alone."""

    def __init__(self, *quotas: dict[str, Any]) -> None:
        self.current = {x["metadata"]["name"]: copy.deepcopy(x) for x in quotas}
        for x in self.current.values():
            x["metadata"].setdefault("resourceVersion", "1")
        self.snapshot = copy.deepcopy(list(self.current.values()))
        self.writes = 0
        self.conflicts = 0

    def access(self) -> quota_plugin.QuotaAccess:
        return quota_plugin.QuotaAccess(self.list, self.list_fresh, self.write_status, now=lambda: NOW)

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return copy.deepcopy(self.snapshot)

    async def list_fresh(self, namespace: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return copy.deepcopy(list(self.current.values()))

    async def write_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # let racers interleave between read and write
        name = obj["metadata"]["name"]
        stored = self.current.get(name)
        if stored is None:
            raise errors.NotFound.for_resource("resourcequotas", name)
        if stored["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise errors.Conflict.for_resource("resourcequotas", name)
        stored["status"] = copy.deepcopy(obj["status"])
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        self.writes += 1
        return copy.deepcopy(stored)


def _quota(name: str = "q", hard: dict[str, str] | None = None, used: dict[str, str] | None = None,
           **spec: Any) -> dict[str, Any]:
    hard = hard if hard is not None else {"pods": "2"}
    status: dict[str, Any] = {"hard": hard, "used": used if used is not None else {k: "0" for k in hard}}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard, **spec}, "status": status}


PODS = _resource("", "pods")


def _create(resource: registry.Resource, obj: dict[str, Any], *, dry_run: bool = False) -> admission.Attributes:
    return admission.Attributes(admission.CREATE, resource, None, "ns", obj["metadata"]["name"], obj, None,
                                authn.UserInfo("u"), dry_run)


async def test_exceeding_a_quota_is_refused_with_upstreams_message() -> None:
    store = Store(_quota(hard={"pods": "2"}, used={"pods": "2"}))
    with pytest.raises(errors.Forbidden) as caught:
        await quota_plugin.ResourceQuota(store.access()).validate(_create(PODS, _pod(_c())))
    assert caught.value.message == ('pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, '
                                    "limited: pods=2")
    assert store.writes == 0


async def test_an_admitted_object_is_charged() -> None:
    store = Store(_quota(hard={"pods": "2", "requests.cpu": "1", "count/pods": "9"}))
    plugin = quota_plugin.ResourceQuota(store.access())
    await plugin.validate(_create(PODS, _pod(_c(requests={"cpu": "300m"}))))
    assert store.current["q"]["status"]["used"] == {"count/pods": "1", "pods": "1", "requests.cpu": "300m"}
    with pytest.raises(errors.Forbidden, match="requested: requests.cpu=800m, used: requests.cpu=300m, "
                                               "limited: requests.cpu=1$"):
        await plugin.validate(_create(PODS, _pod(_c(requests={"cpu": "800m"}))))


async def test_only_the_exceeded_resources_are_named() -> None:
    store = Store(_quota(hard={"pods": "5", "limits.cpu": "1", "limits.memory": "1Gi"},
                         used={"pods": "1", "limits.cpu": "1", "limits.memory": "1Gi"}))
    pod = _pod(_c(limits={"cpu": "500m", "memory": "512Mi"}))
    with pytest.raises(errors.Forbidden) as caught:
        await quota_plugin.ResourceQuota(store.access()).validate(_create(PODS, pod))
    assert caught.value.message.endswith("exceeded quota: q, requested: limits.cpu=500m,limits.memory=512Mi, "
                                         "used: limits.cpu=1,limits.memory=1Gi, limited: limits.cpu=1,limits.memory=1Gi")


async def test_a_pod_without_the_quotaed_requests_is_refused() -> None:
    store = Store(_quota(hard={"requests.memory": "1Gi"}))
    with pytest.raises(errors.Forbidden) as caught:
        await quota_plugin.ResourceQuota(store.access()).validate(_create(PODS, _pod(_c("web"))))
    assert caught.value.message == 'pods "p" is forbidden: failed quota: q: must specify requests.memory for: web'


async def test_a_quota_the_controller_has_not_counted_yet() -> None:
    uncounted = _quota(hard={"pods": "1"})
    uncounted["status"] = {}  # status.hard not set: the quota matches nothing yet
    await quota_plugin.ResourceQuota(Store(uncounted).access()).validate(_create(PODS, _pod(_c())))
    half = _quota(hard={"pods": "1"}, used={})
    with pytest.raises(errors.Forbidden, match="status unknown for quota: q, resources: pods$"):
        await quota_plugin.ResourceQuota(Store(half).access()).validate(_create(PODS, _pod(_c())))


async def test_dry_runs_are_checked_not_charged() -> None:
    store = Store(_quota(hard={"pods": "1"}))
    plugin = quota_plugin.ResourceQuota(store.access())
    await plugin.validate(_create(PODS, _pod(_c()), dry_run=True))
    assert store.writes == 0
    store.current["q"]["status"]["used"] = {"pods": "1"}
    store.snapshot = copy.deepcopy(list(store.current.values()))
    with pytest.raises(errors.Forbidden):
        await plugin.validate(_create(PODS, _pod(_c()), dry_run=True))


async def test_scoped_quotas_count_only_their_pods() -> None:
    store = Store(_quota("best", hard={"pods": "1"}, scopes=["BestEffort"]),
                  _quota("rest", hard={"pods": "1"}, scopes=["NotBestEffort"]))
    plugin = quota_plugin.ResourceQuota(store.access())
    await plugin.validate(_create(PODS, _pod(_c())))
    assert store.current["best"]["status"]["used"] == {"pods": "1"}
    assert store.current["rest"]["status"]["used"] == {"pods": "0"}
    await plugin.validate(_create(PODS, _pod(_c(requests={"cpu": "1"}))))
    assert store.current["rest"]["status"]["used"] == {"pods": "1"}


async def test_updates_are_charged_only_what_they_add() -> None:
    services = _resource("", "services")
    store = Store(_quota(hard={"services.loadbalancers": "1", "services": "10"},
                         used={"services.loadbalancers": "0", "services": "1"}))
    plugin = quota_plugin.ResourceQuota(store.access())
    old = {"metadata": {"name": "s", "resourceVersion": "5"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    new = copy.deepcopy(old)
    new["spec"]["type"] = "LoadBalancer"
    update = admission.Attributes(admission.UPDATE, services, None, "ns", "s", new, old, authn.UserInfo("u"), False)
    await plugin.validate(update)
    assert store.current["q"]["status"]["used"] == {"services": "1", "services.loadbalancers": "1"}


async def test_quota_objects_are_validated() -> None:
    bad = _quota(hard={"pods": "-1"})
    with pytest.raises(errors.Invalid, match=r'ResourceQuota "q" is invalid: spec.hard\[pods\]: Invalid value: "-1"'):
        await quota_plugin.ResourceQuota(Store().access()).validate(_create(_resource("", "resourcequotas"), bad))


async def test_racing_creates_take_exactly_the_free_slots() -> None:
    """Two API servers (two plugins on one store), 12 creates at once, 5 slots left: 5 get in."""
    store = Store(_quota(hard={"pods": "7"}, used={"pods": "2"}))
    servers = [quota_plugin.ResourceQuota(store.access()) for _ in range(2)]

    async def create(i: int) -> bool:
        try:
            await servers[i % 2].validate(_create(PODS, _pod(_c())))
        except errors.Forbidden:
            return False
        return True

    admitted = await asyncio.gather(*(create(i) for i in range(12)))
    assert sum(admitted) == 5
    assert store.current["q"]["status"]["used"] == {"pods": "7"}
    assert store.conflicts > 0  # the race really happened, and the swap decided it


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=6),
       st.lists(st.sampled_from(["0", "100m", "250m", "1"]), min_size=1, max_size=10))
def test_usage_never_passes_the_limit(limit: int, used: int, cpus: list[str]) -> None:
    store = Store(_quota(hard={"pods": str(limit), "requests.cpu": "1"},
                         used={"pods": str(min(used, limit)), "requests.cpu": "0"}))
    plugin = quota_plugin.ResourceQuota(store.access())

    async def run() -> int:
        async def create(cpu: str) -> bool:
            try:
                await plugin.validate(_create(PODS, _pod(_c(requests={"cpu": cpu}))))
            except errors.Forbidden:
                return False
            return True
        return sum(await asyncio.gather(*(create(c) for c in cpus)))

    admitted = asyncio.run(run())
    final = store.current["q"]["status"]["used"]
    assert Quantity.parse(final["pods"]) <= Quantity(limit)
    assert Quantity.parse(final["requests.cpu"]) <= Quantity(1)
    assert int(final["pods"]) == min(used, limit) + admitted
