"""The `reconcile dns` process: informers feed the record index; the server answers from it.

Services, EndpointSlices and Namespaces are watched (and Pods with `pods verified`), as CoreDNS's
kubernetes plugin does. Answers change as soon as an informer applies an event: the server keeps
no cache of its own, so a Service created after a client's first query resolves on the next one
(clients' own negative caching aside: the SOA minimum, which bounds it, is the TTL). Until every
informer has listed once, a name that would be NXDOMAIN is SERVFAIL, so a starting server never
tells a client a name does not exist when it just has not read it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.client import informer as informer_mod
from reconcile.dns import records, server, wire

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 1.0  # a stopped informer (403 until RBAC is there, a bug) is restarted this often


@dataclass
class Options:
    server: str | None = None  # None: $RECONCILE_SERVER, then the kubeconfig
    kubeconfig: str | None = None
    host: str = "127.0.0.1"
    port: int = 53
    zone: str = records.DEFAULT_ZONE
    ttl: int = records.DEFAULT_TTL
    pods: str = "insecure"  # kubeadm's Corefile
    upstream: wire.Upstream | None = None


def _informers(client: aio.AsyncClient, index: records.Index) -> list[informer_mod.Informer]:
    """One informer per watched kind, each applying its events to the index."""
    kinds: list[tuple[str, str, Any, Any]] = [
        ("v1", "services", index.put_service, index.remove_service),
        ("discovery.k8s.io/v1", "endpointslices", index.put_slice, index.remove_slice),
        ("v1", "namespaces", index.put_namespace, index.remove_namespace),
    ]
    if index.pods == "verified":
        kinds.append(("v1", "pods", index.put_pod, index.remove_pod))
    found = []
    for api_version, plural, put, remove in kinds:
        inf = informer_mod.Informer(client, api_version, plural, indexers={})
        inf.add_handler(on_add=put, on_update=lambda _old, new, put=put: put(new), on_delete=remove)
        found.append(inf)
    return found


async def serve(client: aio.AsyncClient, options: Options, *, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled; `ready` is set once the sockets are bound."""
    index = records.Index(zone=options.zone, ttl=options.ttl, pods=options.pods)
    dns_server = server.DnsServer(index, host=options.host, port=options.port, upstream=options.upstream)
    informers = _informers(client, index)
    await dns_server.start()
    options.port = dns_server.port
    if ready is not None:
        ready.set()
    try:
        for inf in informers:
            await inf.start()
        synced = asyncio.gather(*(inf.wait_synced() for inf in informers))
        while True:
            if index.synced:
                await asyncio.sleep(SUPERVISE_INTERVAL)
            else:
                await asyncio.wait({synced}, timeout=SUPERVISE_INTERVAL)
                if synced.done():
                    if synced.exception() is None:
                        index.synced = True
                        log.info("informers synced: %d services, %d namespaces", len(index.services),
                                 len(index.namespaces))
                    else:
                        log.error("informers did not sync: %s", synced.exception())
                        synced = asyncio.gather(*(inf.wait_synced() for inf in informers))
            for inf in informers:
                await inf.restart()
    finally:
        with contextlib.suppress(Exception):
            synced.cancel()
        for inf in informers:
            await inf.stop()
        await dns_server.stop()


async def run(options: Options) -> None:
    cfg = config_mod.load_config(server=options.server, kubeconfig=options.kubeconfig)
    async with aio.AsyncClient(cfg) as client:
        await serve(client, options)
