"""Pod sync: make Docker match one pod, level-triggered, from the pod and the containers found by labels.

`PodSync.sync(key)` reads the pod from the informer's cache and the pod's containers from
Docker (by labels, never from memory), asks `plan.compute` what to do, carries that out on
Docker and writes the pod's status when it changed. The decisions live in `plan` (pure) and the
little that is remembered between syncs (crash and image-pull backoff) in `backoff`; this
module only reads the world and acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.client import informer as informer_mod
from reconcile.core import errors, meta
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller
from reconcile.node import (
    backoff,
    containers,
    dnsconfig,
    docker,
    emptydir,
    environment,
    guard,
    plan,
    probes,
    render,
    status,
    volumes,
)
from reconcile.node import events as node_events

log = logging.getLogger(__name__)

CONFIG_RETRY = 5.0  # CreateContainerConfigError: look for the ConfigMap/Secret again after this
DIED_AT_ONCE_RETRY = 0.05  # a new attempt died at once: look again (its die event may be gone)
INIT_POLL = 1.0  # an init container runs: look again (besides its die event) so the next one starts promptly
# A new sandbox or a stopped container changes what the next decision depends on, so the
# plan is made again after them; bounded so a container that will not stop cannot spin a sync.
MAX_ROUNDS = 3


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: `:latest` (or no tag) means Always, anything else IfNotPresent."""
    _, tag = docker.split_image(image)
    return "Always" if tag == "latest" else "IfNotPresent"


@dataclass
class NodeContext:
    """Everything pod sync needs from the agent."""

    node: render.NodeView
    client: aio.AsyncClient
    runtime: docker.DockerRuntime
    renderer: render.Renderer
    volumes: volumes.Volumes
    probes: probes.ProbeManager
    events: node_events.Emitter
    store: informer_mod.Store
    clock: clock_mod.Clock
    guard: guard.Guard | None = None  # refuses pods that need a privileged namespace (None: no check)
    # KUBERNETES_SERVICE_HOST/PORT of a container made now (apiservice.ApiService.address; None: unset)
    api_address: Callable[[], tuple[str, str]] | None = None
    dns: DnsSettings | None = None  # pods' /etc/resolv.conf (None: Docker's own, as before cluster DNS)


@dataclass(frozen=True)
class DnsSettings:
    """The kubelet's --cluster-dns, --cluster-domain and --resolv-conf."""

    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"  # "": none (nameserver 127.0.0.1, search .)

    def host(self) -> dnsconfig.ResolvConf | None:
        """The node's resolv.conf, read each time a pod's file is formed (the kubelet reads it per pod)."""
        if not self.resolv_conf:
            return None
        try:
            with open(self.resolv_conf) as handle:
                return dnsconfig.parse(handle.read())
        except OSError as exc:
            log.warning("cannot read --resolv-conf %s: %s", self.resolv_conf, exc)
            return dnsconfig.ResolvConf()


def api_address(server: str) -> tuple[str, str]:
    """(host, port) of the API server URL: containers' KUBERNETES_SERVICE_HOST/PORT while the
    `kubernetes` Service is unknown (reconcile/node/apiservice.py)."""
    parts = urllib.parse.urlsplit(server)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", str(port or (443 if parts.scheme == "https" else 80))


def with_service_env(env: list[dict[str, str]], host: str, port: str) -> list[dict[str, str]]:
    """The kubelet's KUBERNETES_SERVICE_HOST and _PORT first; a container's own values win."""
    if not host:
        return env
    own = {item["name"] for item in env}
    service = [{"name": name, "value": value} for name, value in (("KUBERNETES_SERVICE_HOST", host),
                                                                    ("KUBERNETES_SERVICE_PORT", port))
               if name not in own]
    return [*service, *env]


class PodSync:
    """The agent's reconciler for pods: `sync(key)` is safe to call any time, for any key, in any order."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.fetch = environment.fetcher(ctx.client)
        self.crashes = backoff.CrashBackoff()
        self.pulls = backoff.PullBackoff()
        self._terminating: dict[str, asyncio.Task[None]] = {}  # uid -> graceful deletion in progress
        # uid -> (last status written, resourceVersion it got): compared instead of the cached pod
        # while the informer has not caught up with our own write
        self._written: dict[str, tuple[dict[str, Any], int]] = {}
        # uids this agent evicted: nothing of them starts again while the informer still shows the
        # pod before its Failed status (its killed containers would look like ones to restart)
        self._evicted: set[str] = set()

    # --- entry point ---------------------------------------------------------------------

    async def sync(self, key: controller.Key) -> controller.Result | None:
        namespace, name = key
        pod = self.ctx.store.get(namespace, name)
        found = await self._list({containers.LABEL_NODE: self.ctx.node.name, containers.LABEL_NAMESPACE: namespace,
                                  containers.LABEL_NAME: name})
        decided = self._plan(pod, found)
        if decided.remove:
            await self._remove_pod_containers(list(decided.remove))
        if decided.terminate:
            assert pod is not None
            self._terminate_later(pod)
            return None
        for inst in decided.stop_sandbox:
            await self.ctx.runtime.stop(inst.id, timeout=1)
        if pod is None or not decided.live or pod["metadata"].get("uid") in self._evicted:
            return None
        return await self._sync_running(pod, decided)

    def _plan(self, pod: dict[str, Any] | None, found: list[containers.Instance]) -> plan.PodPlan:
        uid = (pod or {}).get("metadata", {}).get("uid")
        return plan.compute(pod, found, streaks=self.crashes.of(uid) if uid else {}, now=self.ctx.clock.now(),
                            wall=self.ctx.clock.wall())

    async def _list(self, labels: dict[str, str]) -> list[containers.Instance]:
        return [containers.from_inspect(d) for d in await self.ctx.runtime.list(labels=labels)]

    async def _list_pod(self, uid: str) -> list[containers.Instance]:
        return await self._list({containers.LABEL_UID: uid, containers.LABEL_NODE: self.ctx.node.name})

    # --- a live pod ------------------------------------------------------------------------

    async def _sync_running(self, pod: dict[str, Any], decided: plan.PodPlan) -> controller.Result | None:
        """Steps that change the ground the plan stands on first (sandbox, stops), then the rest."""
        uid = pod["metadata"]["uid"]
        if decided.sandbox is not None and self.ctx.guard is not None:
            refusal = await self.ctx.guard.refusal(pod)
            if refusal is not None:
                return await self._reject(pod, decided.sandbox, refusal)
        for _ in range(MAX_ROUNDS):
            if decided.sandbox is not None:
                try:
                    mine = await self._new_sandbox(pod, decided.sandbox)
                except (docker.DockerError, render.RenderError) as exc:
                    return await self._sandbox_failed(pod, exc)
            elif decided.to_stop:
                for step in decided.to_stop:
                    assert step.latest is not None
                    self.ctx.events.emit(pod, "Killing", f"Container {step.name} definition changed, will be restarted")
                    await self.ctx.runtime.stop(step.latest.id, timeout=_grace(pod))
                mine = await self._list_pod(uid)
            else:
                break
            decided = self._plan(pod, mine)
        if decided.sandbox is not None or decided.infra is None:  # the new sandbox died at once
            return controller.Result(requeue_after=DIED_AT_ONCE_RETRY)
        return await self._carry_out(pod, decided, decided.infra)

    async def _carry_out(self, pod: dict[str, Any], decided: plan.PodPlan,
                         infra: containers.Instance) -> controller.Result | None:
        uid = pod["metadata"]["uid"]
        requeue = [decided.requeue_after] if decided.requeue_after is not None else []
        pod_ip = infra.ip_addresses.get(self.ctx.node.network) or None
        context_pod = _with_ips(pod, pod_ip, self.ctx.node.address)
        host_paths: dict[str, str] | None = None
        running: dict[str, str] = {}
        views: list[status.ContainerView] = []
        init_views: list[status.ContainerView] = []
        garbage = list(decided.garbage)
        init_count = len(decided.init)
        for position, step in enumerate((*decided.init, *decided.containers)):
            view = status.ContainerView(step.spec, step.latest, step.previous)
            (init_views if position < init_count else views).append(view)
            if step.action is plan.Action.RUNNING:
                assert step.latest is not None
                self._track(view, uid, step.spec, step.latest, pod, pod_ip)
                running[step.name] = step.latest.id
            elif step.action is plan.Action.STOP:
                requeue.append(DIED_AT_ONCE_RETRY)  # it would not stop within MAX_ROUNDS: look again soon
            elif step.action is plan.Action.START_CREATED:
                assert step.latest is not None
                await self.ctx.runtime.start(step.latest.id)  # created by an agent that died before starting it
                view.latest = await self._refresh(step.latest)
                if view.latest and view.latest.running:
                    self._track(view, uid, step.spec, view.latest, pod, pod_ip)
                    running[step.name] = view.latest.id
            elif step.action is plan.Action.BACK_OFF:
                view.waiting = ("CrashLoopBackOff", step.message)
                self.ctx.events.emit(pod, "BackOff", "Back-off restarting failed container "
                                     f"{step.name} in pod {pod['metadata']['name']}", type="Warning")
            elif step.action is plan.Action.START:
                if host_paths is None:
                    try:
                        host_paths = await self.ctx.volumes.prepare(pod)
                    except volumes.VolumeError as exc:
                        view.waiting = ("CreateContainerConfigError", str(exc))
                        self.ctx.events.emit(pod, "FailedMount", f"MountVolume.SetUp failed for {exc}",
                                             type="Warning")
                        requeue.append(CONFIG_RETRY)
                        continue
                started, wait = await self._start(context_pod, step.spec, view, infra, step.attempt, host_paths)
                if wait is not None:
                    requeue.append(wait)
                if started is None:
                    continue
                if step.latest is not None and step.latest.terminated:
                    self.crashes.restarted(uid, step.name, step.latest, now=self.ctx.clock.now())
                if step.supersedes is not None:
                    garbage.append(step.supersedes)  # kept: the new attempt and the one it replaces
                view.previous, view.latest = step.latest, started
                if started.running:
                    self._track(view, uid, step.spec, started, pod, pod_ip)
                    running[step.name] = started.id
                else:
                    requeue.append(DIED_AT_ONCE_RETRY)
        self.ctx.probes.retain(uid, running)
        for inst in garbage:
            await self.ctx.runtime.remove(inst.id)
        if running:
            refresh = await self._refresh_volumes(pod)
            if refresh is not None:
                requeue.append(refresh)
            if emptydir.limited(pod):
                message = self.ctx.volumes.over_size_limit(pod)
                if message is not None:
                    await self._evict(pod, message)
                    return None
                requeue.append(emptydir.HOUSEKEEPING_INTERVAL)  # measured again as the eviction manager does
        spec = pod.get("spec") or {}
        for later in (spec.get("initContainers") or [])[init_count:]:  # not reached yet
            init_views.append(status.ContainerView(later, None, None, waiting=("PodInitializing", "")))
        if not decided.initialized:
            views = [status.ContainerView(c, None, None, waiting=("PodInitializing", ""))
                     for c in spec.get("containers") or []]
            if init_count and decided.init[-1].action is not plan.Action.DONE:
                requeue.append(INIT_POLL)  # an init container runs: look again when it may have exited
        await self._write_status(pod, views, pod_ip=pod_ip, init_views=init_views,
                                 init_failed=decided.init_failed)
        return controller.Result(requeue_after=min(requeue)) if requeue else None

    async def _refresh_volumes(self, pod: dict[str, Any]) -> float | None:
        """Tokens of projected volumes replaced when due; seconds until the next is (None: no tokens)."""
        tokens = self.ctx.volumes.tokens
        try:
            due = await self.ctx.volumes.refresh(pod)
        except volumes.VolumeError as exc:
            self.ctx.events.emit(pod, "FailedMount", f"MountVolume.SetUp failed: {exc}", type="Warning")
            return CONFIG_RETRY
        return None if due is None else max(1.0, due - tokens.clock())

    def _track(self, view: status.ContainerView, uid: str, spec: dict[str, Any], inst: containers.Instance,
               pod: dict[str, Any], pod_ip: str | None) -> None:
        """Probe a running instance and read its readiness into the view."""
        was_ready = any(s.get("name") == spec["name"] and s.get("ready") and s.get("containerID") == f"docker://{inst.id}"
                        for s in (pod.get("status") or {}).get("containerStatuses") or [])
        self.ctx.probes.ensure(uid=uid, container=spec, container_id=inst.id, pod_ip=pod_ip or "127.0.0.1",
                               was_ready=was_ready)
        view.ready = self.ctx.probes.ready(uid, spec["name"], inst.id)
        view.started = self.ctx.probes.started(uid, spec["name"], inst.id)

    async def _refresh(self, inst: containers.Instance) -> containers.Instance | None:
        data = await self.ctx.runtime.inspect(inst.id)
        return containers.from_inspect(data) if data else None

    # --- sandbox -----------------------------------------------------------------------------

    async def _new_sandbox(self, pod: dict[str, Any], sandbox: plan.Sandbox) -> list[containers.Instance]:
        """A new infra container, after killing what ran in the old namespace; the pod's instances after."""
        for inst in sandbox.kill:
            self.ctx.events.emit(pod, "Killing", f"Stopping container {inst.name}: pod sandbox changed")
            await self.ctx.runtime.kill(inst.id)
        for inst in sandbox.remove:
            await self.ctx.runtime.remove(inst.id)
        labels = containers.labels_for(pod, containers.INFRA, node=self.ctx.node.name, restarts=sandbox.attempt)
        spec = self.ctx.renderer.infra(pod=pod, node=self.ctx.node, labels=labels,
                                       name=containers.docker_name(pod, containers.INFRA, sandbox.attempt))
        container_id = await self.ctx.runtime.create(spec)
        await self.ctx.runtime.start(container_id)
        found = await self._list_pod(pod["metadata"]["uid"])
        infra = next((i for i in found if i.id == container_id), None)
        if infra is None or not infra.running:
            raise docker.DockerError("the infra container stopped right after it started")
        return found

    async def _reject(self, pod: dict[str, Any], sandbox: plan.Sandbox, message: str) -> None:
        """The kubelet's rejectPod: nothing of the pod runs, a Warning Event, and phase Failed."""
        for inst in sandbox.kill:
            await self.ctx.runtime.kill(inst.id)
        self.ctx.events.emit(pod, guard.REASON, message, type="Warning")
        try:
            await self.ctx.client.patch("v1", "pods", pod["metadata"]["name"],
                                        {"status": {"phase": "Failed", "reason": guard.REASON,
                                                    "message": f"Pod was rejected: {message}"}},
                                        namespace=pod["metadata"].get("namespace"), subresource="status")
        except errors.NotFound:
            pass
        log.warning("pod %s/%s rejected: %s", pod["metadata"].get("namespace"), pod["metadata"]["name"], message)

    async def _evict(self, pod: dict[str, Any], message: str) -> None:
        """The eviction manager's local-storage eviction: every container killed at once (grace 0,
        as upstream's localStorageEviction), a Warning Event and phase Failed, reason Evicted."""
        self._evicted.add(pod["metadata"]["uid"])
        for inst in await self._list_pod(pod["metadata"]["uid"]):
            if inst.running:
                await self.ctx.runtime.kill(inst.id)
        self.ctx.events.emit(pod, emptydir.EVICTED, message, type="Warning")
        try:
            await self.ctx.client.patch("v1", "pods", pod["metadata"]["name"],
                                        {"status": {"phase": "Failed", "reason": emptydir.EVICTED, "message": message}},
                                        namespace=pod["metadata"].get("namespace"), subresource="status")
        except errors.NotFound:
            pass
        log.warning("pod %s/%s evicted: %s", pod["metadata"].get("namespace"), pod["metadata"]["name"], message)

    async def _sandbox_failed(self, pod: dict[str, Any], exc: Exception) -> controller.Result:
        message = f"Failed to create pod sandbox: {exc}"
        self.ctx.events.emit(pod, "FailedCreatePodSandBox", message, type="Warning")
        views = [status.ContainerView(c, None, None, waiting=("ContainerCreating", message))
                 for c in (pod.get("spec") or {}).get("containers") or []]
        await self._write_status(pod, views, pod_ip=None)
        return controller.Result(requeue_after=CONFIG_RETRY)

    # --- one container -------------------------------------------------------------------------

    async def _start(self, pod: dict[str, Any], spec: dict[str, Any], view: status.ContainerView,
                     infra: containers.Instance, attempt: int, host_paths: dict[str, str]
                     ) -> tuple[containers.Instance | None, float | None]:
        """Pull if needed, create and start one attempt; (instance, requeue delay)."""
        ready, wait = await self._ensure_image(pod, spec, view)
        if not ready:
            return None, wait
        try:
            env, command, args = await environment.resolve(pod, spec, self.fetch, host_ip=self.ctx.node.address)
            if self.ctx.api_address is not None:
                env = with_service_env(env, *self.ctx.api_address())
            mounts = self.ctx.volumes.mounts(spec, host_paths, pod=pod, env=env)
            resolv = self._resolv_conf(pod)
            if resolv is not None:
                mounts = [*mounts, f"{resolv}:/etc/resolv.conf:ro"]
            labels = containers.labels_for(pod, spec["name"], node=self.ctx.node.name, restarts=attempt,
                                           spec_hash=containers.spec_hash(spec))
            rendered = self.ctx.renderer.container(
                pod=pod, container=spec, node=self.ctx.node, name=containers.docker_name(pod, spec["name"], attempt),
                labels=labels, infra_id=infra.id, env=env, command=command, args=args, mounts=mounts)
        except (environment.ConfigError, volumes.VolumeError, render.RenderError) as exc:
            view.waiting = ("CreateContainerConfigError", str(exc))
            self.ctx.events.emit(pod, "Failed", f"Error: {exc}", type="Warning")
            return None, CONFIG_RETRY
        try:
            container_id = await self.ctx.runtime.create(rendered)
        except docker.DockerError as exc:
            if "Conflict" in str(exc) or "already in use" in str(exc):
                raise  # a leftover of the same attempt: the retry sees and adopts it
            view.waiting = ("CreateContainerError", str(exc))
            self.ctx.events.emit(pod, "Failed", f"Error: {exc}", type="Warning")
            return None, CONFIG_RETRY
        self.ctx.events.emit(pod, "Created", f"Created container {spec['name']}")
        try:
            await self.ctx.runtime.start(container_id)
        except docker.DockerError as exc:
            self.ctx.events.emit(pod, "Failed", f"Error: failed to start container \"{spec['name']}\": {exc}",
                                 type="Warning")
        else:
            self.ctx.events.emit(pod, "Started", f"Started container {spec['name']}")
        data = await self.ctx.runtime.inspect(container_id)
        return (containers.from_inspect(data) if data else None), None

    def _resolv_conf(self, pod: dict[str, Any]) -> str | None:
        """Write the pod's resolv.conf (dnsPolicy, dnsConfig) and return its path; None leaves Docker's.

        A ClusterFirst pod on an agent without --cluster-dns keeps Docker's resolver, where the kubelet
        would fall back to the node's resolv.conf (MissingClusterDNS): the same servers, reached the
        way Docker reaches them from a container (README: differences)."""
        settings = self.ctx.dns
        if settings is None:
            return None
        kind, _ = dnsconfig.pod_dns_type(pod, settings.cluster_dns)
        policy = (pod.get("spec") or {}).get("dnsPolicy") or dnsconfig.CLUSTER_FIRST
        if kind == "host" and policy in (dnsconfig.CLUSTER_FIRST, dnsconfig.WITH_HOST_NET):
            return None
        formed = dnsconfig.form(pod, cluster_dns=settings.cluster_dns, cluster_domain=settings.cluster_domain,
                                host=settings.host())
        for reason, message in formed.warnings:
            self.ctx.events.emit(pod, reason, message, type="Warning")
        path = self.ctx.volumes.pod_dir(pod["metadata"]["uid"]) / "resolv.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            path.rmdir()  # Docker made it (empty) when a container was created while the file was missing
        temporary = path.with_suffix(".tmp")
        temporary.write_text(formed.conf.render())
        temporary.chmod(0o644)
        temporary.replace(path)
        return str(path)

    async def _ensure_image(self, pod: dict[str, Any], spec: dict[str, Any],
                            view: status.ContainerView) -> tuple[bool, float | None]:
        image = spec["image"]
        policy = spec.get("imagePullPolicy") or default_pull_policy(image)
        present = await self.ctx.runtime.image_present(image)
        if policy == "Never" or (policy == "IfNotPresent" and present):
            if not present:
                message = f'Container image "{image}" is not present with pull policy of Never'
                view.waiting = ("ErrImageNeverPull", message)
                self.ctx.events.emit(pod, "ErrImageNeverPull", message, type="Warning")
                return False, CONFIG_RETRY
            self.ctx.events.emit(pod, "Pulled", f'Container image "{image}" already present on machine')
            return True, None
        uid = pod["metadata"]["uid"]
        wait = self.pulls.wait(uid, image, now=self.ctx.clock.now())
        if wait > 0:
            view.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.ctx.events.emit(pod, "BackOff", f'Back-off pulling image "{image}"', type="Normal")
            return False, wait
        self.ctx.events.emit(pod, "Pulling", f'Pulling image "{image}"')
        started = self.ctx.clock.now()
        try:
            await self.ctx.runtime.pull(image)
        except docker.PullFailed as exc:
            if present:  # Always, but the registry is unreachable: run what the node has (offline nodes)
                self.ctx.events.emit(pod, "Failed", f'Failed to pull image "{image}", using the image present on '
                                     f"the node: {exc}", type="Warning")
                return True, None
            delay = self.pulls.failed(uid, image, now=self.ctx.clock.now())
            message = f'Failed to pull image "{image}": {exc}'
            view.waiting = ("ErrImagePull", message)
            self.ctx.events.emit(pod, "Failed", message, type="Warning")
            return False, delay
        self.pulls.succeeded(uid, image)
        self.ctx.events.emit(pod, "Pulled", f'Successfully pulled image "{image}" in '
                             f"{self.ctx.clock.now() - started:.3f}s")
        return True, None

    # --- cleanup -------------------------------------------------------------------------------

    async def _remove_pod_containers(self, instances: list[containers.Instance]) -> None:
        """Containers of pods that no longer exist (or were replaced under the same name): go now."""
        for inst in instances:
            await self.ctx.runtime.remove(inst.id, force=True)
        for uid in {i.pod_uid for i in instances}:
            self.ctx.probes.forget(uid)
            self.ctx.volumes.remove(uid)
            self._forget(uid)

    def _forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        self._evicted.discard(uid)
        self.crashes.forget(uid)
        self.pulls.forget(uid)

    # --- graceful deletion ---------------------------------------------------------------------

    def _terminate_later(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._terminating:
            return
        task = asyncio.get_running_loop().create_task(self._terminate(pod), name=f"terminate:{uid}")
        self._terminating[uid] = task
        task.add_done_callback(lambda _: self._terminating.pop(uid, None))

    async def _terminate(self, pod: dict[str, Any]) -> None:
        """SIGTERM, wait the grace period, SIGKILL; remove everything; then let the object go."""
        metadata = pod["metadata"]
        uid = metadata["uid"]
        grace = metadata.get("deletionGracePeriodSeconds")
        grace = _grace(pod) if grace is None else int(grace)
        try:
            found = [containers.from_inspect(d) for d in await self.ctx.runtime.list(
                labels={containers.LABEL_UID: uid, containers.LABEL_NODE: self.ctx.node.name})]
            apps = [i for i in found if i.name != containers.INFRA and i.running]
            for inst in apps:
                self.ctx.events.emit(pod, "Killing", f"Stopping container {inst.name}")
            self.ctx.probes.forget(uid)
            await asyncio.gather(*(self.ctx.runtime.stop(i.id, timeout=grace) for i in apps))
            for inst in found:
                await self.ctx.runtime.remove(inst.id, force=True)
            self.ctx.volumes.remove(uid)
            self._forget(uid)
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self.ctx.client.delete("v1", "pods", metadata["name"], namespace=metadata.get("namespace"),
                                             grace_period_seconds=0, preconditions={"uid": uid})
        except Exception:
            log.exception("terminating pod %s/%s failed; the next sync retries", metadata.get("namespace"),
                          metadata.get("name"))

    async def close(self) -> None:
        tasks = list(self._terminating.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- status --------------------------------------------------------------------------------

    async def _write_status(self, pod: dict[str, Any], views: list[status.ContainerView], *,
                            pod_ip: str | None, init_views: list[status.ContainerView] | None = None,
                            init_failed: bool = False) -> None:
        uid = pod["metadata"]["uid"]
        new = status.pod_status(pod, views, pod_ip=pod_ip, host_ip=self.ctx.node.address,
                                now=meta.format_time(self.ctx.clock.wall()), init_views=init_views,
                                init_failed=init_failed)
        current = pod.get("status") or {}
        written, written_rv = self._written.get(uid, ({}, 0))
        baseline = current if _rv(pod) >= written_rv else written
        if not status.differs(baseline, new):
            return
        try:
            result = await self.ctx.client.patch("v1", "pods", pod["metadata"]["name"], {"status": new},
                                                 namespace=pod["metadata"].get("namespace"), subresource="status")
        except errors.NotFound:
            return
        self._written[uid] = (new, _rv(result))


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _grace(pod: dict[str, Any]) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if value is None else int(value)


def _with_ips(pod: dict[str, Any], pod_ip: str | None, host_ip: str) -> dict[str, Any]:
    """The pod as env/templates should see it: with the IPs known now, not yet written to status."""
    copied = dict(pod)
    copied["status"] = {**(pod.get("status") or {}), "hostIP": host_ip}
    if pod_ip:
        copied["status"]["podIP"] = pod_ip
    return copied
