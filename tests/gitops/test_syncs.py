"""sync_once against a real (secured) API server: apply, validate, prune, order, conflicts, health,
and a run killed half way then run again. Trees are published straight into an ArtifactStore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconcile.core import errors
from reconcile.gitops import artifacts, plan, syncs
from tests.gitops import syncsupport as s


@pytest.fixture
def store(tmp_path: Path) -> artifacts.ArtifactStore:
    return artifacts.ArtifactStore(tmp_path / "artifacts")


async def _setup(ac: Any, store: artifacts.ArtifactStore, files: dict[str, str], **spec: Any
                 ) -> tuple[str, artifacts.Artifact]:
    ns = await s.namespace(ac)
    artifact = s.publish(store, ns, "repo", files)
    await s.git_repository(ac, ns, "repo", artifact)
    await s.sync(ac, ns, "app", "repo", **spec)
    return ns, artifact


async def _run(ac: Any, store: artifacts.ArtifactStore, ns: str, name: str = "app", **kw: Any) -> syncs.Outcome:
    return await syncs.sync_once(ac, store, await s.get_sync(ac, ns, name), **kw)


async def _revise(ac: Any, store: artifacts.ArtifactStore, ns: str, files: dict[str, str]) -> artifacts.Artifact:
    artifact = s.publish(store, ns, "repo", files)
    await s.git_repository(ac, ns, "repo", artifact)
    return artifact


async def test_applies_the_tree_and_reports_ready_as_flux(ac: Any, store: artifacts.ArtifactStore) -> None:
    files = {"apps/a.yaml": s.configmap("a", {"k": "1"}) + "---\n" + s.configmap("b", {"k": "2"}),
             "apps/sub/c.yml": s.configmap("c", {"k": "3"}), "apps/README.md": "not a manifest",
             "other/d.yaml": s.configmap("d", {"k": "4"})}
    ns, artifact = await _setup(ac, store, files, path="apps")
    outcome = await _run(ac, store, ns)
    assert outcome.ready, outcome.message
    for name, value in (("a", "1"), ("b", "2"), ("c", "3")):
        cm = await ac.get("v1", "configmaps", name, namespace=ns)
        assert cm["data"] == {"k": value}
        assert cm["metadata"]["labels"][plan.OWNER_NAME] == "app"
        assert cm["metadata"]["labels"][plan.OWNER_NAMESPACE] == ns
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "d", namespace=ns)  # outside spec.path
    sync = await s.get_sync(ac, ns, "app")
    status = sync["status"]
    assert status["lastAppliedRevision"] == status["lastAttemptedRevision"] == artifact.revision
    assert status["observedGeneration"] == sync["metadata"]["generation"]
    ready = s.condition(sync, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "ReconciliationSucceeded"
    assert ready["message"] == f"Applied revision: {artifact.revision}"
    assert s.condition(sync, "Reconciling") is None and s.condition(sync, "Stalled") is None
    assert s.inventory(sync) == {("ConfigMap", ns, "a"), ("ConfigMap", ns, "b"), ("ConfigMap", ns, "c")}
    # again, unchanged: converges to the same, the transition time of Ready kept
    again = await _run(ac, store, ns)
    assert again.ready and again.pruned == []
    assert s.condition(await s.get_sync(ac, ns, "app"), "Ready")["lastTransitionTime"] == ready["lastTransitionTime"]


async def test_a_bad_document_applies_nothing_and_the_last_good_revision_keeps_running(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    ns, good = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"})})
    assert (await _run(ac, store, ns)).ready
    # revision 2 changes a, adds b, and has a document the server refuses (data must map to strings)
    bad_doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  k: [1, 2]\n"
    bad = await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "2"}),
                                        "z.yaml": s.configmap("b", {"k": "new"}) + "---\n" + bad_doc})
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and outcome.reason == "ReconciliationFailed"
    assert "z.yaml (document 2)" in outcome.message and "ConfigMap" in outcome.message and "bad" in outcome.message
    assert (await ac.get("v1", "configmaps", "a", namespace=ns))["data"] == {"k": "1"}  # nothing of rev 2 applied
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "b", namespace=ns)
    sync = await s.get_sync(ac, ns, "app")
    assert sync["status"]["lastAppliedRevision"] == good.revision
    assert sync["status"]["lastAttemptedRevision"] == bad.revision
    ready, stalled = s.condition(sync, "Ready"), s.condition(sync, "Stalled")
    assert ready["status"] == "False" and "z.yaml (document 2)" in ready["message"]
    assert stalled is not None and stalled["status"] == "True"
    assert s.inventory(sync) == {("ConfigMap", ns, "a")}
    # invalid YAML: named with its line; still nothing applied
    await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "3"}), "y.yaml": "a: [unclosed\n"})
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "BuildFailed" and "y.yaml: invalid YAML" in outcome.message
    # an unknown kind: BuildFailed naming file, document and kind
    await _revise(ac, store, ns, {"a.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "BuildFailed" and 'a.yaml (document 1): no matches for kind "Widget"' in outcome.message
    # the same object twice
    await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "3"}), "b.yaml": s.configmap("a", {"k": "4"})})
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "BuildFailed" and "also defined in a.yaml (document 1)" in outcome.message
    assert (await ac.get("v1", "configmaps", "a", namespace=ns))["data"] == {"k": "1"}
    # a fix commit recovers: Ready, Stalled gone
    fixed = await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "5"})})
    assert (await _run(ac, store, ns)).ready
    sync = await s.get_sync(ac, ns, "app")
    assert sync["status"]["lastAppliedRevision"] == fixed.revision and s.condition(sync, "Stalled") is None
    assert (await ac.get("v1", "configmaps", "a", namespace=ns))["data"] == {"k": "5"}


async def test_dry_runs_go_concurrently_yet_the_first_bad_document_in_order_is_reported(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    """Many documents, two bad ones: nothing applied, and the message names the first of them
    whichever answer came back first; a good revision of the same size then applies in full."""
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata:\n  k: [1, 2]\n"
    files = {f"cm{i:02}.yaml": s.configmap(f"c{i:02}", {"k": "1"}) for i in range(40)}
    files["cm10.yaml"], files["cm30.yaml"] = bad.format("bad10"), bad.format("bad30")
    ns, _ = await _setup(ac, store, files)
    for _ in range(3):
        outcome = await _run(ac, store, ns)
        assert not outcome.ready and "cm10.yaml (document 1)" in outcome.message, outcome.message
    ours = {f"c{i:02}" for i in range(40)}
    assert not ours & {i["metadata"]["name"] for i in (await ac.list("v1", "configmaps", namespace=ns))["items"]}
    good = {f"cm{i:02}.yaml": s.configmap(f"c{i:02}", {"k": "2"}) for i in range(40)}
    await _revise(ac, store, ns, good)
    assert (await _run(ac, store, ns)).ready
    items = [i for i in (await ac.list("v1", "configmaps", namespace=ns))["items"] if i["metadata"]["name"] in ours]
    assert len(items) == 40
    assert all(i["data"] == {"k": "2"} for i in items)


async def test_a_missing_source_or_artifact_is_artifact_failed_and_not_stalled(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    ns = await s.namespace(ac)
    await s.sync(ac, ns, "app", "nowhere")
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "ArtifactFailed" and f"GitRepository/{ns}/nowhere" in outcome.message
    await s.git_repository(ac, ns, "nowhere", None)
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "ArtifactFailed" and "artifact not found" in outcome.message
    assert s.condition(await s.get_sync(ac, ns, "app"), "Stalled") is None
    # an artifact whose path tries to leave the store is "not in the store"
    forged = artifacts.Artifact("main@sha1:0", "sha256:0", "../../etc")
    await s.git_repository(ac, ns, "nowhere", forged)
    assert "not in the store" in (await _run(ac, store, ns)).message


async def test_a_source_in_another_namespace_is_refused_unless_allowed(ac: Any, store: artifacts.ArtifactStore) -> None:
    other = await s.namespace(ac, "src")
    await s.git_repository(ac, other, "repo", s.publish(store, other, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))
    ns = await s.namespace(ac)
    await ac.create(syncs.API_VERSION, "syncs", {"apiVersion": syncs.API_VERSION, "kind": "Sync", "metadata": {
        "name": "app"}, "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": other}}},
        namespace=ns)
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "ArtifactFailed" and "cross-namespace references are not allowed" in outcome.message
    assert "spec.sourceRef.namespace" in outcome.message
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "a", namespace=ns)
    assert (await _run(ac, store, ns, cross_namespace_refs=True)).ready
    await ac.get("v1", "configmaps", "a", namespace=ns)


async def test_a_path_outside_the_artifact_is_refused(ac: Any, store: artifacts.ArtifactStore) -> None:
    ns, _ = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"})}, path="../../")
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "BuildFailed" and "spec.path" in outcome.message and "leaves the artifact" in outcome.message
    await s.update_spec(ac, ns, "app", path="/etc")
    outcome = await _run(ac, store, ns)
    assert outcome.reason == "BuildFailed" and "spec.path" in outcome.message


async def test_prune_removes_what_left_the_tree_but_honours_opt_outs(ac: Any, store: artifacts.ArtifactStore) -> None:
    keep = {plan.PRUNE: "disabled"}
    ns, _ = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"}), "b.yaml": s.configmap("b", {"k": "1"}),
                                     "c.yaml": s.configmap("c", {"k": "1"}, annotations=keep)})
    assert (await _run(ac, store, ns)).ready
    # an object of the same name made by hand (no owner labels) is never pruned even if listed
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand"}},
                    namespace=ns)
    await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "1"})})
    outcome = await _run(ac, store, ns)
    assert outcome.ready and [e.name for e in outcome.pruned] == ["b"]
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "b", namespace=ns)
    await ac.get("v1", "configmaps", "c", namespace=ns)  # prune: disabled
    await ac.get("v1", "configmaps", "hand", namespace=ns)
    assert s.inventory(await s.get_sync(ac, ns, "app")) == {("ConfigMap", ns, "a")}
    # prune: false keeps what left
    await s.update_spec(ac, ns, "app", prune=False)
    await _revise(ac, store, ns, {"x.yaml": s.configmap("x", {"k": "1"})})
    outcome = await _run(ac, store, ns)
    assert outcome.ready and outcome.pruned == []
    await ac.get("v1", "configmaps", "a", namespace=ns)


async def test_adopted_system_namespaces_are_never_pruned(ac: Any, store: artifacts.ArtifactStore) -> None:
    made = (await s.namespace(ac, "tmp")) + "-made"
    namespaces = {"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {made}}}\n---\n"
                             "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n"}
    ns, _ = await _setup(ac, store, namespaces)
    try:
        assert (await _run(ac, store, ns)).ready
        await _revise(ac, store, ns, {"a.yaml": s.configmap("a", {"k": "1"})})
        outcome = await _run(ac, store, ns)
        assert outcome.ready and [e.name for e in outcome.pruned] == [made]
        assert not (await ac.get("v1", "namespaces", "default"))["metadata"].get("deletionTimestamp")
        try:
            assert (await ac.get("v1", "namespaces", made))["metadata"].get("deletionTimestamp")
        except errors.NotFound:
            pass
    finally:
        await ac.patch("v1", "namespaces", "default",
                       {"metadata": {"labels": {plan.OWNER_NAME: None, plan.OWNER_NAMESPACE: None}}})


async def test_prune_never_deletes_an_entry_whose_object_is_not_ours(ac: Any, store: artifacts.ArtifactStore) -> None:
    """A forged inventory (status written by someone else) cannot make the Sync delete other objects."""
    ns, _ = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"})})
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "victim"}},
                    namespace=ns)
    await ac.patch(syncs.API_VERSION, "syncs", "app", {"status": {"inventory": {"entries": [
        {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": ns, "name": "victim"},
        {"group": "", "version": "v1", "kind": "Namespace", "namespace": "", "name": "kube-system"}]}}},
        namespace=ns, subresource="status")
    outcome = await _run(ac, store, ns)
    assert outcome.ready and outcome.pruned == []
    await ac.get("v1", "configmaps", "victim", namespace=ns)
    await ac.get("v1", "namespaces", "kube-system")


async def test_order_namespaces_crds_then_waves_and_new_crds_are_waited_for(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    suffix = (await s.namespace(ac, "grp")).split("-")[1]
    group = f"w{suffix}.example.com"
    crd = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {{type: object, properties: {{size: {{type: integer}}}}}}
"""
    target = f"made-{suffix}"
    files = {
        "0-late.yaml": s.configmap("late", {"k": "1"}, namespace=target, annotations={plan.SYNC_WAVE: "5"}),
        "1-early.yaml": s.configmap("early", {"k": "1"}, namespace=target, annotations={plan.SYNC_WAVE: "-1"}),
        "2-widget.yaml": f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w, namespace: {target}}}\n"
                         "spec: {size: 3}\n",
        "3-plain.yaml": s.configmap("plain", {"k": "1"}, namespace=target),
        "8-crd.yaml": crd,
        "9-ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {target}}}\n",
    }
    ns, _ = await _setup(ac, store, files)
    outcome = await _run(ac, store, ns)
    assert outcome.ready, outcome.message
    rv = {}
    rv["ns"] = int((await ac.get("v1", "namespaces", target))["metadata"]["resourceVersion"])
    rv["crd"] = int((await ac.get("apiextensions.k8s.io/v1", "customresourcedefinitions", f"widgets.{group}"))
                    ["metadata"]["resourceVersion"])
    for name in ("early", "plain", "late"):
        rv[name] = int((await ac.get("v1", "configmaps", name, namespace=target))["metadata"]["resourceVersion"])
    widget = await ac.get(f"{group}/v1", "widgets", "w", namespace=target)
    rv["widget"] = int(widget["metadata"]["resourceVersion"])
    assert rv["ns"] < rv["crd"] < rv["early"] < rv["widget"] < rv["plain"] < rv["late"]
    assert widget["spec"] == {"size": 3}
    # a bad custom resource of the new kind is judged after its CRD is served, and refused by name
    files["2-widget.yaml"] = f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w2, namespace: {target}}}\n" \
                             "spec: {size: many}\n"
    await _revise(ac, store, ns, files)
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and "2-widget.yaml (document 1)" in outcome.message
    with pytest.raises(errors.NotFound):
        await ac.get(f"{group}/v1", "widgets", "w2", namespace=target)


async def test_target_namespace_overrides_the_objects_own(ac: Any, store: artifacts.ArtifactStore) -> None:
    ns = await s.namespace(ac)
    other = await s.namespace(ac, "tgt")
    artifact = s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"}, namespace="kube-system")})
    await s.git_repository(ac, ns, "repo", artifact)
    await s.sync(ac, ns, "app", "repo", targetNamespace=other)
    assert (await _run(ac, store, ns)).ready
    await ac.get("v1", "configmaps", "a", namespace=other)
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "a", namespace="kube-system")
    assert s.inventory(await s.get_sync(ac, ns, "app")) == {("ConfigMap", other, "a")}


async def test_suspend_writes_nothing(ac: Any, store: artifacts.ArtifactStore) -> None:
    ns, _ = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"})}, suspend=True)
    before = await s.get_sync(ac, ns, "app")
    outcome = await _run(ac, store, ns)
    assert outcome.suspended and not outcome.applied
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "a", namespace=ns)
    assert (await s.get_sync(ac, ns, "app"))["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_objects_of_another_sync_or_a_chart_release_are_refused_by_name(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    ns, _ = await _setup(ac, store, {"a.yaml": s.configmap("a", {"k": "1"}), "b.yaml": s.configmap("b", {"k": "2"})})
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "b", "labels": {plan.OWNER_NAME: "other", plan.OWNER_NAMESPACE: ns}}, "data": {"k": "theirs"}},
        namespace=ns)
    outcome = await _run(ac, store, ns)
    assert not outcome.ready
    assert f"b.yaml (document 1): ConfigMap/{ns}/b is owned by Sync {ns}/other; refused" in outcome.message
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "a", namespace=ns)  # nothing applied
    assert (await ac.get("v1", "configmaps", "b", namespace=ns))["data"] == {"k": "theirs"}
    await ac.patch("v1", "configmaps", "b", {"metadata": {"labels": {plan.OWNER_NAME: None, plan.OWNER_NAMESPACE: None},
                                                           "annotations": {plan.CHART_RELEASE: "web"}}}, namespace=ns)
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and "owned by chart release" in outcome.message and "/b" in outcome.message


async def test_many_objects_of_one_kind_are_checked_with_one_list_and_conflicts_still_refused(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    """Past syncs.LIST_AT objects of a kind in a namespace, ownership is read from one list: an
    object of another Sync or a chart release among them is still refused by name."""
    count = syncs.LIST_AT + 4
    files = {f"cm{i:02}.yaml": s.configmap(f"c{i:02}", {"k": "1"}) for i in range(count)}
    ns, _ = await _setup(ac, store, files)
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c07", "labels": {plan.OWNER_NAME: "other", plan.OWNER_NAMESPACE: ns}}, "data": {"k": "theirs"}},
        namespace=ns)
    outcome = await _run(ac, store, ns)
    assert not outcome.ready
    assert f"cm07.yaml (document 1): ConfigMap/{ns}/c07 is owned by Sync {ns}/other; refused" in outcome.message
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "c00", namespace=ns)  # nothing applied
    await ac.patch("v1", "configmaps", "c07", {"metadata": {"labels": {plan.OWNER_NAME: None,
                                                                       plan.OWNER_NAMESPACE: None},
                                                            "annotations": {plan.CHART_RELEASE: "web"}}}, namespace=ns)
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and "owned by chart release" in outcome.message and "/c07" in outcome.message
    await ac.delete("v1", "configmaps", "c07", namespace=ns)
    assert (await _run(ac, store, ns)).ready
    assert (await ac.get("v1", "configmaps", "c07", namespace=ns))["data"] == {"k": "1"}


class _CountingApplies:
    """The real client, noting the name of each apply it sends (dry runs not counted)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.applied: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def patch(self, api_version: str, plural: str, name: str, body: Any, **options: Any) -> Any:
        if options.get("patch_type") == "apply" and not options.get("dry_run"):
            self.applied.append(name)
        return await self.client.patch(api_version, plural, name, body, **options)


async def test_only_what_the_dry_runs_show_changing_is_applied_and_drift_is_still_reverted(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    """Every object is still dry-run, but an apply the dry run proves a no-op is not sent: a commit
    changing one file of twenty applies one object; a hand edit is drift and is put back; a run with
    nothing changed applies nothing and stays Ready with the whole inventory."""
    files = {f"cm{i:02}.yaml": s.configmap(f"c{i:02}", {"k": "1"}) for i in range(20)}
    ns, _ = await _setup(ac, store, files)
    counting = _CountingApplies(ac)
    assert (await _run(ac, store, ns, apply_client=counting)).ready
    assert sorted(counting.applied) == [f"c{i:02}" for i in range(20)]
    await _revise(ac, store, ns, {**files, "cm03.yaml": s.configmap("c03", {"k": "2"})})
    counting.applied.clear()
    outcome = await _run(ac, store, ns, apply_client=counting)
    assert outcome.ready and counting.applied == ["c03"]
    assert (await ac.get("v1", "configmaps", "c03", namespace=ns))["data"] == {"k": "2"}
    await ac.patch("v1", "configmaps", "c05", {"data": {"k": "by hand"}}, namespace=ns, field_manager="kubectl-edit")
    counting.applied.clear()
    outcome = await _run(ac, store, ns, apply_client=counting)
    assert outcome.ready and counting.applied == ["c05"]
    assert (await ac.get("v1", "configmaps", "c05", namespace=ns))["data"] == {"k": "1"}
    counting.applied.clear()
    outcome = await _run(ac, store, ns, apply_client=counting)
    assert outcome.ready and counting.applied == []
    assert len(s.inventory(await s.get_sync(ac, ns, "app"))) == 20


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


async def test_wait_gates_ready_on_health_with_a_timeout(ac: Any, store: artifacts.ArtifactStore) -> None:
    """No controller-manager runs here, so the Deployment stays unavailable until the test says so."""
    ns, _ = await _setup(ac, store, {"web.yaml": DEPLOYMENT}, wait=True, timeout="1s")
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and outcome.reason == "HealthCheckFailed"
    assert f"Deployment/{ns}/web" in outcome.message and "timeout" in outcome.message
    sync = await s.get_sync(ac, ns, "app")
    assert s.condition(sync, "Stalled") is None and "lastAppliedRevision" not in sync["status"]
    deployment = await ac.get("apps/v1", "deployments", "web", namespace=ns)
    await ac.patch("apps/v1", "deployments", "web", {"status": {
        "observedGeneration": deployment["metadata"]["generation"], "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1}}, namespace=ns, subresource="status")
    outcome = await _run(ac, store, ns)
    assert outcome.ready, outcome.message


async def test_killed_half_way_then_run_again_converges_without_duplicates(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    names = [f"cm{i}" for i in range(6)]
    ns, _ = await _setup(ac, store, {f"{n}.yaml": s.configmap(n, {"k": "1"}) for n in names})
    assert (await _run(ac, store, ns)).ready
    # revision 2: drops cm0..cm2, changes cm3..cm5, adds new0..new3; the process dies after
    # recording the inventory and applying half of the targets
    new_names = [f"new{i}" for i in range(4)]
    files = {f"{n}.yaml": s.configmap(n, {"k": "2"}) for n in names[3:] + new_names}
    artifact = await _revise(ac, store, ns, files)
    sync = await s.get_sync(ac, ns, "app")
    settings = syncs.Settings.of(sync)
    _, folder = await syncs.load_artifact(ac, store, settings)
    targets = await syncs.build(ac, folder, settings)
    await syncs.validate(ac, targets, settings)
    old = plan.inventory_of(sync["status"])
    await syncs.record_inventory(ac, settings, [*old, *(t.entry for t in targets)])
    for target in targets[: len(targets) // 2]:
        await syncs.apply_one(ac, target)
    # ... killed here. Before the restart, revision 3 also drops new0 (applied by the dead run)
    del files["new0.yaml"]
    artifact = await _revise(ac, store, ns, files)
    outcome = await _run(ac, store, ns)
    assert outcome.ready, outcome.message
    listed = await ac.list("v1", "configmaps", namespace=ns, label_selector=f"{plan.OWNER_NAME}=app")
    live = sorted(item["metadata"]["name"] for item in listed["items"])
    assert live == sorted(names[3:] + new_names[1:])  # new0 (never in a finished inventory) pruned too
    assert all(item["data"] == {"k": "2"} for item in listed["items"])
    sync = await s.get_sync(ac, ns, "app")
    entries = sync["status"]["inventory"]["entries"]
    assert len(entries) == len({(e["kind"], e["namespace"], e["name"]) for e in entries}) == len(live)
    assert sync["status"]["lastAppliedRevision"] == artifact.revision
    # and a run killed after applying everything but before its final status converges the same
    again = await _run(ac, store, ns)
    assert again.ready and again.pruned == []


async def test_an_immutable_change_fails_naming_the_field_and_force_recreates(
        ac: Any, store: artifacts.ArtifactStore) -> None:
    def frozen(value: str) -> str:
        return s.configmap("frozen", {"k": value}) + "immutable: true\n"

    ns, _ = await _setup(ac, store, {"a.yaml": frozen("1")})
    assert (await _run(ac, store, ns)).ready
    first_uid = (await ac.get("v1", "configmaps", "frozen", namespace=ns))["metadata"]["uid"]
    await _revise(ac, store, ns, {"a.yaml": frozen("2")})
    outcome = await _run(ac, store, ns)
    assert not outcome.ready and "a.yaml (document 1)" in outcome.message and "immutable" in outcome.message
    assert "data" in outcome.message
    assert s.condition(await s.get_sync(ac, ns, "app"), "Stalled") is not None
    await s.update_spec(ac, ns, "app", force=True)
    outcome = await _run(ac, store, ns)
    assert outcome.ready, outcome.message
    live = await ac.get("v1", "configmaps", "frozen", namespace=ns)
    assert live["data"] == {"k": "2"} and live["metadata"]["uid"] != first_uid
