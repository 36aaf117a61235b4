"""`reconcile port-forward TYPE/NAME [LOCAL:]REMOTE...`: local ports to a pod's, as kubectl does.

The target is resolved as kubectl's `AttachablePodForObject` does: `pod/NAME` (or a bare NAME) is
that pod; `svc/NAME` and anything with a pod selector (`deploy/`, `rs/`, `sts/`, `ds/`, `job/`)
is the most active pod it selects (assigned, Running, ready, ready longest, fewest restarts,
oldest: `sort.Reverse(podutils.ActivePods)`), waiting up to `--pod-running-timeout` for one
to exist. For a Service, each REMOTE is a service port (number or name) translated to the pod's
target port (a named `targetPort` through the pod's container ports), as kubectl's
`translateServicePortToTargetPort`. The pod must be Running.

Bytes go through the API server's `pods/{name}/portforward` (`reconcile.client.portforward`);
nothing listens beyond `--address` (default `localhost`: 127.0.0.1 and ::1).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from reconcile.cli import common, token_cmd
from reconcile.core import errors, selectors


def register(main: click.Group) -> None:
    main.add_command(port_forward)


def _is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit also takes '²' and other digits int() refuses)."""
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One `[LOCAL:]REMOTE` argument; `local` 0 = any free port; `remote` a number or a port name."""

    local: int
    remote: str

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        """`8080` (the same port locally; local -1), `8080:80`, `:80` (local 0), a remote port name."""
        local, sep, remote = text.partition(":")
        if not sep:
            local, remote = "", text
        if not remote:
            raise ValueError(f"Error parsing remote port '{text}': empty")
        if _is_number(remote) and not 0 < int(remote) <= 65535:
            raise ValueError(f"Error parsing remote port '{remote}': value out of range")
        if not sep:
            return cls(-1, remote)
        if local == "":
            return cls(0, remote)
        if not _is_number(local):
            raise ValueError(f"Error parsing local port '{local}': invalid syntax")
        if int(local) > 65535:
            raise ValueError(f"Error parsing local port '{local}': value out of range")
        return cls(int(local), remote)


def _container_port_by_name(pod: Mapping[str, Any], name: str) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    raise ValueError(f"pod '{pod['metadata']['name']}' does not have a named port '{name}'")


def _service_port_by_name(service: Mapping[str, Any], name: str) -> int:
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("name") == name:
            return int(port["port"])
    raise ValueError(f"service '{service['metadata']['name']}' does not have a named port '{name}'")


def _container_port_by_service_port(service: Mapping[str, Any], pod: Mapping[str, Any], port: int) -> int:
    spec = service.get("spec") or {}
    for entry in spec.get("ports") or []:
        if int(entry.get("port") or 0) != port:
            continue
        if spec.get("clusterIP") == "None":
            return port
        target = entry.get("targetPort")
        if target is None or target == 0 or target == "0":
            return port
        if isinstance(target, int) or _is_number(str(target)):
            return int(target)
        return _container_port_by_name(pod, str(target))
    raise ValueError(f"service {service['metadata']['name']} does not have a service port {port}")


def translate(specs: Sequence[PortSpec], pod: Mapping[str, Any],
              service: Mapping[str, Any] | None = None) -> list[tuple[int, int]]:
    """(local, remote) pairs, remote a pod port; local -1 means "the same as remote" (kubectl's
    `8080` is `8080:8080`, and for a Service `80` is 80 locally, the target port remotely)."""
    pairs: list[tuple[int, int]] = []
    for spec in specs:
        same = spec.local == -1 or (spec.local > 0 and str(spec.local) == spec.remote)
        if service is not None:
            number = int(spec.remote) if _is_number(spec.remote) else _service_port_by_name(service, spec.remote)
            remote = _container_port_by_service_port(service, pod, number)
            local = number if same else spec.local
        else:
            remote = int(spec.remote) if _is_number(spec.remote) else _container_port_by_name(pod, spec.remote)
            local = remote if same else spec.local
        pairs.append((local, remote))
    return pairs


def _ready_since(pod: Mapping[str, Any]) -> tuple[bool, str]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", condition.get("lastTransitionTime") or ""
    return False, ""


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def most_active(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod kubectl attaches to: the first of `sort.Reverse(podutils.ActivePods(pods))`."""
    def key(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        status = pod.get("status") or {}
        ready, since = _ready_since(pod)
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
        created = pod["metadata"].get("creationTimestamp") or ""
        # ascending = more active first: assigned, Running, ready, ready earliest, fewer restarts, older
        return (not (pod.get("spec") or {}).get("nodeName"), -_PHASE_RANK.get(status.get("phase") or "", -1),
                not ready, since if ready else "", restarts, created, pod["metadata"]["name"])
    ordered = sorted(pods, key=key)
    return ordered[0] if ordered else None


def _selector_text(kind: str, name: str, obj: Mapping[str, Any]) -> str:
    selector = (obj.get("spec") or {}).get("selector")
    if kind == "Service":
        if not selector:
            raise ValueError(f"cannot attach to *v1.Service: invalid service '{name}': "
                             f"Service is defined without a selector")
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not isinstance(selector, dict) or not selector:
        raise ValueError(f"cannot attach to {kind.lower()}/{name}: it has no pod selector")
    if "matchLabels" in selector or "matchExpressions" in selector:
        return str(selectors.LabelSelector.from_match(selector))
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _first_pod(session: common.Session, namespace: str, selector: str, timeout: float) -> dict[str, Any]:
    """kubectl's GetFirstPod: the most active pod now, else the first one to appear within `timeout`."""
    listing = session.client.list("v1", "pods", namespace=namespace, label_selector=selector)
    pod = most_active(listing.get("items") or [])
    if pod is not None:
        return dict(pod)
    deadline = time.monotonic() + timeout
    version = (listing.get("metadata") or {}).get("resourceVersion")
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            for event in session.client.watch("v1", "pods", namespace=namespace, label_selector=selector,
                                              resource_version=version, timeout_seconds=max(1, int(remaining + 0.999)),
                                              idle_timeout=remaining):
                if event.get("type") in ("ADDED", "MODIFIED"):
                    return event["object"]
                if time.monotonic() >= deadline:
                    break
        except errors.ServiceUnavailable:
            break  # idle until the deadline
    raise ValueError("timed out waiting for the condition")


def resolve_target(session: common.Session, target: str, namespace: str,
                   timeout: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pod to forward to, and the Service when the target is one (for its port translation)."""
    if "/" not in target:
        return session.client.get("v1", "pods", target, namespace=namespace), None
    kind, _, name = target.partition("/")
    if not name:
        raise ValueError(f"arguments in resource/name form must have a single resource and name: {target}")
    res = common.resolve(session, kind)
    if res.kind == "Pod":
        return session.client.get("v1", "pods", name, namespace=namespace), None
    obj = session.client.get(common.api_version_of(res), res.plural, name, namespace=namespace)
    pod = _first_pod(session, namespace, _selector_text(res.kind, name, obj), timeout)
    return pod, (obj if res.kind == "Service" else None)


def _addresses(text: str) -> list[str]:
    out: list[str] = []
    for item in (a.strip() for a in text.split(",")):
        if item == "localhost":
            out.extend(a for a in ("127.0.0.1", "::1") if a not in out)
        elif item and item not in out:
            out.append(item)
    return out


class _Forward:
    """The listeners of one run and the tunnel their connections go through."""

    def __init__(self, tunnel: Any, pairs: list[tuple[int, int]], addresses: list[str], explicit: bool) -> None:
        self.tunnel = tunnel
        self.pairs = pairs
        self.addresses = addresses
        self.explicit = explicit  # `--address` given: every address must bind (kubectl's rule)
        self.servers: list[asyncio.base_events.Server] = []
        self.failure = ""
        self.failed = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        for index, (local, remote) in enumerate(self.pairs):
            bound = 0
            for address in self.addresses:
                try:
                    server = await asyncio.start_server(
                        lambda r, w, i=index: self._accept(r, w, i), address, self.pairs[index][0],
                        family=socket.AF_INET6 if ":" in address else socket.AF_INET, reuse_address=True)
                except OSError as exc:
                    if self.explicit or address not in ("::1",):
                        raise click.ClickException(f"Unable to listen on port {local}: {exc}") from None
                    continue
                self.servers.append(server)
                port = server.sockets[0].getsockname()[1]
                if self.pairs[index][0] == 0:
                    self.pairs[index] = (port, remote)
                shown = f"[{address}]" if ":" in address else address
                click.echo(f"Forwarding from {shown}:{port} -> {remote}")
                bound += 1
            if not bound:
                raise click.ClickException(f"Unable to listen on any of the requested ports: [{local}:{remote}]")

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        local, remote = self.pairs[index]
        click.echo(f"Handling connection for {local}")
        task = asyncio.ensure_future(self._carry(reader, writer, local, remote))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: int,
                     remote: int) -> None:
        from reconcile.client import portforward

        try:
            await self.tunnel.forward(reader, writer, remote)
        except portforward.ForwardError as exc:
            if not self.failed.is_set():
                self.failure = f"an error occurred forwarding {local} -> {remote}: {exc}"
                self.failed.set()
        except Exception as exc:  # noqa: BLE001 - one connection's trouble is reported, not fatal
            click.echo(f"error: forwarding {local} -> {remote}: {exc}", err=True)
            writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(BaseException):
                await task
        await self.tunnel.close()


async def _run(config: Any, namespace: str, pod: str, pairs: list[tuple[int, int]], addresses: list[str],
               explicit: bool) -> int:
    from reconcile.client import portforward

    tunnel = await portforward.open_tunnel(config, namespace, pod)
    forward = _Forward(tunnel, pairs, addresses, explicit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await forward.listen()
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, tunnel.lost, forward.failed)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await forward.close()
    if stop.is_set() and not forward.failed.is_set():
        return 0
    if forward.failure:
        click.echo(forward.failure, err=True)
    click.echo("error: lost connection to pod", err=True)
    return 1


@click.command("port-forward")
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig's).")
@click.option("--address", default="localhost", show_default=True,
              help="Addresses to listen on (comma separated); localhost means 127.0.0.1 and ::1.")
@click.option("--pod-running-timeout", default="1m0s", show_default=True,
              help="How long to wait until at least one pod is running (Go duration).")
@common.connection_options
@common.handle_errors
def port_forward(target: str, ports: tuple[str, ...], namespace: str | None, address: str,
                 pod_running_timeout: str) -> None:
    """Forward local ports to a pod: TYPE/NAME (pod/, svc/, deploy/, ...) or a pod NAME, then
    [LOCAL:]REMOTE pairs (`8080`, `8080:80`, `:80` for a free local port, a named port).
    Ends on Ctrl-C (exit 0) or when the connection to the pod is lost (exit 1)."""
    session = common.Session()
    ns = namespace or session.namespace
    timeout = token_cmd.parse_duration(pod_running_timeout).total_seconds()
    addresses = _addresses(address)
    if not addresses:
        common.fail("--address must name at least one address")
    try:
        specs = [PortSpec.parse(p) for p in ports]
        pod, service = resolve_target(session, target, ns, timeout)
        pairs = translate(specs, pod, service)
    except ValueError as exc:
        common.fail(str(exc))
        return
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        common.fail(f"unable to forward port because pod is not running. Current status={phase}")
    try:
        code = asyncio.run(_run(session.config, ns, pod["metadata"]["name"], pairs, addresses,
                                explicit=address != "localhost"))
    except errors.ApiError as exc:
        common.fail(f"error upgrading connection: {exc.message}")
        return
    sys.exit(code)
