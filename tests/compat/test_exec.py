"""`kubectl exec` / `attach` over WebSockets (v5.channel.k8s.io) and, for the TTY, kubectl's plain SPDY fallback;
and the Python client's stream()."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from tests.compat.conftest import kubectl, kubectl_binary


def test_exec_prints_and_exits_zero(module_env, workload):
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi\n", b"")


def test_exec_exit_codes(module_env, workload):
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "false")
    assert result.returncode == 1
    assert b"command terminated with exit code 1" in result.stderr
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    assert result.stderr.startswith(b"err\n") and b"command terminated with exit code 3" in result.stderr


def test_exec_stdin_piped(module_env, workload):
    data = b"".join(b"line %d\n" % i for i in range(20000))  # > 100 KB: many messages both ways
    result = kubectl(module_env, "exec", "-i", "-n", workload, "web", "--", "cat", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def test_exec_other_container(module_env, workload):
    result = kubectl(module_env, "exec", "-n", workload, "web", "-c", "side", "--", "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"web"


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket", "plain-spdy"])
def test_exec_errors(module_env, workload, websockets):
    env = dict(module_env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=websockets)
    result = kubectl(env, "exec", "-n", workload, "web", "-c", "nope", "--", "true", timeout=30)
    assert result.returncode == 1
    assert b"container nope is not valid for pod web" in result.stderr
    result = kubectl(env, "exec", "-n", workload, "missing", "--", "true", timeout=30)
    assert result.returncode == 1
    assert b'pods "missing" not found' in result.stderr
    result = kubectl(env, "exec", "-n", workload, "web", "--", "no-such-command", timeout=30)
    assert result.returncode == 1, result
    assert result.stderr.startswith(b"error: Internal error occurred: error executing command in container")
    assert b'"no-such-command": executable file not found' in result.stderr
    assert result.stdout == b""


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {needle!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket", "plain-spdy"])
def test_exec_interactive_tty(module_env, workload, websockets):
    """`kubectl exec -it POD -- sh` under a pty: typed input runs, the terminal size arrives, exit ends it;
    over WebSockets and over kubectl's plain SPDY fallback (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, True)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    env = dict(module_env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=websockets)
    process = subprocess.Popen([kubectl_binary(), "exec", "-it", "-n", workload, "web", "--", "sh"], env=env,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    try:
        deadline = time.monotonic() + 30
        os.write(leader, b"stty size; echo $((6*7))\n")
        seen = _read_until(leader, b"42", deadline)
        assert b"33 101" in seen
        os.write(leader, b"exit 5\n")
        assert process.wait(timeout=30) == 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)


def test_attach_with_stdin_and_tty(module_env, workload):
    leader, follower = pty.openpty()
    process = subprocess.Popen([kubectl_binary(), "attach", "-it", "-n", workload, "tty"], env=module_env,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    try:
        deadline = time.monotonic() + 30
        os.write(leader, b"echo attached-$((1+1))\n")
        _read_until(leader, b"attached-2", deadline)
    finally:
        process.kill()
        process.wait()
        os.close(leader)


def test_python_client_stream(module_env, workload):
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(module_env["KUBECONFIG"]))
    out = stream(api.connect_get_namespaced_pod_exec, "web", workload, container="web",
                 command=["sh", "-c", "echo py; exit 2"], stderr=True, stdin=False, stdout=True, tty=False,
                 _preload_content=False)
    out.run_forever(timeout=30)
    assert out.returncode == 2
    assert out.read_stdout() == "py\n"
    text = stream(api.connect_get_namespaced_pod_exec, "web", workload, command=["echo", "hello"],
                  stderr=True, stdin=False, stdout=True, tty=False)
    assert text == "hello\n"


def test_exec_needs_create_on_pods_exec(module_env, workload, admin):
    """The WebSocket GET is authorized as `get` and as `create` (kube-apiserver 1.35's check): a role
    with only `get` on pods/exec, which kubectl 1.30-1.34 clusters let exec, is refused here."""
    rbac = "rbac.authorization.k8s.io/v1"
    for name, verbs in (("exec-get", ["get"]), ("exec-create", ["get", "create"])):
        admin.create(rbac, "roles", {"apiVersion": rbac, "kind": "Role", "metadata": {"name": name},
                                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                                               {"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}]},
                     namespace=workload)
        admin.create(rbac, "rolebindings", {
            "apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]},
            namespace=workload)

    def allowed() -> bool:
        result = kubectl(module_env, "--as=exec-create", "exec", "-n", workload, "web", "--", "true")
        return result.returncode == 0

    from tests import support
    support.wait_for(allowed, timeout=15, what="the exec-create binding to take effect")
    result = kubectl(module_env, "--as=exec-get", "exec", "-n", workload, "web", "--", "true")
    assert result.returncode == 1
    assert b'cannot create resource "pods/exec"' in result.stderr, result.stderr


def test_exec_into_pods_that_do_not_run(module_env, workload, admin, node_agent):
    from tests.node import helpers

    done = helpers.pod("done", node_agent.name, helpers.container(command=["true"]), restartPolicy="Never")
    admin.create("v1", "pods", done, namespace=workload)
    unscheduled = helpers.pod("nowhere", "", helpers.container())
    del unscheduled["spec"]["nodeName"]
    admin.create("v1", "pods", unscheduled, namespace=workload)
    helpers.wait_pod(admin, workload, "done", lambda p: p["status"].get("phase") == "Succeeded",
                     what="done Succeeded")
    result = kubectl(module_env, "exec", "-n", workload, "done", "--", "true", timeout=30)
    assert result.returncode == 1
    assert b"cannot exec into a container in a completed pod; current phase is Succeeded" in result.stderr
    result = kubectl(module_env, "exec", "-n", workload, "nowhere", "--", "true", timeout=30)
    assert result.returncode == 1
    assert b"pod nowhere does not have a host assigned" in result.stderr, result.stderr
