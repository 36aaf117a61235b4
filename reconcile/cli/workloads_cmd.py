"""`reconcile scale`, `reconcile rollout ...` and `reconcile events`: kubectl's workload verbs.

The wire is kubectl's (wire notes §4.8, §4.9): scale PATCHes /scale; undo sends the old
ReplicaSet's template as a JSON patch; restart stamps `kubectl.kubernetes.io/restartedAt`.
`rollout status` applies kubectl's completion rules to the Deployment's status.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from reconcile.cli import common, printing
from reconcile.core import errors, meta

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def register(main: click.Group) -> None:
    for command in (scale, rollout, events):
        main.add_command(command)


def _target(session: common.Session, kind: str, name: str | None) -> tuple[Any, str]:
    if "/" in kind:
        kind, _, name = kind.partition("/")
    if not name:
        common.fail("you must specify a name: KIND/NAME or KIND NAME")
    return common.resolve(session, kind), str(name)


# --- scale ---------------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("--replicas", type=int, required=True, help="The new desired number of replicas.")
@click.option("-n", "--namespace", default=None)
@common.connection_options
@common.handle_errors
def scale(kind: str, name: str | None, replicas: int, namespace: str | None) -> None:
    """Set a new size for a Deployment, ReplicaSet or any resource with a /scale subresource."""
    session = common.Session()
    res, name = _target(session, kind, name)
    if "scale" not in (res.subresources or ()) and res.kind not in ("Deployment", "ReplicaSet"):
        common.fail(f"cannot scale {common.kind_ref(res)}: it has no scale subresource")
    if replicas < 0:
        common.fail("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    ns = namespace or session.namespace if res.namespaced else None
    session.client.patch(common.api_version_of(res), res.plural, name, {"spec": {"replicas": replicas}},
                         namespace=ns, subresource="scale")
    click.echo(f"{common.kind_ref(res)}/{name} scaled")


# --- rollout -------------------------------------------------------------------------------------


@click.group()
def rollout() -> None:
    """Manage the rollout of a Deployment: status, history, undo, pause, resume, restart."""


def _deployment(session: common.Session, target: str, name: str | None, namespace: str | None, *,
                kinds: tuple[str, ...] = ("Deployment",)) -> tuple[Any, str, str]:
    res, name = _target(session, target, name)
    if res.kind not in kinds:
        only = " and ".join(f"{k.lower()}s" for k in kinds)
        common.fail(f"no rollout support for {common.kind_ref(res)}: only {only}")
    return res, name, namespace or session.namespace


def statefulset_rollout_state(sts: dict[str, Any]) -> tuple[bool, str]:
    """(done, message) by kubectl's StatefulSetStatusViewer; raises ClickException for OnDelete."""
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise click.ClickException("rollout status is only available for RollingUpdate strategy type")
    observed = int(status.get("observedGeneration") or 0)
    if observed == 0 or int(sts["metadata"].get("generation") or 0) > observed:
        return False, "Waiting for statefulset spec update to be observed..."
    want = int(spec.get("replicas", 1))
    ready, updated = int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)
    if ready < want:
        return False, f"Waiting for {want - ready} pods to be ready..."
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, dict) and rolling.get("partition") is not None:
        partition = int(rolling["partition"])
        if updated < want - partition:
            return False, (f"Waiting for partitioned roll out to finish: {updated} out of {want - partition} "
                           "new pods have been updated...")
        return True, f"partitioned roll out complete: {updated} new pods have been updated..."
    if status.get("updateRevision") != status.get("currentRevision"):
        return False, (f"waiting for statefulset rolling update to complete {updated} pods at revision "
                       f"{status.get('updateRevision')}...")
    return True, (f"statefulset rolling update complete {int(status.get('currentReplicas') or 0)} pods at revision "
                  f"{status.get('currentRevision')}...")


def rollout_state(d: dict[str, Any]) -> tuple[bool, str]:
    """(done, message) by kubectl's DeploymentStatusViewer; raises ClickException past the deadline."""
    name = d["metadata"]["name"]
    spec, status = d.get("spec") or {}, d.get("status") or {}
    if int(d["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return False, "Waiting for deployment spec update to be observed..."
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise click.ClickException(f'deployment "{name}" exceeded its progress deadline')
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return False, (f'Waiting for deployment "{name}" rollout to finish: '
                       f"{updated} out of {want} new replicas have been updated...")
    if current > updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: '
                       f"{current - updated} old replicas are pending termination...")
    if available < updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: '
                       f"{available} of {updated} updated replicas are available...")
    return True, f'deployment "{name}" successfully rolled out'


@rollout.command("status")
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("-w", "--watch/--no-watch", default=True, show_default=True, help="Wait until the rollout ends.")
@click.option("--timeout", type=float, default=0.0, help="Give up after this many seconds (0: never).")
@common.connection_options
@common.handle_errors
def rollout_status(target: str, name: str | None, namespace: str | None, watch: bool, timeout: float) -> None:
    """Follow a Deployment's or StatefulSet's rollout until it completes (exit 0) or a Deployment exceeds
    its deadline (exit 1)."""
    session = common.Session()
    res, name, ns = _deployment(session, target, name, namespace, kinds=("Deployment", "StatefulSet"))
    state = statefulset_rollout_state if res.kind == "StatefulSet" else rollout_state
    api_version = common.api_version_of(res)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    live = sys.stdout.isatty()
    last = ""
    spinner = printing.console().status("") if live else None
    if spinner is not None:
        spinner.start()
    try:
        while True:
            d = session.client.get(api_version, res.plural, name, namespace=ns)
            done, message = state(d)
            if done or not watch:
                if spinner is not None:
                    spinner.stop()
                    spinner = None
                click.echo(message)
                if not done and not watch:
                    raise SystemExit(0)
                return
            if message != last:
                if spinner is not None:
                    spinner.update(message)
                else:
                    click.echo(message)
                last = message
            if deadline is not None and time.monotonic() > deadline:
                raise click.ClickException("timed out waiting for the condition")
            _wait_for_change(session, api_version, res.plural, name, ns, d["metadata"]["resourceVersion"],
                             deadline=deadline)
    finally:
        if spinner is not None:
            spinner.stop()


def _wait_for_change(session: common.Session, api_version: str, plural: str, name: str, ns: str, rv: str, *,
                     deadline: float | None) -> None:
    """Block until the object changes (a watch from `rv`), or a bounded time passes."""
    seconds = 30 if deadline is None else max(1, min(30, int(deadline - time.monotonic()) + 1))
    try:
        for event in session.client.watch(api_version, plural, namespace=ns, resource_version=rv,
                                           field_selector=f"metadata.name={name}", timeout_seconds=seconds):
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                return
    except errors.Gone:
        return


def _owned_sets(session: common.Session, d: dict[str, Any]) -> list[dict[str, Any]]:
    ns = d["metadata"]["namespace"]
    body = session.client.list("apps/v1", "replicasets", namespace=ns)
    uid = d["metadata"]["uid"]
    return [rs for rs in body.get("items") or []
            if (meta.controller_owner(rs) or {}).get("uid") == uid]


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


@rollout.command("history")
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("--revision", type=int, default=0, help="Show the pod template of this revision.")
@common.connection_options
@common.handle_errors
def rollout_history(target: str, name: str | None, namespace: str | None, revision: int) -> None:
    """List a Deployment's revisions (its ReplicaSets) with their change causes."""
    session = common.Session()
    res, name, ns = _deployment(session, target, name, namespace)
    d = session.client.get(common.api_version_of(res), res.plural, name, namespace=ns)
    sets = sorted(_owned_sets(session, d), key=_revision)
    if revision:
        found = [rs for rs in sets if _revision(rs) == revision]
        if not found:
            common.fail(f"unable to find the specified revision {revision}")
        click.echo(f"{common.kind_ref(res)}/{name} with revision #{revision}")
        click.echo(printing.to_yaml({"template": found[0]["spec"]["template"]}))
        return
    click.echo(f"{common.kind_ref(res)}/{name}")
    rows = [[str(_revision(rs)), ((rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or "<none>")]
            for rs in sets if _revision(rs)]
    printing.render_table(["REVISION", "CHANGE-CAUSE"], rows)


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    import copy

    result = copy.deepcopy(template)
    md = result.setdefault("metadata", {})
    labels = dict(md.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    md["labels"] = labels
    md.pop("creationTimestamp", None)
    return result


@rollout.command("undo")
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("--to-revision", type=int, default=0, help="Revision to go back to (0: the previous one).")
@common.connection_options
@common.handle_errors
def rollout_undo(target: str, name: str | None, namespace: str | None, to_revision: int) -> None:
    """Restore the pod template of an earlier revision (the controller reuses its ReplicaSet)."""
    session = common.Session()
    res, name, ns = _deployment(session, target, name, namespace)
    api_version = common.api_version_of(res)
    d = session.client.get(api_version, res.plural, name, namespace=ns)
    if (d.get("spec") or {}).get("paused"):
        common.fail(f'you cannot rollback a paused deployment; resume it first with '
                    f"'reconcile rollout resume {common.kind_ref(res)}/{name}' and try again")
    sets = _owned_sets(session, d)
    if to_revision:
        chosen = next((rs for rs in sets if _revision(rs) == to_revision), None)
        if chosen is None:
            common.fail(f"unable to find specified revision {to_revision} in history")
    else:
        current = _revision(d)
        older = sorted((rs for rs in sets if 0 < _revision(rs) < current), key=_revision)
        if not older:
            common.fail("no rollout history found for deployment " + f'"{name}"')
        chosen = older[-1]
    assert chosen is not None
    template = _strip_hash(chosen["spec"]["template"])
    if _strip_hash(d["spec"]["template"]) == template:
        click.echo(f"{common.kind_ref(res)}/{name} skipped rollback (current template already matches revision "
                   f"{_revision(chosen)})")
        return
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    session.client.patch(api_version, res.plural, name, patch, namespace=ns, patch_type="json")
    click.echo(f"{common.kind_ref(res)}/{name} rolled back")


def _simple_patch(target: str, name: str | None, namespace: str | None, patch: dict[str, Any], verb: str,
                  *, unchanged: Any = None) -> None:
    session = common.Session()
    res, name, ns = _deployment(session, target, name, namespace)
    api_version = common.api_version_of(res)
    if unchanged is not None:
        d = session.client.get(api_version, res.plural, name, namespace=ns)
        if bool((d.get("spec") or {}).get("paused")) == unchanged:
            click.echo(f"{common.kind_ref(res)}/{name} already {verb}")
            return
    session.client.patch(api_version, res.plural, name, patch, namespace=ns, field_manager="reconcile-rollout")
    click.echo(f"{common.kind_ref(res)}/{name} {verb}")


def _simple(verb: str, help_text: str) -> Any:
    def decorate(fn: Any) -> Any:
        fn = common.handle_errors(fn)
        fn = common.connection_options(fn)
        fn = click.option("-n", "--namespace", default=None)(fn)
        fn = click.argument("name", required=False)(fn)
        fn = click.argument("target")(fn)
        fn.__doc__ = help_text
        return rollout.command(verb)(fn)
    return decorate


@_simple("pause", "Stop rolling out template changes (scaling still works).")
def rollout_pause(target: str, name: str | None, namespace: str | None) -> None:
    _simple_patch(target, name, namespace, {"spec": {"paused": True}}, "paused", unchanged=True)


@_simple("resume", "Roll out again what changed while paused.")
def rollout_resume(target: str, name: str | None, namespace: str | None) -> None:
    _simple_patch(target, name, namespace, {"spec": {"paused": None}}, "resumed", unchanged=False)


@_simple("restart", "Replace every pod, by stamping the template with kubectl.kubernetes.io/restartedAt.")
def rollout_restart(target: str, name: str | None, namespace: str | None) -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: meta.now_rfc3339()}}}}}
    _simple_patch(target, name, namespace, patch, "restarted")


# --- events --------------------------------------------------------------------------------------


def _event_row(event: dict[str, Any], *, with_namespace: bool) -> list[str]:
    involved = event.get("involvedObject") or {}
    stamp = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get(
        "creationTimestamp")
    count = int(event.get("count") or 1)
    seen = printing.age(stamp) + (f" (x{count})" if count > 1 else "")
    row = [seen, event.get("type") or "", event.get("reason") or "",
           f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
           (event.get("message") or "").strip()]
    return [(event.get("metadata") or {}).get("namespace") or "", *row] if with_namespace else row


def _event_time(event: dict[str, Any]) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get(
        "creationTimestamp") or ""


@click.command()
@click.option("-n", "--namespace", default=None)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-w", "--watch", is_flag=True, help="After listing, print new events as they come.")
@common.connection_options
@common.handle_errors
def events(namespace: str | None, all_namespaces: bool, watch: bool) -> None:
    """List Events (oldest first), as `kubectl events`."""
    session = common.Session()
    ns = None if all_namespaces else (namespace or session.namespace)
    body = session.client.list("v1", "events", namespace=ns)
    items = sorted(body.get("items") or [], key=_event_time)
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    if ns is None:
        headers = ["NAMESPACE", *headers]
    rows = [_event_row(e, with_namespace=ns is None) for e in items]
    if not watch:
        if not rows:
            click.echo(f"No events found in {ns} namespace." if ns else "No events found.")
            return
        printing.render_table(headers, rows)
        return
    printer = printing.StreamPrinter(headers, rows)
    rv = (body.get("metadata") or {}).get("resourceVersion")
    for event in session.client.watch_resilient("v1", "events", namespace=ns, resource_version=rv):
        if event.get("type") in ("ADDED", "MODIFIED"):
            printer.row(_event_row(event["object"], with_namespace=ns is None))
