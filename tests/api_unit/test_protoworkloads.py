"""Protobuf tables of the workload kinds (`api.protoworkloads`): what `kubectl create deployment|
service` sends decodes to what `--dry-run=client -o json` prints, IntOrString and embedded structs
take their JSON shapes, a partial table refuses (400 naming the field and message) what it does not
read instead of dropping it, and protobuf DeleteOptions read as JSON ones do."""

from __future__ import annotations

from typing import Any

import pytest

from reconcile.api import deleteoptions, protobodies, protometa, protoworkloads
from reconcile.core import errors, protomessages, protowire
from reconcile.core.protomessages import INT32, STRING, Field, Message
from tests.api_unit import protoencode as pe


def _read(api_version: str, kind: str, body: bytes) -> dict[str, Any]:
    read = protobodies.decoder_for(api_version, kind)
    assert read is not None
    return read(body)


def _zeros(*numbers: int, varints: tuple[int, ...] = ()) -> bytes:
    """gogo's always-sent zero values: empty strings and 0 varints."""
    return b"".join(pe.length_delimited(n, b"") for n in numbers) + b"".join(pe.tag(n, 0) + b"\x00" for n in varints)


DRY_RUN_DEPLOYMENT = {  # `kubectl create deployment web --image=busybox:1.36 --replicas=2 --port=8080 -- sleep 3600`
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "busybox", "image": "busybox:1.36",
                                                   "command": ["sleep", "3600"], "ports": [{"containerPort": 8080}],
                                                   "resources": {}}]}},
             "strategy": {}}}


def test_kubectl_create_deployment_bytes() -> None:
    """As gogo writes it: every non-pointer scalar sent (zero ones too), `resources {}`, `strategy
    {type ""}`, the zero creationTimestamp and a zero status (wire notes §3.5)."""
    port = pe.length_delimited(1, b"") + pe.tag(2, 0) + b"\x00" + pe.tag(3, 0) + pe.varint(8080) \
        + _zeros(4, 5)
    container = pe.length_delimited(1, b"busybox") + pe.length_delimited(2, b"busybox:1.36") \
        + pe.length_delimited(3, b"sleep") + pe.length_delimited(3, b"3600") + _zeros(5) \
        + pe.length_delimited(6, port) + pe.length_delimited(8, b"") + _zeros(13, 14, 20, varints=(16, 17, 18))
    pod_spec = pe.length_delimited(2, container) + _zeros(3, 6, 8, 9, 10, 16, 17, 19, 24, varints=(11, 12, 13))
    labels = pe.length_delimited(11, pe.length_delimited(1, b"app") + pe.length_delimited(2, b"web"))
    meta = pe.length_delimited(1, b"web") + _zeros(2, 3, 4, 5, 6, varints=(7,)) + pe.length_delimited(8, b"") + labels
    template = pe.length_delimited(1, _zeros(1, 2, 3, 4, 5, 6, varints=(7,)) + pe.length_delimited(8, b"") + labels) \
        + pe.length_delimited(2, pod_spec)
    selector = pe.length_delimited(1, pe.length_delimited(1, b"app") + pe.length_delimited(2, b"web"))
    spec = pe.tag(1, 0) + b"\x02" + pe.length_delimited(2, selector) + pe.length_delimited(3, template) \
        + pe.length_delimited(4, pe.length_delimited(1, b"")) + _zeros(varints=(5, 7))
    status = _zeros(varints=(1, 2, 3, 4, 5, 7))
    raw = pe.length_delimited(1, meta) + pe.length_delimited(2, spec) + pe.length_delimited(3, status)
    assert _read("apps/v1", "Deployment", pe.envelope("apps/v1", "Deployment", raw)) == {
        "apiVersion": "apps/v1", "kind": "Deployment", **DRY_RUN_DEPLOYMENT}


def test_the_encoder_writes_what_the_decoder_reads() -> None:
    body = pe.body("apps/v1", "Deployment", DRY_RUN_DEPLOYMENT)
    assert _read("apps/v1", "Deployment", body) == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    **DRY_RUN_DEPLOYMENT}


def test_a_statefulset_with_claim_templates_reads_back() -> None:
    obj = {"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "local"}}],
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1, "maxUnavailable": "50%"}},
        "revisionHistoryLimit": 3, "minReadySeconds": 5,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
        "ordinals": {"start": 1}}}
    assert _read("apps/v1", "StatefulSet", pe.body("apps/v1", "StatefulSet", obj)) == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", **obj}
    # a claim's dataSource (field 7) is not read: refused, never dropped
    spec = pe.length_delimited(7, pe.length_delimited(2, b"Snap"))
    claim = pe.length_delimited(2, spec)
    with pytest.raises(errors.BadRequest):
        _read("apps/v1", "StatefulSet", pe.envelope("apps/v1", "StatefulSet", pe.length_delimited(
            2, pe.length_delimited(4, claim))))


def test_a_service_port_target_is_an_int_or_a_string() -> None:
    """`--tcp=80:8080` sends targetPort {type 0, intVal 8080, strVal ""} (`08 00 10 90 3f 1a 00`)."""
    captured = pe.tag(1, 0) + b"\x00" + pe.tag(2, 0) + pe.varint(8080) + pe.length_delimited(3, b"")
    assert protomessages.decode(protometa.INT_OR_STRING_MESSAGE, captured) == 8080
    named = pe.tag(1, 0) + b"\x01" + pe.tag(2, 0) + b"\x00" + pe.length_delimited(3, b"http")
    assert protomessages.decode(protometa.INT_OR_STRING_MESSAGE, named) == "http"
    assert protomessages.decode(protometa.INT_OR_STRING_MESSAGE, b"") == 0
    obj = {"metadata": {"name": "np", "labels": {"app": "np"}},
           "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                              {"name": "web", "protocol": "TCP", "port": 443, "targetPort": "https"}],
                    "selector": {"app": "np"}, "type": "NodePort", "ipFamilyPolicy": "SingleStack",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}}
    assert _read("v1", "Service", pe.body("v1", "Service", obj)) == {"apiVersion": "v1", "kind": "Service", **obj}
    with pytest.raises(errors.BadRequest, match=r"spec.ports\[0\].targetPort: IntOrString type 2 is neither"):
        _read("v1", "Service", pe.envelope("v1", "Service", pe.length_delimited(2, pe.length_delimited(
            1, pe.length_delimited(4, pe.tag(1, 0) + b"\x02")))))


def test_embedded_structs_sit_in_the_parent_object() -> None:
    """ConfigMapKeySelector embeds LocalObjectReference: its `name` is the selector's in JSON."""
    env = [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a", "optional": True}}},
           {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}]
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{
        "name": "c", "image": "busybox", "env": env, "envFrom": [{"prefix": "X_", "secretRef": {"name": "s"}}],
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "64Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]}],
        "nodeName": "n1", "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 0}],
        "priority": 0, "nodeSelector": {"disk": "ssd"}}}
    assert _read("v1", "Pod", pe.body("v1", "Pod", pod)) == {"apiVersion": "v1", "kind": "Pod", **pod}
    selector = pe.length_delimited(1, pe.length_delimited(1, b"cfg")) + pe.length_delimited(2, b"a")
    assert protomessages.decode(protoworkloads.ENV_VAR_SOURCE, pe.length_delimited(3, selector)) == {
        "configMapKeyRef": {"name": "cfg", "key": "a"}}


def _pod_with_container(extra: bytes, index: int = 0) -> bytes:
    plain = pe.encode(protoworkloads.CONTAINER, {"name": "c", "image": "busybox"})
    containers = b"".join(pe.length_delimited(2, plain) for _ in range(index)) \
        + pe.length_delimited(2, plain + extra)
    template = pe.length_delimited(2, containers)
    return pe.envelope("apps/v1", "Deployment", pe.length_delimited(2, pe.length_delimited(3, template)))


def test_a_partial_table_refuses_what_it_does_not_read() -> None:
    """A lifecycle hook (Container field 12) is upstream's, not read here: a 400 naming where it
    was, never a silent drop. A number upstream does not define stays skipped, as gogo skips it."""
    context = pe.length_delimited(12, pe.length_delimited(1, b""))
    with pytest.raises(errors.BadRequest) as refused:
        _read("apps/v1", "Deployment", _pod_with_container(context, index=1))
    assert str(refused.value.message) == (
        "the body of the request could not be decoded as a protobuf Deployment: spec.template.spec.containers[1]: "
        "field 12 of Container is not read from protobuf by this server; send JSON")
    selinux = pe.length_delimited(15, pe.length_delimited(3, pe.length_delimited(1, b"user")))
    with pytest.raises(errors.BadRequest, match=r"containers\[0\].securityContext: field 3 of SecurityContext is not"):
        _read("apps/v1", "Deployment", _pod_with_container(selinux))
    nfs = pe.length_delimited(1, pe.length_delimited(1, b"v") + pe.length_delimited(2, pe.length_delimited(
        7, pe.length_delimited(1, b"server"))))
    with pytest.raises(errors.BadRequest, match=r"spec.volumes\[0\]: field 7 of VolumeSource is not read from"):
        _read("v1", "Pod", pe.envelope("v1", "Pod", pe.length_delimited(2, nfs)))
    dns = pe.envelope("v1", "Pod", pe.length_delimited(2, pe.length_delimited(26, b"")))
    with pytest.raises(errors.BadRequest, match=r"spec: field 26 of PodSpec is not read from protobuf"):
        _read("v1", "Pod", dns)
    skipped = _read("apps/v1", "Deployment", _pod_with_container(pe.length_delimited(99, b"future")))
    assert skipped["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "busybox"}]


def test_probes_and_volumes_take_their_json_shapes() -> None:
    """Probe embeds its handler and Volume its source: their fields sit in the parent in JSON."""
    pod = {"metadata": {"name": "p"}, "spec": {
        "volumes": [{"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "a", "path": "a.conf"}],
                                                  "defaultMode": 420}},
                    {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
                    {"name": "token", "secret": {"secretName": "s", "optional": False}}],
        "containers": [{"name": "c", "image": "nginx",
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                          "periodSeconds": 5},
                        "readinessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 1},
                        "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}],
                        "securityContext": {"capabilities": {"drop": ["ALL"]}, "privileged": False,
                                            "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                            "seccompProfile": {"type": "RuntimeDefault"}}}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchLabels": {"app": "web"}}}],
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000, 4000],
                            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}}}
    assert _read("v1", "Pod", pe.body("v1", "Pod", pod)) == {"apiVersion": "v1", "kind": "Pod", **pod}


def test_partial_tables_name_only_upstream_numbers() -> None:
    for message in (protoworkloads.CONTAINER, protoworkloads.POD_SPEC):
        protomessages.check_table(message)
        assert message.upstream and {f.number for f in message.fields} < message.upstream
    partial = Message("M", (Field(1, "a", STRING),), upstream=frozenset({1, 2}))
    assert protomessages.decode(partial, pe.length_delimited(1, b"x") + pe.tag(3, 0) + b"\x01") == {"a": "x"}
    with pytest.raises(protomessages.NotRead, match="the object: field 2 of M is not read"):
        protomessages.decode(partial, pe.tag(2, 0) + b"\x01")


@pytest.mark.parametrize("raw, needle", [
    (pe.length_delimited(2, pe.length_delimited(1, b"\x02")), "spec.replicas: expected a varint, got wire type 2"),
    (pe.length_delimited(2, pe.tag(1, 0) + pe.varint(1 << 40)), "spec.replicas: 1099511627776 is out of range"),
    (pe.length_delimited(2, pe.length_delimited(3, pe.length_delimited(2, pe.length_delimited(2, b"\x0a\x09ab"))))[:-1],
     "truncated"),
    (pe.length_delimited(2, pe.length_delimited(3, pe.length_delimited(2, pe.length_delimited(2, b"") * 120_000))),
     "spec.template.spec: more than 100000 fields"),
])
def test_hostile_deployments_are_a_400_naming_the_field(raw: bytes, needle: str) -> None:
    with pytest.raises(errors.BadRequest) as refused:
        _read("apps/v1", "Deployment", pe.envelope("apps/v1", "Deployment", raw))
    assert needle in refused.value.message


def test_time_takes_its_json_shape() -> None:
    assert protomessages.decode(protometa.TIME_MESSAGE, b"") is None
    assert protomessages.decode(protometa.TIME_MESSAGE, pe.tag(1, 0) + pe.varint(1_700_000_000)) == \
        "2023-11-14T22:13:20Z"
    with pytest.raises(protowire.WireError, match="not a time"):
        protomessages.decode(protometa.TIME_MESSAGE, pe.tag(1, 0) + pe.varint(1 << 62))


def test_delete_options_in_protobuf_read_as_json_ones() -> None:
    """drain's pod DELETE: an empty message, or gracePeriodSeconds (field 1) alone."""
    empty = protobodies.delete_options(pe.envelope("v1", "DeleteOptions", b""))
    assert deleteoptions.normalized(empty) == deleteoptions.normalized({})
    options = {"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"}, "propagationPolicy": "Foreground",
               "dryRun": ["All"], "ignoreStoreReadErrorWithClusterBreakingPotential": False}
    decoded = protobodies.delete_options(pe.envelope("v1", "DeleteOptions", pe.encode(protometa.DELETE_OPTIONS,
                                                                                       options)))
    assert deleteoptions.normalized(decoded) == deleteoptions.normalized({"apiVersion": "v1", **options})
    with pytest.raises(errors.BadRequest, match="DeleteOptions: gracePeriodSeconds: expected a varint"):
        protobodies.delete_options(pe.envelope("v1", "DeleteOptions", pe.length_delimited(1, b"")))
    wrong = protobodies.delete_options(pe.envelope("v1", "Pod", b""))
    with pytest.raises(errors.BadRequest, match="must be DeleteOptions"):
        deleteoptions.normalized(wrong)


def test_int32_fields_are_int32() -> None:
    kinds = {f.name: f.type for f in protoworkloads.SERVICE_PORT.fields}
    assert (kinds["port"], kinds["nodePort"]) == (INT32, INT32)


_TEMPLATE = {"metadata": {"creationTimestamp": None}, "spec": {"containers": [
    {"name": "j1", "image": "busybox:1.36", "command": ["echo", "hi"], "resources": {}}], "restartPolicy": "Never"}}


@pytest.mark.parametrize("api_version, kind, printed", [  # `kubectl create ... --dry-run=client -o json`
    ("batch/v1", "Job", {"metadata": {"name": "j1"}, "spec": {"template": _TEMPLATE}}),
    ("batch/v1", "CronJob", {"metadata": {"name": "c1"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"name": "c1", "creationTimestamp": None},
                                                   "spec": {"template": _TEMPLATE}}}}),
    ("policy/v1", "PodDisruptionBudget", {"metadata": {"name": "p1"}, "spec": {
        "minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}),
    ("policy/v1", "PodDisruptionBudget", {"metadata": {"name": "p2"}, "spec": {"maxUnavailable": 1}}),
    ("scheduling.k8s.io/v1", "PriorityClass", {"metadata": {"name": "hi"}, "value": 1000, "description": "d",
                                               "preemptionPolicy": "Never"}),
])
def test_the_other_generators_decode_to_what_dry_run_prints(api_version: str, kind: str,
                                                            printed: dict[str, Any]) -> None:
    """PriorityClass, which this server does not serve yet (its endpoints are a 404: the table is
    ready), and Job, CronJob and PodDisruptionBudget (served; tests/compat/test_jobs.py and
    tests/api/test_kubectl_protobuf.py post kubectl's)."""
    assert _read(api_version, kind, pe.body(api_version, kind, printed)) == {
        "apiVersion": api_version, "kind": kind, **printed}


def test_a_job_with_a_pod_failure_policy_is_refused() -> None:
    raw = pe.length_delimited(2, pe.length_delimited(11, pe.length_delimited(1, b"")))
    with pytest.raises(errors.BadRequest, match="spec: field 11 of JobSpec is not read from protobuf"):
        _read("batch/v1", "Job", pe.envelope("batch/v1", "Job", raw))


def test_audit_records_a_protobuf_delete_options_as_json() -> None:
    body = pe.envelope("v1", "DeleteOptions", pe.encode(protometa.DELETE_OPTIONS, {"gracePeriodSeconds": 0}))
    assert protobodies.recorded(body) == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
    assert protobodies.recorded(pe.envelope("v1", "DeleteOptions", pe.length_delimited(1, b""))) is None


def test_the_projected_service_account_volume_reads_back() -> None:
    """What the service-account admission injects into every pod, so a pod read and sent back
    (`kubectl debug --copy-to`) is accepted; a downward API volume too. A cluster trust bundle
    (VolumeProjection field 5, alpha) is refused, not dropped."""
    from reconcile.api import serviceaccount_admission

    projected = serviceaccount_admission.token_volume("kube-api-access-abcde")
    assert {kind for source in projected["projected"]["sources"] for kind in source} == {
        "serviceAccountToken", "configMap", "downwardAPI"}
    pod = {"metadata": {"name": "p"}, "spec": {
        "volumes": [projected,
                    {"name": "info", "downwardAPI": {"defaultMode": 292, "items": [
                        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu",
                                                             "divisor": "1m"}, "mode": 256},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "both", "projected": {"sources": [
                        {"secret": {"name": "s", "optional": True}},
                        {"serviceAccountToken": {"audience": "vault", "path": "vault-token"}}]}}],
        "containers": [{"name": "c", "image": "busybox"}]}}
    assert _read("v1", "Pod", pe.body("v1", "Pod", pod)) == {"apiVersion": "v1", "kind": "Pod", **pod}
    bundle = pe.length_delimited(1, pe.length_delimited(1, b"v") + pe.length_delimited(2, pe.length_delimited(
        26, pe.length_delimited(1, pe.length_delimited(5, pe.length_delimited(1, b"b"))))))
    with pytest.raises(errors.BadRequest, match=r"spec.volumes\[0\].projected.sources\[0\]: field 5 of "
                                                r"VolumeProjection is not read"):
        _read("v1", "Pod", pe.envelope("v1", "Pod", pe.length_delimited(2, bundle)))
    protomessages.check_table(protoworkloads.VOLUME_PROJECTION)
