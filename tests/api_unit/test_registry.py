"""The shipped CRDs load, and the registry serves and validates CRDs."""

from __future__ import annotations

import copy

import pytest

from reconcile.api import registry, structural
from reconcile.core import errors
from tests.api_unit import samples

EXPECTED = {
    ("", "namespaces"): ("Namespace", False, ("ns",)),
    ("", "nodes"): ("Node", False, ("no",)),
    ("", "pods"): ("Pod", True, ("po",)),
    ("", "services"): ("Service", True, ("svc",)),
    ("", "endpoints"): ("Endpoints", True, ("ep",)),
    ("", "persistentvolumes"): ("PersistentVolume", False, ("pv",)),
    ("", "persistentvolumeclaims"): ("PersistentVolumeClaim", True, ("pvc",)),
    ("", "configmaps"): ("ConfigMap", True, ("cm",)),
    ("", "secrets"): ("Secret", True, ()),
    ("", "events"): ("Event", True, ("ev",)),
    ("", "resourcequotas"): ("ResourceQuota", True, ("quota",)),
    ("", "limitranges"): ("LimitRange", True, ("limits",)),
    ("", "serviceaccounts"): ("ServiceAccount", True, ("sa",)),
    ("apps", "deployments"): ("Deployment", True, ("deploy",)),
    ("apps", "replicasets"): ("ReplicaSet", True, ("rs",)),
    ("apps", "statefulsets"): ("StatefulSet", True, ("sts",)),
    ("apps", "controllerrevisions"): ("ControllerRevision", True, ()),
    ("batch", "jobs"): ("Job", True, ()),
    ("batch", "cronjobs"): ("CronJob", True, ("cj",)),
    ("coordination.k8s.io", "leases"): ("Lease", True, ()),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("CustomResourceDefinition", False, ("crd", "crds")),
    ("rbac.authorization.k8s.io", "roles"): ("Role", True, ()),
    ("rbac.authorization.k8s.io", "clusterroles"): ("ClusterRole", False, ()),
    ("rbac.authorization.k8s.io", "rolebindings"): ("RoleBinding", True, ()),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ("ClusterRoleBinding", False, ()),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", False, ()),
    ("authorization.k8s.io", "subjectaccessreviews"): ("SubjectAccessReview", False, ()),
    ("authorization.k8s.io", "localsubjectaccessreviews"): ("LocalSubjectAccessReview", True, ()),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): ("SelfSubjectRulesReview", False, ()),
    ("authentication.k8s.io", "selfsubjectreviews"): ("SelfSubjectReview", False, ()),
    ("authentication.k8s.io", "tokenreviews"): ("TokenReview", False, ()),
    ("certificates.k8s.io", "certificatesigningrequests"): ("CertificateSigningRequest", False, ("csr",)),
    ("discovery.k8s.io", "endpointslices"): ("EndpointSlice", True, ()),
    ("policy", "poddisruptionbudgets"): ("PodDisruptionBudget", True, ("pdb",)),
    ("scheduling.k8s.io", "priorityclasses"): ("PriorityClass", False, ("pc",)),
    ("networking.k8s.io", "ingresses"): ("Ingress", True, ("ing",)),
    ("networking.k8s.io", "ingressclasses"): ("IngressClass", False, ()),
    ("autoscaling", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True, ("hpa",)),
    ("charts.reconcile.dev", "releases"): ("Release", True, ()),
    ("gitops.reconcile.dev", "gitrepositories"): ("GitRepository", True, ("gitrepo",)),
    ("storage.k8s.io", "storageclasses"): ("StorageClass", False, ("sc",)),
    ("gitops.reconcile.dev", "syncs"): ("Sync", True, ()),
    ("gitops.reconcile.dev", "receivers"): ("Receiver", True, ()),
}
# Built-in kinds whose one version is not v1: (group, version, plural) -> (kind, namespaced)
EXPECTED_OTHER_VERSIONS = {
    ("metrics.k8s.io", "v1beta1", "nodes"): ("NodeMetrics", False),
    ("metrics.k8s.io", "v1beta1", "pods"): ("PodMetrics", True),
}


def test_every_builtin_crd_loads(builtin_registry: registry.Registry) -> None:
    docs = registry.builtin_crds()
    assert len(docs) == len(EXPECTED) + len(EXPECTED_OTHER_VERSIONS)
    for doc in docs:
        registry.validate_crd(doc)
        for version in doc["spec"]["versions"]:  # what serving them skips (registry.shipped_schemas)
            assert structural.schema_problem(version["schema"]["openAPIV3Schema"]) is None, doc["metadata"]["name"]

    for (group, plural), (kind, namespaced, shorts) in EXPECTED.items():
        res = builtin_registry.get(group, "v1", plural)
        assert res is not None, plural
        assert (res.kind, res.namespaced, res.short_names) == (kind, namespaced, shorts)
        assert res.builtin
        assert res.list_kind == kind + "List"
        assert builtin_registry.by_kind(res.api_version, kind) is res
    for (group, version, plural), (kind, namespaced) in EXPECTED_OTHER_VERSIONS.items():
        res = builtin_registry.get(group, version, plural)
        assert res is not None and res.builtin and (res.kind, res.namespaced) == (kind, namespaced)


def test_a_changed_shipped_schema_is_checked_again() -> None:
    doc = next(d for d in registry.builtin_crds() if d["metadata"]["name"] == "gitrepositories.gitops.reconcile.dev")
    doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = "no-such-type"
    with pytest.raises(errors.ApiError, match="openAPIV3Schema"):
        registry.validate_crd(doc)


def test_names_and_properties(builtin_registry: registry.Registry) -> None:
    deploy = builtin_registry.get("apps", "v1", "deployments")
    pod = builtin_registry.get("", "v1", "pods")
    assert deploy.api_version == "apps/v1" and deploy.group_resource == "deployments.apps"
    assert deploy.crd_name == "deployments.apps"
    assert pod.api_version == "v1" and pod.group_resource == "pods" and pod.crd_name == "pods"
    assert deploy.scale == registry.ScaleSpec(".spec.replicas", ".status.replicas", ".status.selector")
    assert pod.has_status and pod.scale is None
    for plural in ("pods", "services"):
        assert builtin_registry.get("", "v1", plural).categories == ("all",)
    for plural in ("deployments", "replicasets"):
        assert builtin_registry.get("apps", "v1", plural).categories == ("all",)
    assert not builtin_registry.get("", "v1", "configmaps").has_status


def test_patch_metadata_follows_upstream_struct_tags(builtin_registry: registry.Registry) -> None:
    pod_spec = builtin_registry.get("", "v1", "pods").schema["properties"]["spec"]["properties"]
    containers = pod_spec["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    container = containers["items"]["properties"]
    assert container["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert container["volumeMounts"]["x-kubernetes-patch-merge-key"] == "mountPath"
    assert container["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert "x-kubernetes-patch-strategy" not in pod_spec["tolerations"]
    status = builtin_registry.get("apps", "v1", "deployments").schema["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-patch-merge-key"] == "type"


def test_user_crd_added_and_removed() -> None:
    reg = registry.with_builtins()
    before = reg.revision
    added = reg.add_crd(copy.deepcopy(samples.WIDGETS_CRD))
    assert [r.kind for r in added] == ["Widget"]
    assert not added[0].builtin
    assert reg.revision > before
    assert reg.group_versions()["example.com"] == ["v1"]
    removed = reg.remove_crd("widgets.example.com")
    assert removed == added
    assert reg.get("example.com", "v1", "widgets") is None
    assert "example.com" not in reg.group_versions()


def test_versions_preferred_first() -> None:
    crd = copy.deepcopy(samples.WIDGETS_CRD)
    base = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [
        {**copy.deepcopy(base), "name": "v1alpha1", "storage": False},
        {**copy.deepcopy(base), "name": "v2beta1", "storage": False},
        {**copy.deepcopy(base), "name": "v1", "storage": True},
        {**copy.deepcopy(base), "name": "v3", "served": False, "storage": False},
    ]
    reg = registry.Registry()
    assert len(reg.add_crd(crd)) == 3
    assert reg.group_versions()["example.com"] == ["v1", "v2beta1", "v1alpha1"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["spec"].update(group="nodots"), "spec.group"),
        (lambda c: c["metadata"].update(name="wrong.example.com"), "metadata.name"),
        (lambda c: c["spec"].update(scope="Galaxy"), "spec.scope"),
        (lambda c: c["spec"]["versions"][0].update(storage=False), "spec.versions"),
        (lambda c: c["spec"]["versions"][0].pop("schema"), "spec.versions[0].schema.openAPIV3Schema"),
        (lambda c: c["spec"]["names"].pop("kind"), "spec.names.kind"),
    ],
)
def test_bad_crds_rejected(mutate, field: str) -> None:
    crd = copy.deepcopy(samples.WIDGETS_CRD)
    mutate(crd)
    with pytest.raises(errors.Invalid) as caught:
        registry.Registry().add_crd(crd)
    assert field in [c["field"] for c in caught.value.causes]
    assert caught.value.details["kind"] == "CustomResourceDefinition"


def test_conflicting_crd_rejected(reg: registry.Registry) -> None:
    crd = copy.deepcopy(samples.WIDGETS_CRD)
    crd["metadata"]["name"] = "gadgets.example.com"
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Widget"}
    with pytest.raises(errors.Invalid) as caught:
        reg.add_crd(crd)
    assert caught.value.causes[0]["field"] == "spec.names.kind"
    assert reg.get("example.com", "v1", "gadgets") is None
