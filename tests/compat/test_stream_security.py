"""Streaming endpoints as an attacker sees them: no credentials, a user without rights, the node
agent's port reached directly, paths that do not stream. Each is refused before any upgrade."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from reconcile.client import websocket
from reconcile.core import errors, remotecommand
from tests import support


def _connect(url: str, config, protocols=(remotecommand.V5,)) -> None:
    async def go() -> None:
        conn = await websocket.connect(url, config, subprotocols=list(protocols))
        await conn.close()

    asyncio.run(go())


def _wss(api_server: str, path: str) -> str:
    return "wss" + api_server[len("https"):] + path


def test_websocket_exec_without_credentials_is_401(api_server, workload):
    conn = support.connection(api_server)
    anonymous = dataclasses.replace(conn.client_config(), cert=None)
    with pytest.raises(errors.Unauthorized):
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/exec?command=id&stdout=true"), anonymous)


def test_websocket_exec_by_a_user_without_rights_is_403(api_server, workload):
    conn = support.connection(api_server)
    mallory = conn.client_config(as_user=conn.user("mallory"))
    with pytest.raises(errors.Forbidden, match='cannot get resource "pods/exec"'):
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/exec?command=id&stdout=true"), mallory)
    with pytest.raises(errors.Forbidden, match='cannot get resource "pods/portforward"'):
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/portforward"), mallory,
                 ("portforward.k8s.io",))


def test_node_agent_refuses_a_user_reaching_it_directly(api_server, workload, admin, node_agent):
    node = admin.get("v1", "nodes", node_agent.name)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    address = {a["type"]: a["address"] for a in node["status"]["addresses"]}["InternalIP"]
    conn = support.connection(api_server)
    mallory = dataclasses.replace(conn.client_config(as_user=conn.user("mallory")), verify=False)
    url = f"wss://{address}:{port}/exec/{workload}/web/web?command=id&stdout=true"
    with pytest.raises(errors.Forbidden):
        _connect(url, mallory)
    with pytest.raises(errors.Forbidden):
        _connect(f"wss://{address}:{port}/portForward/{workload}/web", mallory, ("portforward.k8s.io",))
    with pytest.raises(errors.ServiceUnavailable):  # no client certificate: the TLS handshake itself fails
        _connect(url, dataclasses.replace(mallory, cert=None))


def test_upgrades_of_what_does_not_stream(api_server, workload):
    config = support.connection(api_server).client_config()
    with pytest.raises(errors.NotFound):
        _connect(_wss(api_server, "/version"), config)
    with pytest.raises(errors.BadRequest, match="does not upgrade"):
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/log"), config)
    with pytest.raises(errors.BadRequest, match="none of the offered subprotocols"):  # pre-v4 binary: not served
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/exec?command=id&stdout=true"), config,
                 ("channel.k8s.io",))
    with pytest.raises(errors.BadRequest, match="at least 1 of stdin, stdout, stderr"):
        _connect(_wss(api_server, f"/api/v1/namespaces/{workload}/pods/web/exec?command=id"), config)
