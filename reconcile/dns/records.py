"""The record index: Services, EndpointSlices, Namespaces (and Pods) -> answers to DNS questions.

Pure (no I/O, no DNS library): the server feeds it informer events and asks `answer(name, type)`;
the wire module turns the `Answer` into a message. What it answers is CoreDNS's `kubernetes`
plugin (kubernetes/dns specification 1.1.0), so clients see what they would in a Kubernetes cluster:

- `svc.ns.svc.zone` A/AAAA: the cluster IPs (the answer exists with zero endpoints); headless:
  one record per ready endpoint address, deduplicated, NXDOMAIN with none ready.
- `host.svc.ns.svc.zone`: an endpoint by its slice `hostname`, else its dashed IP.
- `_port._proto.svc.ns.svc.zone` SRV (the two labels optional): priority 0, weight 100/n, the
  target's A/AAAA in the additional section; headless: one per ready endpoint and port.
- ExternalName: a CNAME to `spec.externalName` (never for an IP value; port/endpoint labels refused).
- `a-b-c-d.ns.pod.zone`: `pods insecure` (kubeadm's Corefile) decodes the IP if the namespace
  exists; `verified` only if such a pod exists; `disabled` is NXDOMAIN.
- Negative answers: NXDOMAIN for what does not exist, NODATA (NOERROR, no answer) for a name that
  exists without the asked type; both carry the zone's SOA in the authority section. Before the
  informers synced, a would-be NXDOMAIN is SERVFAIL (CoreDNS's startup behaviour).

Names match case-insensitively; answers carry the name as asked.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 5  # CoreDNS's kubernetes plugin default (kubeadm's Corefile sets 30)
MAX_TTL = 3600
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DNS_SCHEMA_VERSION = "1.1.0"  # dns-version.<zone> TXT (kubernetes/dns specification)
DNS_VERSION_TTL = 28800
POD_MODES = ("disabled", "insecure", "verified")
MAX_CNAME_DEPTH = 7  # ExternalName CNAMEs followed inside the zone (a loop of them ends here)

NOERROR, NXDOMAIN, SERVFAIL, REFUSED = "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"
ADDRESS_TYPES = ("A", "AAAA")
Key = tuple[str, str]


@dataclass(frozen=True)
class Record:
    """One resource record. `data` by type: A/AAAA an IP string; CNAME/NS/PTR a name ending in a dot;
    TXT a string; SRV (priority, weight, port, target); SOA (mname, rname, serial, refresh, retry,
    expire, minimum)."""

    name: str
    type: str
    ttl: int
    data: Any


@dataclass(frozen=True)
class Answer:
    rcode: str
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authoritative: bool = True
    # the name is outside the cluster domain: the server forwards it (if it has an upstream) or refuses
    outside: bool = False


@dataclass(frozen=True)
class _Target:
    """What a lookup found: an address (A/AAAA) or a name (CNAME), with a port and the SRV target."""

    host: str  # an IP, or a hostname for ExternalName
    port: int | None  # None: no port (a headless Service's slice without ports)
    target: str  # the SRV target / the name whose A answers it (ends with a dot)


@dataclass(frozen=True)
class _Request:
    """A name in the zone, split as CoreDNS's parseRequest does."""

    kind: str  # "svc" or "pod"
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""
    has_port: bool = False


class _Invalid(Exception):
    """Too many labels, or a type label other than svc/pod: NXDOMAIN."""


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _parse(labels: list[str]) -> _Request:
    """Labels left of the zone, leftmost first -> the request (CoreDNS plugin/kubernetes/parse.go)."""
    if not labels or labels[-1] not in ("svc", "pod"):
        raise _Invalid
    segs = labels[:-1]
    if len(segs) > 4:
        raise _Invalid
    kind = labels[-1]
    namespace = segs[-1] if segs else ""
    service = segs[-2] if len(segs) >= 2 else ""
    if len(segs) == 3:
        return _Request(kind, namespace, service, endpoint=segs[0])
    if len(segs) == 4:
        return _Request(kind, namespace, service, port=_strip_underscore(segs[0]),
                        protocol=_strip_underscore(segs[1]), has_port=True)
    return _Request(kind, namespace, service)


def endpoint_hostname(address: str, hostname: str | None) -> str:
    """An endpoint's name label: its slice hostname, else its IP dashed (`10-1-2-3`; IPv6 `:` -> `-`,
    a trailing `-` gets `0`), as CoreDNS's endpointHostname."""
    if hostname:
        return hostname
    if "." in address:
        return address.replace(".", "-")
    if ":" in address:
        dashed = address.replace(":", "-")
        return dashed + "0" if dashed.endswith("-") else dashed
    return ""


def pod_ip_from_label(label: str) -> str | None:
    """`10-1-2-3` -> `10.1.2.3`; IPv6 with `-` for `:`; None if it is not an IP (CoreDNS findPods)."""
    if label.count("-") == 3 and "--" not in label:
        candidate = label.replace("-", ".")
    else:
        candidate = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _matches(wanted: str, have: str | None) -> bool:
    """CoreDNS matchPortAndProtocol for one side: empty or `*` matches anything; case-insensitive."""
    return wanted in ("", "*") or wanted == (have or "").lower()


def _is_headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIP") == "None"


def _cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = spec.get("clusterIPs")
    if not isinstance(ips, list) or not ips:
        ips = [spec.get("clusterIP")]
    return [ip for ip in ips if isinstance(ip, str) and _ip_version(ip) is not None]


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "").lower(), str(meta.get("name") or "").lower())


@dataclass
class Index:
    """What the informers hold, kept in the shape lookups need; `answer` is the one query entry."""

    zone: str = DEFAULT_ZONE
    ttl: int = DEFAULT_TTL
    pods: str = "insecure"
    clock: Callable[[], float] = time.time
    # (ns, name) -> Service
    services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # (ns, service name) -> slice name -> EndpointSlice
    slices: dict[Key, dict[str, dict[str, Any]]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    # (ns, pod IP) -> number of pods with it (pods verified)
    pod_ips: dict[Key, int] = field(default_factory=dict)
    # slice (ns, name) -> the service key it was filed under (a relabelled slice moves)
    _slice_owner: dict[Key, Key] = field(default_factory=dict)
    _pod_ips_of: dict[Key, list[str]] = field(default_factory=dict)
    synced: bool = False  # every informer listed: before that, NXDOMAIN is SERVFAIL
    serial: int = 0  # the SOA serial: the last change, in Unix seconds
    # Invariant: changes whenever any answer may have changed (answers cached under it stay exact)
    generation: int = 0

    def __post_init__(self) -> None:
        self.zone = self.zone.strip(".").lower()
        if not self.zone:
            raise ValueError("the cluster domain must not be empty")
        if not 0 <= self.ttl <= MAX_TTL:
            raise ValueError(f"ttl must be between 0 and {MAX_TTL}, not {self.ttl}")
        if self.pods not in POD_MODES:
            raise ValueError(f"pods must be one of {', '.join(POD_MODES)}, not {self.pods!r}")
        self._zone_labels = self.zone.split(".")
        self.serial = int(self.clock())

    # --- feeding ---------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.serial = max(self.serial, int(self.clock()))
        self.generation += 1

    def put_service(self, svc: dict[str, Any]) -> None:
        self.services[_key(svc)] = svc
        self._changed()

    def remove_service(self, svc: dict[str, Any]) -> None:
        self.services.pop(_key(svc), None)
        self._changed()

    def put_slice(self, eps: dict[str, Any]) -> None:
        self.remove_slice(eps)
        labels = (eps.get("metadata") or {}).get("labels") or {}
        service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
        if not isinstance(service, str) or not service:
            return  # CoreDNS groups slices by this label: a slice without it serves no Service
        key, owner = _key(eps), (_key(eps)[0], service.lower())
        self.slices.setdefault(owner, {})[key[1]] = eps
        self._slice_owner[key] = owner
        self._changed()

    def remove_slice(self, eps: dict[str, Any]) -> None:
        key = _key(eps)
        owner = self._slice_owner.pop(key, None)
        if owner is not None:
            group = self.slices.get(owner, {})
            group.pop(key[1], None)
            if not group:
                self.slices.pop(owner, None)
            self._changed()

    def put_namespace(self, ns: dict[str, Any]) -> None:
        self.namespaces.add(_key(ns)[1])
        self._changed()

    def remove_namespace(self, ns: dict[str, Any]) -> None:
        self.namespaces.discard(_key(ns)[1])
        self._changed()

    def put_pod(self, pod: dict[str, Any]) -> None:
        self.remove_pod(pod)
        status = pod.get("status") or {}
        ips = [entry.get("ip") for entry in status.get("podIPs") or [] if isinstance(entry, dict)]
        if not ips and status.get("podIP"):
            ips = [status["podIP"]]
        key = _key(pod)
        self.generation += 1
        found = [str(ipaddress.ip_address(ip)) for ip in ips if isinstance(ip, str) and _ip_version(ip)]
        if found:
            self._pod_ips_of[key] = found
            for ip in found:
                self.pod_ips[(key[0], ip)] = self.pod_ips.get((key[0], ip), 0) + 1

    def remove_pod(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        self.generation += 1
        for ip in self._pod_ips_of.pop(key, []):
            left = self.pod_ips.get((key[0], ip), 0) - 1
            if left > 0:
                self.pod_ips[(key[0], ip)] = left
            else:
                self.pod_ips.pop((key[0], ip), None)

    # --- answering ---------------------------------------------------------------------------------

    def soa(self) -> Record:
        zone = self.zone + "."
        return Record(zone, "SOA", self.ttl, (f"ns.dns.{zone}", f"hostmaster.{zone}", self.serial,
                                              7200, 1800, 86400, self.ttl))

    def _negative(self, rcode: str) -> Answer:
        if rcode == NXDOMAIN and not self.synced:
            return Answer(SERVFAIL)
        return Answer(rcode, authority=(self.soa(),))

    def in_zone(self, name: str) -> bool:
        labels = name.strip(".").lower().split(".")
        return labels[-len(self._zone_labels):] == self._zone_labels

    def answer(self, qname: str, qtype: str, *, depth: int = 0) -> Answer:
        """The answer to one question (`qtype` as its mnemonic: A, AAAA, SRV, ...); `depth` counts the
        ExternalName CNAMEs followed inside the zone, so two that point at each other end."""
        name = qname if qname.endswith(".") else qname + "."
        labels = name[:-1].lower().split(".") if name != "." else []
        if labels[-len(self._zone_labels):] != self._zone_labels or not labels:
            if qtype.upper() == "PTR":
                return self._ptr(name, labels)
            return Answer(REFUSED, authoritative=False, outside=True)
        rest = labels[:-len(self._zone_labels)]
        qtype = qtype.upper()
        if qtype in ("AXFR", "IXFR"):
            return Answer(REFUSED)
        if not rest:
            return self._apex(name, qtype)
        if rest == ["dns-version"]:
            if qtype == "TXT":
                return Answer(NOERROR, (Record(name, "TXT", DNS_VERSION_TTL, DNS_SCHEMA_VERSION),))
            return self._negative(NOERROR)
        if rest == ["ns", "dns"] and qtype in ADDRESS_TYPES:
            return self._negative(NOERROR)  # the name exists (the NS target); its address is the Service's
        try:
            request = _parse(rest)
        except _Invalid:
            return self._negative(NXDOMAIN)
        if not request.namespace:
            return self._negative(NOERROR)  # svc.zone and pod.zone exist
        if request.kind == "pod":
            return self._pod(name, qtype, request)
        if not request.service:
            return self._negative(NOERROR if request.namespace in self.namespaces else NXDOMAIN)
        return self._service(name, qtype, request, depth)

    def _apex(self, name: str, qtype: str) -> Answer:
        if qtype == "SOA":
            soa = self.soa()
            return Answer(NOERROR, (Record(name, "SOA", soa.ttl, soa.data),))
        if qtype == "NS":
            return Answer(NOERROR, (Record(name, "NS", self.ttl, f"ns.dns.{self.zone}."),))
        return self._negative(NOERROR)

    def _pod(self, name: str, qtype: str, request: _Request) -> Answer:
        if self.pods == "disabled" or request.endpoint or request.has_port or not request.service:
            return self._negative(NXDOMAIN)
        ip = pod_ip_from_label(request.service)
        if ip is None or request.namespace not in self.namespaces:
            return self._negative(NXDOMAIN)
        if self.pods == "verified" and (request.namespace, ip) not in self.pod_ips:
            return self._negative(NXDOMAIN)
        return self._addresses(name, qtype, [_Target(ip, None, name)])

    def _targets(self, request: _Request) -> tuple[list[_Target], dict[str, Any] | None]:
        """CoreDNS findServices for one Service: what the name points at, and the Service."""
        svc = self.services.get((request.namespace, request.service))
        if svc is None:
            return [], None
        spec = svc.get("spec") or {}
        base = f"{request.service}.{request.namespace}.svc.{self.zone}."
        if spec.get("type") == "ExternalName":
            external = str(spec.get("externalName") or "").strip(".")
            if request.endpoint or request.has_port or not external or _ip_version(external) is not None:
                return [], svc
            return [_Target(external + ".", 0, external + ".")], svc
        found: list[_Target] = []
        if _is_headless(spec) or request.endpoint:
            publish = bool(spec.get("publishNotReadyAddresses"))
            for eps in self.slices.get((request.namespace, request.service), {}).values():
                if eps.get("addressType") not in ("IPv4", "IPv6"):
                    continue
                ports = [p for p in eps.get("ports") or [] if isinstance(p, dict)]
                for endpoint in eps.get("endpoints") or []:
                    if not isinstance(endpoint, dict):
                        continue
                    ready = (endpoint.get("conditions") or {}).get("ready")
                    if ready is False and not publish:
                        continue
                    for address in endpoint.get("addresses") or []:
                        if not isinstance(address, str) or _ip_version(address) is None:
                            continue
                        host = endpoint_hostname(address, endpoint.get("hostname"))
                        if request.endpoint and request.endpoint != host.lower():
                            continue
                        target = f"{host}.{base}"
                        if not ports:
                            if not request.has_port:
                                found.append(_Target(address, None, target))
                            continue
                        for port in ports:
                            if _matches(request.port, port.get("name")) and \
                                    _matches(request.protocol, port.get("protocol") or "TCP"):
                                found.append(_Target(address, _port(port.get("port")), target))
            return found, svc
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            if _matches(request.port, port.get("name")) and _matches(request.protocol, port.get("protocol") or "TCP"):
                found.extend(_Target(ip, _port(port.get("port")), base) for ip in _cluster_ips(spec))
        if not found and not request.has_port and not spec.get("ports"):
            found = [_Target(ip, None, base) for ip in _cluster_ips(spec)]
        return found, svc

    def _service(self, name: str, qtype: str, request: _Request, depth: int) -> Answer:
        targets, _ = self._targets(request)
        if not targets:
            return self._negative(NXDOMAIN)
        if qtype == "SRV":
            return self._srv(name, targets)
        return self._addresses(name, qtype, targets, depth)

    def _addresses(self, name: str, qtype: str, targets: list[_Target], depth: int = 0) -> Answer:
        """A/AAAA (and CNAME for an ExternalName) for a name that exists; NODATA for other types."""
        answer: list[Record] = []
        seen: set[str] = set()
        for target in targets:
            version = _ip_version(target.host)
            if version is None:  # ExternalName: the CNAME answers every type, its target chased in the zone
                answer = [Record(name, "CNAME", self.ttl, target.host)]
                if qtype != "CNAME" and self.in_zone(target.host) and depth < MAX_CNAME_DEPTH:
                    answer.extend(self.answer(target.host, qtype, depth=depth + 1).answer)
                return Answer(NOERROR, tuple(answer))
            rtype = "A" if version == 4 else "AAAA"
            if rtype == qtype and target.host not in seen:
                seen.add(target.host)
                answer.append(Record(name, rtype, self.ttl, target.host))
        if not answer:
            return self._negative(NOERROR)
        return Answer(NOERROR, tuple(answer))

    def _srv(self, name: str, targets: list[_Target]) -> Answer:
        usable = [t for t in targets if t.port is not None]
        if not usable:
            return self._negative(NOERROR)
        unique = list(dict.fromkeys((t.host, t.port, t.target) for t in usable))
        weight = max(1, 100 // len(unique))
        answer = tuple(Record(name, "SRV", self.ttl, (0, weight, port, target)) for _, port, target in unique)
        additional: list[Record] = []
        seen: set[tuple[str, str]] = set()
        for host, _, target in unique:
            version = _ip_version(host)
            if version is None or (target, host) in seen:
                continue
            seen.add((target, host))
            additional.append(Record(target, "A" if version == 4 else "AAAA", self.ttl, host))
        return Answer(NOERROR, answer, (), tuple(additional))

    # --- reverse (PTR) -------------------------------------------------------------------------------

    def _ptr(self, name: str, labels: list[str]) -> Answer:
        """`in-addr.arpa`/`ip6.arpa` names of cluster addresses; anything else falls through (kubeadm's
        Corefile lists both reverse zones with `fallthrough`), i.e. is outside."""
        ip = reverse_to_ip(labels)
        names = self.reverse(ip) if ip is not None else []
        if not names:
            return Answer(REFUSED, authoritative=False, outside=True)
        return Answer(NOERROR, tuple(Record(name, "PTR", self.ttl, target) for target in names))

    def reverse(self, ip: str) -> list[str]:
        """The names whose address is `ip`: a Service's cluster IP, else ready endpoints (CoreDNS reverse.go)."""
        names = [f"{key[1]}.{key[0]}.svc.{self.zone}." for key, svc in sorted(self.services.items())
                 if ip in _cluster_ips(svc.get("spec") or {})]
        if names:
            return names
        for (namespace, service), group in sorted(self.slices.items()):
            for eps in group.values():
                for endpoint in eps.get("endpoints") or []:
                    if isinstance(endpoint, dict) and ip in (endpoint.get("addresses") or []) and \
                            (endpoint.get("conditions") or {}).get("ready") is not False:
                        host = endpoint_hostname(ip, endpoint.get("hostname"))
                        names.append(f"{host}.{service}.{namespace}.svc.{self.zone}.")
        return list(dict.fromkeys(names))


def reverse_to_ip(labels: list[str]) -> str | None:
    """`4.3.2.1.in-addr.arpa` -> `1.2.3.4`; nibbles of `ip6.arpa` -> the IPv6 address; else None."""
    try:
        if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
        if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
            nibbles = "".join(reversed(labels[:32]))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= 65535 else None

