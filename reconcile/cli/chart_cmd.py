"""`reconcile chart ...`: Helm's workflow over jinja2 charts (create, lint, template, install, upgrade,
rollback, uninstall, list, history, status, get, diff, package, test).

The work is in `reconcile.charting`; this module parses flags, builds values from -f/--set, and
prints what Helm prints (a release summary and its NOTES, tables for list and history, a coloured
diff). It acts with the user's own kubeconfig: no identity of its own.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import click

from reconcile.cli import common, diffs, printing

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def register(main: click.Group) -> None:
    main.add_command(chart_group)


@click.group("chart")
def chart_group() -> None:
    """Charts: parameterised packages of jinja2 resource templates, installed as releases."""


def duration(text: str) -> float:
    """`300`, `90s`, `5m`, `1m30s`, `1h` (Go durations, as Helm's --timeout) to seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise click.BadParameter(f'invalid duration "{text}" (e.g. 300s, 5m0s)', param_hint="'--timeout'")
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def _values_options(fn: Any) -> Any:
    fn = click.option("--set-json", "set_json", multiple=True,
                      help="Set JSON values on the command line (key=jsonvalue; repeatable).")(fn)
    fn = click.option("--set-string", "set_string", multiple=True,
                      help="Set STRING values on the command line (a.b=c,d=e; repeatable).")(fn)
    fn = click.option("--set", "set_values", multiple=True,
                      help="Set values on the command line (a.b[0].c=1,x=y; repeatable).")(fn)
    fn = click.option("-f", "--values", "value_files", multiple=True,
                      help="Values from a YAML file or - (stdin); repeatable, later files win.")(fn)
    return fn


def _release_options(fn: Any) -> Any:
    fn = click.option("--history-max", default=10, show_default=True,
                      help="Revisions kept per release (0: no limit).")(fn)
    fn = click.option("--atomic", is_flag=True, help="On failure, roll back (upgrade) or uninstall (install); implies --wait.")(fn)
    fn = click.option("--timeout", "timeout", default="5m0s", show_default=True,
                      help="How long to wait for readiness and each hook (a Go duration).")(fn)
    fn = click.option("--wait", is_flag=True, help="Wait until the release's Deployments, StatefulSets, Pods, "
                                                   "Services and PVCs are ready.")(fn)
    fn = click.option("--no-hooks", is_flag=True, help="Do not run the release's hooks.")(fn)
    fn = click.option("--description", default="", help="A custom description of the revision.")(fn)
    return fn


def _namespace_option(fn: Any) -> Any:
    return click.option("-n", "--namespace", default=None, help="The release's namespace (default: the context's).")(fn)


def _user_values(value_files: tuple[str, ...], set_values: tuple[str, ...], set_string: tuple[str, ...],
                 set_json: tuple[str, ...]) -> dict[str, Any]:
    from reconcile.charting import values

    files = []
    for name in value_files:
        try:
            files.append((name, sys.stdin.read() if name == "-" else Path(name).read_text()))
        except OSError as exc:
            raise click.UsageError(f"cannot read values file {name}: {exc.strerror}") from None
    sets = [("set-json", s) for s in set_json] + [("set", s) for s in set_values] + [("set-string", s) for s in set_string]
    return values.user_values(files, sets)


def _run(fn: Any) -> Any:
    """The chart errors (load, values, schema, render, operation) as one `error:` line and exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from reconcile.charting import actions, chart, releases, render, schema, values

        try:
            return fn(*args, **kwargs)
        except (chart.ChartError, values.ValuesError, schema.SchemaError, render.RenderError,
                actions.ChartOperationError, releases.OperationInProgress) as exc:
            common.fail(str(exc))

    return wrapper


def _session_ops(wait_display: bool = False) -> tuple[common.Session, Any]:
    from reconcile.charting import actions

    session = common.Session()
    progress = _WaitProgress() if wait_display else None
    ops = actions.Operations(session.client, report=lambda line: click.echo(line, err=True),
                             on_wait=progress.update if progress else None)
    return session, ops


class _WaitProgress:
    """--wait's live view: a rich table on a terminal, one line per change when piped."""

    def __init__(self) -> None:
        self.last: list[tuple[str, bool, str]] | None = None

    def update(self, statuses: list[tuple[str, bool, str]]) -> None:
        if statuses == self.last:
            return
        self.last = statuses
        ready = sum(1 for _, ok, _ in statuses if ok)
        console = printing.console()
        if console.is_terminal:
            from rich.table import Table

            table = Table(title=f"waiting: {ready}/{len(statuses)} ready", show_edge=False)
            table.add_column("OBJECT")
            table.add_column("READY")
            table.add_column("STATUS")
            for ref, ok, why in statuses:
                table.add_row(ref, "[green]yes[/]" if ok else "[yellow]no[/]", why)
            console.print(table)
        else:
            waiting = ", ".join(f"{ref} ({why})" for ref, ok, why in statuses if not ok)
            click.echo(f"waiting: {ready}/{len(statuses)} ready" + (f"; {waiting}" if waiting else ""), err=True)


def _options(wait: bool, timeout: str, atomic: bool, history_max: int, no_hooks: bool, description: str,
             create_namespace: bool = False) -> Any:
    from reconcile.charting import actions

    return actions.Options(wait=wait, timeout=duration(timeout), atomic=atomic, history_max=history_max,
                           no_hooks=no_hooks, description=description, create_namespace=create_namespace)


def _summary(record: Any, *, notes: bool = True) -> None:
    click.echo(f"NAME: {record.name}")
    click.echo(f"LAST DEPLOYED: {record.last_deployed or '-'}")
    click.echo(f"NAMESPACE: {record.namespace}")
    click.echo(f"STATUS: {record.phase}")
    click.echo(f"REVISION: {record.revision}")
    if record.description:
        click.echo(f"DESCRIPTION: {record.description}")
    if notes and record.notes:
        click.echo("NOTES:")
        click.echo(record.notes.rstrip("\n"))


def _load(path: str) -> Any:
    from reconcile.charting import chart

    return chart.load(path)


# --- create, lint, template, package ----------------------------------------------------------


@chart_group.command()
@click.argument("name")
@click.option("-p", "--starter-dir", "directory", default=".", show_default=True, help="Where to create the chart.")
@common.handle_errors
def create(name: str, directory: str) -> None:
    """Create a starter chart NAME (a Deployment, a Service, a values schema and NOTES)."""
    from reconcile.charting import starter

    root = Path(directory) / name
    if root.exists():
        common.fail(f"{root} already exists")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 53:
        common.fail(f'chart name "{name}" must be a lowercase DNS-1123 label of at most 53 characters')
    for relative, text in starter.files(name).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    click.echo(f"Creating {root}")


@chart_group.command()
@click.argument("chart_path", metavar="CHART")
@_values_options
@click.option("--strict", is_flag=True, help="Warnings fail the lint too.")
@_namespace_option
@common.connection_options
@common.handle_errors
def lint(chart_path: str, value_files: tuple[str, ...], set_values: tuple[str, ...], set_string: tuple[str, ...],
         set_json: tuple[str, ...], strict: bool, namespace: str | None) -> None:
    """Check a chart: Chart.yaml, values against its schema, templates, and (when a server answers) every
    rendered object against the server's OpenAPI v3 schemas (unknown fields, wrong types) and with a
    server-side dry run."""
    from reconcile.charting import chart, render, schema, values

    click.echo(f"==> Linting {chart_path}")
    problems: list[str] = []
    warnings: list[str] = []
    try:
        loaded = chart.load(chart_path)
        if loaded.metadata.get("icon") is None:
            warnings.append("[INFO] Chart.yaml: icon is recommended")
        rendered = render.render(loaded, _user_values(value_files, set_values, set_string, set_json),
                                 render.ReleaseInfo("release-name", namespace or "default"))
    except (chart.ChartError, values.ValuesError, schema.SchemaError, render.RenderError) as exc:
        problems.append(f"[ERROR] {exc}")
        rendered = None
    if rendered is not None:
        problems.extend(_server_lint(rendered, namespace, warnings))
    for line in warnings + problems:
        click.echo(line)
    failed = bool(problems) or (strict and any(w.startswith("[WARNING]") for w in warnings))
    click.echo(f"\n1 chart(s) linted, {1 if failed else 0} chart(s) failed")
    if failed:
        raise click.exceptions.Exit(1)


def _server_lint(rendered: Any, namespace: str | None, warnings: list[str]) -> list[str]:
    """Each rendered object checked against the server's OpenAPI, then dry-run-created (validation and
    admission), if a server is reachable."""
    from reconcile.core import errors

    try:
        session = common.Session()
        session.client.discover()
    except (SystemExit, errors.ApiError) as exc:
        warnings.append(f"[INFO] no API server reachable ({getattr(exc, 'message', 'no kubeconfig')}): "
                        "objects not validated against it")
        return []
    ns = namespace or session.namespace
    problems = []
    schemas = _openapi_schemas(session, warnings)
    for doc in rendered.documents + rendered.hooks:
        found = _openapi_problems(schemas, doc, warnings)
        if found:
            problems.extend(found)
            continue  # the dry run would only repeat (or silently prune) what the schema already names
        try:
            res = session.client.resource_for(doc.obj["apiVersion"], doc.obj["kind"])
            session.client.create(res.api_version, res.plural, doc.obj, namespace=ns if res.namespaced else None,
                                  dry_run=True)
        except errors.AlreadyExists:
            continue
        except errors.NotFound as exc:
            if "namespaces" in exc.message and res.namespaced:
                warnings.append(f"[INFO] namespace {ns} does not exist: {doc.where} not validated")
                continue
            problems.append(f"[ERROR] {doc.where}: {exc.message}")
        except errors.ApiError as exc:
            problems.append(f"[ERROR] {doc.where}: {common.format_api_error(exc)}")
    return problems


def _openapi_schemas(session: common.Session, warnings: list[str]) -> Any:
    """The server's /openapi/v3 schemas, or None (with an [INFO] line) when it serves none."""
    from reconcile.charting import openapicheck
    from reconcile.core import errors

    def fetch(path: str, params: dict[str, str]) -> dict[str, Any]:
        return session.client.request("GET", path, params=params, headers={"Accept": "application/json"}).json()

    schemas = openapicheck.Schemas(fetch)
    try:
        schemas.index()
    except (errors.ApiError, ValueError) as exc:
        warnings.append(f"[INFO] the server serves no OpenAPI v3 ({getattr(exc, 'message', exc)}): "
                        "objects checked by dry run only")
        return None
    return schemas


def _openapi_problems(schemas: Any, doc: Any, warnings: list[str]) -> list[str]:
    """`[ERROR] TEMPLATE (document N): Kind/name: unknown field "spec.x"` per problem the schema finds."""
    from reconcile.charting import openapicheck
    from reconcile.core import errors

    if schemas is None:
        return []
    obj = doc.obj
    ref = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '')}"
    try:
        found = schemas.lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    except (errors.ApiError, ValueError) as exc:
        warnings.append(f"[INFO] {doc.where}: {ref}: OpenAPI schema unavailable ({getattr(exc, 'message', exc)})")
        return []
    if found is None:
        return []  # a kind the server does not publish: the dry run says "no matches for kind"
    schema, components = found
    return [f"[ERROR] {doc.where}: {ref}: {problem}" for problem in openapicheck.check(obj, schema, components)]


@chart_group.command()
@click.argument("name")
@click.argument("chart_path", metavar="CHART")
@_values_options
@_namespace_option
@click.option("--kube-version", default=None, help="Kubernetes version templates see (default v1.32.0).")
@click.option("-a", "--api-versions", "api_versions", multiple=True, help="Extra API versions templates see.")
@click.option("--include-crds", is_flag=True, help="Print the chart's crds/ too.")
@click.option("--revision", default=1, show_default=True)
@common.handle_errors
@_run
def template(name: str, chart_path: str, value_files: tuple[str, ...], set_values: tuple[str, ...],
             set_string: tuple[str, ...], set_json: tuple[str, ...], namespace: str | None, kube_version: str | None,
             api_versions: tuple[str, ...], include_crds: bool, revision: int) -> None:
    """Render CHART as release NAME and print the objects (no server needed; `lookup` finds nothing)."""
    from reconcile.charting import render

    capabilities = render.Capabilities(
        api_versions=tuple(sorted({*render.Capabilities().api_versions, *api_versions})),
        kube_version=kube_version or render.DEFAULT_KUBE_VERSION)
    rendered = render.render(_load(chart_path), _user_values(value_files, set_values, set_string, set_json),
                             render.ReleaseInfo(name, namespace or "default", revision), capabilities=capabilities)
    docs = (rendered.crds if include_crds else []) + rendered.documents + rendered.hooks
    printing.write(render.to_manifest(docs))


@chart_group.command()
@click.argument("chart_path", metavar="CHART")
@click.option("-d", "--destination", default=".", show_default=True, help="Where to write the archive.")
@common.handle_errors
@_run
def package(chart_path: str, destination: str) -> None:
    """Pack a chart folder into NAME-VERSION.tgz (dependencies included) and print its digest."""
    from reconcile.charting import chart

    out = chart.package(chart_path, destination)
    click.echo(f"Successfully packaged chart and saved it to: {out}")
    click.echo(f"Digest: sha256:{hashlib.sha256(out.read_bytes()).hexdigest()}")


# --- install, upgrade, rollback, uninstall, test ------------------------------------------------


@chart_group.command()
@click.argument("name")
@click.argument("chart_path", metavar="CHART")
@_values_options
@_release_options
@_namespace_option
@click.option("--create-namespace", is_flag=True, help="Create the release's namespace if it is missing.")
@click.option("--dry-run", is_flag=True, help="Render and validate on the server; store nothing.")
@common.connection_options
@common.handle_errors
@_run
def install(name: str, chart_path: str, value_files: tuple[str, ...], set_values: tuple[str, ...],
            set_string: tuple[str, ...], set_json: tuple[str, ...], wait: bool, timeout: str, atomic: bool,
            history_max: int, no_hooks: bool, description: str, namespace: str | None, create_namespace: bool,
            dry_run: bool) -> None:
    """Install CHART as release NAME."""
    _check_release_name(name)
    loaded = _load(chart_path)
    user = _user_values(value_files, set_values, set_string, set_json)
    session, ops = _session_ops(wait or atomic)
    record = ops.install(name, namespace or session.namespace, loaded, user,
                         _options(wait, timeout, atomic, history_max, no_hooks, description, create_namespace),
                         dry_run=dry_run)
    _summary(record)


@chart_group.command()
@click.argument("name")
@click.argument("chart_path", metavar="CHART")
@_values_options
@_release_options
@_namespace_option
@click.option("-i", "--install", "install_missing", is_flag=True, help="Install the release if it does not exist.")
@click.option("--reuse-values", is_flag=True, help="Merge the given values over the last release's.")
@click.option("--reset-values", is_flag=True, help="Start from the chart's defaults even when no values are given.")
@click.option("--create-namespace", is_flag=True, help="With --install: create the namespace if it is missing.")
@click.option("--dry-run", is_flag=True, help="Render and validate on the server; store nothing.")
@common.connection_options
@common.handle_errors
@_run
def upgrade(name: str, chart_path: str, value_files: tuple[str, ...], set_values: tuple[str, ...],
            set_string: tuple[str, ...], set_json: tuple[str, ...], wait: bool, timeout: str, atomic: bool,
            history_max: int, no_hooks: bool, description: str, namespace: str | None, install_missing: bool,
            reuse_values: bool, reset_values: bool, create_namespace: bool, dry_run: bool) -> None:
    """Upgrade release NAME to CHART (three-way merge with the live objects)."""
    _check_release_name(name)
    loaded = _load(chart_path)
    user = _user_values(value_files, set_values, set_string, set_json)
    session, ops = _session_ops(wait or atomic)
    record = ops.upgrade(name, namespace or session.namespace, loaded, user,
                         _options(wait, timeout, atomic, history_max, no_hooks, description, create_namespace),
                         install=install_missing, reuse_values=reuse_values, reset_values=reset_values,
                         dry_run=dry_run)
    if record.revision > 1 and not dry_run:
        click.echo(f'Release "{name}" has been upgraded.')
    _summary(record)


@chart_group.command()
@click.argument("name")
@click.argument("revision", type=int, required=False)
@_namespace_option
@click.option("--wait", is_flag=True, help="Wait until the release's objects are ready.")
@click.option("--timeout", default="5m0s", show_default=True)
@click.option("--history-max", default=10, show_default=True)
@click.option("--no-hooks", is_flag=True)
@common.connection_options
@common.handle_errors
@_run
def rollback(name: str, revision: int | None, namespace: str | None, wait: bool, timeout: str, history_max: int,
             no_hooks: bool) -> None:
    """Roll release NAME back to REVISION (default: the one before the current); a new revision."""
    session, ops = _session_ops(wait)
    ops.rollback(name, namespace or session.namespace, revision,
                 _options(wait, timeout, False, history_max, no_hooks, ""))
    click.echo("Rollback was a success!")


@chart_group.command()
@click.argument("name")
@_namespace_option
@click.option("--keep-history", is_flag=True, help="Keep the release's records (status uninstalled).")
@click.option("--no-hooks", is_flag=True)
@click.option("--timeout", default="5m0s", show_default=True)
@common.connection_options
@common.handle_errors
@_run
def uninstall(name: str, namespace: str | None, keep_history: bool, no_hooks: bool, timeout: str) -> None:
    """Delete everything release NAME owns (CRDs and objects marked keep stay)."""
    session, ops = _session_ops()
    kept = ops.uninstall(name, namespace or session.namespace, keep_history=keep_history,
                         options=_options(False, timeout, False, 0, no_hooks, ""))
    if kept:
        click.echo("These resources were kept due to the resource policy:")
        for line in kept:
            click.echo(f"[{line.split(' kept', 1)[0]}]")
    click.echo(f'release "{name}" uninstalled')


@chart_group.command("test")
@click.argument("name")
@_namespace_option
@click.option("--timeout", default="5m0s", show_default=True)
@common.connection_options
@common.handle_errors
@_run
def test_cmd(name: str, namespace: str | None, timeout: str) -> None:
    """Run release NAME's test hooks (charts.reconcile.dev/hook: test)."""
    session, ops = _session_ops()
    lines = ops.run_tests(name, namespace or session.namespace, duration(timeout))
    for line in lines:
        click.echo(f"TEST SUITE:     {line}")
    if not lines:
        click.echo(f"release {name} has no test hooks")


# --- list, history, status, get, diff ---------------------------------------------------------


@chart_group.command("list")
@_namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Releases of every namespace.")
@click.option("-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table")
@common.connection_options
@common.handle_errors
def list_cmd(namespace: str | None, all_namespaces: bool, output: str) -> None:
    """The releases (latest revision of each)."""
    from reconcile.charting import releases

    session = common.Session()
    records = releases.Store(session.client).list(None if all_namespaces else (namespace or session.namespace))
    rows = [{"name": r.name, "namespace": r.namespace, "revision": r.revision, "updated": r.last_deployed,
             "status": r.phase, "chart": r.chart_ref, "app_version": r.chart.get("appVersion", "")} for r in records]
    if output != "table":
        printing.write(printing.to_yaml(rows) if output == "yaml" else printing.to_json(rows))
        return
    printing.render_table(["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"],
                          [[str(v) for v in row.values()] for row in rows])


@chart_group.command()
@click.argument("name")
@_namespace_option
@click.option("--max", "max_rows", default=256, show_default=True)
@click.option("-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table")
@common.connection_options
@common.handle_errors
def history(name: str, namespace: str | None, max_rows: int, output: str) -> None:
    """Revisions of release NAME."""
    from reconcile.charting import releases

    session = common.Session()
    records = releases.Store(session.client).history(name, namespace or session.namespace)[-max_rows:]
    if not records:
        common.fail("release: not found")
    rows = [{"revision": r.revision, "updated": r.last_deployed, "status": r.phase, "chart": r.chart_ref,
             "app_version": r.chart.get("appVersion", ""), "description": r.description} for r in records]
    if output != "table":
        printing.write(printing.to_yaml(rows) if output == "yaml" else printing.to_json(rows))
        return
    printing.render_table(["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"],
                          [[str(v) for v in row.values()] for row in rows])


def _record(name: str, namespace: str | None, revision: int | None) -> Any:
    from reconcile.charting import releases

    session = common.Session()
    store = releases.Store(session.client)
    ns = namespace or session.namespace
    if revision:
        return store.get(name, ns, revision)
    record = store.latest(name, ns)
    if record is None:
        common.fail("release: not found")
    return record


@chart_group.command()
@click.argument("name")
@_namespace_option
@click.option("--revision", type=int, default=None)
@common.connection_options
@common.handle_errors
def status(name: str, namespace: str | None, revision: int | None) -> None:
    """Release NAME's status (latest revision unless --revision) and its NOTES."""
    _summary(_record(name, namespace, revision))


@chart_group.group("get")
def get_group() -> None:
    """A release's values, manifest or notes."""


def _get_options(fn: Any) -> Any:
    fn = click.option("--revision", type=int, default=None)(fn)
    fn = _namespace_option(fn)
    fn = click.argument("name")(fn)
    return common.handle_errors(common.connection_options(fn))


@get_group.command("values")
@_get_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
def get_values(name: str, namespace: str | None, revision: int | None, output: str) -> None:
    """The values the user gave at install/upgrade (-f and --set), as stored in the revision."""
    record = _record(name, namespace, revision)
    if output == "yaml":
        click.echo("USER-SUPPLIED VALUES:")
        printing.write(printing.to_yaml(record.values) if record.values else "null\n")
    else:
        printing.write(printing.to_json(record.values))


@get_group.command("manifest")
@_get_options
def get_manifest(name: str, namespace: str | None, revision: int | None) -> None:
    """The objects the release applied."""
    printing.write(_record(name, namespace, revision).manifest)


@get_group.command("notes")
@_get_options
def get_notes(name: str, namespace: str | None, revision: int | None) -> None:
    """The release's rendered NOTES."""
    record = _record(name, namespace, revision)
    click.echo("NOTES:")
    click.echo(record.notes.rstrip("\n"))


@chart_group.group("diff")
def diff_group() -> None:
    """What an operation would change."""


@diff_group.command("upgrade")
@click.argument("name")
@click.argument("chart_path", metavar="CHART")
@_values_options
@_namespace_option
@click.option("--reuse-values", is_flag=True)
@click.option("--color/--no-color", default=None, help="Colour the diff (default: on a terminal).")
@common.connection_options
@common.handle_errors
@_run
def diff_upgrade(name: str, chart_path: str, value_files: tuple[str, ...], set_values: tuple[str, ...],
                 set_string: tuple[str, ...], set_json: tuple[str, ...], namespace: str | None, reuse_values: bool,
                 color: bool | None) -> None:
    """The changes `upgrade NAME CHART` would make, as a unified diff of live and dry-run objects."""
    session, ops = _session_ops()
    changes = ops.diff(name, namespace or session.namespace, _load(chart_path),
                       _user_values(value_files, set_values, set_string, set_json), reuse_values=reuse_values)
    coloured = sys.stdout.isatty() if color is None else color
    for ref, before, after in changes:
        diffs.echo_object_diff(ref, before, after, after_label="upgrade", coloured=coloured)
    if changes:
        raise click.exceptions.Exit(1)  # as `diff` and `kubectl diff`: 1 when there are differences


def _check_release_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 53:
        common.fail(f'release name "{name}": must be a lowercase DNS-1123 label of at most 53 characters')
