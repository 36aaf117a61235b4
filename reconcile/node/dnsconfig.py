"""A pod's /etc/resolv.conf, as the kubelet forms it (pkg/kubelet/network/dns/dns.go). Pure.

- `ClusterFirst` (the default): nameservers = the agent's `--cluster-dns`, search =
  `<ns>.svc.<domain> svc.<domain> <domain>` and the host's search list, options `ndots:5`. A
  hostNetwork pod gets `Default` instead; without `--cluster-dns` the pod falls back to `Default`
  (the kubelet's MissingClusterDNS).
- `ClusterFirstWithHostNet`: cluster DNS even for hostNetwork pods.
- `Default`: the node's `--resolv-conf` (nameservers accumulate; the last search/domain line and
  the last options line win); an empty `--resolv-conf` means nameserver 127.0.0.1, search `.`.
- `None`: nothing but the pod's `dnsConfig`.

`dnsConfig` is then merged in: nameservers and searches appended without duplicates, options merged
by name (the pod's value wins). Limits as upstream's validation (3 nameservers, 32 search domains,
2048 characters of search line): beyond them the list is cut and the reason reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_OPTIONS = ("ndots:5",)
CLUSTER_FIRST, WITH_HOST_NET, DEFAULT, NONE = "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Formed:
    """The file, and the kubelet's Warning events for what was cut or fallen back from."""

    conf: ResolvConf
    warnings: tuple[tuple[str, str], ...] = field(default=())  # (reason, message)


def parse(text: str) -> ResolvConf:
    """The node's resolv.conf: nameservers accumulate; the last search/domain line and the last options win."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options = words[1:]
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    """Options by name, in first-seen order; a later value (the pod's) wins; a bare name stays bare."""
    merged: dict[str, str | None] = {}
    for option in base:
        name, sep, value = option.partition(":")
        merged[name] = value if sep else None
    for option in extra:
        if not isinstance(option, dict) or not option.get("name"):
            continue
        value = option.get("value")
        merged[str(option["name"])] = None if value is None else str(value)
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def pod_dns_type(pod: dict[str, Any], cluster_dns: tuple[str, ...]) -> tuple[str, list[tuple[str, str]]]:
    """Which base the pod's file starts from: "cluster", "host" or "none" (with the fallback warning)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or CLUSTER_FIRST
    host_network = spec.get("hostNetwork") is True
    if policy == NONE:
        return "none", []
    if policy == DEFAULT or (policy == CLUSTER_FIRST and host_network):
        return "host", []
    if not cluster_dns:
        return "host", [("MissingClusterDNS", "kubelet does not have ClusterDNS IP configured and cannot create "
                         f"Pod using \"{policy}\" policy. Falling back to \"{DEFAULT}\" policy.")]
    return "cluster", []


def form(pod: dict[str, Any], *, cluster_dns: tuple[str, ...], cluster_domain: str, host: ResolvConf | None) -> Formed:
    """The pod's resolv.conf. `host` is the parsed `--resolv-conf` (None: that flag is empty)."""
    kind, warnings = pod_dns_type(pod, cluster_dns)
    host_conf = host if host is not None else ResolvConf(("127.0.0.1",), (".",))
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    domain = cluster_domain.strip(".")
    if kind == "none":
        nameservers, searches, options = [], [], []
    elif kind == "host":
        nameservers, searches, options = list(host_conf.nameservers), list(host_conf.searches), list(host_conf.options)
    else:
        nameservers = list(cluster_dns)
        cluster_search = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain] if domain else []
        searches = _unique([*cluster_search, *(s for s in host_conf.searches if s != ".")])
        options = list(DEFAULT_OPTIONS)
    config = (pod.get("spec") or {}).get("dnsConfig") or {}
    if isinstance(config, dict):
        nameservers = _unique([*nameservers, *(str(n) for n in config.get("nameservers") or [])])
        searches = _unique([*searches, *(str(s) for s in config.get("searches") or [])])
        options = merge_options(options, [o for o in config.get("options") or [] if isinstance(o, dict)])
    if len(nameservers) > MAX_NAMESERVERS:
        warnings.append(("DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted, "
                         f"the applied nameserver line is: {' '.join(nameservers[:MAX_NAMESERVERS])}"))
        nameservers = nameservers[:MAX_NAMESERVERS]
    fitted = _fit_searches(searches)
    if fitted != searches:
        warnings.append(("DNSConfigForming", "Search Line limits were exceeded, some search paths have been omitted, "
                         f"the applied search line is: {' '.join(fitted)}"))
    return Formed(ResolvConf(tuple(nameservers), tuple(fitted), tuple(options)), tuple(warnings))


def _fit_searches(searches: list[str]) -> list[str]:
    """Drop search domains from the tail until at most 32 fit in 2048 characters (the kubelet's rule)."""
    fitted = searches[:MAX_SEARCHES]
    while fitted and len(" ".join(fitted)) > MAX_SEARCH_CHARS:
        fitted = fitted[:-1]
    return fitted
