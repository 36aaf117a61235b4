"""UDP conntrack cleanup after a sync, as kube-proxy's `pkg/proxy/conntrack/cleanup.go`.

UDP has no connection to end: once the kernel has NATed the first datagram of a flow, every
later one with the same addresses and ports follows the same conntrack entry, to the same
endpoint, whatever the rules now say. So an endpoint that was removed (or turned not serving)
would keep a client that reuses its source port (a DNS resolver, say) forever; and a flow that
started while the Service had no endpoint keeps its un-NATed entry after endpoints appear. As
kube-proxy does, after each sync that changed the rules, per UDP service port: the entries whose
original destination is its cluster IP and port, or whose original destination port is its node
port, are deleted when their reply source is not one of its serving endpoints (the un-NATed
ones' reply source is the service address itself, so they go too). TCP is never touched: its
connections end on their own, and a deleted entry would break a live one.

A node-port entry is taken only when its reply source is in a pod CIDR of this cluster or is
its own destination (not NATed): another cluster's proxy on the same host may use the same port
number for its own endpoints, which are none of ours to judge.

`plan` is pure; `flush` lists (`conntrack -L -p udp`) and deletes (`conntrack -D`, one per
stale reply source) with Debian's `conntrack` tool. Without the tool the proxy warns once and
goes on (its rules still send new flows right; only old UDP flows stay where they were).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconcile.proxy import model

log = logging.getLogger(__name__)

_FIELD = re.compile(r"(src|dst|sport|dport)=(\S+)")
_warned = False


@dataclass(frozen=True, order=True)
class Flow:
    """One UDP conntrack entry: the original destination and the reply's source."""

    orig_dst: str
    orig_dport: int
    reply_src: str


@dataclass(frozen=True, order=True)
class Deletion:
    """`conntrack -D -p udp --orig-dst D --orig-port-dst P --reply-src S`."""

    orig_dst: str
    orig_dport: int
    reply_src: str

    def args(self) -> list[str]:
        return ["conntrack", "-D", "-p", "udp", "--orig-dst", self.orig_dst, "--orig-port-dst",
                str(self.orig_dport), "--reply-src", self.reply_src]


def parse(text: str) -> list[Flow]:
    """The UDP entries of `conntrack -L -p udp` output; lines that are not one are skipped."""
    flows: list[Flow] = []
    for line in text.splitlines():
        if not line.startswith("udp"):
            continue
        fields = _FIELD.findall(line)
        # the original tuple's src, dst, sport, dport, then the reply tuple's
        if len(fields) < 8 or [k for k, _ in fields[:8]] != ["src", "dst", "sport", "dport"] * 2:
            continue
        try:
            flows.append(Flow(str(ipaddress.ip_address(fields[1][1])), int(fields[3][1]),
                              str(ipaddress.ip_address(fields[4][1]))))
        except ValueError:
            continue
    return flows


def _in(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in n for n in networks if n.version == ip.version)


def plan(flows: Iterable[Flow], ports: Iterable[model.ServicePort], pod_cidrs: Iterable[str]) -> list[Deletion]:
    """The deletions that leave no UDP flow of ours on an endpoint that is not serving."""
    networks = [ipaddress.ip_network(c, strict=False) for c in pod_cidrs]
    by_cluster_ip: dict[tuple[str, int], set[str]] = {}
    by_node_port: dict[int, set[str]] = {}
    for sp in ports:
        if sp.protocol != "udp":
            continue
        serving = {e.ip for e in sp.endpoints if e.serving}
        by_cluster_ip.setdefault((sp.cluster_ip, sp.port), set()).update(serving)
        if sp.node_port:
            by_node_port.setdefault(sp.node_port, set()).update(serving)
    found: set[Deletion] = set()
    for flow in flows:
        serving = by_cluster_ip.get((flow.orig_dst, flow.orig_dport))
        if serving is not None and flow.reply_src not in serving:
            found.add(Deletion(flow.orig_dst, flow.orig_dport, flow.reply_src))
            continue
        serving = by_node_port.get(flow.orig_dport)
        if serving is not None and flow.reply_src not in serving and (
                flow.reply_src == flow.orig_dst or _in(flow.reply_src, networks)):
            found.add(Deletion(flow.orig_dst, flow.orig_dport, flow.reply_src))
    return sorted(found)


def flush(ports: Sequence[model.ServicePort], pod_cidrs: Iterable[str]) -> int:
    """Delete the stale UDP entries of `ports` on this host; how many deletions ran. Blocking."""
    global _warned
    if not any(sp.protocol == "udp" for sp in ports):
        return 0
    if shutil.which("conntrack") is None:
        if not _warned:
            log.warning("conntrack is not installed (Debian: apt-get install conntrack): UDP flows to removed "
                        "endpoints are not cleared")
            _warned = True
        return 0
    listed = subprocess.run(["conntrack", "-L", "-p", "udp"], capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        log.warning("conntrack -L failed: %s", listed.stderr.strip())
        return 0
    deletions = plan(parse(listed.stdout), ports, pod_cidrs)
    for deletion in deletions:
        # exit 1 with "0 flow entries" when the entry went meanwhile: nothing to do then
        subprocess.run(deletion.args(), capture_output=True, text=True, timeout=60)
    if deletions:
        log.info("conntrack: cleared %d stale UDP flow group(s)", len(deletions))
    return len(deletions)
