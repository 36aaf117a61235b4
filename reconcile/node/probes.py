"""Liveness, readiness and startup probes: one task per (container instance, probe kind).

Kubernetes' rules: defaults delay 0, period 10 s, timeout 1 s, success 1, failure 3; a startup
probe holds liveness and readiness back until it succeeds; readiness starts False (unless the
container was adopted and the pod already said it was ready); liveness or startup failing
`failureThreshold` times in a row asks the agent to kill the container. Results are reported
through callbacks so the agent re-syncs the pod (level-triggered) instead of acting here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from reconcile.engine import clock as clock_mod
from reconcile.node import docker

log = logging.getLogger(__name__)

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")
LABEL = {"startupProbe": "Startup", "livenessProbe": "Liveness", "readinessProbe": "Readiness"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""


async def run_probe(probe: dict[str, Any], *, runtime: docker.DockerRuntime, container_id: str, pod_ip: str,
                    ports: dict[str, int], timeout: float) -> Outcome:
    """Run one probe once: exec (exit 0), httpGet (200-399), tcpSocket (connects)."""
    try:
        if probe.get("exec"):
            code, output = await runtime.exec(container_id, list(probe["exec"].get("command") or []), timeout=timeout)
            text = output.decode("utf-8", "replace").strip()
            return Outcome(code == 0, text if code == 0 else f"command exited with {code}: {text}"[:500])
        if probe.get("httpGet"):
            return await asyncio.wait_for(_http_get(probe["httpGet"], pod_ip, ports), timeout)
        if probe.get("tcpSocket"):
            spec = probe["tcpSocket"]
            host, port = spec.get("host") or pod_ip, _port(spec["port"], ports)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return Outcome(True)
        return Outcome(False, "probe has no handler (exec, httpGet or tcpSocket)")
    except TimeoutError:
        return Outcome(False, f"probe timed out after {timeout:g}s")
    except (OSError, docker.DockerError, ValueError) as exc:
        return Outcome(False, str(exc) or type(exc).__name__)


def _port(value: Any, ports: dict[str, int]) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    if value in ports:
        return ports[value]
    raise ValueError(f"no container port named {value!r}")


async def _http_get(spec: dict[str, Any], pod_ip: str, ports: dict[str, int]) -> Outcome:
    """A bare HTTP/1.1 GET (the status line is all a probe needs)."""
    host, port = spec.get("host") or pod_ip, _port(spec["port"], ports)
    path = spec.get("path") or "/"
    scheme = (spec.get("scheme") or "HTTP").upper()
    context = None
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # as the kubelet: probes do not verify certificates
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        headers = {"Host": f"{host}:{port}", "User-Agent": "kube-probe/1.32", "Accept": "*/*", "Connection": "close"}
        headers.update({h["name"]: h["value"] for h in spec.get("httpHeaders") or []})
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(request.encode())
        await writer.drain()
        status_line = (await reader.readline()).decode("latin-1").split()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return Outcome(False, "malformed HTTP response")
    code = int(status_line[1])
    if 200 <= code < 400:
        return Outcome(True)
    return Outcome(False, f"HTTP probe failed with statuscode: {code}")


@dataclass
class _State:
    """Results for one container instance; `started` gates liveness and readiness."""

    container_id: str
    started: bool
    ready: bool
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


Changed = Callable[[str], None]  # pod uid -> (re)sync that pod
Failed = Callable[[str, str, str, str], Awaitable[None]]  # (uid, container name, container id, message)
Unhealthy = Callable[[str, str, str], None]  # (uid, container name, message): an Unhealthy event


class ProbeManager:
    """Keeps one probe task per kind for every running container instance that has probes."""

    def __init__(self, runtime: docker.DockerRuntime, *, on_change: Changed, on_failure: Failed,
                 on_unhealthy: Unhealthy, clock: clock_mod.Clock | None = None) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.on_failure = on_failure
        self.on_unhealthy = on_unhealthy
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        # Invariant: one entry per (pod uid, container name) whose current instance is running;
        # its tasks probe exactly that instance (a new instance replaces the entry and its tasks).
        self._states: dict[tuple[str, str], _State] = {}

    def started(self, uid: str, name: str, container_id: str) -> bool:
        state = self._states.get((uid, name))
        return bool(state and state.container_id == container_id and state.started)

    def ready(self, uid: str, name: str, container_id: str) -> bool:
        state = self._states.get((uid, name))
        return bool(state and state.container_id == container_id and state.started and state.ready)

    def ensure(self, *, uid: str, container: dict[str, Any], container_id: str, pod_ip: str,
               was_ready: bool = False) -> None:
        """Probe this running instance (idempotent); `was_ready` carries readiness over an agent restart."""
        name = container["name"]
        state = self._states.get((uid, name))
        if state is not None and state.container_id == container_id:
            return
        if state is not None:
            self._cancel(state)
        has_startup = bool(container.get("startupProbe"))
        has_readiness = bool(container.get("readinessProbe"))
        state = _State(container_id, started=not has_startup or was_ready,
                       ready=(not has_readiness) or was_ready)
        self._states[(uid, name)] = state
        ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}
        for kind in KINDS:
            probe = container.get(kind)
            if probe and not (kind == "startupProbe" and state.started):
                task = asyncio.get_running_loop().create_task(
                    self._loop(uid, name, kind, probe, state, pod_ip, ports), name=f"probe:{uid}:{name}:{kind}")
                state.tasks.append(task)

    def retain(self, uid: str, running: dict[str, str]) -> None:
        """Stop probing instances of the pod that are no longer running (`running`: name -> container id)."""
        for (pod_uid, name), state in list(self._states.items()):
            if pod_uid == uid and running.get(name) != state.container_id:
                self._cancel(state)
                del self._states[(pod_uid, name)]

    def forget(self, uid: str) -> None:
        self.retain(uid, {})

    def uids(self) -> set[str]:
        return {uid for uid, _ in self._states}

    async def close(self) -> None:
        tasks = [t for s in self._states.values() for t in s.tasks]
        self._states.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _cancel(self, state: _State) -> None:
        for task in state.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _loop(self, uid: str, name: str, kind: str, probe: dict[str, Any], state: _State, pod_ip: str,
                    ports: dict[str, int]) -> None:
        period = float(probe.get("periodSeconds") or 10)
        timeout = float(probe.get("timeoutSeconds") or 1)
        success_threshold = int(probe.get("successThreshold") or 1)
        failure_threshold = int(probe.get("failureThreshold") or 3)
        await self.clock.sleep(float(probe.get("initialDelaySeconds") or 0))
        successes = failures = 0
        while True:
            if kind != "startupProbe" and not state.started:
                await self.clock.sleep(min(period, 0.2))  # wait for the startup probe, checking often
                continue
            outcome = await run_probe(probe, runtime=self.runtime, container_id=state.container_id,
                                      pod_ip=pod_ip, ports=ports, timeout=timeout)
            if outcome.ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                self.on_unhealthy(uid, name, f"{LABEL[kind]} probe failed: {outcome.message}")
            if kind == "readinessProbe":
                if outcome.ok and successes >= success_threshold and not state.ready:
                    state.ready = True
                    self.on_change(uid)
                elif not outcome.ok and failures >= failure_threshold and state.ready:
                    state.ready = False
                    self.on_change(uid)
            elif kind == "startupProbe" and outcome.ok:
                state.started = True
                self.on_change(uid)
                return
            elif not outcome.ok and failures >= failure_threshold:
                what = "liveness" if kind == "livenessProbe" else "startup"
                await self.on_failure(uid, name, state.container_id,
                                      f"Container {name} failed {what} probe, will be restarted")
                return
            await self.clock.sleep(period)
