"""Releases against a real API server: install, upgrade (three-way), rollback, uninstall, history,
ownership conflicts, server-side validation, --atomic, hooks and two upgrades racing.

The API server here runs no controllers and no node: Deployments never become available (which is
what --atomic after a failing readiness needs), and a hook Pod's phase is written by the test
through the pods/status endpoint, standing in for the node agent (named so: `play_node_agent`).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconcile.charting import actions, chart, releases
from reconcile.client import api as client_api
from reconcile.core import errors
from tests import support
from tests.charts.chartkit import write_chart

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ release.name }}-web
  labels: {app: web}
spec:
  replicas: {{ values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: {{ values.image }}
{% if values.env %}        env: [{name: MODE, value: "{{ values.env }}"}]
{% endif %}"""
CONFIGS = """\
{% if values.extra %}apiVersion: v1
kind: ConfigMap
metadata: {name: {{ release.name }}-extra}
data: {a: "1"}
{% endif %}---
{% if values.secret %}apiVersion: v1
kind: Secret
metadata: {name: {{ release.name }}-secret}
stringData: {token: t}
{% endif %}---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ release.name }}-kept
  annotations: {charts.reconcile.dev/keep: "true"}
data: {k: v}
"""
CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.charttest.example.com}
spec:
  group: charttest.example.com
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
GADGET = "apiVersion: charttest.example.com/v1\nkind: Gadget\nmetadata: {name: {{ release.name }}-g}\nspec: {x: 1}\n"
DEFAULTS = {"replicas": 1, "image": "busybox:1.36", "env": "", "extra": False, "secret": True}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def client(api_server: str) -> Any:
    with client_api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture(scope="module")
def ns(client: Any) -> str:
    name = unique("charts")
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> chart.Chart:
    root = tmp_path_factory.mktemp("charts")
    return chart.load(write_chart(root, "app", values=DEFAULTS,
                                  templates={"deploy.yaml.j2": DEPLOYMENT, "configs.yaml.j2": CONFIGS,
                                             "gadget.yaml.j2": GADGET},
                                  files={"crds/gadget.yaml": CRD}))


def ops(client: Any) -> actions.Operations:
    return actions.Operations(client)


def get(client: Any, api_version: str, plural: str, name: str, ns: str | None) -> dict | None:
    try:
        return client.get(api_version, plural, name, namespace=ns)
    except errors.NotFound:
        return None


def phases(client: Any, name: str, ns: str) -> list[tuple[int, str]]:
    return [(r.revision, r.phase) for r in releases.Store(client).history(name, ns)]


def test_install_upgrade_rollback_uninstall(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("rel")
    record = ops(client).install(name, ns, app, {})
    assert (record.revision, record.phase) == (1, "deployed")
    deploy = get(client, "apps/v1", "deployments", f"{name}-web", ns)
    assert deploy["spec"]["replicas"] == 1
    assert deploy["metadata"]["annotations"]["charts.reconcile.dev/release-name"] == name
    assert deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "reconcile"
    assert get(client, "v1", "secrets", f"{name}-secret", ns) is not None
    assert get(client, "charttest.example.com/v1", "gadgets", f"{name}-g", ns) is not None  # CRD from crds/ first
    stored = client.get(releases.API_VERSION, "releases", f"{name}.v1", namespace=ns)
    assert "kind: Deployment" not in str(stored["spec"]["manifest"])  # compressed
    assert "kind: Deployment" in releases.Release.from_object(stored).manifest

    # a hand edit to a field the chart does not set survives the upgrade
    client.patch("apps/v1", "deployments", f"{name}-web", {"metadata": {"labels": {"hand": "edit"}}},
                 namespace=ns, patch_type="merge")
    record = ops(client).upgrade(name, ns, app, {"replicas": 3, "extra": True, "secret": False, "env": "x"})
    assert (record.revision, record.phase) == (2, "deployed")
    deploy = get(client, "apps/v1", "deployments", f"{name}-web", ns)
    assert deploy["spec"]["replicas"] == 3
    assert deploy["metadata"]["labels"]["hand"] == "edit"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "x"}]
    assert get(client, "v1", "configmaps", f"{name}-extra", ns) is not None  # added
    assert get(client, "v1", "secrets", f"{name}-secret", ns) is None  # removed by the chart: deleted
    assert phases(client, name, ns) == [(1, "superseded"), (2, "deployed")]

    # an upgrade without values reuses the last ones; the env the chart dropped is removed
    ops(client).upgrade(name, ns, app, {"env": ""})
    deploy = get(client, "apps/v1", "deployments", f"{name}-web", ns)
    assert "env" not in deploy["spec"]["template"]["spec"]["containers"][0]
    assert deploy["spec"]["replicas"] == 1  # new values given: chart defaults again (Helm's reset)

    record = ops(client).rollback(name, ns, 2)
    assert (record.revision, record.description) == (4, "Rollback to 2")
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns)["spec"]["replicas"] == 3
    assert phases(client, name, ns)[-2:] == [(3, "superseded"), (4, "deployed")]

    bystander = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-bystander"}}
    client.create("v1", "configmaps", bystander, namespace=ns)
    kept = ops(client).uninstall(name, ns)
    assert kept == [f"ConfigMap/{ns}/{name}-kept kept due to the resource policy"]
    for api_version, plural, obj in (("apps/v1", "deployments", "web"), ("v1", "configmaps", "extra"),
                                     ("charttest.example.com/v1", "gadgets", "g")):
        assert get(client, api_version, plural, f"{name}-{obj}", ns) is None
    assert get(client, "v1", "configmaps", f"{name}-kept", ns) is not None
    assert get(client, "v1", "configmaps", f"{name}-bystander", ns) is not None  # nothing else touched
    assert get(client, "apiextensions.k8s.io/v1", "customresourcedefinitions", "gadgets.charttest.example.com",
               None) is not None  # CRDs stay
    assert phases(client, name, ns) == []


def test_uninstall_keep_history_then_reinstall(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("hist")
    ops(client).install(name, ns, app, {})
    ops(client).uninstall(name, ns, keep_history=True)
    assert phases(client, name, ns) == [(1, "uninstalled")]
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns) is None
    ops(client).install(name, ns, app, {})
    assert phases(client, name, ns) == [(1, "uninstalled"), (2, "deployed")]
    with pytest.raises(actions.ChartOperationError, match="cannot re-use a name that is still in use"):
        ops(client).install(name, ns, app, {})


def test_history_max_prunes_old_revisions(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("prune")
    options = actions.Options(history_max=2)
    ops(client).install(name, ns, app, {}, options)
    for replicas in (2, 3, 4):
        ops(client).upgrade(name, ns, app, {"replicas": replicas}, options)
    assert phases(client, name, ns) == [(3, "superseded"), (4, "deployed")]
    with pytest.raises(errors.NotFound, match="has no revision 1"):
        ops(client).rollback(name, ns, 1)


def test_an_object_of_no_release_is_a_conflict_and_nothing_is_applied(client: Any, ns: str, app: chart.Chart,
                                                                      tmp_path: Path) -> None:
    name = unique("own")
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-secret"}},
                  namespace=ns)
    with pytest.raises(actions.ValidationFailed) as caught:
        ops(client).install(name, ns, app, {})
    message = str(caught.value)
    assert f'Secret "{name}-secret" in namespace \'{ns}\' exists and cannot be imported into the current release' \
        in message
    assert 'missing key "charts.reconcile.dev/release-name"' in message
    assert "app/templates/configs.yaml.j2 (document 1): Secret" in message  # the empty ConfigMap is no document
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns) is None
    assert phases(client, name, ns) == []
    # another release's object is a conflict too
    other = unique("other")
    ops(client).install(other, ns, app, {"secret": False})
    with pytest.raises(actions.ValidationFailed, match=f'must equal "{name}": current value is "{other}"'):
        ops(client).install(name, ns, chart.load(write_chart(tmp_path, "app2", templates={
            "cm.yaml.j2": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {other}-kept}}\n"})), {})


def test_server_rejection_names_the_template_and_applies_nothing(client: Any, ns: str, tmp_path: Path) -> None:
    bad = chart.load(write_chart(tmp_path, "bad", templates={
        "a.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n",
        "b.yaml.j2": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec: {replicas: many}\n",
        "c.yaml.j2": "apiVersion: nope.example.com/v1\nkind: Nothing\nmetadata: {name: x}\n"}))
    name = unique("bad")
    with pytest.raises(actions.ValidationFailed) as caught:
        ops(client).install(name, ns, bad, {})
    assert "bad/templates/c.yaml.j2 (document 1)" in str(caught.value)
    assert 'no matches for kind "Nothing"' in str(caught.value)
    bad.files.pop("templates/c.yaml.j2")
    with pytest.raises(actions.ValidationFailed) as caught:
        ops(client).install(name, ns, bad, {})
    assert "bad/templates/b.yaml.j2 (document 1): Deployment" in str(caught.value)
    assert "spec.replicas" in str(caught.value)
    assert get(client, "v1", "configmaps", "fine", ns) is None
    assert phases(client, name, ns) == []


def test_atomic_install_after_failing_readiness_uninstalls(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("atomic")
    waits: list[list] = []
    operations = actions.Operations(client, on_wait=waits.append)
    with pytest.raises(actions.ChartOperationError, match="has been uninstalled due to atomic being set: timed out "
                                                          "waiting for the condition: Deployment/.*-web: waiting for the rollout"):
        operations.install(name, ns, app, {}, actions.Options(atomic=True, timeout=1))
    assert waits and not all(ok for _, ok, _ in waits[-1])
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns) is None
    assert phases(client, name, ns) == []


def test_atomic_upgrade_rolls_back(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("atomicup")
    ops(client).install(name, ns, app, {"replicas": 0})  # zero replicas: ready without any controller
    with pytest.raises(actions.ChartOperationError, match="has been rolled back due to atomic being set"):
        ops(client).upgrade(name, ns, app, {"replicas": 2}, actions.Options(atomic=True, timeout=1))
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns)["spec"]["replicas"] == 0
    assert phases(client, name, ns) == [(1, "superseded"), (2, "failed"), (3, "deployed")]


def test_wait_waits_for_a_pod_to_be_ready(client: Any, ns: str, tmp_path: Path) -> None:
    name = unique("wait")
    pod = chart.load(write_chart(tmp_path, "pod", templates={"pod.yaml.j2": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: '{{ release.name }}'}\n"
        "spec: {containers: [{name: c, image: busybox:1.36}]}\n")}))
    waits: list[list] = []
    agent = play_node_agent(client, ns, name, "Running", ready=True)
    actions.Operations(client, on_wait=waits.append).install(name, ns, pod, {}, actions.Options(wait=True, timeout=15))
    agent.join()
    assert phases(client, name, ns) == [(1, "deployed")]
    assert waits[-1] == [(f"Pod/{ns}/{name}", True, "Running")]


def hooked_chart(tmp_path: Path, policy: str) -> chart.Chart:
    hook = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ release.name }}-pre\n  annotations:\n"
            "    charts.reconcile.dev/hook: pre-install,test\n    charts.reconcile.dev/hook-weight: \"-1\"\n"
            f"    charts.reconcile.dev/hook-delete-policy: {policy}\n"
            "spec: {restartPolicy: Never, containers: [{name: c, image: busybox:1.36}]}\n")
    return chart.load(write_chart(tmp_path, "hooked", templates={
        "hook.yaml.j2": hook, "cm.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ release.name }}'}\n"}))


def play_node_agent(client: Any, ns: str, pod: str, phase: str, *, ready: bool = False) -> threading.Thread:
    """Stand-in for the node agent (this server runs none): once the hook Pod exists, report its phase."""

    def run() -> None:
        live = support.wait_for(lambda: get(client, "v1", "pods", pod, ns), timeout=15, what=f"pod {pod}")
        live["status"] = {"phase": phase, **({"conditions": [{"type": "Ready", "status": "True"}]} if ready else {})}
        client.replace("v1", "pods", live, namespace=ns, subresource="status")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_failing_hook_stops_the_install(client: Any, ns: str, tmp_path: Path) -> None:
    name = unique("hook")
    agent = play_node_agent(client, ns, f"{name}-pre", "Failed")
    with pytest.raises(actions.HookFailed, match=f"pre-install hook Pod/{ns}/{name}-pre failed: Pod phase Failed"):
        ops(client).install(name, ns, hooked_chart(tmp_path, "before-hook-creation"), {},
                            actions.Options(timeout=15))
    agent.join()
    assert get(client, "v1", "configmaps", name, ns) is None  # the release's objects were never applied
    assert phases(client, name, ns) == [(1, "failed")]
    assert get(client, "v1", "pods", f"{name}-pre", ns) is not None  # kept for inspection (no hook-failed policy)


def test_a_succeeding_hook_continues_and_is_deleted(client: Any, ns: str, tmp_path: Path) -> None:
    name = unique("hookok")
    agent = play_node_agent(client, ns, f"{name}-pre", "Succeeded")
    ops(client).install(name, ns, hooked_chart(tmp_path, "hook-succeeded"), {}, actions.Options(timeout=15))
    agent.join()
    assert get(client, "v1", "configmaps", name, ns) is not None
    assert phases(client, name, ns) == [(1, "deployed")]
    support.wait_for(lambda: get(client, "v1", "pods", f"{name}-pre", ns) is None, timeout=15, what="hook deleted")


def test_two_upgrades_at_once_one_wins(client: Any, ns: str, app: chart.Chart, api_server: str) -> None:
    name = unique("race")
    ops(client).install(name, ns, app, {})
    barrier = threading.Barrier(2, timeout=15)
    outcomes: dict[int, Any] = {}

    def upgrade(replicas: int) -> None:
        with client_api.Client(support.connection(api_server).client_config()) as own:
            operations = actions.Operations(own)
            claim = operations.store.create

            def create_together(record: releases.Release) -> releases.Release:
                barrier.wait()  # both have read revision 1 and rendered: now both claim revision 2
                return claim(record)

            operations.store.create = create_together  # type: ignore[method-assign]
            try:
                outcomes[replicas] = operations.upgrade(name, ns, app, {"replicas": replicas}).revision
            except releases.OperationInProgress as exc:
                outcomes[replicas] = exc

    threads = [threading.Thread(target=upgrade, args=(n,)) for n in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [n for n, result in outcomes.items() if result == 2]
    lost = [result for result in outcomes.values() if isinstance(result, releases.OperationInProgress)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "another operation (install/upgrade/rollback) is in progress" in str(lost[0])
    assert phases(client, name, ns) == [(1, "superseded"), (2, "deployed")]
    assert get(client, "apps/v1", "deployments", f"{name}-web", ns)["spec"]["replicas"] == won[0]
    with pytest.raises(releases.OperationInProgress):
        store = releases.Store(client)
        latest = store.latest(name, ns)
        latest.phase = "pending-upgrade"
        store.update(latest)
        ops(client).upgrade(name, ns, app, {"replicas": 5})


def test_a_no_op_upgrade_writes_no_object(client: Any, ns: str, app: chart.Chart) -> None:
    name = unique("noop")
    ops(client).install(name, ns, app, {"extra": True})
    before = {plural: get(client, v, plural, f"{name}-{suffix}", ns)["metadata"]["resourceVersion"]
              for v, plural, suffix in (("apps/v1", "deployments", "web"), ("v1", "configmaps", "extra"))}
    lines: list[str] = []
    operations = actions.Operations(client, report=lines.append)
    record = operations.upgrade(name, ns, app, {"extra": True})
    assert record.revision == 2 and operations.writes == 0, lines
    after = {plural: get(client, v, plural, f"{name}-{suffix}", ns)["metadata"]["resourceVersion"]
             for v, plural, suffix in (("apps/v1", "deployments", "web"), ("v1", "configmaps", "extra"))}
    assert after == before


def test_a_user_installs_only_what_rbac_lets_them(client: Any, ns: str, api_server: str, tmp_path: Path) -> None:
    """The CLI acts as the user: a chart that reaches into a namespace the user may not write is refused
    at the dry run, before anything (not even the user's own namespace's objects) is applied."""
    user = unique("alice")
    client.create("rbac.authorization.k8s.io/v1", "roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": user},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
                  {"apiGroups": ["charts.reconcile.dev"], "resources": ["releases"], "verbs": ["*"]}]}, namespace=ns)
    client.create("rbac.authorization.k8s.io/v1", "rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}, namespace=ns)
    connection = support.connection(api_server)
    hostile = chart.load(write_chart(tmp_path, "hostile", templates={
        "mine.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ release.name }}'}\n",
        "theirs.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ release.name }}', namespace: kube-system}\n"}))
    name = unique("rbac")
    with client_api.Client(connection.client_config(as_user=connection.user(user))) as as_user:
        support.wait_for(lambda: _can_list(as_user, ns), timeout=15, what="the RoleBinding to take effect")
        with pytest.raises(actions.ValidationFailed) as caught:
            actions.Operations(as_user).install(name, ns, hostile, {})
        assert "hostile/templates/theirs.yaml.j2 (document 1): ConfigMap/kube-system/" in str(caught.value)
        assert "forbidden" in str(caught.value)
        assert get(client, "v1", "configmaps", name, ns) is None
        assert phases(client, name, ns) == []
        hostile.files.pop("templates/theirs.yaml.j2")
        actions.Operations(as_user).install(name, ns, hostile, {})
        assert get(client, "v1", "configmaps", name, ns) is not None


def _can_list(client: Any, ns: str) -> bool:
    try:
        client.list(releases.API_VERSION, "releases", namespace=ns)
    except errors.Forbidden:
        return False
    return True


EVENT_HOOKS = """\
{% for event, weight, label in [("pre-install", "5", "b"), ("pre-install", "-5", "z"), ("pre-install", "0", "a"),
                                ("post-install", "0", "a"), ("pre-upgrade", "0", "a"), ("post-upgrade", "0", "a"),
                                ("pre-rollback", "0", "a"), ("post-rollback", "0", "a"), ("pre-delete", "0", "a"),
                                ("post-delete", "0", "a")] %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ release.name }}-{{ event }}-{{ label }}
  annotations:
    charts.reconcile.dev/hook: {{ event }}
    charts.reconcile.dev/hook-weight: "{{ weight }}"
data: {revision: "{{ release.revision }}"}
{% endfor %}
"""


def test_hooks_run_at_each_event_in_weight_order_around_the_release(client: Any, ns: str, tmp_path: Path) -> None:
    """ConfigMap hooks (done once created): the etcd revision each got says when it was written."""
    name = unique("events")
    hooked = chart.load(write_chart(tmp_path, "events", templates={
        "hooks.yaml.j2": EVENT_HOOKS,
        "cm.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ release.name }}'}\n"
                      "data: {revision: '{{ release.revision }}'}\n"}))

    def written(suffix: str) -> int:
        obj = get(client, "v1", "configmaps", f"{name}{suffix}", ns)
        assert obj is not None, f"{name}{suffix} was never created"
        return int(obj["metadata"]["resourceVersion"])

    ops(client).install(name, ns, hooked, {})
    assert written("-pre-install-z") < written("-pre-install-a") < written("-pre-install-b") < written("") \
        < written("-post-install-a")  # by weight (-5, 0, 5), all before the release's objects, post after
    assert get(client, "v1", "configmaps", f"{name}-pre-upgrade-a", ns) is None  # other events' hooks: not run
    ops(client).upgrade(name, ns, hooked, {"x": 1})
    assert written("-pre-upgrade-a") < written("") < written("-post-upgrade-a")
    assert get(client, "v1", "configmaps", f"{name}-pre-upgrade-a", ns)["data"] == {"revision": "2"}
    ops(client).rollback(name, ns, 1)
    assert written("-pre-rollback-a") < written("") < written("-post-rollback-a")
    main = written("")
    ops(client).uninstall(name, ns)
    assert main < written("-pre-delete-a") < written("-post-delete-a")
    assert get(client, "v1", "configmaps", name, ns) is None  # the release's own object is gone


def test_a_failing_hook_with_the_hook_failed_policy_is_deleted(client: Any, ns: str, tmp_path: Path) -> None:
    name = unique("hookfail")
    agent = play_node_agent(client, ns, f"{name}-pre", "Failed")
    with pytest.raises(actions.HookFailed, match="failed: Pod phase Failed"):
        ops(client).install(name, ns, hooked_chart(tmp_path, "hook-failed"), {}, actions.Options(timeout=15))
    agent.join()
    support.wait_for(lambda: get(client, "v1", "pods", f"{name}-pre", ns) is None, timeout=15,
                     what="the failed hook deleted")
    assert get(client, "v1", "configmaps", name, ns) is None
    assert phases(client, name, ns) == [(1, "failed")]


def test_a_hook_left_from_a_run_without_before_hook_creation_stops_the_next(client: Any, ns: str,
                                                                           tmp_path: Path) -> None:
    name = unique("hookleft")
    agent = play_node_agent(client, ns, f"{name}-pre", "Succeeded")
    ops(client).install(name, ns, hooked_chart(tmp_path, "hook-failed"), {}, actions.Options(timeout=15))
    agent.join()  # succeeded and kept: its policy deletes only failed runs
    assert get(client, "v1", "pods", f"{name}-pre", ns) is not None
    with pytest.raises(actions.HookFailed, match=f"test hook Pod/{ns}/{name}-pre already exists "
                                                 r"\(no before-hook-creation policy\)"):
        ops(client).run_tests(name, ns, timeout=15)


def test_lookup_reads_a_live_object_during_install(client: Any, ns: str, tmp_path: Path) -> None:
    name = unique("lookup")
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-src"},
                                       "data": {"colour": "teal"}}, namespace=ns)
    reader = chart.load(write_chart(tmp_path, "reader", templates={"cm.yaml.j2": (
        "{% set src = lookup('v1', 'ConfigMap', release.namespace, release.name ~ '-src') %}"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ release.name }}'}\n"
        "data: {colour: {{ src.data.colour | default('none') | quote }},"
        " missing: {{ lookup('v1', 'ConfigMap', release.namespace, 'absent') | length | string | quote }}}\n")}))
    ops(client).install(name, ns, reader, {})
    assert get(client, "v1", "configmaps", name, ns)["data"] == {"colour": "teal", "missing": "0"}
