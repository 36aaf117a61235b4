"""Defaulting, unknown fields and schema violations, with Kubernetes' wording."""

from __future__ import annotations

import copy

import pytest

from reconcile.api import registry, validation
from reconcile.core import errors


def _res(reg: registry.Registry, group: str, plural: str) -> registry.Resource:
    found = reg.get(group, "v1", plural)
    assert found is not None
    return found


def _invalid(resource: registry.Resource, obj: dict) -> errors.Invalid:
    with pytest.raises(errors.Invalid) as caught:
        validation.prepare(resource, obj)
    return caught.value


def test_realistic_deployment_accepted_and_defaulted(builtin_registry, deployment) -> None:
    assert validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment) == []
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["schedulerName"] == "default-scheduler"
    container = pod["containers"][0]
    assert container["ports"][0]["protocol"] == "TCP"  # nested default inside list items
    assert container["readinessProbe"]["periodSeconds"] == 10
    assert container["livenessProbe"]["periodSeconds"] == 5
    assert spec["template"]["metadata"]["creationTimestamp"] is None  # kubectl rollout undo sends it


def test_strategy_defaulted_when_absent(builtin_registry, deployment) -> None:
    del deployment["spec"]["strategy"]
    validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_realistic_pod_service_configmap_node(builtin_registry) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "p-", "annotations": {"example.com/x": "y"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
            "containers": [{"name": "c", "image": "busybox", "args": ["sleep", "1"], "workingDir": "/",
                            "startupProbe": {"exec": {"command": ["true"]}}}],
            "restartPolicy": "Never",
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "volumes": [{"name": "h", "hostPath": {"path": "/tmp"}}, {"name": "s", "secret": {"secretName": "x"}},
                        {"name": "p", "persistentVolumeClaim": {"claimName": "c"}}],
            "hostNetwork": False,
            "serviceAccountName": "default",
        },
        "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "busybox",
                                          "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    }
    assert validation.prepare(_res(builtin_registry, "", "pods"), pod) == []
    assert pod["spec"]["restartPolicy"] == "Never"
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    validation.prepare(_res(builtin_registry, "", "services"), service)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["sessionAffinity"] == "None"
    assert service["spec"]["ports"][0]["protocol"] == "TCP"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg.v1"}, "data": {"a": "b"}}
    validation.prepare(_res(builtin_registry, "", "configmaps"), cm)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.1.0.0/24"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": 110},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0"}}}
    validation.prepare(_res(builtin_registry, "", "nodes"), node)


def test_unknown_fields_strict_message(builtin_registry, deployment) -> None:
    deployment["spec"]["bogus"] = 1
    with pytest.raises(errors.BadRequest) as caught:
        validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert caught.value.message == ('Deployment in version "v1" cannot be handled as a Deployment: '
                                    'strict decoding error: unknown field "spec.bogus"')


def test_several_unknown_fields_with_list_paths(builtin_registry, deployment) -> None:
    deployment["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    deployment["metadata"]["nope"] = 1
    with pytest.raises(errors.BadRequest) as caught:
        validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert caught.value.message.endswith(
        'strict decoding error: unknown field "metadata.nope", unknown field "spec.template.spec.containers[0].bogus"')


def test_unknown_fields_warn_and_ignore_drop(builtin_registry, deployment) -> None:
    res = _res(builtin_registry, "apps", "deployments")
    warned = copy.deepcopy(deployment)
    warned["spec"]["bogus"] = 1
    assert validation.prepare(res, warned, field_validation="Warn") == ['unknown field "spec.bogus"']
    assert "bogus" not in warned["spec"]
    deployment["spec"]["bogus"] = 1
    assert validation.prepare(res, deployment, field_validation="Ignore") == []
    assert "bogus" not in deployment["spec"]
    with pytest.raises(errors.BadRequest):
        validation.prepare(res, deployment, field_validation="Loose")


def test_each_violation_is_a_cause(builtin_registry, deployment) -> None:
    deployment["spec"]["replicas"] = -1
    deployment["spec"]["template"]["spec"]["restartPolicy"] = "Sometimes"
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    del deployment["spec"]["selector"]
    error = _invalid(_res(builtin_registry, "apps", "deployments"), deployment)
    by_field = {c["field"]: c for c in error.causes}
    assert by_field["spec.replicas"] == {
        "reason": "FieldValueInvalid", "field": "spec.replicas",
        "message": "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"}
    assert by_field["spec.template.spec.restartPolicy"]["message"] == (
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')
    assert by_field["spec.template.spec.restartPolicy"]["reason"] == "FieldValueNotSupported"
    assert by_field["spec.selector"]["reason"] == "FieldValueRequired"
    assert by_field["spec.selector"]["message"] == "Required value"
    port = by_field["spec.template.spec.containers[0].ports[0].containerPort"]
    assert "must be of type integer" in port["message"]
    assert len(error.causes) == 4
    assert error.details["kind"] == "Deployment" and error.details["group"] == "apps"
    assert error.message.startswith('Deployment.apps "web" is invalid: [spec.replicas: Invalid value: -1: ')


def test_selector_must_match_template(builtin_registry, deployment) -> None:
    deployment["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    error = _invalid(_res(builtin_registry, "apps", "deployments"), deployment)
    assert error.causes[0]["field"] == "spec.template.metadata.labels"
    assert "`selector` does not match template `labels`" in error.causes[0]["message"]


def test_duplicate_container_names(builtin_registry, deployment) -> None:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    containers.append(copy.deepcopy(containers[0]))
    error = _invalid(_res(builtin_registry, "apps", "deployments"), deployment)
    assert error.causes[0]["field"] == "spec.template.spec.containers[1].name"
    assert error.causes[0]["reason"] == "FieldValueDuplicate"


def test_int_or_string_and_nulls(builtin_registry, deployment) -> None:
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "50%"
    deployment["spec"]["paused"] = None  # null on a non-nullable field is pruned, as upstream
    validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert "paused" not in deployment["spec"]
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1.5
    _invalid(_res(builtin_registry, "apps", "deployments"), deployment)


@pytest.mark.parametrize(
    ("meta", "field", "reason"),
    [
        ({}, "metadata.name", "FieldValueRequired"),
        ({"name": "Bad_Name"}, "metadata.name", "FieldValueInvalid"),
        ({"name": "x" * 254}, "metadata.name", "FieldValueInvalid"),
        ({"name": "ok", "labels": {"bad key!": "v"}}, "metadata.labels", "FieldValueInvalid"),
        ({"name": "ok", "labels": {"k": "bad value!"}}, "metadata.labels", "FieldValueInvalid"),
        ({"name": "ok", "labels": {"k": "v" * 64}}, "metadata.labels", "FieldValueInvalid"),
        ({"name": "ok", "annotations": {"a/b/c": "v"}}, "metadata.annotations", "FieldValueInvalid"),
        ({"name": "ok", "annotations": {"big": "x" * (256 * 1024)}}, "metadata.annotations", "FieldValueTooLong"),
        # Whole-string matches: a trailing newline is not a valid end of a name or label.
        ({"name": "ok\n"}, "metadata.name", "FieldValueInvalid"),
        ({"name": "ok", "labels": {"k\n": "v"}}, "metadata.labels", "FieldValueInvalid"),
        ({"name": "ok", "labels": {"k": "v\n"}}, "metadata.labels", "FieldValueInvalid"),
        ({"name": "ok", "namespace": "ns\n"}, "metadata.namespace", "FieldValueInvalid"),
    ],
)
def test_metadata_checks(builtin_registry, meta: dict, field: str, reason: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    error = _invalid(_res(builtin_registry, "", "configmaps"), cm)
    assert (error.causes[0]["field"], error.causes[0]["reason"]) == (field, reason)


def test_name_wording(builtin_registry) -> None:
    error = _invalid(_res(builtin_registry, "", "configmaps"), {"metadata": {"name": "Bad"}})
    assert error.causes[0]["message"].startswith('Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist')
    assert error.message.startswith('ConfigMap "Bad" is invalid: metadata.name: Invalid value: "Bad"')
    error = _invalid(_res(builtin_registry, "", "namespaces"), {"metadata": {"name": "a.b"}})
    assert "RFC 1123 label" in error.causes[0]["message"]
    error = _invalid(_res(builtin_registry, "", "services"), {"metadata": {"name": "1abc"}})
    assert "DNS-1035 label" in error.causes[0]["message"]


def test_label_values_must_be_strings(builtin_registry) -> None:
    with pytest.raises(errors.Invalid) as raised:
        validation.prepare(_res(builtin_registry, "", "configmaps"), {"metadata": {"name": "a", "labels": {"k": 1}}})
    assert [c["field"] for c in raised.value.details["causes"]] == ["metadata.labels.k"]


@pytest.mark.parametrize(("metadata", "field"), [
    ({"ownerReferences": ["str"]}, "metadata.ownerReferences[0]"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}, "metadata.ownerReferences[0].uid"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": 7}]},
     "metadata.ownerReferences[0].uid"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "controller": "yes"}]},
     "metadata.ownerReferences[0].controller"),
    ({"ownerReferences": [{"apiVersion": "", "kind": "Pod", "name": "p", "uid": "u"}]},
     "metadata.ownerReferences[0].apiVersion"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": n, "uid": n, "controller": True}
                          for n in ("a", "b")]}, "metadata.ownerReferences"),
    ({"finalizers": [3]}, "metadata.finalizers[0]"),
    ({"finalizers": "example.com/f"}, "metadata.finalizers"),
    ({"labels": ["a"]}, "metadata.labels"),
    ({"annotations": {"a": {"b": "c"}}}, "metadata.annotations.a"),
    ({"managedFields": [{"manager": 1}]}, "metadata.managedFields[0].manager"),
    ({"managedFields": [{"operation": "Delete"}]}, "metadata.managedFields[0].operation"),
    ({"creationTimestamp": "yesterday"}, "metadata.creationTimestamp"),
    ({"generation": 2**64}, "metadata.generation"),
    ({"deletionGracePeriodSeconds": "30"}, "metadata.deletionGracePeriodSeconds"),
])
def test_metadata_is_checked_against_object_meta(builtin_registry, metadata: dict, field: str) -> None:
    """Wrong types and values anywhere in metadata are 422 with the field's path (issue 8): such an
    object must never reach storage, where it would blind every informer decoding it."""
    with pytest.raises(errors.Invalid) as raised:
        validation.prepare(_res(builtin_registry, "", "pods"), {"metadata": {"name": "a", **metadata}, "spec": {}})
    assert field in [c["field"] for c in raised.value.details["causes"]], raised.value.details


def test_metadata_unknown_fields_are_pruned_or_refused(builtin_registry) -> None:
    configmaps = _res(builtin_registry, "", "configmaps")
    with pytest.raises(errors.BadRequest, match='unknown field "metadata.ownerReferences\\[0\\].extra"'):
        validation.prepare(configmaps, {"metadata": {"name": "a", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "extra": 1}]}})
    obj = {"metadata": {"name": "a", "bogus": 1}}
    assert validation.prepare(configmaps, obj, field_validation="Warn") == ['unknown field "metadata.bogus"']
    assert obj["metadata"] == {"name": "a"}


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 1099511627776])
def test_int32_fields_hold_int32_values(builtin_registry, value: int) -> None:
    """`format: int32` is a range (issue 8): replicas of 2^40 once made the controller create pods without bound."""
    deployment = {"metadata": {"name": "d"}, "spec": {
        "replicas": value, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(errors.Invalid) as raised:
        validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert [c["field"] for c in raised.value.details["causes"]] == ["spec.replicas"]


def test_custom_resource(reg) -> None:
    widgets = _res(reg, "example.com", "widgets")
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"color": "red", "extra": {"anything": [1, {"goes": True}]}}, "status": {"kopf": {"x": 1}}}
    assert validation.prepare(widgets, obj) == []
    assert obj["spec"]["size"] == 1
    assert obj["status"] == {"kopf": {"x": 1}}
    obj["spec"]["size"] = 0
    del obj["spec"]["color"]
    error = _invalid(widgets, obj)
    assert {c["field"] for c in error.causes} == {"spec.size", "spec.color"}
    assert error.message.startswith('Widget.example.com "w" is invalid: [')
    obj = {"metadata": {"name": "w"}, "spec": {"color": "red", "bogus": 1}}
    with pytest.raises(errors.BadRequest) as caught:
        validation.prepare(widgets, obj)
    assert caught.value.message == ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
                                    'unknown field "spec.bogus"')


def test_crd_objects_validate(builtin_registry) -> None:
    from tests.api_unit import samples

    crd = copy.deepcopy(samples.WIDGETS_CRD)
    res = _res(builtin_registry, "apiextensions.k8s.io", "customresourcedefinitions")
    assert validation.prepare(res, crd) == []
    assert crd["spec"]["versions"][0]["schema"] == samples.WIDGETS_CRD["spec"]["versions"][0]["schema"]


def test_embedded_resource(reg) -> None:
    crd = copy.deepcopy(reg.crd("widgets.example.com"))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["template"] = {
        "type": "object", "x-kubernetes-embedded-resource": True,
        "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}
    widgets = reg.add_crd(crd)[0]
    obj = {"metadata": {"name": "w"}, "spec": {"color": "red", "template": {
        "apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"n": 1}}}}
    validation.prepare(widgets, obj)
    assert obj["spec"]["template"]["kind"] == "Thing"


def test_template_metadata_is_object_meta(builtin_registry, deployment) -> None:
    deployment["spec"]["template"]["metadata"]["bogus"] = "x"
    with pytest.raises(errors.BadRequest) as caught:
        validation.prepare(_res(builtin_registry, "apps", "deployments"), deployment)
    assert caught.value.message.endswith('unknown field "spec.template.metadata.bogus"')
