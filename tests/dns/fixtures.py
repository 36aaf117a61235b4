"""Objects as the API server returns them, for the DNS tests (plain dicts, no server)."""

from __future__ import annotations

from typing import Any


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "10.96.0.20",
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}] if ports is None else ports,
                            **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
        body["clusterIPs"] = [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        found["hostname"] = hostname
    return found


def endpoint_slice(service_name: str, endpoints: list[dict[str, Any]], ns: str = "default", *,
                   name: str | None = None, ports: list[dict[str, Any]] | None = None,
                   address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports}


def pod(name: str, ip: str, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}
