"""LimitRange: per-namespace defaults and bounds for containers, pods and claims (upstream's
LimitRanger admission plugin and LimitRange validation and defaulting).

- mutate, pods on create: each `Container` limit's `default` (limits) and `defaultRequest`
  (requests) fill in what a container (or init container) leaves unset; the pod is annotated
  `kubernetes.io/limit-ranger: LimitRanger plugin set: cpu request for container web; ...`.
- validate, pods on create: `min`, `max`, `maxLimitRequestRatio` per container (type `Container`)
  and for the pod as a whole (type `Pod`); claims on create and update: `min` and `max` of the
  storage request (type `PersistentVolumeClaim`). Refusals are 403s with upstream's messages:
  `pods "x" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi`.
- LimitRange objects themselves get upstream's defaulting (a `Container` max is the default
  limit, the default limit the default request, ...) and validation (min <= default <= max).

Pure functions do the work (`default_pod`, `pod_problems`, `claim_problems`, `validate_limit_range`);
the plugin reads the namespace's LimitRanges through a callable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from reconcile.api import admission
from reconcile.core import errors
from reconcile.core import quota as quota_math
from reconcile.core.quantities import Quantity

ANNOTATION = "kubernetes.io/limit-ranger"
CONTAINER, POD, CLAIM = "Container", "Pod", "PersistentVolumeClaim"
MAX_MILLI_VALUE = 2**63 // 1000  # upstream's resource.MaxMilliValue: beyond it, compare whole units
# Resources that cannot be overcommitted: their default limit and default request must be equal.
_OVERCOMMIT_FORBIDDEN_PREFIXES = ("hugepages-",)


def _items(limit_range: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [i for i in (limit_range.get("spec") or {}).get("limits") or [] if isinstance(i, Mapping)]


def _quantities(item: Mapping[str, Any], key: str) -> dict[str, Quantity]:
    return quota_math.parse_list(item.get(key))


# --- defaults ---------------------------------------------------------------------------------------

def default_limit_range(limit_range: dict[str, Any]) -> None:
    """Upstream's SetDefaults_LimitRangeItem, for `Container` items: a max is the default limit, a
    default limit the default request, a min the default request (each only where unset)."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != CONTAINER:
            continue
        default = item.setdefault("default", {})
        request = item.setdefault("defaultRequest", {})
        for source, target in ((item.get("max") or {}, default), (default, request), (item.get("min") or {}, request)):
            for name, value in source.items():
                target.setdefault(name, value)
        for key in ("default", "defaultRequest"):
            if not item[key]:
                del item[key]


def default_pod(limit_range: Mapping[str, Any], pod: dict[str, Any]) -> bool:
    """Fill each container's unset requests and limits from the `Container` defaults; True if the
    pod changed. The annotation names what was set (the last LimitRange's list, as upstream)."""
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    for item in _items(limit_range):
        if item.get("type") == CONTAINER:
            limits.update(item.get("default") or {})
            requests.update(item.get("defaultRequest") or {})
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for key, what in (("containers", "container"), ("initContainers", "init container")):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            set_requests = _fill(container, "requests", requests)
            set_limits = _fill(container, "limits", limits)
            if set_requests:
                notes.append(f"{', '.join(sorted(set_requests))} request for {what} {container.get('name')}")
            if set_limits:
                notes.append(f"{', '.join(sorted(set_limits))} limit for {what} {container.get('name')}")
    if not notes:
        return False
    annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return True


def _fill(container: dict[str, Any], which: str, defaults: Mapping[str, Any]) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    current = resources.get(which) or {}
    missing = [name for name in defaults if name not in current]
    if missing:
        resources[which] = {**current, **{name: defaults[name] for name in missing}}
    return missing


# --- bounds -----------------------------------------------------------------------------------------

def _comparable(*values: Quantity | None) -> list[int]:
    """Upstream's requestLimitEnforcedValues: milli units when nothing overflows them, else units."""
    present = [v or Quantity(0) for v in values]
    if all(v.int_value() <= MAX_MILLI_VALUE for v in present):
        return [v.milli_value() for v in present]
    return [v.int_value() for v in present]


def _min(kind: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
         limits: Mapping[str, Quantity]) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, bound = _comparable(request, limit, enforced)
    if request is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_request < bound:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {request}"
    if limit is not None and observed_limit < bound:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limit}"
    return None


def _max(kind: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
         limits: Mapping[str, Quantity]) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, bound = _comparable(request, limit, enforced)
    if limit is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if observed_limit > bound:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limit}"
    if request is not None and observed_request > bound:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {request}"
    return None


def _max_request(kind: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity]) -> str | None:
    request = requests.get(name)
    observed_request, _, bound = _comparable(request, None, enforced)
    if request is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_request > bound:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {request}"
    return None


def _ratio(kind: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
           limits: Mapping[str, Quantity]) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, _ = _comparable(request, limit, enforced)
    if request is None or observed_request == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
    if limit is None or observed_limit == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
    observed = observed_limit / observed_request
    if enforced.int_value() <= MAX_MILLI_VALUE:
        exceeds = observed * 1000 > enforced.milli_value()
    else:
        exceeds = observed > enforced.int_value()
    if exceeds:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:f}"
    return None


def _bounds(item: Mapping[str, Any], kind: str, requests: Mapping[str, Quantity],
            limits: Mapping[str, Quantity]) -> list[str]:
    found = []
    for key, check in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        bounds = _quantities(item, key)
        for name in sorted(bounds):
            problem = check(kind, name, bounds[name], requests, limits)
            if problem:
                found.append(problem)
    return found


def _container_lists(container: Mapping[str, Any]) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    resources = container.get("resources") or {}
    return quota_math.parse_list(resources.get("requests")), quota_math.parse_list(resources.get("limits"))


def pod_problems(limit_range: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    """Every bound of one LimitRange the pod breaks (upstream's PodValidateLimitFunc)."""
    spec = pod.get("spec") or {}
    found: list[str] = []
    for item in _items(limit_range):
        kind = item.get("type")
        if kind == CONTAINER:
            for key in ("containers", "initContainers"):
                for container in spec.get(key) or []:
                    if isinstance(container, Mapping):
                        found += _bounds(item, CONTAINER, *_container_lists(container))
        elif kind == POD:
            found += _bounds(item, POD, quota_math.pod_aggregate(spec, "requests"),
                             quota_math.pod_aggregate(spec, "limits"))
    return found


def claim_problems(limit_range: Mapping[str, Any], claim: Mapping[str, Any]) -> list[str]:
    """The storage bounds a claim's request breaks (limits of a claim are not user input)."""
    requests = quota_math.parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    found: list[str] = []
    for item in _items(limit_range):
        if item.get("type") != CLAIM:
            continue
        minimum, maximum = _quantities(item, "min"), _quantities(item, "max")
        for name in sorted(minimum):
            problem = _min(CLAIM, name, minimum[name], requests, {})
            if problem:
                found.append(problem)
        for name in sorted(maximum):
            problem = _max_request(CLAIM, name, maximum[name], requests)
            if problem:
                found.append(problem)
    return found


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate: one message as itself, several (without repeats) as `[a, b]`."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --- LimitRange validation --------------------------------------------------------------------------

def validate_limit_range(limit_range: Mapping[str, Any]) -> list[dict[str, str]]:
    """Upstream's ValidateLimitRange for what a schema cannot say."""
    causes: list[dict[str, str]] = []
    seen_types: set[str] = set()
    for index, item in enumerate(_items(limit_range)):
        path = f"spec.limits[{index}]"
        kind = str(item.get("type") or "")
        if kind in seen_types:
            causes.append(errors.cause(f"{path}.type", f'Duplicate value: "{kind}"', "FieldValueDuplicate"))
        seen_types.add(kind)
        bounds = {key: _quantities(item, key) for key in ("min", "max", "default", "defaultRequest",
                                                          "maxLimitRequestRatio")}
        if kind == POD:
            for key in ("default", "defaultRequest"):
                if item.get(key):
                    causes.append(errors.cause(f"{path}.{key}", "Forbidden: may not be specified when `type` is 'Pod'",
                                               "FieldValueForbidden"))
        if kind == CLAIM and "storage" not in bounds["min"] and "storage" not in bounds["max"]:
            causes.append(errors.cause(f"{path}.limits", "Required value: either minimum or maximum storage value is "
                                                         "required, but neither was provided", "FieldValueRequired"))
        names = sorted(set().union(*(bounds[k] for k in ("min", "max", "default", "defaultRequest",
                                                         "maxLimitRequestRatio"))))
        for name in names:
            causes += _item_causes(path, name, {key: found.get(name) for key, found in bounds.items()})
    return causes


def _item_causes(path: str, name: str, q: Mapping[str, Quantity | None]) -> list[dict[str, str]]:
    lo, hi, default, request, ratio = q["min"], q["max"], q["default"], q["defaultRequest"], q["maxLimitRequestRatio"]
    found: list[tuple[str, Quantity, str]] = []
    if lo is not None and hi is not None and lo > hi:
        found.append(("min", lo, f"min value {lo} is greater than max value {hi}"))
    if request is not None and lo is not None and lo > request:
        found.append(("defaultRequest", request, f"min value {lo} is greater than default request value {request}"))
    if request is not None and hi is not None and request > hi:
        found.append(("defaultRequest", request, f"default request value {request} is greater than max value {hi}"))
    if request is not None and default is not None and request > default:
        found.append(("defaultRequest", request,
                      f"default request value {request} is greater than default limit value {default}"))
    if default is not None and lo is not None and lo > default:
        found.append(("default", lo, f"min value {lo} is greater than default value {default}"))
    if default is not None and hi is not None and default > hi:
        found.append(("default", hi, f"default value {default} is greater than max value {hi}"))
    if ratio is not None and ratio < Quantity(1):
        found.append(("maxLimitRequestRatio", ratio, f"ratio {ratio} is less than 1"))
    if ratio is not None and lo is not None and hi is not None and lo.value > 0:
        limit = hi.value / lo.value
        if ratio.value > limit:
            found.append(("maxLimitRequestRatio", ratio, f"ratio {ratio} is greater than max/min = {float(limit):f}"))
    if name.startswith(_OVERCOMMIT_FORBIDDEN_PREFIXES) and default is not None and request is not None \
            and default != request:
        found.append(("defaultRequest", request,
                      f"default value {default} must equal to defaultRequest value {request} in {name}"))
    return [errors.cause(f"{path}.{key}[{name}]", f'Invalid value: "{value}": {why}') for key, value, why in found]


# --- the plugin -------------------------------------------------------------------------------------

class LimitRanger(admission.Plugin):
    name = "LimitRanger"

    def __init__(self, limit_ranges: Callable[[str], Awaitable[list[dict[str, Any]]]], *,
                 requalify: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._limit_ranges = limit_ranges  # namespace -> its LimitRanges (shared objects: read only)
        # called on a pod whose resources were defaulted (the server recomputes its QoS class)
        self._requalify = requalify

    @staticmethod
    def _kind(attributes: admission.Attributes) -> tuple[str, str]:
        return attributes.resource.group, attributes.resource.plural

    def _applies(self, attributes: admission.Attributes, *operations: str) -> bool:
        if attributes.subresource or attributes.operation not in operations or not attributes.namespace:
            return False
        return not ((attributes.old or {}).get("metadata") or {}).get("deletionTimestamp")

    async def mutate(self, attributes: admission.Attributes) -> None:
        kind = self._kind(attributes)
        if kind == ("", "limitranges") and self._applies(attributes, admission.CREATE, admission.UPDATE):
            default_limit_range(attributes.obj or {})
        elif kind == ("", "pods") and self._applies(attributes, admission.CREATE):
            pod = attributes.obj or {}
            changed = False
            for limit_range in await self._limit_ranges(attributes.namespace or ""):
                changed = default_pod(limit_range, pod) or changed
            if changed and self._requalify is not None:
                self._requalify(pod)

    async def validate(self, attributes: admission.Attributes) -> None:
        kind = self._kind(attributes)
        if kind == ("", "limitranges") and self._applies(attributes, admission.CREATE, admission.UPDATE):
            causes = validate_limit_range(attributes.obj or {})
            if causes:
                raise errors.Invalid.for_object("LimitRange", attributes.object_name(), causes)
            return
        if kind == ("", "pods") and self._applies(attributes, admission.CREATE):
            problems: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]] = pod_problems
        elif kind == ("", "persistentvolumeclaims") and self._applies(attributes, admission.CREATE, admission.UPDATE):
            problems = claim_problems
        else:
            return
        for limit_range in await self._limit_ranges(attributes.namespace or ""):
            found = problems(limit_range, attributes.obj or {})
            if found:
                raise admission.forbidden(attributes, aggregate(found))
