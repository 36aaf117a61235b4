"""A StatefulSet on a real node: scheduler, controller-manager (StatefulSet, EndpointSlice, binder and
provisioner), a node agent on the session's dockerd and `reconcile dns` on the agent's bridge gateway.

Two replicas with a volumeClaimTemplate on the default WaitForFirstConsumer class: each ordinal gets
its own Docker named volume; what web-0 wrote survives deleting web-0 (the new web-0 mounts the same
claim), and web-0.<svc>.<ns>.svc.cluster.local resolves, from inside web-1, to web-0's pod IP.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.rcode
import pytest

from reconcile.node import safepath
from tests import docker_support, support
from tests.controllers.helpers import ControllerManagerProcess
from tests.dns.helpers import DnsProcess, ask
from tests.e2e.conftest import Component
from tests.node import helpers

SERVE = ["sh", "-c", "[ -f /data/first ] || echo \"$(POD_NAME)\" > /data/first; "
         "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


@pytest.fixture(scope="module")
def cluster(docker_node: docker_support.DockerDaemon, api_server: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    """The node agent (cluster DNS = its bridge gateway), DNS there, scheduler and controller-manager."""
    state = Path(tmp_path_factory.mktemp("agent"))
    agent = docker_support.NodeAgentProcess(docker_node, api_server, name=f"node-{uuid.uuid4().hex[:6]}",
                                            state_dir=state / "node")
    gateway = str(next(ipaddress.ip_network(agent.pod_cidr).hosts()))
    agent.extra_args = ("--lease-interval", "2", "--cluster-dns", gateway)
    manager = ControllerManagerProcess(api_server)
    scheduler: Component | None = None
    dns_server: DnsProcess | None = None
    agent.start()
    try:
        manager.start()
        scheduler = Component("scheduler", "scheduler", *support.connection(api_server).component_args(),
                              "--no-leader-elect")
        dns_server = DnsProcess(api_server, host=gateway, port=53)
        support.wait_for(lambda: ask(53, "svc.cluster.local", host=gateway).rcode() == dns.rcode.NOERROR,
                         timeout=30, what="cluster DNS on the bridge gateway")
        yield agent
    finally:
        for part in (dns_server, scheduler, manager):
            if part is not None:
                part.stop()
        agent.stop()
        agent.remove_containers()
        safepath.unmount_all(agent.state_dir)


def _statefulset(namespace: str) -> dict[str, Any]:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container = helpers.container(command=SERVE, env=env, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


def _app(client: Any, docker_node: docker_support.DockerDaemon, namespace: str, name: str) -> tuple[dict, str]:
    obj = helpers.wait_pod(client, namespace, name, helpers.running_ready, timeout=60, what=f"{name} Running")
    return obj, helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]["Id"]


def test_claims_outlive_pods_and_pods_have_dns_names(client, namespace, cluster, docker_node) -> None:
    client.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                     "spec": {"clusterIP": "None", "selector": {"app": "web"},
                                              "ports": [{"name": "web", "port": 80}]}}, namespace=namespace)
    client.create("apps/v1", "statefulsets", _statefulset(namespace), namespace=namespace)
    handles: list[str] = []
    try:
        web0, c0 = _app(client, docker_node, namespace, "web-0")
        web1, c1 = _app(client, docker_node, namespace, "web-1")
        for name in ("data-web-0", "data-web-1"):
            claim = client.get("v1", "persistentvolumeclaims", name, namespace=namespace)
            handles.append(claim["spec"]["volumeName"])
        assert len(set(handles)) == 2 and all(docker_node.docker("volume", "inspect", h).returncode == 0
                                              for h in handles)
        read = docker_node.docker("exec", c0, "cat", "/data/first").stdout
        assert read == "web-0\n"
        assert docker_node.docker("exec", c1, "cat", "/data/first").stdout == "web-1\n"  # a claim of its own

        # web-0 by its stable DNS name, from web-1
        fqdn = f"web-0.web.{namespace}.svc.cluster.local"
        ip = web0["status"]["podIP"]
        support.wait_for(lambda: ip in docker_node.docker("exec", c1, "nslookup", fqdn, check=False,
                                                           timeout=20).stdout, timeout=30, what=f"{fqdn} -> {ip}")

        # delete web-0: the new web-0 mounts the same claim and finds what the old one wrote
        client.delete("v1", "pods", "web-0", namespace=namespace)
        support.wait_for(lambda: helpers.get_pod(client, namespace, "web-0")["metadata"]["uid"]
                         != web0["metadata"]["uid"], timeout=60, what="web-0 recreated")
        again, c0 = _app(client, docker_node, namespace, "web-0")
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}} in again["spec"]["volumes"]
        docker_node.docker("exec", c0, "sh", "-c", "echo second >> /data/first")
        assert docker_node.docker("exec", c0, "cat", "/data/first").stdout == "web-0\nsecond\n"
    finally:
        client.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": 0}}, namespace=namespace)
        uids = {p["metadata"]["uid"] for p in client.list("v1", "pods", namespace=namespace)["items"]}
        support.wait_for(lambda: not client.list("v1", "pods", namespace=namespace)["items"]
                         and not any(helpers.pod_containers(docker_node, u) for u in uids), timeout=60,
                         what="pods and their containers gone")
        for handle in handles:
            support.wait_for(lambda h=handle: docker_node.docker("volume", "rm", h, check=False).returncode == 0
                             or "no such volume" in docker_node.docker("volume", "rm", h, check=False).stderr.lower(),
                             timeout=30, what=f"volume {handle} removed")
