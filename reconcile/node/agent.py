"""The node agent: registers a Node, keeps its Lease, and runs the pods bound to it on one Docker engine.

Wiring only: an informer on the pods with `spec.nodeName=<node>` feeds a work queue keyed by
pod; `pods.PodSync` reconciles each key. Docker `die` events enqueue their pod at once (a killed
container restarts in well under a second); a periodic resync also enqueues every pod and every
pod that still has containers here, which is how orphans (pods deleted while the agent was
down) are found and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from reconcile.client import aio, wire
from reconcile.client import config as config_mod
from reconcile.client import informer as informer_mod
from reconcile.core import errors
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller, supervision
from reconcile.node import (
    apiservice,
    bootstrap,
    containers,
    docker,
    environment,
    guard,
    images,
    pods,
    probes,
    projected,
    reclaim,
    registration,
    render,
    rotation,
    server,
    serving,
    stats,
    tls,
    volumes,
)
from reconcile.node import authz as authz_mod
from reconcile.node import events as node_events

log = logging.getLogger(__name__)

API_SERVICE_WAIT = 10.0  # seconds start() waits for the `kubernetes` Service's cache


@dataclass
class NodeSettings:
    """One line per setting of `reconcile node join`."""

    name: str
    docker_host: str
    server: config_mod.ClientConfig | str  # the API server (a URL, or a loaded kubeconfig)
    state_dir: Path | None = None  # default: $RECONCILE_STATE_DIR or ~/.local/share/reconcile, then nodes/<name>
    port: int = 10250  # the agent's HTTP port (logs, exec); 0 picks a free one
    address: str = "127.0.0.1"  # InternalIP, where the agent listens and hostPorts bind by default
    pod_cidr: str | None = None  # the node's pod subnet; default derived from the name
    infra_image: str = images.PAUSE_IMAGE
    templates: Path | None = None  # a directory with container.json.j2 / infra.json.j2 overrides
    reserve_cpu: int = 0  # millicores kept from pods
    reserve_memory: int = 0  # bytes kept from pods
    lease_interval: float = 10.0
    resync_interval: float = 10.0  # every pod (and every orphan) is looked at least this often
    status_interval: float = 300.0  # Node status is rewritten at least this often
    stats_interval: float = stats.INTERVAL_SECONDS  # containers' CPU and memory sampled this often (`kubectl top`)
    workers: int = 8  # pods synced in parallel
    allowed_host_paths: tuple[str, ...] = ()  # hostPath prefixes pods of non-privileged namespaces may mount
    pod_security_default: str = guard.PRIVILEGED  # the Pod Security level of namespaces without an enforce label
    tls_cert_file: Path | None = None  # the port's serving certificate (default: self-signed under state_dir/pki)
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None  # clients must present a certificate this CA signed (then Webhook authz)
    healthz_port: int | None = None  # plain-HTTP /healthz and /readyz on 127.0.0.1 (0: a free port; None: off)
    credentials: bootstrap.Credentials | None = None  # joined by token: its client certificate is rotated
    # with credentials and no tls_cert_file: the serving certificate through a kubelet-serving CSR, rotated
    # (the kubelet's serverTLSBootstrap / --rotate-server-certificates)
    rotate_certificates: bool = True  # with credentials: the client certificate is renewed (--rotate-certificates)
    rotate_server_certificates: bool = False
    serving_wait: float = 30.0  # start() waits this long for that certificate, then goes on without it
    bootstrap_timeout: float = 300.0  # how long one CSR may wait for approval and signing
    cluster_dns: tuple[str, ...] = ()  # the kubelet's --cluster-dns: ClusterFirst pods' nameservers
    cluster_domain: str = "cluster.local"  # the kubelet's --cluster-domain
    resolv_conf: str = "/etc/resolv.conf"  # the kubelet's --resolv-conf: what dnsPolicy Default pods get


def default_pod_cidr(name: str) -> str:
    """A /24 in 10.128.0.0/10 picked from the node name, so nodes get distinct subnets by default
    (clear of the default service CIDR 10.96.0.0/12: the proxy refuses pod CIDRs that overlap it)."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.{128 + digest[0] % 64}.{digest[1]}.0/24"


def default_state_dir(name: str) -> Path:
    base = os.environ.get("RECONCILE_STATE_DIR") or str(Path.home() / ".local" / "share" / "reconcile")
    return Path(base) / "nodes" / name


def network_name(node: str) -> str:
    return f"reconcile-{node}"


def bridge_name(node: str) -> str:
    """Host bridge names are limited to 15 characters."""
    return "rcn-" + hashlib.sha256(node.encode()).hexdigest()[:10]


class Agent:
    def __init__(self, settings: NodeSettings, *, clock: clock_mod.Clock | None = None) -> None:
        self.settings = settings
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.pod_cidr = settings.pod_cidr or default_pod_cidr(settings.name)
        self.state_dir = settings.state_dir or default_state_dir(settings.name)
        self.runtime = docker.DockerRuntime(settings.docker_host, max_workers=max(8, settings.workers * 2))
        self.client = aio.AsyncClient(settings.server)
        # reclaim Delete of its Docker volumes; its notes name the PVs it has held
        self.reclaimer = reclaim.Reclaimer(self.client, self.runtime, self.state_dir / "held-volumes")
        self.informer = informer_mod.Informer(self.client, "v1", "pods", field_selector=f"spec.nodeName={settings.name}")
        # A pod informer that stops would freeze the node's view of its pods: restart it, report it.
        # the `kubernetes` Service: where containers find the API server (KUBERNETES_SERVICE_HOST/PORT)
        self.api_service = apiservice.ApiService(self.client, fallback=pods.api_address(self.client.config.server))
        self.supervisor = supervision.InformerSupervisor(lambda: [self.informer, self.api_service.informer],
                                                         name=f"node {settings.name}")
        self.events = node_events.Emitter(self.client, node=settings.name)
        self.controller = controller.Controller("node-agent", self._sync, workers=settings.workers, clock=self.clock)
        self.probes = probes.ProbeManager(self.runtime, on_change=self._on_probe_change,
                                          on_failure=self._on_probe_failure, on_unhealthy=self._on_unhealthy,
                                          clock=self.clock)
        self.http: server.AgentServer | None = None
        self.health_http: server.AgentServer | None = None
        self.rotator: rotation.Rotator | None = None  # the client certificate's
        self.serving_rotator: rotation.Rotator | None = None
        self.serving_context: tls.ServingContext | None = None
        self.sync: pods.PodSync | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    async def _request_token(self, namespace: str, name: str, body: dict) -> dict:
        """TokenRequest for a pod's projected volume (`projected.Tokens` binds it to the pod)."""
        path = wire.object_path("v1", "serviceaccounts", name, namespace=namespace, subresource="token")
        response = await self.client.request("POST", path, json=body)
        return response.json()

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register, start serving and syncing; returns once the pod cache is synced."""
        s = self.settings
        try:
            info = await self.runtime.info()
        except docker.DockerError as exc:
            raise docker.DockerError(f"no Docker engine answers at {s.docker_host}: {exc}") from exc
        await self._ensure_infra_image()
        network = ipaddress.ip_network(self.pod_cidr)
        await self.runtime.ensure_network(network_name(s.name), subnet=str(network),
                                          gateway=str(next(network.hosts())), bridge_name=bridge_name(s.name))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fetch = environment.fetcher(self.client)
        node_view = render.NodeView(s.name, s.address, network_name(s.name), s.infra_image, self.pod_cidr)
        self.sync = pods.PodSync(pods.NodeContext(
            node=node_view, client=self.client, runtime=self.runtime, renderer=render.Renderer(s.templates),
            volumes=volumes.Volumes(self.state_dir, fetch, tokens=projected.Tokens(self._request_token),
                                    node_name=s.name, runtime=self.runtime, reclaimer=self.reclaimer),
            probes=self.probes, events=self.events, store=self.informer.store, clock=self.clock,
            api_address=self.api_service.address,
            dns=pods.DnsSettings(cluster_dns=s.cluster_dns, cluster_domain=s.cluster_domain,
                                 resolv_conf=s.resolv_conf),
            guard=guard.Guard(self.client, guard.GuardSettings(allowed_host_paths=s.allowed_host_paths,
                                                              default_level=s.pod_security_default))))
        self.stats = stats.Sampler(self.runtime, s.name, interval=s.stats_interval)
        app = server.create_app(self.runtime, self._lookup, readiness=self.supervisor.readiness,
                                liveness=self.supervisor.liveness, gate=self._gate(), stats=self.stats.summary,
                                pod_address=self._pod_address)
        self.http = server.AgentServer(app, host=s.address, port=s.port, ssl_context=self._serving_context())
        await self.http.start()
        if s.healthz_port is not None:
            self.health_http = server.AgentServer(
                server.health_app(readiness=self.supervisor.readiness, liveness=self.supervisor.liveness),
                host="127.0.0.1", port=s.healthz_port)
            await self.health_http.start()
            log.info("node %s health port %d", s.name, self.health_http.port)
        await self._register(info)
        lease = registration.LeaseKeeper(self.client, node=s.name, interval=s.lease_interval, clock=self.clock)
        self.controller.watch(self.informer)
        await self.api_service.informer.start()
        await self.informer.start()
        await self._wait_api_service()
        await self.informer.wait_synced()
        await self.supervisor.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(lease.run(), name="node-lease"),
            loop.create_task(self.controller.run(), name="node-pods"),
            loop.create_task(self._docker_events(), name="node-docker-events"),
            loop.create_task(self._resync_forever(), name="node-resync"),
            loop.create_task(self.stats.run(), name="node-stats"),
            loop.create_task(registration.run_periodically(s.lease_interval, lambda: self._refresh_status(info),
                                                           clock=self.clock), name="node-status"),
        ]
        if s.credentials is not None and s.rotate_certificates:
            server_url = s.server if isinstance(s.server, str) else s.server.server
            client_cert = rotation.ClientCertificate(self.client, s.credentials, node=s.name, server=server_url,
                                                     timeout=s.bootstrap_timeout)
            self.rotator = rotation.Rotator(what="client", node=s.name, current=client_cert.current,
                                            renew=client_cert.renew, clock=self.clock)
            self._tasks.append(loop.create_task(self.rotator.run(), name="node-certificate-rotation"))
        if self._serves_by_csr():
            await self._start_serving_rotation(loop)
        await self._resync()
        log.info("node %s joined: docker %s, pods on %s, agent port %d", s.name, s.docker_host, self.pod_cidr,
                 self.http.port)

    async def run(self) -> None:
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.close()

    def request_stop(self) -> None:
        self._stopped.set()

    async def close(self) -> None:
        """Stop watching and serving; running containers are left alone (a restart adopts them)."""
        await self.controller.stop(timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.supervisor.stop()
        await self.informer.stop()
        await self.api_service.informer.stop()
        if self.sync is not None:
            await self.sync.close()
        await self.probes.close()
        await self.events.close()
        if self.http is not None:
            await self.http.stop()
        if self.health_http is not None:
            await self.health_http.stop()
        await self.client.close()
        await self.runtime.close()

    # --- pieces --------------------------------------------------------------------------------

    async def _wait_api_service(self) -> None:
        """The `kubernetes` Service's cache before the first container is made (so none gets the
        fallback address needlessly); bounded, since a server that refuses the list must not keep
        the node from running pods (they then get the fallback until the informer syncs)."""
        try:
            await self.api_service.informer.wait_synced(timeout=API_SERVICE_WAIT)
        except Exception as exc:  # a timeout, or the informer's fatal error (a 403)
            log.warning("the kubernetes Service is not cached (%s): containers get %s:%s until it is",
                        exc or type(exc).__name__, *self.api_service.fallback)

    def _serves_by_csr(self) -> bool:
        s = self.settings
        return s.credentials is not None and s.rotate_server_certificates and s.tls_cert_file is None

    def _serving_context(self) -> ssl.SSLContext:
        """The port's context: with --tls-cert-file or a self-signed certificate it serves at once; by
        CSR it refuses handshakes until `_start_serving_rotation` installs the first certificate."""
        s = self.settings
        self.serving_context = tls.ServingContext(client_ca_file=str(s.client_ca_file) if s.client_ca_file else None)
        if s.tls_cert_file is not None:
            self.serving_context.install(tls.ServingFiles(s.tls_cert_file, s.tls_private_key_file or s.tls_cert_file))
        elif not self._serves_by_csr():
            self.serving_context.install(tls.self_signed(self.state_dir / "pki", name=s.name, address=s.address))
        return self.serving_context.context

    async def _start_serving_rotation(self, loop: asyncio.AbstractEventLoop) -> None:
        """After registration (the approver checks the SANs against the Node's addresses): reuse the
        stored serving certificate or ask for one, then keep it rotated; wait `serving_wait` for the
        first one, as a kubelet that is up but not yet serving would."""
        s = self.settings
        assert s.credentials is not None and self.serving_context is not None
        cert = serving.ServingCertificate(self.client, s.credentials, self.serving_context, node=s.name,
                                          address=s.address, timeout=s.bootstrap_timeout)
        cert.load()
        self.serving_rotator = rotation.Rotator(what="serving", node=s.name, current=cert.current, renew=cert.renew,
                                                clock=self.clock)
        self._tasks.append(loop.create_task(self.serving_rotator.run(), name="node-serving-certificate"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cert.installed.wait(), timeout=s.serving_wait)
        if not self.serving_context.ready:
            log.warning("node %s: no serving certificate yet (approve its kubernetes.io/kubelet-serving CSR); "
                        "the agent port refuses connections until then", s.name)

    def _gate(self) -> server.Gate | None:
        """With a client CA: x509 authentication, then Webhook authorization of every request."""
        if self.settings.client_ca_file is None:
            return None
        authenticator = authz_mod.Authenticator(Path(self.settings.client_ca_file).read_bytes())
        authorizer = authz_mod.WebhookAuthorizer(self.settings.name, self._subject_access_review)

        async def gate(method: str, path: str, peer: str | None) -> None:
            caller = authenticator.caller(peer)
            verb, subresource = authz_mod.attributes(method, path)
            await authorizer.authorize(caller, verb, subresource)

        return gate

    async def _subject_access_review(self, review: dict) -> dict:
        answer = await self.client.create("authorization.k8s.io/v1", "subjectaccessreviews", review)
        return answer.get("status") or {}

    async def _ensure_infra_image(self) -> None:
        image = self.settings.infra_image
        if await self.runtime.image_present(image):
            return
        if image == images.PAUSE_IMAGE:
            log.info("building the infra image %s from the host's busybox", image)
            await images.ensure_pause_image(self.runtime, image)
            return
        await self.runtime.pull(image)

    async def _register(self, info: dict) -> None:
        s = self.settings
        assert self.http is not None
        now = registration.now_string(self.clock)
        existing = await registration.current_node(self.client, s.name)
        status = registration.node_status(
            name=s.name, address=s.address, port=self.http.port, info=info, reserve_cpu=s.reserve_cpu,
            reserve_memory=s.reserve_memory, now=now, ready_since=registration.ready_since(existing, now))
        await registration.register(self.client, name=s.name, pod_cidr=self.pod_cidr,
                                    labels=registration.node_labels(s.name, info), status=status)

    async def _refresh_status(self, info: dict) -> None:
        """Rewrite the Node status when it is stale or someone else (node lifecycle) marked it not Ready."""
        node = await registration.current_node(self.client, self.settings.name)
        if node is None or registration.needs_update(node, now=self.clock.wall(),
                                                     max_age=self.settings.status_interval):
            await self._register(info)

    async def _sync(self, key: controller.Key) -> controller.Result | None:
        assert self.sync is not None
        return await self.sync.sync(key)

    async def _resync(self) -> None:
        """Enqueue every pod bound here and every pod that still has containers here (orphans)."""
        assert self.sync is not None
        found: list[containers.Instance] = []

        async def holding() -> set[str]:
            found.extend(containers.from_inspect(d)
                         for d in await self.runtime.list(labels={containers.LABEL_NODE: self.settings.name}))
            return {inst.pod_uid for inst in found}

        def live() -> set[str]:
            return {(p.get("metadata") or {}).get("uid") or "" for p in self.informer.store.list()}

        await self.sync.ctx.volumes.remove_orphans(holding, live)
        for key in set(self.informer.store.keys()) | {(inst.namespace, inst.pod_name) for inst in found}:
            self.controller.enqueue(key)
        try:
            await self.reclaimer.sweep()
        except errors.ApiError as exc:
            log.warning("volume reclaim: %s", exc)

    async def _resync_forever(self) -> None:
        while True:
            await self.clock.sleep(self.settings.resync_interval)
            try:
                await self._resync()
            except docker.DockerError as exc:
                log.warning("resync: %s", exc)

    async def _docker_events(self) -> None:
        """A container of ours died: sync its pod now instead of at the next resync."""
        backoff = 0.1
        while True:
            stream = self.runtime.events(labels={containers.LABEL_NODE: self.settings.name})
            try:
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        backoff = 0.1
                        if event.get("status") not in ("die", "oom") and event.get("Action") not in ("die", "oom"):
                            continue
                        attributes = (event.get("Actor") or {}).get("Attributes") or {}
                        namespace = attributes.get(containers.LABEL_NAMESPACE)
                        name = attributes.get(containers.LABEL_NAME)
                        if namespace and name:
                            self.controller.enqueue((namespace, name))
            except docker.DockerError as exc:
                log.warning("docker event stream broke: %s; reconnecting", exc)
            await self.clock.sleep(backoff)  # reconnect backoff, not synchronization
            backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(docker.DockerError):
                await self._resync()  # events may have been missed meanwhile

    # --- probe callbacks -------------------------------------------------------------------------

    def _pod_by_uid(self, uid: str) -> dict | None:
        for pod in self.informer.store.list():
            if (pod.get("metadata") or {}).get("uid") == uid:
                return pod
        return None

    def _on_probe_change(self, uid: str) -> None:
        pod = self._pod_by_uid(uid)
        if pod is not None:
            self.controller.enqueue((pod["metadata"].get("namespace") or "", pod["metadata"]["name"]))

    def _on_unhealthy(self, uid: str, name: str, message: str) -> None:
        pod = self._pod_by_uid(uid)
        if pod is not None:
            self.events.emit(pod, "Unhealthy", message, type="Warning")

    async def _on_probe_failure(self, uid: str, name: str, container_id: str, message: str) -> None:
        """Liveness (or startup) failed: kill the container; the pod's sync restarts it per restartPolicy."""
        pod = self._pod_by_uid(uid)
        if pod is None:
            return
        self.events.emit(pod, "Killing", message)
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        await self.runtime.stop(container_id, timeout=30 if grace is None else int(grace))
        self.controller.enqueue((pod["metadata"].get("namespace") or "", pod["metadata"]["name"]))

    # --- logs and exec lookups -------------------------------------------------------------------

    async def _pod_address(self, namespace: str, pod_name: str) -> tuple[str, str]:
        """(IP, uid) of a running pod of this node, for port-forward: its address on the node's
        bridge network, reachable from this host."""
        pod = self.informer.store.get(namespace, pod_name)
        if pod is None:
            raise errors.NotFound.for_resource("pods", pod_name)
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            raise errors.BadRequest(f"unable to forward port because pod is not running. Current status="
                                    f"{status.get('phase') or 'Pending'}")
        return str(status["podIP"]), str(pod["metadata"].get("uid") or "")

    async def _lookup(self, namespace: str, pod_name: str, container: str, previous: bool) -> containers.Instance:
        pod = self.informer.store.get(namespace, pod_name)
        if pod is None:
            raise errors.NotFound.for_resource("pods", pod_name)
        uid = pod["metadata"]["uid"]
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        if container not in names:
            raise errors.BadRequest(f"container {container} is not valid for pod {pod_name}")
        labels = {containers.LABEL_UID: uid, containers.LABEL_CONTAINER: container,
                  containers.LABEL_NODE: self.settings.name}
        attempts = containers.by_container([containers.from_inspect(d)
                                            for d in await self.runtime.list(labels=labels)]).get(container) or []
        wanted = attempts[-2] if previous and len(attempts) > 1 else (None if previous else
                                                                        (attempts[-1] if attempts else None))
        if wanted is None:
            if previous:
                raise errors.BadRequest(f'previous terminated container "{container}" in pod "{pod_name}" not found')
            raise errors.BadRequest(f'container "{container}" in pod "{pod_name}" is waiting to start: '
                                    "ContainerCreating")
        return wanted
