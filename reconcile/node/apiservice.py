"""Where containers find the API server: the KUBERNETES_SERVICE_HOST/PORT every container gets.

Upstream's kubelet takes them from the `kubernetes` Service in `default` (its cluster IP and first
port, 10.96.0.1:443 on a default cluster), which the service proxy translates to the API servers'
endpoints; an address such as the agent's own 127.0.0.1 would be the container's own loopback.
The agent watches that one Service (an informer selected by name, so the address is read from
memory when a container is made); while the Service is absent (a server that does not make it),
the API server's address as the agent reaches it is the fallback, as before the Service existed.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from reconcile.client import aio
from reconcile.client import informer as informer_mod

NAMESPACE, NAME = "default", "kubernetes"


def service_address(service: dict[str, Any] | None) -> tuple[str, str] | None:
    """(cluster IP, port) of the `kubernetes` Service: the port named `https`, else the first
    (upstream's kubelet uses the first); None when it has no usable cluster IP or port."""
    spec = (service or {}).get("spec")
    if not isinstance(spec, dict):
        return None
    cluster_ip = spec.get("clusterIP")
    if not isinstance(cluster_ip, str):
        return None
    try:
        ipaddress.ip_address(cluster_ip)
    except ValueError:  # "", "None" (headless)
        return None
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int)]
    if not ports:
        return None
    chosen = next((p for p in ports if p.get("name") == "https"), ports[0])
    return cluster_ip, str(chosen["port"])


class ApiService:
    """The `kubernetes` Service as the agent's pods should reach the API server."""

    def __init__(self, client: aio.AsyncClient, *, fallback: tuple[str, str]) -> None:
        self.fallback = fallback
        self.informer = informer_mod.Informer(client, "v1", "services", namespace=NAMESPACE,
                                              field_selector=f"metadata.name={NAME}")

    def address(self) -> tuple[str, str]:
        """(KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT) for a container made now."""
        return service_address(self.informer.store.get(NAMESPACE, NAME)) or self.fallback
