"""`reconcile gitops`: GitOps from the command line, as the `flux` CLI.

`controller` runs the GitRepository and Sync controllers (Flux's source- and kustomize-controller)
in the foreground (`reconcile up` starts it); `add`, `list`, `status`, `sync`, `suspend` and
`resume` work on GitRepository + Sync pairs of one name (what `flux create source git` and
`flux create kustomization` make)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import errors, webhookreceiver
from reconcile.gitops import plan

# from plan (light): the CLI's every command imports this module, and sources/syncs pull in dulwich
API_VERSION = f"{plan.GROUP}/v1"


def register(main: click.Group) -> None:
    main.add_command(gitops)


@click.group("gitops")
@common.connection_options
def gitops() -> None:
    """GitRepositories and the Syncs that apply them."""


def render_chart(folder: Path, values: dict[str, Any], release: str, namespace: str
                 ) -> list[tuple[str, int, dict[str, Any]]]:
    """gitops' ChartRenderer over the charts engine: a Sync whose source is a chart renders as
    `reconcile chart template` would (the chart's files only; no lookup of live objects)."""
    from reconcile.charting import chart as chart_mod
    from reconcile.charting import render as chart_render

    rendered = chart_render.render(chart_mod.load(folder), values, chart_render.ReleaseInfo(release, namespace))
    return [(doc.template, doc.index, doc.obj) for doc in rendered.documents]


@gitops.command("controller")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", "kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where fetched repositories (git-cache/) and published trees (artifacts/) are kept.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Compete for the Lease kube-system/reconcile-gitops before reconciling.")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on this port.")
@click.option("--workers", type=int, default=2, show_default=True, help="GitRepositories and Syncs reconciled at once.")
@click.option("--allow-local-sources", is_flag=True,
              help="Accept file:// URLs and local paths in GitRepositories (anyone who may create one could "
                   "then read any repository on this host; Flux has no such sources).")
@click.option("--default-service-account", default=None,
              help="Apply Syncs without spec.serviceAccountName as this account of their namespace (Flux's flag).")
@click.option("--allow-cross-namespace-refs", is_flag=True,
              help="Let a Sync use a GitRepository of another namespace (Flux's --no-cross-namespace-refs=false).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def controller(server_url: str | None, kubeconfig: str | None, state_dir: Path, leader_elect: bool,
           health_port: int | None, workers: int, allow_local_sources: bool, default_service_account: str | None,
           allow_cross_namespace_refs: bool, verbose: bool) -> None:
    """Fetch GitRepositories and apply Syncs of their published trees."""
    from reconcile.gitops import app

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if server_url is None:
        server_url = common.group_server()
    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    options = app.Options(state_dir=state_dir, server=server_url, kubeconfig=kubeconfig, leader_elect=leader_elect,
                          health_port=health_port, workers=workers, allow_local_sources=allow_local_sources,
                          default_service_account=default_service_account,
                          cross_namespace_refs=allow_cross_namespace_refs)
    common.run_component(lambda: app.run(options, renderer=render_chart))


def _ref(value: str) -> dict[str, str]:
    """`--ref`: a branch name, or `tag:V`, `semver:RANGE`, `commit:SHA` (Flux's --branch, --tag,
    --tag-semver, --commit)."""
    kind, sep, rest = value.partition(":")
    if sep and kind in ("tag", "semver", "commit"):
        if not rest:
            raise click.BadParameter(f"{value!r}: {kind}: needs a value", param_hint="--ref")
        return {kind: rest}
    return {"branch": value}


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})


@gitops.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The repository: https://, http://, git://, ssh:// (file:// if the controller allows).")
@click.option("--ref", "ref", default="main", show_default=True,
              help="A branch, or tag:V, semver:RANGE, commit:SHA.")
@click.option("--path", "path", default=".", show_default=True, help="The folder of the repository to apply.")
@click.option("--interval", default="1m", show_default=True, help="How often to fetch and apply.")
@click.option("--prune/--no-prune", default=True, show_default=True, help="Delete what leaves the repository.")
@click.option("--self-heal", is_flag=True, help="Re-apply at each interval, reverting hand edits.")
@click.option("--service-account", default=None, help="Apply as this ServiceAccount of the namespace.")
@click.option("--target-namespace", default=None, help="Put namespaced objects in this namespace.")
@click.option("--secret-ref", default=None, help="A Secret with username/password or bearerToken (ssh://: identity and known_hosts) for the fetch.")
@click.option("-n", "--namespace", default=None, help="Namespace of the two objects (default: the context's).")
@common.connection_options
@common.handle_errors
def add(name: str, url: str, ref: str, path: str, interval: str, prune: bool, self_heal: bool,
        service_account: str | None, target_namespace: str | None, secret_ref: str | None,
        namespace: str | None) -> None:
    """A GitRepository NAME and a Sync NAME applying PATH of it."""
    session = common.Session()
    ns = namespace or session.namespace
    source: dict[str, Any] = {"url": url, "ref": _ref(ref), "interval": interval}
    if secret_ref:
        source["secretRef"] = {"name": secret_ref}
    sync: dict[str, Any] = {"sourceRef": {"kind": "GitRepository", "name": name}, "path": path,
                            "interval": interval, "prune": prune}
    if self_heal:
        sync["selfHeal"] = True
    if service_account:
        sync["serviceAccountName"] = service_account
    if target_namespace:
        sync["targetNamespace"] = target_namespace
    session.client.create(API_VERSION, "gitrepositories", {"apiVersion": API_VERSION, "kind": "GitRepository",
                                                           "metadata": {"name": name}, "spec": source}, namespace=ns)
    click.echo(f"gitrepository.gitops.reconcile.dev/{name} created")
    session.client.create(API_VERSION, "syncs", {"apiVersion": API_VERSION, "kind": "Sync",
                                                 "metadata": {"name": name}, "spec": sync}, namespace=ns)
    click.echo(f"sync.gitops.reconcile.dev/{name} created")


@gitops.command("list")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@common.connection_options
@common.handle_errors
def list_syncs(namespace: str | None, all_namespaces: bool) -> None:
    """The Syncs: revision applied, readiness, message (as `flux get kustomizations`)."""
    session = common.Session()
    ns = None if all_namespaces else (namespace or session.namespace)
    items = session.client.list(API_VERSION, "syncs", namespace=ns).get("items") or []
    rows = [(["NAMESPACE"] if all_namespaces else []) + ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]]
    for item in items:
        md, ready = item.get("metadata") or {}, _ready(item)
        rows.append(([md.get("namespace", "")] if all_namespaces else []) + [
            md.get("name", ""), (item.get("status") or {}).get("lastAppliedRevision", ""),
            str(bool((item.get("spec") or {}).get("suspend"))), ready.get("status", "Unknown"),
            ready.get("message", "")])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@gitops.command("status")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@common.connection_options
@common.handle_errors
def status(name: str, namespace: str | None) -> None:
    """One Sync: its source's revision, what it applied, its conditions and its inventory."""
    session = common.Session()
    ns = namespace or session.namespace
    sync = session.client.get(API_VERSION, "syncs", name, namespace=ns)
    spec, st = sync.get("spec") or {}, sync.get("status") or {}
    source_name = (spec.get("sourceRef") or {}).get("name", "")
    try:
        source = session.client.get(API_VERSION, "gitrepositories", source_name,
                                    namespace=(spec.get("sourceRef") or {}).get("namespace") or ns)
        fetched = ((source.get("status") or {}).get("artifact") or {}).get("revision", "")
        source_ready = _ready(source)
    except errors.NotFound:
        fetched, source_ready = "", {"status": "False", "message": "not found"}
    click.echo(f"Sync {ns}/{name}")
    click.echo(f"  source:              GitRepository/{source_name} ({source_ready.get('status', 'Unknown')}: "
               f"{source_ready.get('message', '')})")
    click.echo(f"  fetched revision:    {fetched}")
    click.echo(f"  applied revision:    {st.get('lastAppliedRevision', '')}")
    click.echo(f"  attempted revision:  {st.get('lastAttemptedRevision', '')}")
    for condition in st.get("conditions") or []:
        click.echo(f"  {condition.get('type')}: {condition.get('status')} {condition.get('reason', '')}: "
                   f"{condition.get('message', '')}")
    entries = (st.get("inventory") or {}).get("entries") or []
    click.echo(f"  inventory ({len(entries)}):")
    for entry in entries:
        where = f"{entry.get('namespace')}/" if entry.get("namespace") else ""
        group = f".{entry['group']}" if entry.get("group") else ""
        click.echo(f"    {entry.get('kind')}{group} {where}{entry.get('name')}")


@gitops.command("sync")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@click.option("--wait/--no-wait", default=False, help="Wait until the Sync has handled the request.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait with --wait.")
@common.connection_options
@common.handle_errors
def sync_now(name: str, namespace: str | None, wait: bool, timeout: float) -> None:
    """Fetch the Sync's GitRepository and apply it now (`flux reconcile kustomization --with-source`)."""
    session = common.Session()
    ns = namespace or session.namespace
    sync = session.client.get(API_VERSION, "syncs", name, namespace=ns)
    ref = (sync.get("spec") or {}).get("sourceRef") or {}
    source_ns = ref.get("namespace") or ns

    requested = webhookreceiver.requested_at()
    patch = webhookreceiver.request_patch(requested)
    deadline = time.monotonic() + timeout
    session.client.patch(API_VERSION, "gitrepositories", ref.get("name", ""), patch, namespace=source_ns)
    if wait:  # the source first, as `flux reconcile --with-source`: the Sync then applies what it fetched
        source = _handled(session, "gitrepositories", ref.get("name", ""), source_ns, "lastHandledReconcileAt",
                          requested, deadline, timeout)
        if _ready(source).get("status") != "True":
            common.fail(f"GitRepository {source_ns}/{ref.get('name')}: {_ready(source).get('message', '')}")
    session.client.patch(API_VERSION, "syncs", name, patch, namespace=ns)
    click.echo(f"sync {ns}/{name} requested")
    if wait:
        current = _handled(session, "syncs", name, ns, "lastHandledRequestedAt", requested, deadline, timeout)
        ready = _ready(current)
        click.echo(f"{ready.get('status', 'Unknown')}: {ready.get('message', '')}")
        if ready.get("status") != "True":
            raise click.exceptions.Exit(1)


def _handled(session: common.Session, plural: str, name: str, namespace: str, field: str, requested: str,
             deadline: float, timeout: float) -> dict[str, Any]:
    """The object once its status says it handled `requested` (polled until the deadline)."""
    while True:
        current = session.client.get(API_VERSION, plural, name, namespace=namespace)
        if (current.get("status") or {}).get(field) == requested:
            return current
        if time.monotonic() > deadline:
            common.fail(f"timed out after {timeout:g}s waiting for {plural} {namespace}/{name} to handle the request")
        time.sleep(0.5)  # polling the status with a deadline


def _set_suspend(name: str, namespace: str | None, value: bool) -> None:
    session = common.Session()
    ns = namespace or session.namespace
    session.client.patch(API_VERSION, "syncs", name, {"spec": {"suspend": value}}, namespace=ns)
    click.echo(f"sync {ns}/{name} {'suspended' if value else 'resumed'}")


@gitops.command("suspend")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@common.connection_options
@common.handle_errors
def suspend(name: str, namespace: str | None) -> None:
    """Stop applying the Sync (what runs stays)."""
    _set_suspend(name, namespace, True)


@gitops.command("resume")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@common.connection_options
@common.handle_errors
def resume(name: str, namespace: str | None) -> None:
    """Apply the Sync again."""
    _set_suspend(name, namespace, False)


@gitops.command("tree")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@common.connection_options
@common.handle_errors
def tree(name: str, namespace: str | None) -> None:
    """The Sync's inventory as a tree, each object with its health (kstatus: Current, InProgress,
    Failed; NotFound when it is gone), as `flux tree kustomization`."""
    session = common.Session()
    ns = namespace or session.namespace
    sync = session.client.get(API_VERSION, "syncs", name, namespace=ns)
    ready = _ready(sync)
    click.echo(f"Sync/{ns}/{name} ({ready.get('status', 'Unknown')}: {ready.get('message', '')})")
    entries = [e for e in (plan.Entry.from_status(raw) for raw in
                           ((sync.get("status") or {}).get("inventory") or {}).get("entries") or []) if e]
    for position, entry in enumerate(entries):
        branch = "└──" if position == len(entries) - 1 else "├──"
        api_version = f"{entry.group}/{entry.version}" if entry.group else entry.version or "v1"
        try:
            resource = session.client.resource_for(api_version, entry.kind)
            live = session.client.get(api_version, resource.plural, entry.name,
                                      namespace=entry.namespace or None)
            state, why = plan.health(live)
        except errors.NotFound:
            state, why = "NotFound", ""
        where = f"{entry.namespace}/" if entry.namespace else ""
        click.echo(f"{branch} {entry.kind}/{where}{entry.name}  {state}" + (f": {why}" if why else ""))


@gitops.command("diff")
@click.argument("name")
@click.option("--path", "local_path", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A local checkout of the Sync's repository (its root: the Sync's spec.path is applied inside).")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@click.option("--color/--no-color", default=None, help="Colour the diff (default: on a terminal).")
@common.connection_options
@common.handle_errors
def diff(name: str, local_path: Path, namespace: str | None, color: bool | None) -> None:
    """What syncing LOCAL PATH would change, as `flux diff kustomization --path`: a unified diff of
    each live object against its server-side dry run, and what would be pruned; exit 1 when
    something would change (as `kubectl diff`)."""
    import asyncio
    import sys

    from reconcile.cli import diffs
    from reconcile.client import aio
    from reconcile.gitops import diff as gitops_diff
    from reconcile.gitops import syncs
    session = common.Session()
    ns = namespace or session.namespace
    sync = session.client.get(API_VERSION, "syncs", name, namespace=ns)

    async def compute() -> list[gitops_diff.Change]:
        async with aio.AsyncClient(session.config) as client:
            return await gitops_diff.changes(client, local_path.resolve(), sync, renderer=render_chart)

    try:
        found = asyncio.run(compute())
    except syncs.SyncFailed as exc:
        common.fail(str(exc))
    coloured = sys.stdout.isatty() if color is None else color
    for change in found:
        label = "pruned" if change.after is None else "sync"
        diffs.echo_object_diff(change.ref, change.live, change.after, after_label=label, coloured=coloured)
    if found:
        raise click.exceptions.Exit(1)
