"""`metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics): what `kubectl top` reads, served by the API
server itself from the node agents' `/stats/summary`.

Upstream runs metrics-server behind the aggregation layer; it scrapes every kubelet each 15 s and
answers from memory. Here the API server asks each Ready node's agent (through the same kubelet
client certificate as the log and exec proxies) when a request comes, and keeps each answer for
`FRESH_SECONDS`, so a burst of `kubectl top` calls costs one round of agent requests. An agent that
does not answer within `AGENT_TIMEOUT` is left out of the answer (metrics-server does the same),
never turned into an error for the whole list. Read-only: get and list, with label and field
selectors matched against the metrics objects (which carry their node's or pod's labels).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from reconcile.api import nodeagents, registry, rest
from reconcile.client import aio
from reconcile.client import config as client_config
from reconcile.core import errors

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
FRESH_SECONDS = 5.0
AGENT_TIMEOUT = 5.0

# a node agent's base URL -> how to reach it (the API server's kubelet client configuration)
AgentConfig = Callable[[str], client_config.ClientConfig]


def serves(resource: registry.Resource) -> bool:
    return resource.builtin and resource.group == GROUP


def cpu_quantity(nano_cores: int) -> str:
    return f"{max(0, int(nano_cores))}n"


def memory_quantity(working_set: int) -> str:
    return f"{max(0, int(working_set)) // 1024}Ki"


def _usage(figures: dict[str, Any]) -> dict[str, str]:
    return {"cpu": cpu_quantity((figures.get("cpu") or {}).get("usageNanoCores") or 0),
            "memory": memory_quantity((figures.get("memory") or {}).get("workingSetBytes") or 0)}


def _when(figures: dict[str, Any]) -> str:
    return (figures.get("cpu") or {}).get("time") or ""


def node_metrics(node: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """A NodeMetrics object from a node and its agent's summary."""
    figures = summary.get("node") or {}
    metadata = node.get("metadata") or {}
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": metadata.get("name", ""), "creationTimestamp": _now(),
                         "labels": dict(metadata.get("labels") or {})},
            "timestamp": _when(figures), "window": figures.get("window", "0s"), "usage": _usage(figures)}


def pod_metrics(pod: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """A PodMetrics object from a pod and its entry in its node's summary."""
    metadata = pod.get("metadata") or {}
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": metadata.get("name", ""), "namespace": metadata.get("namespace", ""),
                         "creationTimestamp": _now(), "labels": dict(metadata.get("labels") or {})},
            "timestamp": _when(figures), "window": figures.get("window", "0s"),
            "containers": [{"name": c.get("name", ""), "usage": _usage(c)} for c in figures.get("containers") or []]}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class ResourceMetrics:
    """Answers NodeMetrics and PodMetrics requests from the node agents' summaries."""

    def __init__(self, api: rest.Rest, agent_config: AgentConfig) -> None:
        self.api = api
        self.agent_config = agent_config
        self._summaries: dict[str, tuple[float, dict[str, Any] | None]] = {}  # node -> (when fetched, summary)

    async def serve(self, resource: registry.Resource, *, verb: str, namespace: str | None, name: str | None,
                    selection: rest.Selection) -> dict[str, Any]:
        if verb not in ("get", "list"):
            raise errors.MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({verb} {resource.group_resource})")
        items = await (self._nodes() if resource.plural == "nodes" else self._pods(namespace))
        if name is not None:
            for item in items:
                if item["metadata"]["name"] == name:
                    return item
            kind = "nodemetrics" if resource.plural == "nodes" else "podmetrics"
            raise errors.NotFound(f'{kind}.{GROUP} "{name}" not found')
        matching = [item for item in items if selection.matches(item)]
        return {"kind": resource.list_kind, "apiVersion": API_VERSION, "metadata": {}, "items": matching}

    async def _nodes(self) -> list[dict[str, Any]]:
        nodes = await self._list("", "nodes", None)
        summaries = await self._summaries_of(nodes)
        return [node_metrics(node, summaries[node["metadata"]["name"]]) for node in nodes
                if summaries.get(node["metadata"]["name"]) is not None]

    async def _pods(self, namespace: str | None) -> list[dict[str, Any]]:
        pods = [p for p in await self._list("", "pods", namespace) if (p.get("spec") or {}).get("nodeName")]
        node_names = {p["spec"]["nodeName"] for p in pods}
        nodes = [n for n in await self._list("", "nodes", None) if n["metadata"]["name"] in node_names]
        summaries = await self._summaries_of(nodes)
        by_uid: dict[str, dict[str, Any]] = {}
        for summary in summaries.values():
            for entry in (summary or {}).get("pods") or []:
                by_uid[(entry.get("podRef") or {}).get("uid", "")] = entry
        found = []
        for pod in pods:
            entry = by_uid.get(pod["metadata"].get("uid", ""))
            if entry is not None:
                found.append(pod_metrics(pod, entry))
        return sorted(found, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))

    async def _list(self, group: str, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        resource = self.api.registry.get(group, "v1", plural)
        assert resource is not None
        result = await self.api.list(resource, rest.Selection(namespace=namespace))
        return [entry.obj for entry in result.entries]

    async def _summaries_of(self, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        wanted = [n for n in nodes if _ready(n)]
        fetched = await asyncio.gather(*(self._summary(n) for n in wanted))
        return {n["metadata"]["name"]: s for n, s in zip(wanted, fetched, strict=True)}

    async def _summary(self, node: dict[str, Any]) -> dict[str, Any] | None:
        name = node["metadata"]["name"]
        cached = self._summaries.get(name)
        if cached is not None and time.monotonic() - cached[0] < FRESH_SECONDS:
            return cached[1]
        summary = await self._fetch(node)
        self._summaries[name] = (time.monotonic(), summary)
        return summary

    async def _fetch(self, node: dict[str, Any]) -> dict[str, Any] | None:
        base = nodeagents.agent_url(node)
        if base is None:
            return None
        agent = aio.AsyncClient(self.agent_config(base))
        try:
            response = await asyncio.wait_for(agent.request("GET", "/stats/summary"), AGENT_TIMEOUT)
            answer = response.json()
            return answer if isinstance(answer, dict) else None
        except (errors.ApiError, TimeoutError, ValueError) as exc:
            log.warning("metrics: node %s's agent gave no stats: %s", node["metadata"]["name"], exc)
            return None
        finally:
            await agent.close()
