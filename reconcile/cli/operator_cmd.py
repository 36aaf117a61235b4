"""`reconcile operator run PLUGIN`: run a kopf-style plugin against the API server.

Several replicas of one operator elect a leader on a Lease (only the leader runs handlers,
and its writes are fenced); `--standalone` skips the election for a single copy.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    main.add_command(operator_group)


@click.group("operator")
def operator_group() -> None:
    """Run operator plugins written with the SDK (`import reconcile as rc`)."""


def _lease_name(target: str) -> str:
    stem = Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "plugin"
    return f"reconcile-operator-{name}"[:63].rstrip("-")


@operator_group.command("run")
@click.argument("target")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (the default).")
@click.option("--standalone", is_flag=True, help="Do not elect a leader: this copy always runs the handlers.")
@click.option("--lease-name", default=None, help="Lease used for leader election (default from the plugin name).")
@click.option("--lease-namespace", default=None, help="Namespace of the Lease (default: the first -n, else kube-system).")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on this port.")
@click.option("--workers", type=int, default=32, show_default=True, help="Objects reconciled concurrently per resource.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@common.connection_options
@common.handle_errors
def run(
    target: str,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    lease_name: str | None,
    lease_namespace: str | None,
    health_port: int | None,
    workers: int,
    verbose: bool,
) -> None:
    """Run TARGET: a plugin file (handlers.py), a module (pkg.handlers), or an installed
    entry point of the group `reconcile.operators`."""
    from reconcile.engine.sdk import loading

    if namespaces and all_namespaces:
        common.fail("--namespace and --all-namespaces are exclusive")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = common.Session().config
    try:
        registry = loading.load(target)
    except loading.PluginNotFound as exc:
        common.fail(str(exc))
        return
    options = {
        "namespaces": list(namespaces) or None,
        "standalone": standalone,
        "lease_name": lease_name or _lease_name(target),
        "lease_namespace": lease_namespace or (namespaces[0] if namespaces else "kube-system"),
        "health_port": health_port,
        "workers": workers,
    }
    asyncio.run(_serve(config, registry, **options))


async def _serve(
    config: object,
    registry: object,
    *,
    namespaces: list[str] | None,
    standalone: bool,
    lease_name: str,
    lease_namespace: str,
    health_port: int | None,
    workers: int,
) -> None:
    from reconcile.client import aio
    from reconcile.engine import manager
    from reconcile.engine.sdk import operator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = operator.Settings(workers=workers)
    async with aio.AsyncClient(config) as client:  # type: ignore[arg-type]
        if standalone:
            op = operator.Operator(client, registry=registry, namespaces=namespaces, settings=settings)  # type: ignore[arg-type]
            await op.serve(stop)
            return
        mgr = manager.Manager(client, name=lease_name, leader_election=True, lease_namespace=lease_namespace,
                              health_port=health_port)
        op = operator.Operator(mgr.client, registry=registry, namespaces=namespaces, settings=settings,  # type: ignore[arg-type]
                               metrics=mgr.metrics)
        mgr.add(op)
        mgr.add_health_check(op.supervisor)
        running = loop.create_task(mgr.run())
        stopping = loop.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            await mgr.stop()
        stopping.cancel()
        await running  # raises LeaderElectionLost: exit non-zero so a supervisor restarts us fresh
