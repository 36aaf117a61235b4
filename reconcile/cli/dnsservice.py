"""`kube-system/kube-dns`: the Service pods reach cluster DNS through, as kubeadm's CoreDNS addon makes it.

Upstream's Service selects the CoreDNS pods (`k8s-app: kube-dns`). Our DNS server runs on the host
(`reconcile dns`, on the node's pod bridge gateway), not in a pod, so the Service has no selector
and a hand-written Endpoints naming that address; the EndpointSlice mirroring controller turns it
into the EndpointSlice the service proxy programs. Its cluster IP is kubeadm's: the 10th address
of the service CIDR (10.96.0.10 for 10.96.0.0/12). No `metrics` port: the server serves no 9153.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from reconcile.client import api
from reconcile.core import errors

NAMESPACE = "kube-system"
NAME = "kube-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
PORTS = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
         {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]


def cluster_ip(service_cidr: str) -> str:
    """kubeadm's DNS address: the 10th address of the service CIDR."""
    return str(ipaddress.ip_network(service_cidr)[10])


def service_body(ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": [dict(p) for p in PORTS]}}


def endpoints_body(address: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": p["name"], "port": p["port"], "protocol": p["protocol"]} for p in PORTS]}]}


def publish(client: api.Client, ip: str, address: str) -> None:
    """Create the Service and its Endpoints, or put them right (the address follows the node's bridge).
    A kube-dns Service someone made with another cluster IP is replaced: pods are told `ip`."""
    try:
        current = client.get("v1", "services", NAME, namespace=NAMESPACE)
    except errors.NotFound:
        current = None
    if current is not None and (current.get("spec") or {}).get("clusterIP") != ip:
        client.delete("v1", "services", NAME, namespace=NAMESPACE)
        current = None
    if current is None:
        client.create("v1", "services", service_body(ip), namespace=NAMESPACE)
    else:
        spec = current.get("spec") or {}
        if spec.get("selector") or [(p.get("name"), p.get("port"), p.get("protocol")) for p in spec.get("ports") or []] \
                != [(p["name"], p["port"], p["protocol"]) for p in PORTS]:
            body = service_body(ip)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            client.replace("v1", "services", body, namespace=NAMESPACE)
    wanted = endpoints_body(address)
    try:
        endpoints = client.get("v1", "endpoints", NAME, namespace=NAMESPACE)
    except errors.NotFound:
        client.create("v1", "endpoints", wanted, namespace=NAMESPACE)
        return
    if endpoints.get("subsets") != wanted["subsets"]:
        wanted["metadata"]["resourceVersion"] = endpoints["metadata"]["resourceVersion"]
        client.replace("v1", "endpoints", wanted, namespace=NAMESPACE)
