"""ResourceQuota arithmetic and usage: pure functions the quota admission plugin and the quota
controller share, so both count an object the same way (upstream's `pkg/quota/v1` evaluators).

A resource list maps resource names (`pods`, `requests.cpu`, `count/deployments.apps`) to
`Quantity`s. An `Evaluator` knows, for one kind of object, which quota resource names it is
charged under (`matching`), how much one object uses (`usage`), which quota scopes it falls in
(`matches_scope`), which write operations charge it (`charges`), and what a pod must declare
before a compute quota admits it (`constraints`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from reconcile.core import errors, meta
from reconcile.core.quantities import Quantity

ResourceList = dict[str, Quantity]

CREATE, UPDATE = "CREATE", "UPDATE"

# Scopes (spec.scopes): which pods a quota counts. Only pods fall in any scope.
TERMINATING, NOT_TERMINATING = "Terminating", "NotTerminating"
BEST_EFFORT, NOT_BEST_EFFORT = "BestEffort", "NotBestEffort"
SCOPES = (TERMINATING, NOT_TERMINATING, BEST_EFFORT, NOT_BEST_EFFORT)

STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_POD_COMPUTE = ("cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory")
# A pod in a namespace with a quota on one of these must declare it in every container (upstream
# calls this coupling a mistake it keeps for compatibility, and adds no other resource to it).
REQUIRED_WHEN_QUOTAED = frozenset(_POD_COMPUTE)
STANDARD_QUOTA_RESOURCES = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods",
    "services", "replicationcontrollers", "resourcequotas", "secrets", "persistentvolumeclaims", "configmaps",
    "services.nodeports", "services.loadbalancers",
})
# Objects quota never counts (upstream's ignored resources): they are written too often to charge.
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events"), ("", "bindings"),
                     ("authentication.k8s.io", "tokenreviews"),
                     ("authorization.k8s.io", "subjectaccessreviews"),
                     ("authorization.k8s.io", "selfsubjectaccessreviews"),
                     ("authorization.k8s.io", "localsubjectaccessreviews"),
                     ("authorization.k8s.io", "selfsubjectrulesreviews")})
# Kinds counted under a short name too, besides count/<resource> (upstream's legacy aliases).
LEGACY_ALIASES = {("", "configmaps"): "configmaps", ("", "secrets"): "secrets",
                  ("", "resourcequotas"): "resourcequotas",
                  ("", "replicationcontrollers"): "replicationcontrollers"}


# --- resource lists -------------------------------------------------------------------------------

def parse_list(raw: Mapping[str, Any] | None) -> ResourceList:
    """A stored `{name: "500m"}` map as quantities (a malformed one raises InvalidQuantity)."""
    return {name: Quantity.parse(value) for name, value in (raw or {}).items()}


def format_list(items: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: str(items[name]) for name in sorted(items)}


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    result = dict(a)
    for name, value in b.items():
        result[name] = result[name] + value if name in result else value
    return result


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """a - b per name, never below zero (an update charges only what it adds)."""
    result: ResourceList = {}
    for name, value in a.items():
        left = value - b[name] if name in b else value
        result[name] = left if left.value >= 0 else Quantity(0, value.format)
    return result


def maximum(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """The larger of each name (b wins ties, as upstream's Max)."""
    result = dict(a)
    for name, value in b.items():
        if name not in result or result[name] <= value:
            result[name] = value
    return result


def mask(items: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    wanted = set(names)
    return {name: value for name, value in items.items() if name in wanted}


def remove_zeros(items: Mapping[str, Quantity]) -> ResourceList:
    return {name: value for name, value in items.items() if value.value != 0}


def exceeded(used: Mapping[str, Quantity], hard: Mapping[str, Quantity]) -> list[str]:
    """The names whose usage is above the hard limit (names without a limit never are)."""
    return sorted(name for name, value in used.items() if name in hard and value > hard[name])


def pretty(items: Mapping[str, Quantity]) -> str:
    """`limits.cpu=1,pods=2`: upstream's prettyPrint of a resource list in errors."""
    return ",".join(f"{name}={items[name]}" for name in sorted(items))


def equal(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> bool:
    return set(a) == set(b) and all(a[k] == b[k] for k in a)


def object_count_name(group: str, plural: str) -> str:
    """`count/pods`, `count/deployments.apps`: the object-count resource of a kind."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


# --- pods -----------------------------------------------------------------------------------------

def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [c for c in spec.get(key) or [] if isinstance(c, Mapping)]


def _resources(container: Mapping[str, Any], which: str) -> ResourceList:
    return parse_list((container.get("resources") or {}).get(which))


def _sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def pod_aggregate(spec: Mapping[str, Any], which: str) -> ResourceList:
    """A pod's effective requests or limits (`which`), as upstream's PodRequests/PodLimits without
    overhead: the app containers and sidecars add up; each ordinary init container runs alone with
    the sidecars started before it, and the pod needs the largest of those moments."""
    total: ResourceList = {}
    for container in _containers(spec, "containers"):
        total = add(total, _resources(container, which))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in _containers(spec, "initContainers"):
        own = _resources(container, which)
        if _sidecar(container):
            total = add(total, own)
            sidecars = add(sidecars, own)
            moment = sidecars
        else:
            moment = add(own, sidecars)
        init_peak = {**init_peak, **{k: v for k, v in moment.items() if k not in init_peak or v > init_peak[k]}}
    for name, value in init_peak.items():
        if name not in total or value > total[name]:
            total[name] = value
    return total


def qos_class(pod: Mapping[str, Any]) -> str:
    """Upstream's GetPodQOS: the stored status.qosClass when there is one, else computed from cpu
    and memory requests and limits (zero values count as unset)."""
    stored = (pod.get("status") or {}).get("qosClass")
    if stored:
        return str(stored)
    spec = pod.get("spec") or {}
    containers = _containers(spec, "containers") + _containers(spec, "initContainers")
    requests: ResourceList = {}
    limits: ResourceList = {}
    guaranteed = True
    for container in containers:
        own_requests = {k: v for k, v in _resources(container, "requests").items() if k in ("cpu", "memory") and v}
        own_limits = {k: v for k, v in _resources(container, "limits").items() if k in ("cpu", "memory") and v}
        requests = add(requests, own_requests)
        limits = add(limits, own_limits)
        if set(own_limits) != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and set(limits) == {"cpu", "memory"} and all(
            k not in requests or requests[k] == limits[k] for k in ("cpu", "memory")):
        return "Guaranteed"
    return "Burstable"


def _native(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/")


def _compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """Upstream's podComputeUsageHelper: one pod, and its requests and limits under quota names."""
    result: ResourceList = {"pods": Quantity(1)}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            result[name] = requests[name]
            result[f"requests.{name}"] = requests[name]
        if name in limits:
            result[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            result[name] = value
            result[f"requests.{name}"] = value
        elif not _native(name) and not name.startswith("requests."):
            result[f"requests.{name}"] = value  # extended resources: only requests.<name> is quota'd
    return result


def pod_is_charged(pod: Mapping[str, Any], now: datetime.datetime) -> bool:
    """Upstream's QuotaV1Pod: finished pods, and pods terminating past their grace period (a lost
    node), use no compute quota; they still count under count/pods."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    metadata = pod.get("metadata") or {}
    deleted_at = metadata.get("deletionTimestamp")
    grace = metadata.get("deletionGracePeriodSeconds")
    if deleted_at and grace is not None:
        try:
            deadline = meta.parse_time(deleted_at) + datetime.timedelta(seconds=int(grace))
        except (ValueError, TypeError):
            return True
        if now > deadline:
            return False
    return True


class Evaluator:
    """How quota counts one kind of object (the object-count evaluator; pods, services and claims
    refine it)."""

    scoped = False  # whether quota scopes can match these objects (only pods)

    def __init__(self, group: str, plural: str, *, alias: str | None = None) -> None:
        self.group, self.plural = group, plural
        self.count_name = object_count_name(group, plural)
        self.names = frozenset(n for n in (self.count_name, alias) if n)

    def charges(self, operation: str, subresource: str | None) -> bool:
        """Whether this write is charged (object counts: creates only)."""
        return operation == CREATE and not subresource

    def matching(self, names: Iterable[str]) -> list[str]:
        """The quota resource names, of `names`, this evaluator tracks."""
        return sorted(n for n in names if n in self.names)

    def usage(self, obj: Mapping[str, Any], now: datetime.datetime) -> ResourceList:
        return {name: Quantity(1) for name in self.names}

    def matches_scope(self, scope: str, obj: Mapping[str, Any]) -> bool:
        return False  # no scope selects anything but pods

    def constraints(self, required: Iterable[str], obj: Mapping[str, Any]) -> str | None:
        return None


class PodEvaluator(Evaluator):
    scoped = True
    COMPUTE = frozenset({"cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                         "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
                         "pods"})

    def __init__(self) -> None:
        super().__init__("", "pods")
        self.names = frozenset(self.names | self.COMPUTE)

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names or n.startswith(("hugepages-", "requests.hugepages-"))
                      or (n.startswith("requests.") and not _native(n)))

    def usage(self, obj: Mapping[str, Any], now: datetime.datetime) -> ResourceList:
        result: ResourceList = {self.count_name: Quantity(1)}
        if not pod_is_charged(obj, now):
            return result
        spec = obj.get("spec") or {}
        return add(result, _compute_usage(pod_aggregate(spec, "requests"), pod_aggregate(spec, "limits")))

    def matches_scope(self, scope: str, obj: Mapping[str, Any]) -> bool:
        deadline = (obj.get("spec") or {}).get("activeDeadlineSeconds")
        terminating = isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0
        best_effort = qos_class(obj) == "BestEffort"
        return {TERMINATING: terminating, NOT_TERMINATING: not terminating,
                BEST_EFFORT: best_effort, NOT_BEST_EFFORT: not best_effort}.get(scope, False)

    def constraints(self, required: Iterable[str], obj: Mapping[str, Any]) -> str | None:
        """`must specify limits.cpu for: a,b; requests.memory for: b` when a quota'd compute
        resource is missing from a container."""
        wanted = set(required) & REQUIRED_WHEN_QUOTAED
        if not wanted:
            return None
        spec = obj.get("spec") or {}
        missing: dict[str, set[str]] = {}
        for container in _containers(spec, "containers") + _containers(spec, "initContainers"):
            declared = _compute_usage(_resources(container, "requests"), _resources(container, "limits"))
            for name in wanted - set(declared):
                missing.setdefault(name, set()).add(str(container.get("name") or ""))
        if not missing:
            return None
        return "must specify " + "; ".join(f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))

    def charges(self, operation: str, subresource: str | None) -> bool:
        return operation == CREATE and not subresource


class ServiceEvaluator(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "services")
        self.names = frozenset(self.names | {"services", "services.nodeports", "services.loadbalancers"})

    def charges(self, operation: str, subresource: str | None) -> bool:
        return operation in (CREATE, UPDATE) and not subresource

    def usage(self, obj: Mapping[str, Any], now: datetime.datetime) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
        result: ResourceList = {self.count_name: Quantity(1), "services": Quantity(1)}
        kind = spec.get("type") or "ClusterIP"
        if kind == "NodePort":
            result["services.nodeports"] = Quantity(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                result["services.nodeports"] = Quantity(sum(1 for p in ports if p.get("nodePort")))
            else:
                result["services.nodeports"] = Quantity(len(ports))
            result["services.loadbalancers"] = Quantity(1)
        return result


class ClaimEvaluator(Evaluator):
    """PersistentVolumeClaims: counted, with their storage request, in total and per storage class."""

    CLAIM_NAMES = ("persistentvolumeclaims", "requests.storage")

    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")
        self.names = frozenset(self.names | set(self.CLAIM_NAMES))

    def charges(self, operation: str, subresource: str | None) -> bool:
        return operation in (CREATE, UPDATE) and not subresource

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names
                      or any(n.endswith(STORAGE_CLASS_SUFFIX + r) for r in self.CLAIM_NAMES))

    def usage(self, obj: Mapping[str, Any], now: datetime.datetime) -> ResourceList:
        spec = obj.get("spec") or {}
        storage_class = spec.get("storageClassName") or ((obj.get("metadata") or {}).get("annotations") or {}).get(
            "volume.beta.kubernetes.io/storage-class") or ""
        result: ResourceList = {self.count_name: Quantity(1), "persistentvolumeclaims": Quantity(1)}
        if storage_class:
            result[f"{storage_class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = Quantity(1)
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if requested is not None:
            storage = Quantity.parse(requested)
            result["requests.storage"] = storage
            if storage_class:
                result[f"{storage_class}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return result


_SPECIAL: dict[tuple[str, str], type[Evaluator]] = {
    ("", "pods"): PodEvaluator, ("", "services"): ServiceEvaluator, ("", "persistentvolumeclaims"): ClaimEvaluator,
}


def evaluator_for(group: str, plural: str) -> Evaluator | None:
    """The evaluator of a resource (None: quota ignores it)."""
    if (group, plural) in IGNORED:
        return None
    special = _SPECIAL.get((group, plural))
    if special is not None:
        return special()
    return Evaluator(group, plural, alias=LEGACY_ALIASES.get((group, plural)))


def resource_of(name: str) -> tuple[str, str] | None:
    """The (group, plural) a quota resource name counts, when it names one (`count/x.y`, the
    compute names of pods, the legacy aliases); None for names no known evaluator tracks."""
    if name.startswith("count/"):
        plural, _, group = name[len("count/"):].partition(".")
        return (group, plural) if plural else None
    for key, alias in LEGACY_ALIASES.items():
        if name == alias:
            return key
    if PodEvaluator().matching([name]):
        return ("", "pods")
    if ServiceEvaluator().matching([name]):
        return ("", "services")
    if ClaimEvaluator().matching([name]):
        return ("", "persistentvolumeclaims")
    return None


# --- quotas ---------------------------------------------------------------------------------------

def quota_scopes(quota: Mapping[str, Any]) -> list[str]:
    return [s for s in (quota.get("spec") or {}).get("scopes") or [] if isinstance(s, str)]


def quota_matches(evaluator: Evaluator, quota: Mapping[str, Any], hard: Mapping[str, Quantity],
                  obj: Mapping[str, Any]) -> bool:
    """Upstream's generic Matches: the quota tracks a resource of this evaluator, and the object
    falls in every one of the quota's scopes."""
    if not evaluator.matching(hard):
        return False
    return all(evaluator.matches_scope(scope, obj) for scope in quota_scopes(quota))


def usage_of(evaluator: Evaluator, quota: Mapping[str, Any], names: Iterable[str],
             objects: Iterable[Mapping[str, Any]], now: datetime.datetime) -> ResourceList:
    """What the objects in scope of `quota` use, for each of `names` this evaluator tracks (zero
    for the ones nothing uses): the quota controller's status.used for one kind."""
    tracked = evaluator.matching(names)
    total: ResourceList = {name: Quantity(0) for name in tracked}
    scopes = quota_scopes(quota)
    for obj in objects:
        if all(evaluator.matches_scope(scope, obj) for scope in scopes):
            total = add(total, mask(evaluator.usage(obj, now), tracked))
    return total


def validate_quota(quota: Mapping[str, Any]) -> list[dict[str, str]]:
    """Upstream's ValidateResourceQuota for what a schema cannot say: quota resource names, no
    negative limits, scopes that exist, apply to the resources limited and do not conflict."""
    spec = quota.get("spec") or {}
    hard_raw = spec.get("hard") or {}
    causes: list[dict[str, str]] = []
    for name in sorted(hard_raw):
        path = f"spec.hard[{name}]"
        if "/" not in name and name not in STANDARD_QUOTA_RESOURCES and not name.startswith(
                ("hugepages-", "requests.hugepages-")):
            causes.append(errors.cause(path, f'Invalid value: "{name}": must be a standard resource for quota'))
        if Quantity.parse(hard_raw[name]).value < 0:
            causes.append(errors.cause(path, f'Invalid value: "{hard_raw[name]}": must be greater than or equal to 0'))
    scopes = quota_scopes(quota)
    shown = "[]core.ResourceQuotaScope{" + ", ".join(f'"{s}"' for s in scopes) + "}"
    for scope in scopes:
        if scope not in SCOPES:
            causes.append(errors.cause("spec.scopes", f"Invalid value: {shown}: unsupported scope"))
        for name in sorted(hard_raw):
            if name in STANDARD_QUOTA_RESOURCES and not _scope_allows(scope, name):
                causes.append(errors.cause("spec.scopes", f"Invalid value: {shown}: unsupported scope applied to resource"))
    for pair in ((BEST_EFFORT, NOT_BEST_EFFORT), (TERMINATING, NOT_TERMINATING)):
        if set(pair) <= set(scopes):
            causes.append(errors.cause("spec.scopes", f"Invalid value: {shown}: conflicting scopes"))
    return causes


def _scope_allows(scope: str, name: str) -> bool:
    if scope == BEST_EFFORT:
        return name == "pods"
    if scope in (TERMINATING, NOT_TERMINATING, NOT_BEST_EFFORT):
        return name == "pods" or name in _POD_COMPUTE
    return True
