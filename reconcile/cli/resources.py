"""`reconcile get`, `delete`, `api-resources`, `create namespace` (and registration of
`describe` and `explain`, which live in their own modules)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from reconcile.cli import arguments, common, describe, explain, manifests, printing
from reconcile.core import errors

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CHUNK = 500


def register(main: click.Group) -> None:
    for command in (get, delete, api_resources, create, describe.describe, explain.explain):
        main.add_command(command)


# --- get -----------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Across all namespaces.")
@click.option("-l", "--selector", default=None, help="Label selector (app=web,tier!=db).")
@click.option("--field-selector", default=None, help="Field selector (status.phase=Running).")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-w", "--watch", is_flag=True, help="After listing, stream changes.")
@common.connection_options
@common.handle_errors
def get(kind: str, names: tuple[str, ...], namespace: str | None, all_namespaces: bool, selector: str | None,
        field_selector: str | None, output: str | None, watch: bool) -> None:
    """Show resources of KIND (plural, singular, kind or short name; several as KIND,KIND)."""
    session = common.Session()
    kind, names = arguments.split_kind_name(kind, names)
    kinds = common.resolve_kinds(session, [k for k in kind.split(",") if k])
    if len(kinds) > 1 and (names or watch):
        common.fail("several kinds at once work only for listing, without names or --watch")
    collected: list[dict[str, Any]] = []
    for index, res in enumerate(kinds):
        ns = None if (all_namespaces and not names) or not res.namespaced else (namespace or session.namespace)
        if output in ("yaml", "json", "name"):
            collected.extend(_get_objects(session, res, names, ns, selector, field_selector, output, watch,
                                          single=len(kinds) == 1))
        else:
            if index:
                click.echo("")
            _get_table(session, res, names, ns, selector, field_selector, wide=output == "wide",
                       with_namespace=res.namespaced and ns is None, watch=watch,
                       with_kind=common.kind_ref(res) if len(kinds) > 1 else None)
    if len(kinds) > 1 and output in ("yaml", "json"):
        _print_object(printing.as_list(collected), output)


def _list_params(selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if selector:
        params["labelSelector"] = selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _fetch_tables(session: common.Session, res: Any, names: tuple[str, ...], ns: str | None,
                  params: dict[str, str]) -> tuple[dict[str, Any], str]:
    """One Table for the named objects or the whole (paged) collection, and the list's RV."""
    from reconcile.client import wire

    api_version = common.api_version_of(res)
    headers = {"Accept": TABLE_ACCEPT}
    if names:
        tables = [session.client.request("GET", wire.object_path(api_version, res.plural, n, namespace=ns),
                                         headers=headers).json() for n in names]
        return _merge_tables([_as_table(t) for t in tables]), ""
    path = wire.collection_path(api_version, res.plural, namespace=ns)
    tables, cont, rv = [], "", ""
    while True:
        query = {**params, "limit": str(CHUNK)}
        if cont:
            query["continue"] = cont
        body = session.client.request("GET", path, params=query, headers=headers).json()
        tables.append(_as_table(body))
        meta = body.get("metadata") or {}
        rv = meta.get("resourceVersion") or rv
        cont = meta.get("continue") or ""
        if not cont:
            return _merge_tables(tables), rv


def _as_table(body: dict[str, Any]) -> dict[str, Any]:
    """A server that ignores the Table Accept still prints, as NAME/AGE (kubectl does the same)."""
    if body.get("kind") == "Table":
        return body
    items = body.get("items") if isinstance(body.get("items"), list) else [body]
    return printing.objects_as_table(items)


def _merge_tables(tables: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(tables[0]) if tables else {"columnDefinitions": [], "rows": []}
    merged["rows"] = [row for t in tables for row in t.get("rows") or []]
    for t in tables:
        if t.get("columnDefinitions"):
            merged["columnDefinitions"] = t["columnDefinitions"]
    return merged


def _get_table(session: common.Session, res: Any, names: tuple[str, ...], ns: str | None, selector: str | None,
               field_selector: str | None, *, wide: bool, with_namespace: bool, watch: bool,
               with_kind: str | None = None) -> None:
    params = _list_params(selector, field_selector)
    table, rv = _fetch_tables(session, res, names, ns, params)
    headers, rows = printing.table_rows(table, wide=wide, with_namespace=with_namespace, with_kind=with_kind)
    if not watch:
        if not rows and not names:
            where = f" in {ns} namespace" if ns else ""
            click.echo(f"No resources found{where}.", err=True)
            return
        printing.render_table(headers, rows)
        return
    printer = printing.StreamPrinter(headers, rows)
    _watch_rows(session, res, ns, names, params, rv, printer, table, wide=wide, with_namespace=with_namespace)


def _watch_params(names: tuple[str, ...], params: dict[str, str], rv: str) -> dict[str, str]:
    query = {**params, "watch": "true"}
    if len(names) == 1:
        query["fieldSelector"] = f"metadata.name={names[0]}"
    if rv:
        query["resourceVersion"] = rv
    return query


def _watch_rows(session: common.Session, res: Any, ns: str | None, names: tuple[str, ...],
                params: dict[str, str], rv: str, printer: printing.StreamPrinter, first: dict[str, Any],
                *, wide: bool, with_namespace: bool) -> None:
    """Stream watch events as table rows until interrupted."""
    from reconcile.client import wire

    path = wire.collection_path(common.api_version_of(res), res.plural, namespace=ns)
    columns = first.get("columnDefinitions") or []
    response = session.client.request("GET", path, params=_watch_params(names, params, rv),
                                      headers={"Accept": TABLE_ACCEPT}, stream=True)
    try:
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "BOOKMARK":
                continue
            if event.get("type") == "ERROR":
                raise errors.from_status(obj)
            table = obj if obj.get("kind") == "Table" else printing.objects_as_table([obj])
            if not table.get("columnDefinitions"):
                table = {**table, "columnDefinitions": columns}
            if obj.get("kind") == "Table" and table.get("columnDefinitions"):
                columns = table["columnDefinitions"]
            for row in printing.table_rows(table, wide=wide, with_namespace=with_namespace)[1]:
                printer.row(row)
    finally:
        response.close()


def _get_objects(session: common.Session, res: Any, names: tuple[str, ...], ns: str | None,
                 selector: str | None, field_selector: str | None, output: str, watch: bool, *,
                 single: bool = True) -> list[dict[str, Any]]:
    """Print (or, for several kinds, return) the objects; with watch, then stream changes."""
    api_version = common.api_version_of(res)
    rv = ""
    if names:
        items = [session.client.get(api_version, res.plural, n, namespace=ns) for n in names]
    else:
        listing = session.client.list(api_version, res.plural, namespace=ns, label_selector=selector,
                                      field_selector=field_selector)
        items = listing.get("items") or []
        rv = (listing.get("metadata") or {}).get("resourceVersion") or ""
    for item in items:
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", res.kind)
    if output == "name":
        for item in items:
            click.echo(f"{common.kind_ref(res)}/{item['metadata']['name']}")
    elif not single:
        return items
    elif len(names) == 1 and not watch:
        _print_object(items[0], output)
    elif not watch or items:
        _print_object(printing.as_list(items, resource_version=rv), output)
    if watch:
        fs = f"metadata.name={names[0]}" if len(names) == 1 else field_selector
        for event in session.client.watch(api_version, res.plural, namespace=ns, resource_version=rv or None,
                                          label_selector=selector, field_selector=fs, allow_bookmarks=False):
            if event.get("type") in ("BOOKMARK", "ERROR"):
                continue
            obj = event.get("object") or {}
            if output == "name":
                click.echo(f"{common.kind_ref(res)}/{obj.get('metadata', {}).get('name', '')}")
            else:
                _print_object(obj, output, separator=True)
    return []


def _print_object(obj: dict[str, Any], output: str, *, separator: bool = False) -> None:
    if output == "json":
        printing.write(printing.to_json(obj))
    else:
        printing.write(("---\n" if separator else "") + printing.to_yaml(obj))


# --- delete --------------------------------------------------------------------------------

_PROPAGATION = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}


@click.command()
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True, help="Delete the objects in these files.")
@click.option("-R", "--recursive", is_flag=True)
@click.option("-n", "--namespace", default=None)
@click.option("--cascade", type=click.Choice(sorted(_PROPAGATION)), default="background", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the objects are gone.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--ignore-not-found", is_flag=True)
@common.connection_options
@common.handle_errors
def delete(args: tuple[str, ...], filenames: tuple[str, ...], recursive: bool, namespace: str | None,
           cascade: str, wait: bool, timeout: float, ignore_not_found: bool) -> None:
    """Delete resources: KIND NAME... or -f FILE."""
    session = common.Session()
    targets: list[tuple[Any, str, str | None, str]] = []  # (resource, name, namespace, where)
    failed = 0
    if filenames:
        if args:
            common.fail("use either -f or KIND NAME, not both")
        try:
            docs = manifests.load(list(filenames), recursive=recursive)
        except (manifests.ManifestPathError, OSError) as exc:
            common.fail(str(exc))
            return
        for doc in docs:
            try:
                if doc.error is not None or doc.obj is None:
                    raise ValueError(doc.error)
                res = session.client.resource_for(doc.obj["apiVersion"], doc.obj["kind"])
                meta = doc.obj.get("metadata") or {}
                ns = (meta.get("namespace") or namespace or session.namespace) if res.namespaced else None
                targets.append((res, str(meta.get("name") or ""), ns, doc.where))
            except (ValueError, errors.ApiError) as exc:
                click.echo(f"error: {doc.where}: {getattr(exc, 'message', exc)}", err=True)
                failed += 1
    else:
        if not args:
            common.fail("give KIND NAME... or -f FILE")
        kind, names = arguments.split_kind_name(args[0], tuple(args[1:]))
        if not names:
            common.fail(f'resource(s) were provided, but no name was specified for "{kind}"')
        res = common.resolve(session, kind)
        ns = (namespace or session.namespace) if res.namespaced else None
        targets.extend((res, name, ns, "") for name in names)
    pending = []
    for res, name, ns, _where in targets:
        try:
            session.client.delete(common.api_version_of(res), res.plural, name, namespace=ns,
                                  propagation_policy=_PROPAGATION[cascade])
        except errors.NotFound as exc:
            if not ignore_not_found:
                click.echo(common.format_api_error(exc), err=True)
                failed += 1
            continue
        except errors.ApiError as exc:
            click.echo(common.format_api_error(exc), err=True)
            failed += 1
            continue
        click.echo(f'{common.kind_ref(res)} "{name}" deleted')
        pending.append((res, name, ns))
    if wait:
        deadline = time.monotonic() + timeout
        for res, name, ns in pending:
            if not wait_deleted(session, res, name, ns, deadline=deadline):
                click.echo(f'error: timed out waiting for {common.kind_ref(res)} "{name}" to be deleted', err=True)
                failed += 1
    if failed:
        raise click.exceptions.Exit(1)


def wait_deleted(session: common.Session, res: Any, name: str, ns: str | None, *, deadline: float) -> bool:
    """Until the object is gone: GET, then watch it from that version for DELETED (deadline bound)."""
    api_version = common.api_version_of(res)
    while time.monotonic() < deadline:
        try:
            live = session.client.get(api_version, res.plural, name, namespace=ns)
        except errors.NotFound:
            return True
        rv = (live.get("metadata") or {}).get("resourceVersion")
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            for event in session.client.watch(api_version, res.plural, namespace=ns, resource_version=rv,
                                              field_selector=f"metadata.name={name}",
                                              timeout_seconds=remaining):
                if event.get("type") == "DELETED":
                    return True
                if time.monotonic() >= deadline:
                    break
        except errors.Gone:
            continue
    try:
        session.client.get(api_version, res.plural, name, namespace=ns)
    except errors.NotFound:
        return True
    return False


# --- api-resources, create namespace -----------------------------------------------------------


@click.command("api-resources")
@click.option("--namespaced", type=bool, default=None, help="Only namespaced (true) or cluster-scoped (false).")
@click.option("-o", "--output", type=click.Choice(["name", "wide"]), default=None)
@common.connection_options
@common.handle_errors
def api_resources(namespaced: bool | None, output: str | None) -> None:
    """List the resource types the server serves."""
    session = common.Session()
    resources = [r for r in session.client.discover() if "/" not in r.plural]
    if namespaced is not None:
        resources = [r for r in resources if r.namespaced == namespaced]
    resources.sort(key=lambda r: (r.group, r.plural))
    if output == "name":
        for r in resources:
            click.echo(r.group_resource if hasattr(r, "group_resource") else r.plural)
        return
    headers = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = [[r.plural, ",".join(r.short_names), common.api_version_of(r), "true" if r.namespaced else "false",
             r.kind] for r in resources]
    if output == "wide":
        headers.append("VERBS")
        for row, r in zip(rows, resources, strict=True):
            row.append(",".join(r.verbs))
    printing.render_table(headers, rows)


@click.group()
def create() -> None:
    """Create a resource from arguments."""


@create.command("namespace")
@click.argument("name")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "server"]), default="none")
@common.connection_options
@common.handle_errors
def create_namespace(name: str, dry_run: str) -> None:
    """Create the namespace NAME."""
    session = common.Session()
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    session.client.create("v1", "namespaces", body, dry_run=dry_run == "server")
    click.echo(f"namespace/{name} created" + (" (server dry run)" if dry_run == "server" else ""))


create.add_command(create_namespace, "ns")
