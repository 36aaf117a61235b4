"""What the proxy programs, read off Services and EndpointSlices: one `ServicePort` per service port.

Pure: no I/O. The rules follow kube-proxy (pkg/proxy): Services labelled
`service.kubernetes.io/service-proxy-name`, headless and ExternalName Services get nothing; slices
are matched to a Service by the `kubernetes.io/service-name` label and to a service port by port
name and protocol; an endpoint's `ready` and `serving` default to true and `terminating` to
false when absent (consumers treat nil as true, as upstream says).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
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


def service_ports(services: Iterable[dict[str, Any]], slices: Iterable[dict[str, Any]]) -> list[ServicePort]:
    """Every programmable service port, in a stable order (namespace, name, port name)."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        labels = meta.get("labels") or {}
        owner = labels.get(SERVICE_NAME_LABEL)
        if isinstance(owner, str) and HEADLESS_LABEL not in labels and PROXY_NAME_LABEL not in labels:
            by_service.setdefault((meta.get("namespace") or "", owner), []).append(sl)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        if PROXY_NAME_LABEL in (meta.get("labels") or {}) or spec.get("type") == "ExternalName":
            continue
        cluster_ip = spec.get("clusterIP")
        if not _is_ipv4(cluster_ip):
            continue  # headless ("None"), unallocated, or IPv6 (this proxy is IPv4 only)
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            timeout = config.get("timeoutSeconds")
            affinity = timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_SECONDS
        node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
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
                endpoints=_slice_endpoints(by_service.get((namespace, name), ()), port_name, protocol)))
    out.sort(key=lambda sp: (sp.namespace, sp.name, sp.port_name, sp.protocol))
    return out


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
