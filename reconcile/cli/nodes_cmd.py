"""`reconcile node cordon|uncordon|drain NAME`: take a node out of scheduling and move its pods away.

Drain follows kubectl: cordon first (so replacements land elsewhere), refuse pods nothing would
re-create unless `--force` (a bare pod deleted is a pod lost), skip mirror pods, evict the rest
all at once (`drainpods`: PodDisruptionBudgets are honoured, a 429 is retried every 5 s as kubectl
does, until --timeout) with their grace period, and wait until they are gone. Pods owned by a ReplicaSet
(through a Deployment or not) are replaced by their controller on another node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import click

from reconcile.cli import common, drainpods
from reconcile.core import meta

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def register(main: click.Group) -> None:
    existing = main.commands.get("node")
    group = existing if isinstance(existing, click.Group) else None
    if group is None:
        group = node_group
        main.add_command(group)
    for command in (cordon, uncordon, drain):
        group.add_command(command)


@click.group("node")
def node_group() -> None:
    """Node agents and node operations."""


def _set_unschedulable(session: common.Session, name: str, value: bool) -> None:
    node = session.client.get("v1", "nodes", name)
    verb = "cordoned" if value else "uncordoned"
    if bool((node.get("spec") or {}).get("unschedulable")) == value:
        click.echo(f"node/{name} already {verb}")
        return
    session.client.patch("v1", "nodes", name, {"spec": {"unschedulable": True if value else None}})
    click.echo(f"node/{name} {verb}")


@click.command()
@click.argument("name")
@common.connection_options
@common.handle_errors
def cordon(name: str) -> None:
    """Mark node NAME unschedulable: running pods stay, new ones go elsewhere."""
    _set_unschedulable(common.Session(), name, True)


@click.command()
@click.argument("name")
@common.connection_options
@common.handle_errors
def uncordon(name: str) -> None:
    """Mark node NAME schedulable again."""
    _set_unschedulable(common.Session(), name, False)


# kubectl 1.32's filter messages (its "cannot delete " prefix is added to each fatal one, so the
# unmanaged one reads "cannot delete cannot delete ...", as kubectl prints it)
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"


@dataclass
class Plan:
    """Which pods on the node a drain deletes, and why it refuses or warns about others."""

    delete: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)  # kubectl's message -> ns/name
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def refusals(self) -> list[str]:
        """kubectl's errors for the refused pods, one per reason."""
        return [f"cannot delete {why}: {', '.join(refs)}" for why, refs in self.errors.items()]

    def warning(self) -> str:
        """kubectl's one warning line (without its `Warning: ` prefix); empty if none."""
        return "; ".join(f"{why}: {', '.join(refs)}" for why, refs in self.warnings.items())


# (delete?, "" | "warning" | "error", message): one filter's verdict on a pod
_Verdict = tuple[bool, str, str]
_OKAY: _Verdict = (True, "", "")


def _finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def plan(pods: list[dict[str, Any]], *, force: bool, ignore_daemonsets: bool, delete_emptydir_data: bool) -> Plan:
    """kubectl drain's pod filters, in its order (DaemonSet, mirror, local storage, unreplicated).
    As in kubectl, a pod's verdict is the one of the filter that stops it, or else of the last
    filter: a warning of an earlier filter is forgotten when a later one passes the pod (so kubectl
    never shows its local-storage warning, and neither do we)."""

    def daemonset(pod: dict[str, Any]) -> _Verdict:
        owner = meta.controller_owner(pod)
        if owner is None or owner.get("kind") != "DaemonSet" or _finished(pod):
            return _OKAY
        return (False, "warning", DAEMONSET_WARNING) if ignore_daemonsets else (False, "error", DAEMONSET_FATAL)

    def mirror(pod: dict[str, Any]) -> _Verdict:
        return (False, "", "") if MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}) else _OKAY

    def local_storage(pod: dict[str, Any]) -> _Verdict:
        if not any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or []) or _finished(pod):
            return _OKAY
        return (True, "warning", "deleting Pods with local storage") if delete_emptydir_data else (
            False, "error", LOCAL_STORAGE_FATAL)

    def unreplicated(pod: dict[str, Any]) -> _Verdict:
        if _finished(pod) or meta.controller_owner(pod) is not None:
            return _OKAY
        return (True, "warning", UNMANAGED_WARNING) if force else (False, "error", UNMANAGED_FATAL)

    result = Plan()
    for pod in pods:
        verdict = _OKAY
        for check in (daemonset, mirror, local_storage, unreplicated):
            verdict = check(pod)
            if not verdict[0]:
                break
        deleted, kind, message = verdict
        ref = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        if kind:
            (result.errors if kind == "error" else result.warnings).setdefault(message, []).append(ref)
        if deleted:
            result.delete.append(pod)
    return result


def parse_timeout(text: str) -> float:
    """`90`, `90s`, `5m`, `1h`, `1m30s` -> seconds; 0 means wait forever (as kubectl)."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (e.g. 90s, 5m)")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _pods_on(session: common.Session, name: str) -> list[dict[str, Any]]:
    return session.client.list("v1", "pods", field_selector=f"spec.nodeName={name}").get("items") or []


@click.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete pods that no controller would re-create.")
@click.option("--ignore-daemonsets", is_flag=True, help="Leave DaemonSet-managed pods in place.")
@click.option("--delete-emptydir-data", is_flag=True, help="Also delete pods using emptyDir (their data is lost).")
@click.option("--disable-eviction", is_flag=True,
              help="DELETE the pods instead of evicting them (PodDisruptionBudgets are bypassed).")
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="Seconds each pod gets to stop (negative: the pod's own terminationGracePeriodSeconds).")
@click.option("--timeout", "timeout_text", default="0s", show_default=True,
              help="How long the whole drain may take before giving up (0: forever, as kubectl).")
@common.connection_options
@common.handle_errors
def drain(name: str, force: bool, ignore_daemonsets: bool, delete_emptydir_data: bool, disable_eviction: bool,
          grace_period: int, timeout_text: str) -> None:
    """Cordon node NAME, then evict its pods all at once (controllers re-create them elsewhere) and wait until they are gone."""
    timeout = parse_timeout(timeout_text)
    session = common.Session()
    _set_unschedulable(session, name, True)
    chosen = plan(_pods_on(session, name), force=force, ignore_daemonsets=ignore_daemonsets,
                  delete_emptydir_data=delete_emptydir_data)
    if chosen.errors:
        _refuse(name, chosen.refusals())
    if chosen.warnings:
        click.echo(f"Warning: {chosen.warning()}", err=True)
    drainer = drainpods.Drainer(session.client, grace_period=grace_period, timeout=timeout)
    found = drainer.delete(chosen.delete) if disable_eviction else drainer.evict(chosen.delete)
    if found:
        pending = plan(_pods_on(session, name), force=force, ignore_daemonsets=ignore_daemonsets,
                       delete_emptydir_data=delete_emptydir_data).delete  # as kubectl: the pods still to go
        if pending:
            click.echo(f'There are pending pods in node "{name}" when an error occurred: '
                       f"{drainpods.aggregate(found)}", err=True)
            for pod in pending:
                click.echo(f"pod/{pod['metadata']['name']}", err=True)
        _refuse(name, found)
    click.echo(f"node/{name} drained")


def _refuse(node: str, found: list[str]) -> None:
    """kubectl's ending of a drain that failed: the node stays cordoned, exit 1."""
    message = drainpods.aggregate(found)
    click.echo(f'error: unable to drain node "{node}" due to error: {message}, continuing command...', err=True)
    click.echo(f"There are pending nodes to be drained:\n {node}", err=True)
    if len(found) == 1:
        common.fail(message)
    for line in found:  # kubectl prints several errors one a line, without the `error: ` prefix
        click.echo(line, err=True)
    raise SystemExit(1)
