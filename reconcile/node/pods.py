"""Pod sync: make Docker match one pod, level-triggered, from the pod and the containers found by labels.

`PodSync.sync(key)` reads the pod from the informer's cache and the pod's containers from
Docker (by labels, never from memory), decides what to create, restart, kill or remove, and
writes the pod's status when it changed. The little it remembers (crash and image-pull backoff)
only delays work; losing it on a restart costs nothing but an earlier retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.client import informer as informer_mod
from reconcile.core import errors, meta
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller
from reconcile.node import containers, docker, environment, probes, render, status, volumes
from reconcile.node import events as node_events

log = logging.getLogger(__name__)

CRASH_BACKOFF_INITIAL = 10.0  # seconds before the second restart; doubles per crash
CRASH_BACKOFF_CAP = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long resets its crash backoff
PULL_BACKOFF_INITIAL = 10.0
PULL_BACKOFF_CAP = 300.0
CONFIG_RETRY = 5.0  # CreateContainerConfigError: look for the ConfigMap/Secret again after this


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: `:latest` (or no tag) means Always, anything else IfNotPresent."""
    _, tag = docker.split_image(image)
    return "Always" if tag == "latest" else "IfNotPresent"


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def crash_delay(streak: int) -> float:
    """No delay for the first restart; 10 s for the second, doubling to 300 s."""
    if streak <= 0:
        return 0.0
    return min(CRASH_BACKOFF_CAP, CRASH_BACKOFF_INITIAL * 2 ** (streak - 1))


@dataclass
class _Streak:
    """Crash backoff of one container: restarts in a row without a long (10 min) run between."""

    counted_id: str = ""  # the dead instance last counted, so one crash counts once
    streak: int = 0
    restarted_at: float = 0.0  # clock.now() of the last restart


@dataclass
class _Pull:
    delay: float
    not_before: float  # clock.now() before which no pull is tried


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


class PodSync:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.fetch = environment.fetcher(ctx.client)
        self._streaks: dict[tuple[str, str], _Streak] = {}  # (uid, container name) -> crash backoff
        self._pulls: dict[tuple[str, str], _Pull] = {}  # (uid, image) -> pull backoff
        self._terminating: dict[str, asyncio.Task[None]] = {}  # uid -> graceful deletion in progress
        # uid -> (last status written, resourceVersion it got): compared instead of the cached pod
        # while the informer has not caught up with our own write
        self._written: dict[str, tuple[dict[str, Any], int]] = {}

    # --- entry point ---------------------------------------------------------------------

    async def sync(self, key: controller.Key) -> controller.Result | None:
        namespace, name = key
        pod = self.ctx.store.get(namespace, name)
        labels = {containers.LABEL_NODE: self.ctx.node.name, containers.LABEL_NAMESPACE: namespace,
                  containers.LABEL_NAME: name}
        found = [containers.from_inspect(d) for d in await self.ctx.runtime.list(labels=labels)]
        uid = (pod or {}).get("metadata", {}).get("uid")
        strangers = [i for i in found if i.pod_uid != uid]
        if strangers:
            await self._remove_pod_containers(strangers)
        if pod is None:
            return None
        mine = [i for i in found if i.pod_uid == uid]
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate_later(pod)
            return None
        if (pod.get("status") or {}).get("phase") in status.TERMINAL:
            for inst in mine:
                if inst.running and inst.name == containers.INFRA:
                    await self.ctx.runtime.stop(inst.id, timeout=1)  # a finished pod keeps no sandbox
            return None
        return await self._sync_running(pod, mine)

    # --- a live pod ------------------------------------------------------------------------

    async def _sync_running(self, pod: dict[str, Any], mine: list[containers.Instance]) -> controller.Result | None:
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        requeue: list[float] = []
        grouped = containers.by_container(mine)
        infra = (grouped.get(containers.INFRA) or [None])[-1]
        views: list[status.ContainerView] = []
        if infra is None or not infra.running:
            try:
                infra, grouped = await self._new_sandbox(pod, infra, grouped)
            except (docker.DockerError, render.RenderError) as exc:
                message = f"Failed to create pod sandbox: {exc}"
                self.ctx.events.emit(pod, "FailedCreatePodSandBox", message, type="Warning")
                for c in spec.get("containers") or []:
                    views.append(status.ContainerView(c, None, None, waiting=("ContainerCreating", message)))
                await self._write_status(pod, views, pod_ip=None)
                return controller.Result(requeue_after=CONFIG_RETRY)
        pod_ip = infra.ip_addresses.get(self.ctx.node.network) or None
        context_pod = _with_ips(pod, pod_ip, self.ctx.node.address)
        host_paths: dict[str, str] | None = None
        running: dict[str, str] = {}
        for c in spec.get("containers") or []:
            attempts = grouped.get(c["name"]) or []
            latest = attempts[-1] if attempts else None
            view = status.ContainerView(c, latest, attempts[-2] if len(attempts) > 1 else None)
            views.append(view)
            if latest is not None and latest.running:
                if not latest.spec_hash or latest.spec_hash == containers.spec_hash(c):
                    self._track(view, uid, c, latest, pod, pod_ip)
                    running[c["name"]] = latest.id
                    continue
                self.ctx.events.emit(pod, "Killing", f"Container {c['name']} definition changed, will be restarted")
                await self.ctx.runtime.stop(latest.id, timeout=_grace(pod))
                latest = await self._refresh(latest)
                view.latest = latest
            if latest is not None and latest.status == "created" and not latest.error:
                await self.ctx.runtime.start(latest.id)  # created by an agent that died before starting it
                view.latest = await self._refresh(latest)
                if view.latest and view.latest.running:
                    self._track(view, uid, c, view.latest, pod, pod_ip)
                    running[c["name"]] = view.latest.id
                continue
            if latest is not None and latest.terminated:
                if not should_restart(policy, latest.exit_code):
                    continue
                wait = self._crash_wait(uid, c["name"], latest)
                if wait > 0:
                    delay = crash_delay(self._streaks[(uid, c["name"])].streak)
                    message = (f"back-off {delay:g}s restarting failed container={c['name']} "
                               f"pod={pod['metadata']['name']}_{pod['metadata'].get('namespace')}({uid})")
                    view.waiting = ("CrashLoopBackOff", message)
                    self.ctx.events.emit(pod, "BackOff", "Back-off restarting failed container "
                                         f"{c['name']} in pod {pod['metadata']['name']}", type="Warning")
                    requeue.append(wait)
                    continue
            if host_paths is None:
                try:
                    host_paths = await self.ctx.volumes.prepare(pod)
                except volumes.VolumeError as exc:
                    view.waiting = ("CreateContainerConfigError", str(exc))
                    requeue.append(CONFIG_RETRY)
                    continue
            attempt = latest.restarts + 1 if latest is not None else 0
            started, wait = await self._start(context_pod, c, view, infra, attempt, host_paths)
            if wait is not None:
                requeue.append(wait)
            if started is not None:
                if latest is not None and latest.terminated:
                    self._count_restart(uid, c["name"], latest)
                view.previous, view.latest = latest, started
                if started.running:
                    self._track(view, uid, c, started, pod, pod_ip)
                    running[c["name"]] = started.id
                else:
                    requeue.append(0.05)  # it died at once: look again (the die event may be gone)
        self.ctx.probes.retain(uid, running)
        await self._collect_garbage(grouped, views, infra)
        await self._write_status(pod, views, pod_ip=pod_ip)
        return controller.Result(requeue_after=min(requeue)) if requeue else None

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

    async def _new_sandbox(self, pod: dict[str, Any], old: containers.Instance | None,
                           grouped: dict[str, list[containers.Instance]]
                           ) -> tuple[containers.Instance, dict[str, list[containers.Instance]]]:
        """A new infra container; app containers still running in the old namespace are killed first."""
        for name, attempts in grouped.items():
            for inst in attempts:
                if name != containers.INFRA and inst.running:
                    self.ctx.events.emit(pod, "Killing", f"Stopping container {name}: pod sandbox changed")
                    await self.ctx.runtime.kill(inst.id)
        for inst in grouped.get(containers.INFRA) or []:
            await self.ctx.runtime.remove(inst.id)
        attempt = old.restarts + 1 if old is not None else 0
        labels = containers.labels_for(pod, containers.INFRA, node=self.ctx.node.name, restarts=attempt)
        spec = self.ctx.renderer.infra(pod=pod, node=self.ctx.node, labels=labels,
                                       name=containers.docker_name(pod, containers.INFRA, attempt))
        container_id = await self.ctx.runtime.create(spec)
        await self.ctx.runtime.start(container_id)
        labels_of_pod = {containers.LABEL_UID: pod["metadata"]["uid"], containers.LABEL_NODE: self.ctx.node.name}
        found = [containers.from_inspect(d) for d in await self.ctx.runtime.list(labels=labels_of_pod)]
        grouped = containers.by_container(found)
        infra = next((i for i in found if i.id == container_id), None)
        if infra is None or not infra.running:
            raise docker.DockerError("the infra container stopped right after it started")
        return infra, grouped

    # --- one container -------------------------------------------------------------------------

    async def _start(self, pod: dict[str, Any], spec: dict[str, Any], view: status.ContainerView,
                     infra: containers.Instance, attempt: int, host_paths: dict[str, str]
                     ) -> tuple[containers.Instance | None, float | None]:
        """Pull if needed, create and start one attempt; (instance, requeue delay)."""
        ready, wait = await self._ensure_image(pod, spec, view)
        if not ready:
            return None, wait
        try:
            mounts = self.ctx.volumes.mounts(spec, host_paths)
            env, command, args = await environment.resolve(pod, spec, self.fetch, host_ip=self.ctx.node.address)
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
        key = (pod["metadata"]["uid"], image)
        backoff = self._pulls.get(key)
        now = self.ctx.clock.now()
        if backoff is not None and now < backoff.not_before:
            view.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.ctx.events.emit(pod, "BackOff", f'Back-off pulling image "{image}"', type="Normal")
            return False, backoff.not_before - now
        self.ctx.events.emit(pod, "Pulling", f'Pulling image "{image}"')
        started = self.ctx.clock.now()
        try:
            await self.ctx.runtime.pull(image)
        except docker.PullFailed as exc:
            if present:  # Always, but the registry is unreachable: run what the node has (offline nodes)
                self.ctx.events.emit(pod, "Failed", f'Failed to pull image "{image}", using the image present on '
                                     f"the node: {exc}", type="Warning")
                return True, None
            delay = PULL_BACKOFF_INITIAL if backoff is None else min(PULL_BACKOFF_CAP, backoff.delay * 2)
            self._pulls[key] = _Pull(delay, self.ctx.clock.now() + delay)
            message = f'Failed to pull image "{image}": {exc}'
            view.waiting = ("ErrImagePull", message)
            self.ctx.events.emit(pod, "Failed", message, type="Warning")
            return False, delay
        self._pulls.pop(key, None)
        self.ctx.events.emit(pod, "Pulled", f'Successfully pulled image "{image}" in '
                             f"{self.ctx.clock.now() - started:.3f}s")
        return True, None

    # --- crash backoff -------------------------------------------------------------------------

    def _crash_wait(self, uid: str, name: str, dead: containers.Instance) -> float:
        """Seconds left before `dead` may be restarted (0: now)."""
        record = self._streaks.get((uid, name)) or _Streak()
        if dead.ran_for() >= BACKOFF_RESET_AFTER:
            record.streak = 0
        self._streaks[(uid, name)] = record
        delay = crash_delay(record.streak)
        if delay <= 0:
            return 0.0
        finished = dead.finished_at_datetime()
        if finished is not None:
            elapsed = (self.ctx.clock.wall() - finished).total_seconds()
        else:  # it never ran (failed to start): count from when we last started it
            elapsed = self.ctx.clock.now() - record.restarted_at
        return max(0.0, delay - elapsed)

    def _count_restart(self, uid: str, name: str, dead: containers.Instance) -> None:
        record = self._streaks.setdefault((uid, name), _Streak())
        if record.counted_id != dead.id:
            record.counted_id, record.streak = dead.id, record.streak + 1
        record.restarted_at = self.ctx.clock.now()

    # --- cleanup -------------------------------------------------------------------------------

    async def _collect_garbage(self, grouped: dict[str, list[containers.Instance]],
                               views: list[status.ContainerView], infra: containers.Instance) -> None:
        """Keep the current and the previous attempt of each container (for `logs --previous`)."""
        keep = {infra.id}
        for view in views:
            keep.update(i.id for i in (view.latest, view.previous) if i is not None)
        names = {v.spec["name"] for v in views}
        for name, attempts in grouped.items():
            for inst in attempts:
                if inst.id in keep or (inst.running and name in names):
                    continue
                if name == containers.INFRA or not inst.running or name not in names:
                    await self.ctx.runtime.remove(inst.id)

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
        for table in (self._streaks, self._pulls):
            for key in [k for k in table if k[0] == uid]:
                del table[key]  # type: ignore[arg-type]

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
                            pod_ip: str | None) -> None:
        uid = pod["metadata"]["uid"]
        new = status.pod_status(pod, views, pod_ip=pod_ip, host_ip=self.ctx.node.address,
                                now=meta.format_time(self.ctx.clock.wall()))
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
