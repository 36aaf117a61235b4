"""`reconcile logs` and `reconcile exec`: through the API server, which proxies to the pod's node agent."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import errors, execstream, selectors


def register(main: click.Group) -> None:
    main.add_command(logs)
    main.add_command(exec_command)


def _pod_for(session: common.Session, target: str, namespace: str) -> dict[str, Any]:
    """POD, or KIND/NAME of anything with a selector (deploy/web, rs/web-x): its first pod, running first."""
    if "/" not in target:
        return session.client.get("v1", "pods", target, namespace=namespace)
    kind, _, name = target.partition("/")
    res = common.resolve(session, kind)
    if res.kind == "Pod":
        return session.client.get("v1", "pods", name, namespace=namespace)
    owner = session.client.get(common.api_version_of(res), res.plural, name, namespace=namespace)
    selector = (owner.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or not selector:
        common.fail(f"cannot find the pods of {res.kind.lower()}/{name}: it has no selector")
    text = str(selectors.LabelSelector.from_match(selector)) if (
        "matchLabels" in selector or "matchExpressions" in selector) else ",".join(f"{k}={v}" for k, v in selector.items())
    items = session.client.list("v1", "pods", namespace=namespace, label_selector=text).get("items") or []
    if not items:
        common.fail(f"no pods found for {res.kind.lower()}/{name}")
    items.sort(key=lambda p: ((p.get("status") or {}).get("phase") != "Running", p["metadata"]["name"]))
    return items[0]


@click.command()
@click.argument("target")
@click.option("-c", "--container", default=None, help="Container name (default: the only or default one).")
@click.option("-f", "--follow", is_flag=True, help="Stream new output until the container stops.")
@click.option("--tail", type=int, default=None, help="Lines from the end to show.")
@click.option("-p", "--previous", is_flag=True, help="The previous (terminated) instance of the container.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC3339 time.")
@click.option("--since", "since_seconds", type=int, default=None, help="Only lines newer than this many seconds.")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig's).")
@common.connection_options
@common.handle_errors
def logs(target: str, container: str | None, follow: bool, tail: int | None, previous: bool, timestamps: bool,
         since_seconds: int | None, namespace: str | None) -> None:
    """Print a container's logs: POD, or deploy/NAME (one of its pods)."""
    session = common.Session()
    ns = namespace or session.namespace
    pod = _pod_for(session, target, ns)
    params: dict[str, str] = {}
    if container:
        params["container"] = container
    for key, value in (("follow", follow), ("previous", previous), ("timestamps", timestamps)):
        if value:
            params[key] = "true"
    if tail is not None:
        params["tailLines"] = str(tail)
    if since_seconds is not None:
        params["sinceSeconds"] = str(since_seconds)
    path = f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/log"
    response = session.client.request("GET", path, params=params, stream=True)
    try:
        for chunk in response.iter_raw():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    finally:
        response.close()


@click.command("exec")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@click.option("-c", "--container", default=None, help="Container name (default: the only or default one).")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig's).")
@common.connection_options
@common.handle_errors
def exec_command(pod: str, command: tuple[str, ...], container: str | None, namespace: str | None) -> None:
    """Run COMMAND in a container of POD (`reconcile exec POD -- CMD ARGS`); exits with its exit code.

    Output is printed as the command writes it (stdout to stdout, stderr to stderr), for as long
    as it runs; interrupting this command (Ctrl-C) ends the command in the container too.
    """
    session = common.Session()
    ns = namespace or session.namespace
    body: dict[str, Any] = {"command": list(command)}
    if container:
        body["container"] = container
    try:
        response = session.client.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/exec", json=body,
                                          headers={"Accept": execstream.ACCEPT}, stream=True)
    except errors.NotFound as exc:
        common.fail(exc.message)
        return
    try:
        status = _print_exec_stream(response.iter_raw())
    finally:
        response.close()  # early (an interrupt) too: the API server sees the client go and the command is killed
    if status is None:
        common.fail("exec: the connection ended before the command did")
        return
    sys.exit(execstream.exit_code(status))


def _print_exec_stream(chunks: Iterable[bytes]) -> dict[str, Any] | None:
    """Write the stream's output as it arrives; its status frame (None if the stream was cut off)."""
    decoder = execstream.Decoder()
    status: dict[str, Any] | None = None
    for chunk in chunks:
        for channel, payload in decoder.feed(chunk):
            if channel == execstream.STATUS:
                status = json.loads(payload)
                continue
            out = sys.stdout if channel == execstream.STDOUT else sys.stderr
            out.buffer.write(payload)
            out.buffer.flush()
    return status
