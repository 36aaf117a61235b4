"""`reconcile apply`: create or update objects from files, like kubectl's apply.

Client-side apply keeps the applied configuration in the `last-applied-configuration`
annotation and sends a three-way JSON merge patch (last applied, file, live), so fields
removed from the file are removed from the object while fields others set are kept.
`--server-side` sends the object as an apply patch and lets the server merge.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import click

from reconcile.cli import common, manifests
from reconcile.core import errors, threeway

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FIELD_MANAGER_CSA = "reconcile-client-side-apply"
FIELD_MANAGER_SSA = "reconcile"
CRD_WAIT_SECONDS = 10.0
_SERVER_OWNED_META = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink",
                      "deletionTimestamp", "deletionGracePeriodSeconds")


class DocumentError(Exception):
    """A client-side problem with one document (reported with its file and line)."""


def register(main: click.Group) -> None:
    main.add_command(apply)


@click.command()
@click.option("-f", "--filename", "filenames", multiple=True, required=True,
              help="File, folder or - (stdin) with resources; repeatable.")
@click.option("-R", "--recursive", is_flag=True, help="Walk folders given with -f recursively.")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "server"]), default="none", show_default=True,
              help="server: the server validates and answers but stores nothing.")
@click.option("--server-side", is_flag=True, help="Server-side apply (apply patch, fieldManager=reconcile).")
@click.option("--force-conflicts", is_flag=True, help="With --server-side: take over fields other managers own.")
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@common.connection_options
@common.handle_errors
def apply(filenames: tuple[str, ...], recursive: bool, dry_run: str, server_side: bool,
          force_conflicts: bool, namespace: str | None) -> None:
    """Create or update the resources in FILE, DIR or - (stdin)."""
    try:
        docs = manifests.load(list(filenames), recursive=recursive)
    except (manifests.ManifestPathError, OSError) as exc:
        common.fail(str(exc))
        return
    session = common.Session()
    applier = Applier(session, namespace=namespace, dry_run=dry_run == "server", server_side=server_side,
                      force=force_conflicts)
    failed = 0
    for doc in manifests.apply_order(docs):
        if doc.error is not None:
            click.echo(f"error: {doc.where}: {doc.error}", err=True)
            failed += 1
            continue
        try:
            click.echo(applier.apply(doc))
        except DocumentError as exc:
            click.echo(f"error: {doc.where}: {exc}", err=True)
            failed += 1
        except errors.Invalid as exc:
            click.echo(f"error: {doc.where}: {common.format_api_error(exc)}", err=True)
            failed += 1
        except errors.ApiError as exc:
            click.echo(common.format_api_error(exc, action=f'error when applying "{doc.where}"'), err=True)
            failed += 1
    if failed:
        raise click.exceptions.Exit(1)


class Applier:
    """Applies documents one at a time through one session."""

    def __init__(self, session: common.Session, *, namespace: str | None, dry_run: bool, server_side: bool,
                 force: bool = False) -> None:
        self.session = session
        self.explicit_namespace = namespace
        self.namespace = namespace or session.namespace
        self.dry_run = dry_run
        self.server_side = server_side
        self.force = force
        self.crd_applied = False

    def apply(self, doc: manifests.Document) -> str:
        """Apply one object; return the line to print (`deployment.apps/web created`)."""
        assert doc.obj is not None
        obj = copy.deepcopy(doc.obj)
        res = self._resource(obj)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise DocumentError(f"{obj['kind']} has no metadata.name (apply needs a name)")
        namespace = self._namespace(res, meta)
        if self.server_side:
            outcome = self._server_side(res, obj, name, namespace)
        else:
            outcome = self._client_side(res, obj, name, namespace)
        if obj.get("kind") == "CustomResourceDefinition" and not self.dry_run:
            self.crd_applied = True
        suffix = " (server dry run)" if self.dry_run else ""
        return f"{common.kind_ref(res)}/{name} {outcome}{suffix}"

    def _resource(self, obj: dict[str, Any]) -> Any:
        """The resource for apiVersion+kind; after a CRD in this batch, wait for it to be served."""
        deadline = time.monotonic() + (CRD_WAIT_SECONDS if self.crd_applied else 0)
        while True:
            try:
                return self.session.client.resource_for(obj["apiVersion"], obj["kind"])
            except errors.NotFound:
                if time.monotonic() >= deadline:
                    raise DocumentError(
                        f'no matches for kind "{obj["kind"]}" in version "{obj["apiVersion"]}"') from None
                time.sleep(0.25)  # the server registers a new CRD asynchronously; poll with a deadline
                self.session.refresh()

    def _namespace(self, res: Any, meta: dict[str, Any]) -> str | None:
        if not res.namespaced:
            meta.pop("namespace", None)
            return None
        given = meta.get("namespace")
        if given and self.explicit_namespace and given != self.explicit_namespace:
            raise DocumentError(
                f'the namespace from the provided object "{given}" does not match the namespace '
                f'"{self.explicit_namespace}". You must pass \'--namespace={given}\' to perform this operation.')
        meta["namespace"] = given or self.namespace
        return meta["namespace"]

    def _get(self, res: Any, name: str, namespace: str | None) -> dict[str, Any] | None:
        try:
            return self.session.client.get(common.api_version_of(res), res.plural, name, namespace=namespace)
        except errors.NotFound:
            return None

    def _server_side(self, res: Any, obj: dict[str, Any], name: str, namespace: str | None) -> str:
        live = self._get(res, name, namespace)
        body = _strip_server_fields(obj)
        result = self.session.client.patch(
            common.api_version_of(res), res.plural, name, body, namespace=namespace, patch_type="apply",
            field_manager=FIELD_MANAGER_SSA, force=self.force, dry_run=self.dry_run)
        if live is None:
            return "created"
        return "unchanged" if _comparable(live) == _comparable(result) else "configured"

    def _client_side(self, res: Any, obj: dict[str, Any], name: str, namespace: str | None) -> str:
        modified = with_last_applied(_strip_server_fields(obj))
        live = self._get(res, name, namespace)
        api_version = common.api_version_of(res)
        if live is None:
            self.session.client.create(api_version, res.plural, modified, namespace=namespace,
                                       dry_run=self.dry_run, field_manager=FIELD_MANAGER_CSA)
            return "created"
        original = last_applied_of(live)
        patch = threeway.merge_patch(original, modified, live)
        if not patch:
            return "unchanged"
        self.session.client.patch(api_version, res.plural, name, patch, namespace=namespace, patch_type="merge",
                                  field_manager=FIELD_MANAGER_CSA, dry_run=self.dry_run)
        return "configured"


def _strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """What the user declares: no status and no server-owned metadata (they would always differ)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _SERVER_OWNED_META:
        meta.pop(key, None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return out


def with_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """The object plus the annotation recording it (compact, sorted JSON, as kubectl writes it)."""
    recorded = json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"
    out = copy.deepcopy(obj)
    annotations = out["metadata"].get("annotations") or {}
    out["metadata"]["annotations"] = {**annotations, LAST_APPLIED: recorded}
    return out


def last_applied_of(live: dict[str, Any]) -> dict[str, Any] | None:
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    return out
