"""`kubectl port-forward` (SPDY/3.1 tunnelled in a WebSocket, as kubectl 1.32 does by default)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests import support
from tests.compat.conftest import SLEEPER, kubectl_binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def forwarding(env: dict[str, str], ns: str, target: str, remote: int,
               expect_remote: int | None = None, verbose: bool = False) -> Iterator[tuple[int, subprocess.Popen]]:
    local = _free_port()
    process = subprocess.Popen([kubectl_binary(), "port-forward", "-n", ns, target, f"{local}:{remote}",
                                *(["-v=6"] if verbose else [])], env=env,
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


def test_port_forward_over_plain_spdy(module_env, workload):
    """kubectl's fallback, forced with KUBECTL_PORT_FORWARD_WEBSOCKETS=false: POST + `Upgrade:
    SPDY/3.1`, answered 101; parallel connections and the closed-port error work as tunnelled."""
    env = dict(module_env, KUBECTL_PORT_FORWARD_WEBSOCKETS="false")
    with forwarding(env, workload, "pod/web", 8080, verbose=True) as (local, process):
        with futures.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(lambda i: _get(local), range(16))) == [b"hello\n"] * 16
        process.kill()
        _, err = process.communicate(timeout=30)
    assert re.search(rb"POST https://\S+/pods/web/portforward 101 Switching Protocols", err), err[-3000:]
    with forwarding(env, workload, "pod/web", 9) as (local, process):
        with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
            conn.settimeout(20)
            assert conn.recv(100) == b""
        _, err = process.communicate(timeout=30)
        assert b"error forwarding port 9 to pod web" in err and b"connection refused" in err, err


def test_exec_over_plain_spdy_and_port_forward_version_negotiation(module_env, workload, tmp_path):
    """exec over plain SPDY (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false): output on both streams, the
    exit code, piped stdin to its end, and cp (tar through exec). A SPDY port-forward offering no
    version we speak gets upstream's 403."""
    from tests.compat.conftest import kubectl
    env = dict(module_env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false")
    result = kubectl(env, "exec", "-n", workload, "web", "-v=6", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                     timeout=30)
    assert (result.returncode, result.stdout) == (3, b"out\n"), result.stderr[-2000:]
    assert re.search(rb"POST https://\S+/pods/web/exec\S* 101 Switching Protocols", result.stderr), result.stderr[-2000:]
    assert b"err\n" in result.stderr and b"command terminated with exit code 3" in result.stderr
    data = bytes(range(256)) * 4000
    result = kubectl(env, "exec", "-i", "-n", workload, "web", "--", "sh", "-c", "wc -c", input=data, timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, str(len(data)).encode()), result.stderr
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    result = kubectl(env, "cp", str(source), f"{workload}/web:/tmp/up.bin", "-c", "web", timeout=60)
    assert result.returncode == 0, result.stderr
    result = kubectl(env, "cp", f"{workload}/web:/tmp/up.bin", str(tmp_path / "down.bin"), "-c", "web", timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "down.bin").read_bytes() == data
    import http.client
    import json
    import ssl
    from urllib.parse import urlparse

    from kubernetes import config
    configuration = config.new_client_from_config(module_env["KUBECONFIG"]).configuration
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    context.load_cert_chain(configuration.cert_file, configuration.key_file)
    url = urlparse(configuration.host)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
    try:
        conn.request("POST", f"/api/v1/namespaces/{workload}/pods/web/portforward", headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v9.portforward.k8s.io",
            "Content-Length": "0"})
        answer = conn.getresponse()
        status = json.loads(answer.read())
    finally:
        conn.close()
    assert (answer.status, status["reason"], status["message"]) == (
        403, "Forbidden", "unable to upgrade: unable to negotiate protocol: client supports "
                          "[v9.portforward.k8s.io], server accepts [portforward.k8s.io]")


# --- `reconcile port-forward`: the same forwards through the project's own client -------------------

@contextmanager
def reconcile_forwarding(env: dict[str, str], ns: str, target: str, *ports: str,
                         expect: list[bytes] | None = None) -> Iterator[tuple[list[int], subprocess.Popen]]:
    """`reconcile port-forward` running; yields the local ports it announced (127.0.0.1 only)."""
    process = subprocess.Popen([sys.executable, "-m", "reconcile", "port-forward", "-n", ns, target, *ports,
                                "--address", "127.0.0.1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        lines: list[bytes] = []

        def read() -> None:
            for _ in ports:
                lines.append(process.stdout.readline())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        found = [re.match(rb"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line) for line in lines]
        if len(found) != len(ports) or not all(found):
            process.kill()
            raise AssertionError(f"reconcile port-forward did not start: {lines} {process.communicate()}")
        if expect is not None:
            assert [m.group(2) for m in found if m] == expect
        yield [int(m.group(1)) for m in found if m], process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _stop(process: subprocess.Popen) -> tuple[int, bytes]:
    """Ctrl-C, as a user ends a forward: kubectl exits 0."""
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def test_reconcile_port_forward_to_a_pod_by_number_and_by_port_name(module_env, workload):
    """A bare name is a pod; a named remote port is looked up in its containers; connections run
    concurrently; Ctrl-C ends the forward with exit 0 and closes its listeners."""
    with reconcile_forwarding(module_env, workload, "web", ":8080", ":http", expect=[b"8080", b"8080"]) as (
            locals_, process):
        with futures.ThreadPoolExecutor(10) as pool:
            assert list(pool.map(lambda i: _get(locals_[i % 2]), range(20))) == [b"hello\n"] * 20
        code, err = _stop(process)
        assert code == 0, err
    for local in locals_:
        with pytest.raises(OSError):  # the listeners are gone with the process
            socket.create_connection(("127.0.0.1", local), timeout=5).close()


def test_reconcile_port_forward_to_a_service_by_named_target_port(module_env, workload, admin):
    """svc/NAME: a ready pod behind its selector; the service port (by number or by name) becomes
    the pod's container port named by `targetPort`, as kubectl translates it."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "named"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}
    admin.create("v1", "services", service, namespace=workload)
    with reconcile_forwarding(module_env, workload, "svc/named", ":80", ":web", expect=[b"8080", b"8080"]) as (
            locals_, process):
        assert [_get(p) for p in locals_] == [b"hello\n", b"hello\n"]
        assert _stop(process)[0] == 0


def test_reconcile_port_forward_to_a_deployment(module_env, workload, admin):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fwd"},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "unused",
                                                                 "command": SLEEPER}]}}}}
    admin.create("apps/v1", "deployments", deployment, namespace=workload)
    with reconcile_forwarding(module_env, workload, "deploy/fwd", ":8080") as ([local], process):
        assert _get(local) == b"hello\n"
        assert _stop(process)[0] == 0


@dataclass
class _Result:
    returncode: int
    stderr: bytes


def _reconcile(env: dict[str, str], *args: str) -> _Result:
    """The CLI in this process (its start-up costs seconds per run on a loaded machine)."""
    from click.testing import CliRunner

    from reconcile.cli.main import main

    result = CliRunner().invoke(main, list(args), env={k: env.get(k) for k in ("KUBECONFIG", "HOME")})
    return _Result(result.exit_code, result.stderr_bytes or b"")


def test_reconcile_port_forward_errors_as_kubectl_words_them(module_env, workload, admin):
    admin.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody"},
                                    "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}},
                 namespace=workload)
    admin.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
                                    "spec": {"ports": [{"port": 80}]}}, namespace=workload)
    admin.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "port80"},
                                    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
                 namespace=workload)
    pending = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending", "labels": {"app": "pending"}},
               "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "unused"}]}}
    admin.create("v1", "pods", pending, namespace=workload)
    admin.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pending"},
                                    "spec": {"selector": {"app": "pending"}, "ports": [{"port": 80}]}},
                 namespace=workload)
    # the only pod is not running: kubectl picks it anyway and refuses
    result = _reconcile(module_env, "port-forward", "-n", workload, "svc/pending", "80")
    assert (result.returncode, result.stderr) == (
        1, b"error: unable to forward port because pod is not running. Current status=Pending\n")
    # no pod behind the selector: kubectl waits --pod-running-timeout for one, then gives up
    result = _reconcile(module_env, "port-forward", "-n", workload, "svc/nobody", "80", "--pod-running-timeout=1s")
    assert (result.returncode, result.stderr) == (1, b"error: timed out waiting for the condition\n")
    result = _reconcile(module_env, "port-forward", "-n", workload, "svc/manual", "80")
    assert (result.returncode, result.stderr) == (1, b"error: cannot attach to *v1.Service: invalid service "
                                                     b"'manual': Service is defined without a selector\n")
    result = _reconcile(module_env, "port-forward", "-n", workload, "svc/port80", "81")
    assert (result.returncode, result.stderr) == (1, b"error: service port80 does not have a service port 81\n")
    result = _reconcile(module_env, "port-forward", "-n", workload, "pod/web", "nope")
    assert (result.returncode, result.stderr) == (1, b"error: pod 'web' does not have a named port 'nope'\n")
    result = _reconcile(module_env, "port-forward", "-n", workload, "pod/missing", "80")
    assert result.returncode == 1 and b'pods "missing" not found' in result.stderr, result.stderr
    result = _reconcile(module_env, "port-forward", "-n", workload, "pod/web", "70000")
    assert result.returncode == 1 and b"Error parsing remote port '70000'" in result.stderr, result.stderr


def test_reconcile_port_forward_to_a_closed_port_ends_the_forward(module_env, workload):
    with reconcile_forwarding(module_env, workload, "pod/web", ":9") as ([local], process):
        with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
            conn.settimeout(20)
            assert conn.recv(100) == b""  # closed, not hung
        _, err = process.communicate(timeout=30)
        assert process.returncode == 1
        assert b"an error occurred forwarding %d -> 9: error forwarding port 9 to pod web" % local in err, err
        assert b"connection refused" in err and err.endswith(b"error: lost connection to pod\n"), err


def test_reconcile_port_forward_needs_create_on_portforward(api_server, workload, admin, tmp_path):
    """A user who may read the pod but not create pods/portforward gets kubectl's refusal; no port opens."""
    rbac = "rbac.authorization.k8s.io/v1"
    admin.create(rbac, "roles", {"apiVersion": rbac, "kind": "Role", "metadata": {"name": "pod-reader"},
                                 "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
                 namespace=workload)
    admin.create(rbac, "rolebindings", {
        "apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "pf-reader", "apiGroup": "rbac.authorization.k8s.io"}]},
        namespace=workload)
    connection = support.connection(api_server)
    kubeconfig = connection.write_kubeconfig(tmp_path / "kubeconfig", as_user=connection.user("pf-reader"))
    result = _reconcile({"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}, "port-forward", "-n", workload,
                        "pod/web", "8080")
    assert result.returncode == 1
    # the upgrade is authorized as get and create on the subresource (README: kube-apiserver 1.35's check)
    assert re.match(rb'error: error upgrading connection: pods "web" is forbidden: User "pf-reader" '
                    rb'cannot (get|create) resource "pods/portforward"', result.stderr), result.stderr


# --- the official Python client: `kubernetes.stream.portforward` (the v4 channel protocol) ----------

PF_DEADLINE = 20.0


def _python_forward(env: dict[str, str], ns: str, ports: str):
    from kubernetes import client, config
    from kubernetes.stream import portforward

    api = client.CoreV1Api(config.new_client_from_config(env["KUBECONFIG"]))
    return portforward(api.connect_get_namespaced_pod_portforward, "web", ns, ports=ports)


def _http_over(sock, path: str = "/") -> bytes:
    """One HTTP/1.0 request on a forwarded socket; the answer's body, read to the server's close."""
    sock.settimeout(PF_DEADLINE)
    sock.sendall(b"GET %s HTTP/1.0\r\nHost: web\r\n\r\n" % path.encode())
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body


def test_python_client_port_forward(module_env, workload):
    """`pf.socket(port)` carries an HTTP exchange through the API server and the node agent; the
    forward ends (the WebSocket closes) once the pod has closed its connection."""
    pf = _python_forward(module_env, workload, "8080")
    try:
        assert _http_over(pf.socket(8080)) == b"hello\n"
        assert pf.error(8080) is None
        support.wait_for(lambda: not pf.connected, timeout=PF_DEADLINE, interval=0.05,
                         what="the forward to end on the server's Close, not a hang")
    finally:
        pf.close()


def test_python_client_port_forward_several_ports_and_a_closed_one(module_env, workload, admin):
    """Three ports on one WebSocket: two listeners (the `side` container serves a second page on
    8081) and a closed port, which gets the kubelet's error on its error channel (the client
    keeps it and closes that socket) while the others go on forwarding."""
    from tests.compat.conftest import kubectl
    result = kubectl(module_env, "exec", "-n", workload, "web", "-c", "side", "--", "sh", "-c",
                     "mkdir -p /w2 && echo two > /w2/index.html && httpd -p 8081 -h /w2")
    assert result.returncode == 0, result.stderr
    pf = _python_forward(module_env, workload, "8080,9,8081")
    try:
        closed = pf.socket(9)
        closed.settimeout(PF_DEADLINE)
        assert closed.recv(100) == b""  # closed, not hung
        uid = admin.get("v1", "pods", "web", namespace=workload)["metadata"]["uid"]
        error = pf.error(9)
        assert error is not None and error.startswith(f"error forwarding port 9 to pod web, uid {uid}: dial tcp "), error
        assert error.endswith(":9: connect: connection refused"), error
        with futures.ThreadPoolExecutor(2) as pool:  # both at once
            answers = list(pool.map(lambda port: _http_over(pf.socket(port)), (8080, 8081)))
        assert answers == [b"hello\n", b"two\n"]
        assert pf.error(8080) is None and pf.error(8081) is None
    finally:
        pf.close()


def test_python_client_port_forward_refusals(module_env, workload):
    """Refused before the handshake with a 400 Status, in upstream's words (the API server's
    conversion of `ports`, the kubelet's checks and wsstream's): no port, a port that is no number,
    port 0, and only subprotocols the server does not speak. The Python client checks ports itself,
    so these are sent with its WebSocket helper."""
    import json

    import websocket
    from kubernetes import config
    from kubernetes.stream.ws_client import create_websocket

    configuration = config.new_client_from_config(module_env["KUBECONFIG"]).configuration
    base = configuration.host.replace("https://", "wss://") + f"/api/v1/namespaces/{workload}/pods/web/portforward"
    cases = [("", None, 'query parameter "port" is required'),
             ("?ports=http", None, 'cannot convert to []int32: strconv.ParseUint: parsing "http": invalid syntax'),
             ("?ports=80,70000", None,
              'cannot convert to []int32: strconv.ParseUint: parsing "70000": value out of range'),
             ("?ports=0", None, 'port "0" must be > 0'),
             ("?ports=80", "v4.base64.channel.k8s.io", "unable to upgrade websocket connection: requested "
              "protocol(s) are not supported: [v4.base64.channel.k8s.io]; supports [ v4.channel.k8s.io]")]
    for query, protocol, message in cases:
        headers = {"sec-websocket-protocol": protocol} if protocol else None
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            create_websocket(configuration, base + query, headers).close()
        assert refused.value.status_code == 400, query
        status = json.loads(refused.value.resp_body)
        assert (status["kind"], status["reason"], status["message"]) == ("Status", "BadRequest", message), query
