"""`reconcile node cordon|uncordon|drain NAME`: take a node out of scheduling and move its pods away.

Drain follows kubectl: cordon first (so replacements land elsewhere), refuse pods nothing would
re-create unless `--force` (a bare pod deleted is a pod lost), skip mirror pods, evict the rest
(pods/eviction: PodDisruptionBudgets are honoured, a 429 is retried every 5 s as kubectl does,
until --timeout) with their grace period, and wait until they are gone. Pods owned by a ReplicaSet
(through a Deployment or not) are replaced by their controller on another node.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import errors, meta

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
POLL_INTERVAL = 0.25
EVICTION_RETRY = 5.0  # kubectl drain's pause after a 429 (a budget allows no disruption yet)


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


@dataclass
class Plan:
    """Which pods on the node a drain deletes, and why it refuses or warns about others."""

    delete: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)  # kubectl's message -> ns/name
    warnings: dict[str, list[str]] = field(default_factory=dict)


def plan(pods: list[dict[str, Any]], *, force: bool, ignore_daemonsets: bool, delete_emptydir_data: bool) -> Plan:
    """kubectl drain's pod filters, in its order: mirror, finished, unreplicated, DaemonSet, local storage."""
    result = Plan()
    for pod in pods:
        md = pod["metadata"]
        ref = f"{md.get('namespace')}/{md['name']}"
        if MIRROR_ANNOTATION in (md.get("annotations") or {}):
            continue
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        owner = meta.controller_owner(pod)
        if not finished and owner is None:
            if not force:
                result.errors.setdefault("cannot delete Pods that declare no controller (use --force to override)",
                                         []).append(ref)
                continue
            result.warnings.setdefault("deleting Pods that declare no controller", []).append(ref)
        if not finished and owner is not None and owner.get("kind") == "DaemonSet":
            if ignore_daemonsets:
                result.warnings.setdefault("ignoring DaemonSet-managed Pods", []).append(ref)
            else:
                result.errors.setdefault(
                    "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)", []).append(ref)
            continue
        local = any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or [])
        if not finished and local:
            if not delete_emptydir_data:
                result.errors.setdefault(
                    "cannot delete Pods with local storage (use --delete-emptydir-data to override)", []).append(ref)
                continue
            result.warnings.setdefault("deleting Pods with local storage", []).append(ref)
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
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="Seconds each pod gets to stop (negative: the pod's own terminationGracePeriodSeconds).")
@click.option("--timeout", "timeout_text", default="300s", show_default=True,
              help="How long to wait for the pods to be gone (0: forever).")
@common.connection_options
@common.handle_errors
def drain(name: str, force: bool, ignore_daemonsets: bool, delete_emptydir_data: bool, grace_period: int,
          timeout_text: str) -> None:
    """Cordon node NAME, then delete its pods (controllers re-create them elsewhere) and wait until they are gone."""
    timeout = parse_timeout(timeout_text)
    session = common.Session()
    _set_unschedulable(session, name, True)
    chosen = plan(_pods_on(session, name), force=force, ignore_daemonsets=ignore_daemonsets,
                  delete_emptydir_data=delete_emptydir_data)
    if chosen.errors:
        details = "; ".join(f"{why}: {', '.join(refs)}" for why, refs in chosen.errors.items())
        click.echo(f'error: unable to drain node "{name}" due to error: {details}, continuing command...', err=True)
        click.echo(f"There are pending nodes to be drained:\n {name}", err=True)
        for why, refs in chosen.errors.items():
            click.echo(f"{why}: {', '.join(refs)}", err=True)
        raise SystemExit(1)
    for why, refs in chosen.warnings.items():
        click.echo(f"Warning: {why}: {', '.join(refs)}", err=True)
    deadline = None if timeout <= 0 else time.monotonic() + timeout
    for pod in chosen.delete:
        md = pod["metadata"]
        click.echo(f"evicting pod {md.get('namespace')}/{md['name']}")
        if not _evict(session, pod, grace_period, deadline):
            common.fail(f'unable to drain node "{name}" due to error: global timeout reached: {timeout_text} '
                        f"evicting pod {md.get('namespace')}/{md['name']}")
    pending = _wait_gone(session, name, chosen.delete,
                         timeout=0 if deadline is None else max(0.001, deadline - time.monotonic()))
    if pending:
        refs = ", ".join(pending)
        common.fail(f'unable to drain node "{name}" due to error: global timeout reached: {timeout_text} '
                    f"waiting for pods to terminate: {refs}")
    click.echo(f"node/{name} drained")


def _evict(session: common.Session, pod: dict[str, Any], grace_period: int, deadline: float | None) -> bool:
    """POST the pod's Eviction until it is accepted (or the pod is gone); False at the deadline."""
    md = pod["metadata"]
    namespace, pod_name = md.get("namespace"), md["name"]
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": pod_name, "namespace": namespace}}
    if grace_period >= 0:
        body["deleteOptions"] = {"gracePeriodSeconds": grace_period}
    while True:
        try:
            session.client.request("POST", f"/api/v1/namespaces/{namespace}/pods/{pod_name}/eviction", json=body)
            return True
        except errors.NotFound:
            return True
        except errors.TooManyRequests as exc:
            if deadline is not None and time.monotonic() + EVICTION_RETRY > deadline:
                return False
            click.echo(f'error when evicting pods/"{pod_name}" -n "{namespace}" (will retry after 5s): '
                       f"{exc.message}", err=True)
            time.sleep(EVICTION_RETRY)


def _wait_gone(session: common.Session, node: str, pods: list[dict[str, Any]], *, timeout: float) -> list[str]:
    """Report each pod as it goes; returns the refs still there at the deadline (none: all gone)."""
    waiting = {p["metadata"]["uid"]: p for p in pods}
    deadline = None if timeout <= 0 else time.monotonic() + timeout
    while waiting:
        present = {p["metadata"]["uid"] for p in _pods_on(session, node)}
        for uid in [u for u in waiting if u not in present]:
            click.echo(f"pod/{waiting.pop(uid)['metadata']['name']} evicted")
        if not waiting or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(POLL_INTERVAL)
    return [f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in waiting.values()]
