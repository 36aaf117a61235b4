"""LimitRange, pure: defaulting of LimitRanges and of pods, the bounds with upstream's messages
word for word, validation of LimitRange objects, and the plugin over a fake lookup."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import admission, authn, limitranger, registry
from reconcile.core import errors
from reconcile.core.quantities import Quantity

REGISTRY = registry.with_builtins()


def _resource(plural: str) -> registry.Resource:
    found = REGISTRY.get("", "v1", plural)
    assert found is not None
    return found


def _range(*items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "limits", "namespace": "ns"}, "spec": {"limits": [copy.deepcopy(i) for i in items]}}


def _pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def _c(name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "x", "resources": resources}


# --- defaulting ------------------------------------------------------------------------------------

def test_limit_ranges_are_defaulted_as_upstream() -> None:
    item = _range({"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m"},
                   "default": {"cpu": "1"}}, {"type": "Pod", "max": {"cpu": "4"}})
    limitranger.default_limit_range(item)
    container, pod = item["spec"]["limits"]
    assert container["default"] == {"cpu": "1", "memory": "1Gi"}  # max is the default limit where none is given
    assert container["defaultRequest"] == {"cpu": "1", "memory": "1Gi"}  # the default limit is the default request
    assert "default" not in pod and "defaultRequest" not in pod  # only Container items are defaulted
    minimum_only = _range({"type": "Container", "min": {"cpu": "100m"}})
    limitranger.default_limit_range(minimum_only)
    assert minimum_only["spec"]["limits"][0] == {"type": "Container", "min": {"cpu": "100m"},
                                                 "defaultRequest": {"cpu": "100m"}}


def test_pods_get_the_defaults_they_lack_and_an_annotation_saying_so() -> None:
    limits = _range({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                     "defaultRequest": {"cpu": "100m"}})
    pod = _pod(_c("web", requests={"cpu": "50m"}), _c("side", limits={"memory": "1Gi"}), init=(_c("init"),))
    assert limitranger.default_pod(limits, pod)
    web, side = pod["spec"]["containers"]
    assert web["resources"] == {"requests": {"cpu": "50m"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert side["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi", "cpu": "500m"}}
    assert pod["spec"]["initContainers"][0]["resources"] == {"requests": {"cpu": "100m"},
                                                             "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert pod["metadata"]["annotations"][limitranger.ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory limit for container web; cpu request for container side; "
        "cpu limit for container side; cpu request for init container init; cpu, memory limit for init container init")
    untouched = _pod(_c(requests={"cpu": "1"}, limits={"cpu": "1", "memory": "1"}))
    assert not limitranger.default_pod(_range({"type": "Container", "default": {"cpu": "2"}}), untouched)
    assert "annotations" not in untouched["metadata"]


# --- bounds ----------------------------------------------------------------------------------------

CONTAINER_LIMITS = _range({"type": "Container", "max": {"memory": "1Gi"}, "min": {"cpu": "100m"},
                           "maxLimitRequestRatio": {"cpu": "2"}})


@pytest.mark.parametrize(("container", "messages"), [
    (_c(requests={"cpu": "200m"}, limits={"cpu": "400m", "memory": "2Gi"}),
     ["maximum memory usage per Container is 1Gi, but limit is 2Gi"]),
    (_c(requests={"cpu": "50m", "memory": "2Gi"}, limits={"cpu": "100m", "memory": "1Gi"}),
     ["minimum cpu usage per Container is 100m, but request is 50m",
      "maximum memory usage per Container is 1Gi, but request is 2Gi"]),
    (_c(limits={"cpu": "1", "memory": "1Gi"}),
     ["minimum cpu usage per Container is 100m.  No request is specified",
      "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]),
    (_c(requests={"cpu": "200m"}, limits={"memory": "512Mi"}),
     ["cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"]),
    (_c(requests={"cpu": "100m"}, limits={"cpu": "300m", "memory": "1Gi"}),
     ["cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]),
    (_c(requests={"cpu": "200m"}),
     ["maximum memory usage per Container is 1Gi.  No limit is specified",
      "cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"]),
    (_c(requests={"cpu": "100m"}, limits={"cpu": "200m", "memory": "1Gi"}), []),
])
def test_container_bounds(container: dict[str, Any], messages: list[str]) -> None:
    assert limitranger.pod_problems(CONTAINER_LIMITS, _pod(container)) == messages


def test_pod_bounds_use_the_whole_pod() -> None:
    limits = _range({"type": "Pod", "max": {"cpu": "1"}, "min": {"memory": "100Mi"}})
    pod = _pod(_c("a", requests={"cpu": "300m", "memory": "50Mi"}, limits={"cpu": "600m"}),
               _c("b", requests={"cpu": "300m", "memory": "60Mi"}, limits={"cpu": "600m"}))
    assert limitranger.pod_problems(limits, pod) == ["maximum cpu usage per Pod is 1, but limit is 1200m"]


def test_claim_bounds_apply_to_the_storage_request() -> None:
    limits = _range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}})

    def claim(size: str | None) -> dict[str, Any]:
        return {"spec": {"resources": {"requests": {"storage": size} if size else {}}}}

    assert limitranger.claim_problems(limits, claim("500Mi")) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    assert limitranger.claim_problems(limits, claim("20Gi")) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    assert limitranger.claim_problems(limits, claim(None)) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
        "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified"]
    assert limitranger.claim_problems(limits, claim("5Gi")) == []


def test_several_problems_read_as_upstreams_aggregate() -> None:
    assert limitranger.aggregate(["a"]) == "a"
    assert limitranger.aggregate(["a", "b", "a"]) == "[a, b]"


_sizes = st.integers(min_value=1, max_value=4096)


@settings(max_examples=300, deadline=None)
@given(_sizes, _sizes, _sizes, _sizes)
def test_a_container_within_its_bounds_passes_and_outside_them_fails(lo: int, hi: int, request: int, limit: int) -> None:
    limits = _range({"type": "Container", "min": {"memory": f"{lo}Mi"}, "max": {"memory": f"{hi}Mi"}})
    found = limitranger.pod_problems(limits, _pod(_c(requests={"memory": f"{request}Mi"},
                                                     limits={"memory": f"{limit}Mi"})))
    within = lo <= request and lo <= limit and limit <= hi and request <= hi
    assert (found == []) == within


# --- LimitRange validation -------------------------------------------------------------------------

@pytest.mark.parametrize(("items", "messages"), [
    ([{"type": "Container", "min": {"memory": "2Gi"}, "max": {"memory": "1Gi"}}],
     ['spec.limits[0].min[memory]: Invalid value: "2Gi": min value 2Gi is greater than max value 1Gi']),
    ([{"type": "Container", "default": {"cpu": "200m"}, "defaultRequest": {"cpu": "500m"}}],
     ['spec.limits[0].defaultRequest[cpu]: Invalid value: "500m": default request value 500m is greater than '
      "default limit value 200m"]),
    ([{"type": "Pod", "default": {"cpu": "1"}}],
     ["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]),
    ([{"type": "PersistentVolumeClaim", "max": {"cpu": "1"}}],
     ["spec.limits[0].limits: Required value: either minimum or maximum storage value is required, but neither was "
      "provided"]),
    ([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}],
     ['spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1']),
    ([{"type": "Container", "min": {"cpu": "1"}, "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "3"}}],
     ['spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "3": ratio 3 is greater than max/min = 2.000000']),
    ([{"type": "Container", "max": {"cpu": "1"}}, {"type": "Container", "max": {"cpu": "2"}}],
     ['spec.limits[1].type: Duplicate value: "Container"']),
    ([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "default": {"cpu": "500m"}}], []),
])
def test_limit_range_validation(items: list[dict[str, Any]], messages: list[str]) -> None:
    causes = limitranger.validate_limit_range(_range(*items))
    assert [f"{c['field']}: {c['message']}" for c in causes] == messages


# --- the plugin --------------------------------------------------------------------------------------

def _plugin(*ranges: dict[str, Any], requalified: list[dict[str, Any]] | None = None) -> limitranger.LimitRanger:
    async def lookup(namespace: str) -> list[dict[str, Any]]:
        return [r for r in ranges if r["metadata"]["namespace"] == namespace]

    return limitranger.LimitRanger(lookup, requalify=None if requalified is None else requalified.append)


def _attributes(plural: str, obj: dict[str, Any], *, operation: str = admission.CREATE,
                old: dict[str, Any] | None = None) -> admission.Attributes:
    return admission.Attributes(operation, _resource(plural), None, "ns", obj["metadata"].get("name", ""), obj, old,
                                authn.UserInfo("u"), False)


async def test_the_plugin_defaults_then_bounds_a_pod() -> None:
    limits = _range({"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "512Mi"}})
    requalified: list[dict[str, Any]] = []
    plugin = _plugin(limits, requalified=requalified)
    attributes = _attributes("pods", _pod(_c()))
    await plugin.mutate(attributes)
    await plugin.validate(attributes)
    assert attributes.obj["spec"]["containers"][0]["resources"]["limits"] == {"memory": "512Mi"}
    assert requalified == [attributes.obj]  # the server recomputes the QoS class of a defaulted pod
    too_big = _attributes("pods", _pod(_c(limits={"memory": "2Gi"})))
    await plugin.mutate(too_big)
    with pytest.raises(errors.Forbidden) as caught:
        await plugin.validate(too_big)
    assert caught.value.message == 'pods "p" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi'
    assert caught.value.code == 403


async def test_pod_updates_and_other_namespaces_are_left_alone() -> None:
    plugin = _plugin(_range({"type": "Container", "max": {"memory": "1Gi"}}))
    pod = _pod(_c(limits={"memory": "2Gi"}))
    await plugin.validate(_attributes("pods", pod, operation=admission.UPDATE, old=pod))
    elsewhere = _attributes("pods", pod)
    elsewhere.namespace = "other"
    await plugin.validate(elsewhere)


async def test_limit_range_objects_are_defaulted_and_validated_by_the_plugin() -> None:
    plugin = _plugin()
    attributes = _attributes("limitranges", _range({"type": "Container", "max": {"cpu": "1"}}))
    await plugin.mutate(attributes)
    assert attributes.obj["spec"]["limits"][0]["default"] == {"cpu": "1"}
    bad = _attributes("limitranges", _range({"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}))
    with pytest.raises(errors.Invalid, match=r'^LimitRange "limits" is invalid: spec.limits\[0\].min\[cpu\]'):
        await plugin.validate(bad)


async def test_claims_are_bounded_on_create_and_update() -> None:
    plugin = _plugin(_range({"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}))
    claim = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    for operation in (admission.CREATE, admission.UPDATE):
        with pytest.raises(errors.Forbidden, match='^persistentvolumeclaims "data" is forbidden: maximum storage'):
            await plugin.validate(_attributes("persistentvolumeclaims", claim, operation=operation, old=claim))


def test_comparisons_are_in_milli_units_like_upstream() -> None:
    # 150u and 100u are both 1m when rounded up to milli units: upstream lets this request through
    limits = _range({"type": "Container", "min": {"cpu": "150u"}})
    assert limitranger.pod_problems(limits, _pod(_c(requests={"cpu": "100u"}))) == []
    assert str(Quantity.parse("150u")) == "150u"
