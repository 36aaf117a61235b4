"""Services (core/v1): upstream's defaults, ValidateService/ValidateServiceUpdate, and the cluster IPs
and node ports a Service holds (claimed in etcd by `reconcile.api.allocators` before it is stored,
freed when it goes).

What a schema cannot say lives here: type-dependent defaults (targetPort = port, traffic policies,
the ClientIP timeout), the cross-field rules with upstream's field paths and messages, and the
immutable cluster IP. `LoadBalancer` is served as upstream serves it without a cloud provider: a
cluster IP and node ports are allocated, and `status.loadBalancer` stays empty (EXTERNAL-IP
`<pending>`), because nothing here provisions load balancers.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from reconcile.api import allocators, registry
from reconcile.api.strategies import base
from reconcile.core import errors

Cause = base.Cause
NONE = "None"
DEFAULT_AFFINITY_TIMEOUT = 10800  # upstream's DefaultClientIPServiceAffinitySeconds (3 hours)
MAX_AFFINITY_TIMEOUT = 86400
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                  "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_SUBDOMAIN_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                      "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                      "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def _cause(path: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return errors.cause(path, message, reason)


def _go(value: Any) -> str:
    """A value as field.Invalid prints it (Go's %v of strings quoted, of []string as []string{...})."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


def _invalid(path: str, value: Any, message: str) -> Cause:
    return _cause(path, f"Invalid value: {_go(value)}: {message}")


def port_name_errors(name: str) -> list[str]:
    """validation.IsValidPortName (IANA_SVC_NAME), upstream's messages."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not re.search(r"[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def kind_of(spec: dict[str, Any]) -> str:
    return str(spec.get("type") or "ClusterIP")


def externally_accessible(spec: dict[str, Any]) -> bool:
    kind = kind_of(spec)
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def wants_node_ports(spec: dict[str, Any]) -> bool:
    """NodePort always; LoadBalancer unless allocateLoadBalancerNodePorts is false (then only requested ones)."""
    kind = kind_of(spec)
    return kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)


def cluster_ips(spec: dict[str, Any]) -> list[str]:
    """The allocated addresses of a spec (nothing for ExternalName and headless)."""
    if kind_of(spec) == "ExternalName":
        return []
    return [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str) and ip and ip != NONE]


def node_ports(spec: dict[str, Any]) -> set[int]:
    return {p["nodePort"] for p in spec.get("ports") or []
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]}


def default_service(obj: dict[str, Any]) -> None:
    """SetDefaults_Service and the registry's defaults that need no allocation."""
    spec = spec_of(obj)
    spec.setdefault("type", "ClusterIP")
    kind = kind_of(spec)
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        if not isinstance(config, dict) or not isinstance(config.get("clientIP"), dict):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT}}
        else:
            config["clientIP"].setdefault("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        ip = spec.get("clusterIP")
        ips = spec.get("clusterIPs")
        if ip and not ips:
            spec["clusterIPs"] = [ip]
        elif ips and isinstance(ips, list) and not ip:
            spec["clusterIP"] = ips[0]
        if not spec.get("ipFamilyPolicy"):
            headless_selectorless = spec.get("clusterIP") == NONE and not spec.get("selector")
            spec["ipFamilyPolicy"] = "RequireDualStack" if headless_selectorless else "SingleStack"
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
    if externally_accessible(spec):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def validate_service(obj: dict[str, Any]) -> list[Cause]:
    """ValidateService: the cross-field rules, with upstream's field paths and messages."""
    spec = spec_of(obj)
    kind = kind_of(spec)
    causes: list[Cause] = []
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    headless = spec.get("clusterIP") == NONE
    if not ports and not headless and kind != "ExternalName":
        causes.append(_cause("spec.ports", "Required value", "FieldValueRequired"))
    names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(_cause(f"{path}.name", "Required value", "FieldValueRequired"))
        elif name:
            if not _DNS_LABEL.match(name) or len(name) > 63:
                causes.append(_invalid(f"{path}.name", name, _LABEL_MESSAGE))
            elif name in names:
                causes.append(_cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            names.add(name)
        target = port.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool):
            if not 1 <= target <= 65535:
                causes.append(_invalid(f"{path}.targetPort", target, "must be between 1 and 65535, inclusive"))
        elif isinstance(target, str):
            if target.isdigit():
                causes.append(_invalid(f"{path}.targetPort", target, "must contain at least one letter (a-z)"))
            else:
                causes += [_invalid(f"{path}.targetPort", target, m) for m in port_name_errors(target)]
        protocol, number = str(port.get("protocol") or "TCP"), port.get("port")
        if isinstance(number, int):
            if (protocol, number) in seen_ports:
                causes.append(_cause(path, f'Duplicate value: core.ServicePort{{Name:"", Protocol:"{protocol}", '
                                           f'AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString'
                                           f'{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}', "FieldValueDuplicate"))
            seen_ports.add((protocol, number))
        node_port = port.get("nodePort")
        if isinstance(node_port, int) and node_port:
            if kind == "ClusterIP":
                causes.append(_cause(f"{path}.nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'",
                                     "FieldValueForbidden"))
            elif kind == "ExternalName":
                causes.append(_cause(f"{path}.nodePort",
                                     "Forbidden: may not be used when `type` is 'ExternalName'",
                                     "FieldValueForbidden"))
            if (protocol, node_port) in seen_node_ports:
                causes.append(_cause(f"{path}.nodePort", f"Duplicate value: {node_port}", "FieldValueDuplicate"))
            seen_node_ports.add((protocol, node_port))
    causes += _validate_cluster_ips(spec, kind)
    if kind == "ExternalName":
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if not cname:
            causes.append(_cause("spec.externalName", "Required value", "FieldValueRequired"))
        elif len(cname) > 253 or not _DNS_SUBDOMAIN.match(cname):
            causes.append(_invalid("spec.externalName", cname, _SUBDOMAIN_MESSAGE))
    affinity = spec.get("sessionAffinity") or "None"
    if affinity == "ClientIP":
        timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds"))
        if not isinstance(timeout, int) or not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
            causes.append(_invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                   f"must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"))
    elif spec.get("sessionAffinityConfig"):
        causes.append(_invalid("spec.sessionAffinityConfig", str(spec["sessionAffinityConfig"]),
                               "must not be set when session affinity is None"))
    if spec.get("externalTrafficPolicy") and not externally_accessible(spec):
        causes.append(_invalid("spec.externalTrafficPolicy", spec["externalTrafficPolicy"],
                               "may only be set for externally-accessible services"))
    if kind == "ExternalName" and spec.get("internalTrafficPolicy"):
        causes.append(_cause("spec.internalTrafficPolicy", "Forbidden: may not be set for ExternalName services",
                             "FieldValueForbidden"))
    return causes


def _validate_cluster_ips(spec: dict[str, Any], kind: str) -> list[Cause]:
    causes: list[Cause] = []
    ips = spec.get("clusterIPs") or []
    if kind == "ExternalName":
        if ips or spec.get("clusterIP"):
            causes.append(_cause("spec.clusterIPs", "Forbidden: may not be set for ExternalName services",
                                 "FieldValueForbidden"))
        if spec.get("ipFamilies"):
            causes.append(_cause("spec.ipFamilies", "Forbidden: may not be set for ExternalName services",
                                 "FieldValueForbidden"))
        if spec.get("ipFamilyPolicy"):
            causes.append(_cause("spec.ipFamilyPolicy", "Forbidden: may not be set for ExternalName services",
                                 "FieldValueForbidden"))
        return causes
    if ips and spec.get("clusterIP") != ips[0]:
        causes.append(_invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    for i, ip in enumerate(ips):
        if ip == NONE:
            if i > 0 or len(ips) > 1:
                causes.append(_invalid(f"spec.clusterIPs[{i}]", ip, "'None' must be the first and only value"))
            elif kind in ("NodePort", "LoadBalancer"):
                causes.append(_invalid("spec.clusterIPs[0]", ip, f"may not be set to 'None' for {kind} services"))
            continue
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            causes.append(_invalid(f"spec.clusterIPs[{i}]", ip,
                                   "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
            continue
        if address.version == 6 or i > 0:
            causes.append(_invalid(f"spec.clusterIPs[{i}]", ip, "this cluster is not configured for dual-stack "
                                   "services" if i > 0 else "expected an IPv4 value as indicated by `ipFamilies[0]`"))
    for i, family in enumerate(spec.get("ipFamilies") or []):
        if family != "IPv4":
            causes.append(_invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
    policy = spec.get("ipFamilyPolicy")
    if policy == "RequireDualStack" and not (spec.get("clusterIP") == NONE and not spec.get("selector")):
        causes.append(_invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))
    return causes


def carry_allocated(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Upstream's PatchAllocatedValues and dropTypeDependentFields on update: a client that omits the
    cluster IP or node ports (kubectl replace of a hand-written file) keeps them; a type change drops
    what the new type cannot have, when the client left it as it was."""
    old_spec, new_spec = spec_of(old), spec_of(new)
    old_kind, new_kind = kind_of(old_spec), kind_of(new_spec)
    if new_kind != "ExternalName" and old_kind != "ExternalName":
        if not new_spec.get("clusterIP") and not new_spec.get("clusterIPs"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if key in old_spec:
                    new_spec[key] = old_spec[key]
    if new_kind == "ExternalName" and old_kind != "ExternalName":
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if new_spec.get(key) == old_spec.get(key):
                new_spec.pop(key, None)
    old_ports = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                 for p in old_spec.get("ports") or [] if isinstance(p, dict)}
    for port in new_spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        previous = old_ports.get((port.get("port"), port.get("protocol") or "TCP"))
        if wants_node_ports(new_spec) and not port.get("nodePort") and previous:
            port["nodePort"] = previous
        elif new_kind in ("ClusterIP", "ExternalName") and previous and port.get("nodePort") == previous:
            port.pop("nodePort", None)
    if not externally_accessible(new_spec) and externally_accessible(old_spec):
        if new_spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
            new_spec.pop("externalTrafficPolicy", None)


@dataclass
class Reservation(base.Reservation):
    """What one write claimed (undone by `revert`) and what it let go (freed by `commit`)."""

    ips: allocators.ClusterIPRange
    ports: allocators.NodePortRange
    owner: allocators.Owner
    claimed_ips: list[str] = field(default_factory=list)
    claimed_ports: list[int] = field(default_factory=list)
    freed_ips: list[str] = field(default_factory=list)
    freed_ports: list[int] = field(default_factory=list)

    async def revert(self) -> None:
        await self._release(self.claimed_ips, self.claimed_ports)

    async def commit(self) -> None:
        await self._release(self.freed_ips, self.freed_ports)

    async def _release(self, ips: list[str], ports: list[int]) -> None:
        for ip in ips:
            await self.ips.release(ip, self.owner)
        for port in ports:
            await self.ports.release(str(port), self.owner)


def owner_of(obj: dict[str, Any]) -> allocators.Owner:
    metadata = obj.get("metadata") or {}
    return allocators.Owner(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""),
                            str(metadata.get("uid") or ""))


class ServiceStrategy(base.BuiltinStrategy):
    returns_deleted_object = True  # upstream's service REST answers a delete with the Service

    def __init__(self, ips: allocators.ClusterIPRange, ports: allocators.NodePortRange) -> None:
        self.ips, self.ports = ips, ports

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        default_service(obj)

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}  # a typed ServiceStatus: loadBalancer has no omitempty

    def prepare_for_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        carry_allocated(old, new)
        default_service(new)

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[Cause]:
        return validate_service(obj)

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        causes = validate_service(new)
        old_spec, new_spec = spec_of(old), spec_of(new)
        if kind_of(new_spec) != "ExternalName" and kind_of(old_spec) != "ExternalName" and old_spec.get("clusterIP"):
            if new_spec.get("clusterIP") != old_spec.get("clusterIP"):
                causes.append(_invalid("spec.clusterIP", new_spec.get("clusterIP") or "", "field is immutable"))
            elif (new_spec.get("clusterIPs") or [])[:1] != (old_spec.get("clusterIPs") or [])[:1]:
                causes.append(_invalid("spec.clusterIPs[0]", (new_spec.get("clusterIPs") or [""])[0],
                                       "may not change once set"))
        return causes

    async def reserve(self, resource: registry.Resource, old: dict[str, Any] | None,
                      new: dict[str, Any]) -> base.Reservation:
        """Claim the cluster IP and node ports `new` needs and `old` did not hold (all of them on a
        create); on any refusal undo what this call claimed and answer 422 naming the field."""
        spec = spec_of(new)
        old_spec = spec_of(old) if old is not None else {}
        held_ips, held_ports = set(cluster_ips(old_spec)), node_ports(old_spec)
        reservation = Reservation(self.ips, self.ports, owner_of(new))
        try:
            await self._reserve_ip(spec, held_ips, reservation, new)
            await self._reserve_ports(spec, held_ports, reservation, new)
        except BaseException:
            await reservation.revert()
            raise
        reservation.freed_ips = sorted(held_ips - set(cluster_ips(spec)))
        reservation.freed_ports = sorted(held_ports - node_ports(spec))
        return reservation

    async def _reserve_ip(self, spec: dict[str, Any], held: set[str], reservation: Reservation,
                          obj: dict[str, Any]) -> None:
        if kind_of(spec) == "ExternalName" or spec.get("clusterIP") == NONE:
            return
        if not spec.get("clusterIP"):
            try:
                ip = await self.ips.allocate_next(reservation.owner)
            except allocators.RangeFull:
                raise errors.InternalError("failed to allocate a serviceIP: range is full") from None
            reservation.claimed_ips.append(ip)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            return
        for ip in cluster_ips(spec):
            if ip in held:
                continue
            try:
                await self.ips.allocate(ip, reservation.owner)
            except allocators.AllocationError as exc:
                raise _invalid_object(obj, [_invalid("spec.clusterIPs", list(spec.get("clusterIPs") or []),
                                                     f"failed to allocate IP {ip}: {exc}")]) from None
            reservation.claimed_ips.append(ip)

    async def _reserve_ports(self, spec: dict[str, Any], held: set[int], reservation: Reservation,
                             obj: dict[str, Any]) -> None:
        if kind_of(spec) not in ("NodePort", "LoadBalancer"):
            return
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        mine = set(held)
        for i, port in enumerate(ports):  # requested ports first, so a dynamic pick never takes one
            number = port.get("nodePort")
            if not isinstance(number, int) or not number or number in mine:
                continue
            try:
                await self.ports.allocate(number, reservation.owner)
            except allocators.AllocationError as exc:
                raise _invalid_object(obj, [_invalid(f"spec.ports[{i}].nodePort", number, str(exc))]) from None
            reservation.claimed_ports.append(number)
            mine.add(number)
        if not wants_node_ports(spec):
            return
        by_port = {p.get("port"): p["nodePort"] for p in ports if p.get("nodePort")}
        for port in ports:
            if port.get("nodePort"):
                continue
            shared = by_port.get(port.get("port"))  # same port number, another protocol: one node port
            if shared:
                port["nodePort"] = shared
                continue
            try:
                number = await self.ports.allocate_next(reservation.owner)
            except allocators.RangeFull:
                raise errors.InternalError("failed to allocate a nodePort: range is full") from None
            reservation.claimed_ports.append(number)
            port["nodePort"] = by_port[port.get("port")] = number

    async def after_removal(self, obj: dict[str, Any]) -> None:
        spec = spec_of(obj)
        await Reservation(self.ips, self.ports, owner_of(obj), freed_ips=cluster_ips(spec),
                          freed_ports=sorted(node_ports(spec))).commit()


def _invalid_object(obj: dict[str, Any], causes: list[Cause]) -> errors.Invalid:
    return errors.Invalid.for_object("Service", (obj.get("metadata") or {}).get("name") or "", causes)
