"""`kubectl port-forward` (SPDY/3.1 tunnelled in a WebSocket, as kubectl 1.32 does by default)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

from tests.compat.conftest import SLEEPER, kubectl_binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def forwarding(env: dict[str, str], ns: str, target: str, remote: int,
               expect_remote: int | None = None) -> Iterator[tuple[int, subprocess.Popen]]:
    local = _free_port()
    process = subprocess.Popen([kubectl_binary(), "port-forward", "-n", ns, target, f"{local}:{remote}"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready: list[bytes] = []
        reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        if not (ready and re.match(rb"Forwarding from 127\.0\.0\.1:%d -> %d" % (local, expect_remote or remote), ready[0])):
            process.kill()
            raise AssertionError(f"kubectl port-forward did not start: {ready} {process.communicate()}")
        yield local, process
    finally:
        process.kill()
        process.wait()


def _get(port: int, path: str = "/") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
        return response.read()


def test_port_forward_twenty_parallel_requests(module_env, workload, admin):
    big = "x" * 300_000
    from tests.compat.conftest import kubectl
    result = kubectl(module_env, "exec", "-i", "-n", workload, "web", "--", "sh", "-c", "cat > /www/big.txt",
                     input=big.encode())
    assert result.returncode == 0, result.stderr
    with forwarding(module_env, workload, "pod/web", 8080) as (local, _):
        with futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda i: _get(local, "/big.txt" if i % 2 else "/"), range(20)))
        assert answers == [big.encode() if i % 2 else b"hello\n" for i in range(20)]
        assert _get(local) == b"hello\n"  # still forwarding afterwards


def test_port_forward_to_a_deployment(module_env, workload, admin):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "unused",
                                                                 "command": SLEEPER}]}}}}
    admin.create("apps/v1", "deployments", deployment, namespace=workload)
    with forwarding(module_env, workload, "deploy/web", 8080) as (local, _):
        assert _get(local) == b"hello\n"


def test_port_forward_to_a_service(module_env, workload, admin):
    """kubectl resolves svc/NAME to a pod by its selector and the service port to the target port."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    admin.create("v1", "services", service, namespace=workload)
    with forwarding(module_env, workload, "svc/web", 80, expect_remote=8080) as (local, _):
        assert _get(local) == b"hello\n"


def test_port_forward_to_a_closed_port(module_env, workload):
    with forwarding(module_env, workload, "pod/web", 9) as (local, process):
        with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
            conn.settimeout(20)
            assert conn.recv(100) == b""  # closed, not hung
        out, err = process.communicate(timeout=30)  # kubectl 1.32 ends the forward on an error
        assert b"error forwarding port 9 to pod web" in err, err
        assert b"connection refused" in err, err


def test_port_forward_needs_create(module_env, workload):
    from tests.compat.conftest import kubectl
    result = kubectl(module_env, "--as=nobody", "port-forward", "-n", workload, "pod/web", f"{_free_port()}:8080",
                     timeout=30)
    assert result.returncode == 1
    assert b"forbidden" in result.stderr.lower()
