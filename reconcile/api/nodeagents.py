"""Where a node's agent listens, as its Node object publishes it (the kubelet's
`status.daemonEndpoints.kubeletEndpoint` and addresses): what the log, exec and port-forward
proxies and the resource metrics dial."""

from __future__ import annotations

from typing import Any


def agent_url(node: dict[str, Any]) -> str | None:
    """The agent's HTTPS base URL (None if the Node publishes no address or port)."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    address = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not address:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"
