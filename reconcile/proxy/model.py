"""What the proxy programs, read off Services and EndpointSlices: one `ServicePort` per service port.

Pure: no I/O. The rules follow kube-proxy (pkg/proxy): Services labelled
`service.kubernetes.io/service-proxy-name`, headless and ExternalName Services get nothing; slices
are matched to a Service by the `kubernetes.io/service-name` label and to a service port by port
name and protocol; an endpoint's `ready` and `serving` default to true and `terminating` to
false when absent (consumers treat nil as true, as upstream says).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
DEFAULT_AFFINITY_SECONDS = 10800  # upstream's default sessionAffinityConfig.clientIP.timeoutSeconds
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""  # nodeName ("" when the slice does not say)
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp, udp or sctp (nft's spelling)
    cluster_ip: str
    port: int
    node_port: int = 0  # 0: none
    affinity_seconds: int = 0  # 0: no ClientIP session affinity
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (node ports only)
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def id(self) -> str:
        """kube-proxy's service port name: ns/svc/proto/portname."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"


def cluster_endpoints(sp: ServicePort) -> list[Endpoint]:
    """Ready endpoints; with none Ready anywhere, the serving and terminating ones (CategorizeEndpoints)."""
    ready = [e for e in sp.endpoints if e.ready]
    return ready or [e for e in sp.endpoints if e.serving and e.terminating]


def local_endpoints(sp: ServicePort, node: str) -> list[Endpoint]:
    """This node's ready endpoints; with none, its serving and terminating ones."""
    mine = [e for e in sp.endpoints if e.node == node]
    ready = [e for e in mine if e.ready]
    return ready or [e for e in mine if e.serving and e.terminating]


def needs_route_localnet(ports: Iterable[ServicePort]) -> bool:
    """Whether packets to or from 127.0.0.0/8 cross the pod bridges: a node port (served on
    127.0.0.1 too, DNATed to a pod), or an endpoint on loopback (the `kubernetes` Service of an API
    server that advertises 127.0.0.1: a pod's connection to its cluster IP is DNATed to 127.0.0.1,
    and the replies leave with that source). Without route_localnet the kernel drops both as martians."""
    loopback = ipaddress.ip_network("127.0.0.0/8")
    return any(sp.node_port or any(ipaddress.ip_address(ep.ip) in loopback for ep in sp.endpoints) for sp in ports)


def _is_ipv4(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def _port_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536 else None


def _bool(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _slice_endpoints(slices: Iterable[dict[str, Any]], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if sl.get("addressType") != "IPv4":
            continue
        port = None
        for p in sl.get("ports") or []:
            if isinstance(p, dict) and (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                port = _port_number(p.get("port"))
                break
        if port is None:
            continue
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            cond = ep.get("conditions") if isinstance(ep.get("conditions"), dict) else {}
            ready = _bool(cond.get("ready"), True)
            node = ep.get("nodeName") if isinstance(ep.get("nodeName"), str) else ""
            for address in ep.get("addresses") or []:
                if _is_ipv4(address):
                    found.setdefault((address, port), Endpoint(
                        ip=address, port=port, node=node, ready=ready, serving=_bool(cond.get("serving"), ready),
                        terminating=_bool(cond.get("terminating"), False)))
    return tuple(sorted(found.values()))


def slice_service(sl: dict[str, Any]) -> tuple[str, str] | None:
    """The (namespace, Service name) a slice serves, or None: no `kubernetes.io/service-name`
    label, or labelled headless or for another proxy (kube-proxy's EndpointSlice filter)."""
    meta = sl.get("metadata") or {}
    labels = meta.get("labels") or {}
    owner = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    if not isinstance(owner, str) or HEADLESS_LABEL in labels or PROXY_NAME_LABEL in labels:
        return None
    return meta.get("namespace") or "", owner


def service_key(svc: dict[str, Any]) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def ports_of_service(svc: dict[str, Any], slices: Iterable[dict[str, Any]]) -> list[ServicePort]:
    """One Service's programmable ports from its slices (those `slice_service` maps to it), in
    port-name order; none for a Service this proxy does not program."""
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    if PROXY_NAME_LABEL in (meta.get("labels") or {}) or spec.get("type") == "ExternalName":
        return []
    cluster_ip = spec.get("clusterIP")
    if not _is_ipv4(cluster_ip):
        return []  # headless ("None"), unallocated, or IPv6 (this proxy is IPv4 only)
    namespace, name = service_key(svc)
    slices = list(slices)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        timeout = config.get("timeoutSeconds")
        affinity = timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_SECONDS
    node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    out: list[ServicePort] = []
    for p in spec.get("ports") or []:
        if not isinstance(p, dict) or (number := _port_number(p.get("port"))) is None:
            continue
        protocol = p.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        port_name = p.get("name") or ""
        out.append(ServicePort(
            namespace=namespace, name=name, port_name=port_name, protocol=PROTOCOLS[protocol],
            cluster_ip=cluster_ip, port=number,
            node_port=(_port_number(p.get("nodePort")) or 0) if node_ports else 0,
            affinity_seconds=affinity, internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=spec.get("externalTrafficPolicy") == "Local",
            endpoints=_slice_endpoints(slices, port_name, protocol)))
    out.sort(key=lambda sp: (sp.port_name, sp.protocol))
    return out


def service_ports(services: Iterable[dict[str, Any]], slices: Iterable[dict[str, Any]]) -> list[ServicePort]:
    """Every programmable service port, in a stable order (namespace, name, port name)."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sl in slices:
        owner = slice_service(sl)
        if owner is not None:
            by_service.setdefault(owner, []).append(sl)
    per_service = {service_key(svc): ports_of_service(svc, by_service.get(service_key(svc), ())) for svc in services}
    return [sp for key in sorted(per_service) for sp in per_service[key]]


Key = tuple[str, str]
Inputs = dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]  # key -> (Service or None, its slices)


class PortTracker:
    """`service_ports`, kept per Service and recomputed only for the Services that changed, as
    kube-proxy's ServiceChangeTracker and EndpointsChangeTracker do: with 10,000 Services a sync
    after one readiness change reads one Service and its slices, not all of them.

    Informer handlers call `service_changed` / `slice_changed` (an update with both versions: a
    slice relabelled to another Service changes both). A sync calls `take_changes` where the
    informers' stores are not being written (the event loop), `ports_of` with what it returned
    (anywhere: pure), and `update` with the result. `reset` makes the next sync recompute every
    Service (a full sync's safety net against a missed event).
    """

    def __init__(self) -> None:
        # Invariant: for every Service key not in `_dirty` (and when `_everything` is False),
        # `_ports[key]` is `ports_of_service` of the Service and slices as the stores hold them now.
        self._ports: dict[Key, tuple[ServicePort, ...]] = {}
        self._dirty: set[Key] = set()
        self._everything = True

    def service_changed(self, *objects: dict[str, Any]) -> None:
        self._dirty.update(service_key(svc) for svc in objects)

    def slice_changed(self, *objects: dict[str, Any]) -> None:
        self._dirty.update(key for sl in objects if (key := slice_service(sl)) is not None)

    def reset(self) -> None:
        self._everything = True

    @property
    def pending(self) -> bool:
        return self._everything or bool(self._dirty)

    def take_changes(self, service: Callable[[Key], dict[str, Any] | None],
                     slices_of: Callable[[Key], Iterable[dict[str, Any]]],
                     every_service: Callable[[], Iterable[dict[str, Any]]]) -> tuple[bool, Inputs]:
        """(whether this is everything, each changed key's Service and slices) and clears the marks.
        Everything: every Service the store holds now (what is not among them is gone)."""
        if self._everything:
            self._everything = False
            self._dirty.clear()
            return True, {service_key(svc): (svc, list(slices_of(service_key(svc)))) for svc in every_service()}
        changes, self._dirty = self._dirty, set()
        return False, {key: (service(key), list(slices_of(key))) for key in changes}

    @staticmethod
    def ports_of(inputs: Inputs) -> dict[Key, tuple[ServicePort, ...]]:
        return {key: tuple(ports_of_service(svc, slices)) if svc is not None else () for key, (svc, slices)
                in inputs.items()}

    def update(self, everything: bool, computed: dict[Key, tuple[ServicePort, ...]]) -> list[ServicePort]:
        """Fold computed ports in; every programmable service port, in `service_ports`' order."""
        if everything:
            self._ports = {}
        for key, found in computed.items():
            if found:
                self._ports[key] = found
            else:
                self._ports.pop(key, None)
        return [sp for key in sorted(self._ports) for sp in self._ports[key]]

    def forget_pending(self, everything: bool, inputs: Inputs) -> None:
        """A sync that failed after `take_changes`: its keys are changed still."""
        self._everything = self._everything or everything
        self._dirty.update(inputs)


def node_pod_cidrs(nodes: Iterable[dict[str, Any]]) -> list[str]:
    """Every node's IPv4 pod CIDRs (spec.podCIDRs, else spec.podCIDR), normalized and sorted."""
    found: set[str] = set()
    for node in nodes:
        spec = node.get("spec") or {}
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except (TypeError, ValueError):
                continue
            if network.version == 4:
                found.add(str(network))
    return sorted(found, key=lambda c: ipaddress.ip_network(c))
