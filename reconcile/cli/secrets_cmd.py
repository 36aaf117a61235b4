"""`reconcile secrets rotate`: rewrite every Secret (or other encrypted resource) so etcd holds it under
the current write key.

Key rotation as upstream does it: put the new key first in the EncryptionConfiguration (keep the old
one after it), restart the API server(s), run this, then remove the old key. Upstream's recipe is
`kubectl get secrets -A -o json | kubectl replace -f -`; this is the same, one object at a time and
through the API only: each object is read and replaced unchanged, with its resourceVersion as a
precondition. The API server skips an update that changes nothing, except when the stored value was
read with an older key (the store calls it stale): then it writes it again, encrypted with the
first provider. So only objects that need it get a new resourceVersion (and a MODIFIED event), and
running it twice rewrites nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import errors

MAX_ATTEMPTS = 5  # per object: a conflict means someone wrote it meanwhile; read it again and retry


def register(main: click.Group) -> None:
    existing = main.commands.get("secrets")
    group = existing if isinstance(existing, click.Group) else None
    if group is None:
        group = secrets_group
        main.add_command(group)
    group.add_command(rotate)


@click.group("secrets")
def secrets_group() -> None:
    """Secrets at rest."""


@dataclass
class Tally:
    rewritten: int = 0
    current: int = 0  # already under the write key: the server had nothing to write
    gone: int = 0  # deleted between the list and the rewrite
    failed: list[str] = field(default_factory=list)


@click.command()
@click.option("--resource", "-r", "resources", multiple=True, default=("secrets",), show_default=True,
              help="A resource your EncryptionConfiguration covers (repeat for several): secrets, "
                   "configmaps, deployments.apps, ...")
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: every namespace).")
@common.connection_options
@common.handle_errors
def rotate(resources: tuple[str, ...], namespace: str | None) -> None:
    """Rewrite every object of the resources, so each is stored under the current encryption key."""
    session = common.Session()
    failed = False
    for name in resources:
        resource = common.resolve(session, name)
        tally = rotate_resource(session.client, resource, namespace=namespace)
        click.echo(f"{resource.group_resource}: {tally.rewritten} rewritten, {tally.current} already current"
                   + (f", {tally.gone} deleted meanwhile" if tally.gone else ""))
        for line in tally.failed:
            click.echo(f"error: {line}", err=True)
        failed = failed or bool(tally.failed)
    if failed:
        raise click.exceptions.Exit(1)


def rotate_resource(client: Any, resource: Any, *, namespace: str | None) -> Tally:
    """Replace each object of `resource` unchanged; count what the server rewrote."""
    tally = Tally()
    listed = client.list_all(resource.api_version, resource.plural,
                             namespace=namespace if resource.namespaced else None)
    for item in listed.get("items") or []:
        metadata = item.get("metadata") or {}
        where = f"{resource.group_resource} {metadata.get('namespace', '')}/{metadata.get('name', '')}".replace(" /", " ")
        try:
            outcome = _rewrite(client, resource, item)
        except errors.ApiError as exc:
            tally.failed.append(f"{where}: {exc.reason}: {exc.message}")
            continue
        if outcome == "rewritten":
            tally.rewritten += 1
        elif outcome == "current":
            tally.current += 1
        else:
            tally.gone += 1
    return tally


def _rewrite(client: Any, resource: Any, obj: dict[str, Any]) -> str:
    """'rewritten', 'current' or 'gone'."""
    for _attempt in range(MAX_ATTEMPTS):
        metadata = obj.get("metadata") or {}
        before = metadata.get("resourceVersion")
        obj = dict(obj, apiVersion=resource.api_version, kind=resource.kind)
        try:
            replaced = client.replace(resource.api_version, resource.plural, obj,
                                      namespace=metadata.get("namespace") if resource.namespaced else None)
        except errors.Conflict:
            try:  # written meanwhile (under the current key, or by a server not yet restarted): look again
                obj = client.get(resource.api_version, resource.plural, metadata["name"],
                                 namespace=metadata.get("namespace") if resource.namespaced else None)
            except errors.NotFound:
                return "gone"
            continue
        except errors.NotFound:
            return "gone"
        after = (replaced.get("metadata") or {}).get("resourceVersion")
        return "current" if after == before else "rewritten"
    raise errors.Conflict(f"{resource.group_resource} {metadata.get('name')}: still changing after "
                          f"{MAX_ATTEMPTS} attempts; run the rotation again")
