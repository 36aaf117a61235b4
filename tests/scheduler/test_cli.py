"""`reconcile scheduler` as a process: elects itself through the Lease, binds, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from reconcile.client import api as client_api
from tests import support
from tests.scheduler import objects


def test_scheduler_command_leads_and_binds(api_server: str) -> None:
    client = client_api.Client(support.connection(api_server).client_config())
    tag = uuid.uuid4().hex[:6]
    namespace, node = f"cli-{tag}", f"{tag}-node"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    obj = objects.node(node)
    status = obj.pop("status")
    client.create("v1", "nodes", obj)
    client.patch("v1", "nodes", node, {"status": status}, subresource="status")
    health = support.free_port()
    log = support.process_log("scheduler-")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "scheduler", *support.connection(api_server).component_args(), "--health-port", str(health)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        client.create("v1", "pods", objects.pod("cli-pod", namespace=namespace), namespace=namespace)
        support.wait_for(
            lambda: client.get("v1", "pods", "cli-pod", namespace=namespace)["spec"].get("nodeName") == node,
            timeout=30, what=f"pod bound by the scheduler process: {open(log.name).read()[-2000:]}",
        )
        lease = client.get("coordination.k8s.io/v1", "leases", "reconcile-scheduler", namespace="kube-system")
        assert lease["spec"]["holderIdentity"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            rc = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        client.delete("v1", "nodes", node)
        client.close()
    assert rc == 0, open(log.name).read()[-2000:]
