"""The API server: a Starlette app over the store, the registry and the watch caches."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import platform
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import reconcile
from reconcile.api import (
    admission,
    allocators,
    audit,
    auditlog,
    auditpolicy,
    authenticators,
    authn,
    authorizers,
    bootstrap,
    caches,
    certificates_admission,
    discovery,
    flowcontrol,
    gitopshooks,
    handlers,
    http,
    ingress_admission,
    limitranger,
    lookups,
    openapi,
    openapiv2,
    pipeline,
    podproxy,
    podsecurity_admission,
    priority_admission,
    protobodies,
    quota,
    registry,
    rest,
    reviews,
    routing,
    satokens,
    serviceaccount_admission,
    servicerepair,
    storage_admission,
    strategies,
    tokenrequest,
)
from reconcile.api.nodeauth import authorizer as node_authorizer
from reconcile.api.nodeauth import feed as node_feed
from reconcile.api.nodeauth import restriction as node_restriction
from reconcile.api.rbac import authorizer as rbac_authorizer
from reconcile.api.rbac import bootstrap as rbac_bootstrap
from reconcile.api.rbac import escalation as rbac_escalation
from reconcile.api.rbac import index as rbac_index
from reconcile.api.strategies import autoscaling as autoscaling_strategy
from reconcile.api.strategies import batch as batch_strategy
from reconcile.api.strategies import certificates, configdata, crds, namespaces, pods, services
from reconcile.api.strategies import disruption as disruption_strategy
from reconcile.api.strategies import networking as networking_strategy
from reconcile.api.strategies import rbac as rbac_strategy
from reconcile.api.strategies import scheduling as scheduling_strategy
from reconcile.api.strategies import storage as storage_strategy
from reconcile.core import errors, webhookreceiver
from reconcile.store import encryption, etcd, keys

log = logging.getLogger("reconcile.api")

KEEP_ALIVE_SECONDS = 120


@dataclass
class ApiConfig:
    etcd_endpoints: list[str]
    etcd_prefix: str = "/registry"  # several clusters (and parallel tests) can share one etcd
    etcd_cacert: str | None = None  # TLS to etcd: CA bundle
    etcd_cert: str | None = None  # TLS to etcd: client certificate
    etcd_key: str | None = None  # TLS to etcd: client key
    tls_cert_file: str | None = None  # serving certificate (PEM); set: HTTPS only, no plain port
    tls_private_key_file: str | None = None  # its key
    client_ca_file: str | None = None  # CAs of client certificates: turns on the x509 authenticator
    bookmark_interval: float = 30.0  # idle watches with allowWatchBookmarks get one at least this often
    compaction_interval: float = 300.0  # etcd history kept (seconds); 0 disables compaction
    # upstream's EncryptionConfiguration file: which resources are encrypted in etcd, with which keys
    encryption_provider_config: str | None = None
    audit_policy_file: str | None = None  # an audit.k8s.io/v1 Policy; auditing is off without it
    audit_log_path: str | None = None  # where events go as JSON lines ("-": standard output)
    audit_log_maxsize: int = 0  # megabytes before the log is rotated; 0: never
    audit_log_maxbackup: int = 0  # rotated files kept; 0: all
    audit_log_batch_buffer_size: int = 10_000  # events queued for the writer thread; beyond that, dropped
    inflight: flowcontrol.Settings = field(default_factory=flowcontrol.Settings)  # max requests in flight
    authorization_mode: str = authorizers.ALWAYS_ALLOW  # --authorization-mode: AlwaysAllow, RBAC, or a list
    token_auth_file: str | None = None  # --token-auth-file: static tokens (CSV); turns authentication on
    anonymous_auth: bool = True  # --anonymous-auth: requests without credentials are system:anonymous
    admission_config_file: str | None = None  # an AdmissionConfiguration (PodSecurity defaults, exemptions)
    pod_security_initial_labels: bool = False  # label the initial namespaces: default baseline, kube-system privileged
    # --service-account-issuer, -key-file, -signing-key-file, --api-audiences, ...: ServiceAccount tokens
    service_accounts: satokens.Settings = field(default_factory=satokens.Settings)
    enable_bootstrap_token_auth: bool = False  # bootstrap-token-<id> Secrets in kube-system authenticate
    kubelet_client_certificate: str | None = None  # presented to node agents by the log/exec proxies
    kubelet_client_key: str | None = None
    kubelet_certificate_authority: str | None = None  # verifies node agents' serving certificates
    service_cluster_ip_range: str = allocators.DEFAULT_SERVICE_CIDR  # --service-cluster-ip-range
    service_node_port_range: str = allocators.DEFAULT_NODE_PORT_RANGE  # --service-node-port-range
    advertise_address: str = "127.0.0.1"  # --advertise-address: this server in default/kubernetes' endpoints
    secure_port: int = 6443  # the port default/kubernetes' endpoints name (the one the server listens on)
    extra: dict[str, str] = field(default_factory=dict)


def _anonymous_allowed(config: ApiConfig) -> bool:
    """--anonymous-auth, except beside AlwaysAllow: as upstream, an anonymous caller that every
    request is allowed to would make authentication pointless, so it is turned off (with a warning)."""
    if config.anonymous_auth and authorizers.ALWAYS_ALLOW in authorizers.parse_modes(config.authorization_mode):
        if config.client_ca_file or config.token_auth_file or config.enable_bootstrap_token_auth:
            log.warning("anonymous requests are not allowed with the AlwaysAllow authorizer: --anonymous-auth "
                        "is reset to false (use --authorization-mode RBAC)")
        return False
    return config.anonymous_auth


class StartupError(Exception):
    """A setting cannot be used (a configuration file is missing or wrong): the server does not start."""


class ApiServer:
    """Owns the long-lived parts; the Starlette app calls into it."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        tls = None
        if config.etcd_cert or config.etcd_cacert:
            tls = etcd.TLSConfig(ca_file=config.etcd_cacert, cert_file=config.etcd_cert, key_file=config.etcd_key)
        self.encryption = _encryption(config.encryption_provider_config)
        self.store = etcd.EtcdStore(config.etcd_endpoints, prefix=config.etcd_prefix, tls=tls,
                                    transformer=self.encryption)
        self.registry = registry.Registry()
        self.caches = caches.CacheSet(self.store)
        self.rest = rest.Rest(self.store, self.registry, self.caches)
        self.crds = bootstrap.CrdSync(self.rest)
        roles, bindings = rbac_strategy.RoleStrategy(), rbac_strategy.BindingStrategy()
        try:
            self.cluster_ips = allocators.ClusterIPRange(self.store, config.service_cluster_ip_range)
            self.node_ports = allocators.NodePortRange(self.store, config.service_node_port_range)
        except ValueError as exc:
            raise StartupError(f"--service-cluster-ip-range/--service-node-port-range: {exc}") from None
        self.rest.strategies = strategies.StrategySet({
            ("", "pods"): pods.PodStrategy(),
            ("", "services"): services.ServiceStrategy(self.cluster_ips, self.node_ports),
            ("apps", "deployments"): pods.WorkloadStrategy(),
            ("apps", "replicasets"): pods.WorkloadStrategy(),
            ("apps", "statefulsets"): pods.StatefulSetStrategy(),
            ("batch", "jobs"): batch_strategy.JobStrategy(),
            ("batch", "cronjobs"): batch_strategy.CronJobStrategy(),
            ("", "namespaces"): namespaces.NamespaceStrategy(self.rest.namespace_has_content),
            ("", "secrets"): configdata.SecretStrategy(),
            ("", "configmaps"): configdata.ConfigMapStrategy(),
            (crds.GROUP, "customresourcedefinitions"): crds.CrdStrategy(
                on_stored=self.crds.stored, on_removed=self.crds.removed, remove_objects=self._remove_crd_objects),
            (rbac_index.GROUP, "roles"): roles,
            (rbac_index.GROUP, "clusterroles"): roles,
            (rbac_index.GROUP, "rolebindings"): bindings,
            (rbac_index.GROUP, "clusterrolebindings"): bindings,
            (certificates_admission.GROUP, certificates_admission.PLURAL):
                certificates.CertificateSigningRequestStrategy(),
            ("", "persistentvolumes"): storage_strategy.PersistentVolumeStrategy(),
            ("", "persistentvolumeclaims"): storage_strategy.PersistentVolumeClaimStrategy(),
            ("storage.k8s.io", "storageclasses"): storage_strategy.StorageClassStrategy(),
            ("policy", "poddisruptionbudgets"): disruption_strategy.PodDisruptionBudgetStrategy(),
            (scheduling_strategy.GROUP, scheduling_strategy.PLURAL): scheduling_strategy.PriorityClassStrategy(),
            (networking_strategy.GROUP, "ingresses"): networking_strategy.IngressStrategy(),
            (networking_strategy.GROUP, "ingressclasses"): networking_strategy.IngressClassStrategy(),
            ("autoscaling", "horizontalpodautoscalers"): autoscaling_strategy.HorizontalPodAutoscalerStrategy(),
        })
        self.caches.listeners[(crds.GROUP, "customresourcedefinitions")] = self.crds.on_cache_event
        # RBAC reads its rules from the watch caches; any change to them rebuilds its index.
        self.rbac_index = rbac_index.RuleIndex(functools.partial(self._objects, rbac_index.GROUP))
        for plural in rbac_index.PLURALS:
            self.caches.listeners[(rbac_index.GROUP, plural)] = self.rbac_index.changed
        modes = authorizers.parse_modes(config.authorization_mode)
        # The Node authorizer's graph follows the pod and PV caches (only when the mode is on: every
        # pod event is decoded for it).
        self.node_graph = node_feed.LiveGraph(functools.partial(self._objects, ""))
        if authorizers.NODE in modes:
            self.caches.add_listener(("", node_feed.PODS), self.node_graph.pod_event)
            self.caches.add_listener(("", node_feed.PVS), self.node_graph.pv_event)
        self.authorizer = authorizers.build(modes, rbac=rbac_authorizer.RBACAuthorizer(self.rbac_index),
                                            node=node_authorizer.NodeAuthorizer(self.node_graph))
        signer, verification_keys = _service_account_keys(config.service_accounts)
        sa_settings = config.service_accounts
        sa_tokens = None
        if verification_keys:
            sa_tokens = satokens.ServiceAccountTokens(verification_keys, issuers=sa_settings.issuer_list(),
                                                      api_audiences=sa_settings.audiences(), lookup=self._cached)
        authn_settings = authenticators.Settings(
            client_ca_file=config.client_ca_file, token_auth_file=config.token_auth_file,
            anonymous_auth=_anonymous_allowed(config), service_account_tokens=sa_tokens,
            bootstrap_secrets=functools.partial(self._cached, "", "secrets", "kube-system")  # bootstrap tokens
            if config.enable_bootstrap_token_auth else None)
        self.authenticator: authn.Authenticator = authenticators.build(authn_settings)
        # TokenRequest (serviceaccounts/token) is served only when the server can sign, as upstream's
        self.token_issuer = tokenrequest.TokenIssuer(signer, sa_settings, self._get_object) if signer else None
        escalation = rbac_escalation.EscalationCheck(self.authorizer, self.authorizer.rules_for,
                                                     self.rbac_index.role_rules)
        self.rest.admission = admission.Chain(admission_plugins(self.rest, config, escalation,
                                                                 mount_tokens=self.token_issuer is not None))
        self.reviews = reviews.Reviews(self.authorizer, token_authenticators=authn_settings.token_authenticators,
                                       api_audiences=sa_settings.audiences())
        self.handlers = handlers.ResourceHandlers(self.rest, bookmark_interval=config.bookmark_interval)
        self.handlers.virtual = self.reviews.handler_for
        self.handlers.code_subresources[("", "serviceaccounts", "token")] = handlers.CodeSubresource(
            create=self._create_token, protobuf=protobodies.token_request)
        self.handlers.kubelet = podproxy.KubeletClientConfig(
            config.kubelet_client_certificate, config.kubelet_client_key, config.kubelet_certificate_authority)
        self.audit_log, self.auditor = _auditing(config)
        self.limiter = flowcontrol.Limiter(config.inflight) if config.inflight.enabled else None
        self.ready = False
        self._compactor: asyncio.Task[None] | None = None
        self._repairer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.audit_log is not None:
            self.audit_log.start()
        await self.store.open()
        await bootstrap.install_builtins(self.rest, self.crds)
        await asyncio.gather(*(self.caches.ensure(r) for r in self.registry.resources()))
        await bootstrap.ensure_namespaces(
            self.rest, labels=bootstrap.POD_SECURITY_LABELS if self.config.pod_security_initial_labels else None)
        await bootstrap.ensure_storage_class(self.rest)
        await bootstrap.ensure_priority_classes(self.rest)
        await self._reconcile_rbac_policy()
        await servicerepair.ensure_kubernetes_service(self.rest, self.cluster_ips, self.config.advertise_address,
                                                      self.config.secure_port)
        self._repairer = asyncio.create_task(servicerepair.repair_forever(self.rest, self.cluster_ips,
                                                                          self.node_ports))
        if self.config.compaction_interval > 0:
            self._compactor = asyncio.create_task(self._compact_forever())
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.handlers.decoder.close()
        for task in (self._compactor, self._repairer):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.caches.stop()
        await self.store.close()
        if self.audit_log is not None:
            self.audit_log.flush()  # on the loop, which owns the pending batch
            await asyncio.to_thread(self.audit_log.close)  # what is queued is written before the server exits

    def metrics(self) -> str:
        """Prometheus text of the in-flight and audit counters (upstream's metric names)."""
        samples: list[tuple[str, dict[str, str], int]] = []
        if self.limiter is not None:
            samples += self.limiter.metrics()
        if self.audit_log is not None:
            samples += [("apiserver_audit_event_total", {}, self.audit_log.written),
                        ("apiserver_audit_error_total", {"plugin": "log"}, self.audit_log.dropped + self.audit_log.errors)]
        lines = []
        for name, labels, value in samples:
            label_text = ",".join(f'{key}="{val}"' for key, val in labels.items())
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        return "\n".join(lines) + "\n"

    def _cached(self, group: str, plural: str, namespace: str | None, name: str) -> dict | None:
        """One object as its watch cache holds it (None: absent, or no cache): what the ServiceAccount
        and bootstrap-token authenticators check a token against, as upstream reads its informers, so
        authenticating a request costs no etcd read."""
        cache = self.caches.get(group, plural)
        if cache is None:
            return None
        entry = cache.get(keys.object_key(group, plural, namespace, name))
        return entry.obj if entry is not None and entry.decodable else None

    async def _get_object(self, plural: str, namespace: str | None, name: str) -> dict:
        """A core object by a consistent read (NotFound as the API answers it): what TokenRequest binds to."""
        resource = self.registry.get("", "v1", plural)
        if resource is None:
            raise errors.NotFound.for_resource(plural, name)
        return (await self.rest.get(resource, namespace, name)).obj

    async def _create_token(self, namespace: str | None, name: str, body: object,
                            user: authn.UserInfo) -> tuple[dict, list[str]]:
        if self.token_issuer is None or not namespace:
            raise errors.no_such_resource()
        # Admission sees the TokenRequest as upstream's does (NodeRestriction: a node mints only tokens
        # bound to its own pods, never an unbound credential for their accounts).
        request = tokenrequest.parse_request(body)
        await self.rest.admission.admit(admission.Attributes(
            admission.CREATE, self.registry.get("", "v1", "serviceaccounts"), "token", namespace, name, request,
            None, user, False))
        return await self.token_issuer.create(namespace, name, body)

    def _objects(self, group: str, plural: str) -> list[dict] | None:
        """The decodable objects of one resource's watch cache (None while that cache is not running):
        what the RBAC index and the node graph read."""
        cache = self.caches.get(group, plural)
        if cache is None:
            return None
        return [entry.obj for entry in cache.list()[0] if entry.decodable]

    async def _reconcile_rbac_policy(self) -> None:
        """The default roles and bindings, then wait until the caches (so the authorizer) hold them."""
        await rbac_bootstrap.reconcile(self.rest)
        head = await self.store.current_revision()
        for plural in rbac_index.PLURALS:
            cache = self.caches.get(rbac_index.GROUP, plural)
            if cache is not None:
                await cache.wait_for_revision(head)

    async def _remove_crd_objects(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        await self.rest.remove_all(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))

    async def _compact_forever(self) -> None:
        """Like kube-apiserver: every interval, compact to the revision seen one interval ago."""
        previous: int | None = None
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                current = await self.store.current_revision()
                if previous:
                    await self.store.compact(previous)
                    self.caches.compacted(previous)
                previous = current
            except errors.Compacted:
                previous = None
            except Exception as exc:
                log.warning("compaction failed: %s", exc)


def _auditing(config: ApiConfig) -> tuple[auditlog.LogBackend | None, audit.Auditor | None]:
    """The audit log and the audit stage, or (None, None) when auditing is off."""
    if not config.audit_policy_file and not config.audit_log_path:
        return None, None
    if not config.audit_policy_file or not config.audit_log_path:
        raise StartupError("auditing needs both --audit-policy-file and --audit-log-path")
    try:
        policy = auditpolicy.load(config.audit_policy_file)
    except auditpolicy.PolicyError as exc:
        raise StartupError(f"--audit-policy-file: {exc}") from None
    backend = auditlog.LogBackend(config.audit_log_path, max_size_mb=config.audit_log_maxsize,
                                  max_backups=config.audit_log_maxbackup,
                                  queue_size=config.audit_log_batch_buffer_size)
    try:
        backend.check_writable()
    except OSError as exc:
        raise StartupError(f"--audit-log-path: cannot write {config.audit_log_path}: {exc.strerror or exc}") from None
    return backend, audit.Auditor(policy, backend)


def _service_account_keys(settings: satokens.Settings) -> tuple[satokens.Signer | None, list]:
    if settings.signing_key_file and not settings.issuers:
        log.info("--service-account-issuer not given: tokens name %s", satokens.DEFAULT_ISSUER)
    try:
        return satokens.load_keys(settings)
    except satokens.KeyError_ as exc:
        raise StartupError(f"--service-account-key-file/--service-account-signing-key-file: {exc}") from None


def _encryption(path: str | None) -> encryption.Transformers | None:
    if not path:
        return None
    try:
        return encryption.load(path)
    except encryption.ConfigError as exc:
        raise StartupError(f"--encryption-provider-config: {exc}") from None


def admission_plugins(api: rest.Rest, config: ApiConfig,
                      escalation: rbac_escalation.EscalationCheck, *, mount_tokens: bool = False) -> list[admission.Plugin]:
    """The admission chain, in upstream's order: namespace lifecycle, RBAC's escalation check (a role
    or binding grants only what its writer holds), limit ranges (defaults come before anything
    judges resources), ServiceAccount (the pod's account, and its token volume when the server
    signs tokens: `mount_tokens`), NodeRestriction (a node writes only its own objects; always on,
    as kubeadm and kind run it), pod security, Priority (a pod's priority from its class), the storage
    plugins, DefaultIngressClass, and resource quota last (it charges what the others admitted)."""
    try:
        plugin_configs = (admission.load_configuration(config.admission_config_file)
                          if config.admission_config_file else {})
        pod_security = None
        if "PodSecurity" in plugin_configs:
            try:
                pod_security = podsecurity_admission.parse_configuration(plugin_configs["PodSecurity"])
            except ValueError as exc:
                raise ValueError(f"{config.admission_config_file}: PodSecurity: {exc}") from None
    except ValueError as exc:
        raise StartupError(f"--admission-control-config-file: {exc}") from None
    pods_reader = lookups.NamespacedReader(api, "", "v1", "pods", ttl=0)
    limit_ranges = lookups.NamespacedReader(api, "", "v1", "limitranges")
    quotas = lookups.NamespacedReader(api, "", "v1", "resourcequotas")
    pod_reader, node_reader = lookups.ObjectReader(api, "", "v1", "pods"), lookups.ObjectReader(api, "", "v1", "nodes")
    return [
        admission.NamespaceLifecycle(api.namespace),
        escalation,
        # CertificateSigningRequests: the requester's identity, subresource rules, approve/sign verbs
        certificates_admission.Requester(),
        certificates_admission.Subresources(),
        certificates_admission.Approval(escalation.authorizer),
        certificates_admission.Signing(escalation.authorizer),
        certificates_admission.SubjectRestriction(),
        limitranger.LimitRanger(limit_ranges.list, requalify=_requalify_pod),
        serviceaccount_admission.ServiceAccount(_service_account_getter(api), mount_tokens=mount_tokens),
        node_restriction.NodeRestriction(pod_reader.get, lambda name: node_reader.get(None, name)),
        podsecurity_admission.PodSecurity(api.namespace, pods_reader.list, configuration=pod_security),
        priority_admission.plugin(api),  # a pod's priority from its PriorityClass; one global default
        *storage_admission.plugins(api),  # DefaultStorageClass, StorageObjectInUseProtection, PVC resize
        ingress_admission.plugin(api),  # DefaultIngressClass
        quota.ResourceQuota(quota.QuotaAccess(quotas.list, quotas.list_fresh, quotas.write_status)),
    ]


def _service_account_getter(api: rest.Rest) -> serviceaccount_admission.Getter:
    """A ServiceAccount by name, from the cache as it is, then by a consistent read (upstream's
    lister, then its live GET), None when it does not exist."""

    async def get(namespace: str, name: str, *, fresh: bool) -> dict | None:
        resource = api.registry.get("", "v1", "serviceaccounts")
        if resource is None:
            return None
        try:
            entry = await api.get(resource, namespace, name, resource_version=None if fresh else "0")
        except errors.NotFound:
            return None
        return entry.obj

    return get


def _requalify_pod(pod: dict) -> None:
    """A pod's QoS class follows the resources admission defaulted (it was set before admission ran)."""
    status = pod.get("status")
    if isinstance(status, dict) and "qosClass" in status:
        status["qosClass"] = pods.qos_class(pod.get("spec") or {})


def create_app(config: ApiConfig) -> pipeline.Pipeline:
    server = ApiServer(config)
    hooks = gitopshooks.Hooks(server.rest)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Exception as exc:
                return pipeline.error_response(exc, request)

        return run

    async def version(request: Request) -> Response:
        return http.json_response(version_info())

    async def health(request: Request) -> Response:
        if not server.ready:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ok")

    async def core_versions(request: Request) -> Response:
        if _wants_aggregated(request):
            return http.json_response(discovery.aggregated_discovery(server.registry, core=True),
                                      content_type=http.DISCOVERY_CONTENT_TYPE)
        return http.json_response(discovery.api_versions())

    async def group_list(request: Request) -> Response:
        if _wants_aggregated(request):
            return http.json_response(discovery.aggregated_discovery(server.registry, core=False),
                                      content_type=http.DISCOVERY_CONTENT_TYPE)
        return http.json_response(discovery.api_group_list(server.registry))

    async def group(request: Request) -> Response:
        name = request.path_params["group"]
        if name not in server.registry.group_versions():
            raise errors.no_such_resource()
        return http.json_response(discovery.api_group(server.registry, name))

    async def group_version(request: Request) -> Response:
        """`/api/v1`, `/apis/{group}/{version}`: the resources of one group version."""
        if request.method != "GET":
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        info = routing.parse(request.scope["path"])
        if info.plural is not None or info.version not in server.registry.group_versions().get(info.group, []):
            raise errors.no_such_resource()
        return http.json_response(discovery.api_resource_list(server.registry, info.group, info.version))

    async def gitops_hook(request: Request) -> Response:
        body = await http.read_body(request, limit=webhookreceiver.MAX_BODY_BYTES)
        return http.json_response(await hooks.answer(request.method, request.url.path, request.headers, body))

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(server.metrics(), media_type="text/plain; version=0.0.4")

    async def openapi_index(request: Request) -> Response:
        return http.json_response(openapi.openapi_index(server.registry))

    async def openapi_document(request: Request) -> Response:
        group, version = openapi.parse_gv_path(request.path_params["path"])
        if version not in server.registry.group_versions().get(group, []):
            raise errors.no_such_resource()
        return http.json_response(openapi.openapi_document(server.registry, group, version))

    async def openapi_v2(request: Request) -> Response:
        if openapiv2.wants_protobuf(request.headers.get("accept", "")):
            return Response(openapiv2.protobuf_document(), media_type=openapiv2.PROTOBUF_CONTENT_TYPE)
        return http.json_response(openapiv2.document(server.registry))

    # Resource requests never get here (the pipeline serves them); these are the non-resource paths.
    # Starlette tries routes in order; /apis/{group} comes before the group-version catch-all.
    everything = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/api", guarded(core_versions)),
        Route("/api/", guarded(core_versions)),
        Route("/api/{rest:path}", guarded(group_version), methods=everything),
        Route("/apis", guarded(group_list)),
        Route("/apis/", guarded(group_list)),
        Route("/apis/{group}", guarded(group)),
        Route("/apis/{rest:path}", guarded(group_version), methods=everything),
        Route("/version", guarded(version)),
        Route("/version/", guarded(version)),
        Route("/healthz", health),
        Route("/readyz", health),
        Route("/livez", health),
        Route("/openapi/v3", guarded(openapi_index)),
        Route("/openapi/v3/{path:path}", guarded(openapi_document)),
        Route("/openapi/v2", guarded(openapi_v2)),
        Route("/metrics", guarded(metrics)),
        Route(gitopshooks.ROUTE, guarded(gitops_hook), methods=everything),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)

    return pipeline.Pipeline(resources=server.handlers.serve, others=app, upgrades=server.handlers.upgrade,
                             authenticator=server.authenticator, authorizer=server.authorizer,
                             auditor=server.auditor, limiter=server.limiter)


def _wants_aggregated(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"v1.32.0+reconcile.{reconcile.__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def serve(config: ApiConfig, *, host: str = "127.0.0.1", port: int = 6443) -> None:
    """Run the server in the foreground until interrupted: HTTPS only when a serving certificate
    is configured (then with a client CA, client certificates are asked for and verified)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Requests allocate many short-lived dicts; the default young-generation threshold (700) runs the
    # collector thousands of times a second, and each full pass walks every cached object.
    gc.set_threshold(50_000, 20, 100)
    from reconcile.api import httpserver

    tls: dict[str, Any] = {}
    if config.tls_cert_file:
        context = httpserver.server_context(cert_file=config.tls_cert_file,
                                            key_file=config.tls_private_key_file or config.tls_cert_file,
                                            client_ca_file=config.client_ca_file)
        tls = {"ssl_context_factory": lambda _config, _default: context}
    # Idle keep-alive connections are kept longer than any client keeps them (httpx: 5 s, Go's
    # transport and so kubectl and client-go: 90 s): with equal timeouts the server can close a
    # connection at the instant a client reuses it, and that request fails with a read error.
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http=httpserver.ApiHttpProtocol, ws=httpserver.ApiWebSocketProtocol,
                proxy_headers=False, server_header=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=5, **tls)
