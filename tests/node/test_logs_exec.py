"""Logs and exec through the API server (proxied to the node agent), the CLI and kubectl."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from reconcile.core import errors, execstream
from tests import support
from tests.conftest import run_cli
from tests.node import helpers

PRINTER = ["sh", "-c", "trap 'exit 0' TERM; for i in 1 2 3 4 5; do echo line $i; done; "
           "while :; do sleep 3600 & wait; done"]
TICKER = ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1 & wait; done"]


@pytest.fixture(scope="module")
def printer(api_server, node_agent):
    """A pod whose container printed five lines, plus a deployment whose pod ticks forever."""
    from reconcile.client import api as client_api

    client = client_api.Client(support.connection(api_server).client_config())
    ns = "logs"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.create("v1", "pods", helpers.pod("printer", node_agent.name, helpers.container(command=PRINTER)),
                  namespace=ns)
    ticker = helpers.pod("ticker-1", node_agent.name, helpers.container("tick", command=TICKER),
                         helpers.container("web"))
    ticker["metadata"]["labels"] = {"app": "ticker"}
    client.create("v1", "pods", ticker, namespace=ns)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ticker"},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "ticker"}},
                           "template": {"metadata": {"labels": {"app": "ticker"}},
                                        "spec": {"containers": [{"name": "tick", "image": helpers.HELLO}]}}}}
    client.create("apps/v1", "deployments", deployment, namespace=ns)
    for name in ("printer", "ticker-1"):
        helpers.wait_pod(client, ns, name, helpers.running_ready, what=f"{name} Ready")
    support.wait_for(lambda: "line 5" in _log(client, ns, "printer"), what="five lines printed")
    yield ns
    client.close()


def _log(client, ns: str, pod: str, **params: str) -> str:
    return client.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log", params=params).text


def test_logs_through_the_api_server(client, printer):
    assert _log(client, printer, "printer") == "".join(f"line {i}\n" for i in range(1, 6))
    assert _log(client, printer, "printer", tailLines="2") == "line 4\nline 5\n"
    stamped = _log(client, printer, "printer", tailLines="1", timestamps="true")
    assert stamped.endswith(" line 5\n") and stamped[:4].isdigit()
    with pytest.raises(errors.BadRequest, match="a container name must be specified"):
        _log(client, printer, "ticker-1")
    with pytest.raises(errors.BadRequest, match="not valid"):
        _log(client, printer, "printer", container="nope")


def test_follow_streams_new_lines(client, printer):
    response = client.request("GET", f"/api/v1/namespaces/{printer}/pods/ticker-1/log",
                              params={"container": "tick", "follow": "true", "tailLines": "1"}, stream=True)
    lines: list[str] = []
    try:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 4:
                break
    finally:
        response.close()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + 4))


def test_reconcile_logs_cli(api_server, printer):
    result = run_cli("logs", "printer", "-n", printer, "--tail", "2", server=api_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line 4\nline 5\n"
    result = run_cli("logs", "deploy/ticker", "-n", printer, "-c", "tick", "--tail", "1", server=api_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tick ")


def test_kubectl_logs(kube_env, printer):
    result = subprocess.run(["kubectl", "logs", "printer", "-n", printer, "--tail=3"], env=kube_env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line 3\nline 4\nline 5\n"
    result = subprocess.run(["kubectl", "logs", "deploy/ticker", "-c", "tick", "-n", printer, "--tail=1"],
                            env=kube_env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tick ")
    follow = subprocess.Popen(["kubectl", "logs", "-f", "ticker-1", "-c", "tick", "-n", printer, "--tail=1"],
                              env=kube_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in range(3)]
        assert all(line.startswith("tick ") for line in lines)
    finally:
        follow.kill()
        follow.wait()


def test_exec_through_the_api_server_and_cli(client, api_server, printer):
    """A client that does not ask for the stream gets the buffered JSON answer, as before streaming."""
    response = client.request("POST", f"/api/v1/namespaces/{printer}/pods/printer/exec",
                              json={"command": ["sh", "-c", "echo out; echo err >&2; exit 4"]})
    body = response.json()
    assert body["exitCode"] == 4 and "out\n" in body["output"] and "err\n" in body["output"]
    result = run_cli("exec", "printer", "-n", printer, "--", "cat", "/www/index.html", server=api_server)
    assert result.returncode == 0 and result.stdout == "hello\n", result.stderr
    result = run_cli("exec", "ticker-1", "-n", printer, "-c", "web", "--", "sh", "-c", "exit 7", server=api_server)
    assert result.returncode == 7


# --- exec streams until the command ends ---------------------------------------------------------

def _exec_path(ns: str, pod: str = "printer") -> str:
    return f"/api/v1/namespaces/{ns}/pods/{pod}/exec"


def _frames(response) -> Iterator[tuple[int, bytes]]:
    decoder = execstream.Decoder()
    for chunk in response.iter_raw():
        yield from decoder.feed(chunk)


def _app_container(client, docker_node, ns: str, pod: str = "printer") -> str:
    uid = helpers.get_pod(client, ns, pod)["metadata"]["uid"]
    return helpers.app_containers(docker_node, uid, "app")[0]["Id"]


def _processes(docker_node, container: str) -> str:
    return docker_node.docker("exec", container, "ps", "-o", "pid,args").stdout


def _gated(marker: str) -> list[str]:
    """Prints, waits until the test writes to its fifo (so it cannot end on its own), prints again."""
    fifo = f"/tmp/gate-{marker}"
    return ["sh", "-c", f"mkfifo {fifo} && echo first && read word < {fifo} && echo second $word >&2 && exit 3"]


def test_exec_streams_output_as_it_is_written_then_the_exit_code(client, printer, docker_node):
    marker = uuid.uuid4().hex[:8]
    container = _app_container(client, docker_node, printer)
    response = client.request("POST", _exec_path(printer), json={"command": _gated(marker)},
                              headers={"Accept": execstream.ACCEPT}, stream=True)
    try:
        assert response.headers["content-type"].startswith(execstream.MEDIA_TYPE)
        frames = _frames(response)
        assert next(frames) == (execstream.STDOUT, b"first\n")
        # the command is still blocked on its fifo: the output came while it runs, not at its end
        assert f"gate-{marker}" in _processes(docker_node, container)
        docker_node.docker("exec", container, "sh", "-c", f"echo go > /tmp/gate-{marker}")
        rest = list(frames)
    finally:
        response.close()
    assert rest[0] == (execstream.STDERR, b"second go\n")
    assert [channel for channel, _ in rest] == [execstream.STDERR, execstream.STATUS]
    assert execstream.exit_code(json.loads(rest[-1][1])) == 3


def test_reconcile_exec_prints_as_it_goes_and_exits_with_the_code(api_server, client, printer, docker_node):
    marker = uuid.uuid4().hex[:8]
    container = _app_container(client, docker_node, printer)
    cli = subprocess.Popen([sys.executable, "-m", "reconcile", "exec", "printer", "-n", printer, "--",
                            *_gated(marker)], env=support.connection(api_server).env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert cli.stdout is not None and cli.stdout.readline() == b"first\n"
        assert cli.poll() is None, "reconcile exec ended before its command did"
        docker_node.docker("exec", container, "sh", "-c", f"echo go > /tmp/gate-{marker}")
        out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 3 and out == b"" and err == b"second go\n"
    failed = run_cli("exec", "printer", "-n", printer, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                     server=api_server)
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    missing = run_cli("exec", "printer", "-n", printer, "-c", "nope", "--", "true", server=api_server)
    assert missing.returncode == 1 and "not valid" in missing.stderr


def test_exec_relays_large_output_in_frames(api_server, printer):
    size = 3_000_000  # many Docker reads, frames cut across HTTP chunks
    result = subprocess.run([sys.executable, "-m", "reconcile", "exec", "printer", "-n", printer, "--", "sh", "-c",
                             f"head -c {size} /dev/zero | tr '\\0' x; echo done >&2"],
                            env=support.connection(api_server).env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"x" * size and result.stderr == b"done\n"


def _sleeper(marker: str) -> list[str]:
    """Prints, then sleeps in a child process (so only killing the group ends both), tagged by `marker`."""
    return ["sh", "-c", f"echo started; sleep 86{marker}; echo never"]


def _wait_gone(docker_node, container: str, marker: str) -> str:
    """The container's process list once the exec'd processes tagged `marker` are no longer in it."""
    return support.wait_for(lambda: marker not in (ps := _processes(docker_node, container)) and ps, timeout=15,
                            what=f"the exec'd processes ({marker}) killed in the container")


def _numeric_marker() -> str:
    return str(uuid.uuid4().int % 10**6).zfill(6)


def test_a_streaming_client_that_leaves_kills_the_command(client, printer, docker_node):
    marker = _numeric_marker()
    container = _app_container(client, docker_node, printer)
    response = client.request("POST", _exec_path(printer), json={"command": _sleeper(marker)},
                              headers={"Accept": execstream.ACCEPT}, stream=True)
    frames = _frames(response)  # kept: dropping the generator would close the response by itself
    try:
        assert next(frames) == (execstream.STDOUT, b"started\n")
        assert f"sleep 86{marker}" in _processes(docker_node, container)
    finally:
        response.close()
    assert marker not in _wait_gone(docker_node, container, marker)


def test_killing_reconcile_exec_kills_the_command(api_server, client, printer, docker_node):
    marker = _numeric_marker()
    container = _app_container(client, docker_node, printer)
    cli = subprocess.Popen([sys.executable, "-m", "reconcile", "exec", "printer", "-n", printer, "--",
                            *_sleeper(marker)], env=support.connection(api_server).env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert cli.stdout is not None and cli.stdout.readline() == b"started\n"
        assert f"sleep 86{marker}" in _processes(docker_node, container)
    finally:
        cli.send_signal(signal.SIGKILL)  # no goodbye: only the closed connection tells the server
        cli.wait()
    assert marker not in _wait_gone(docker_node, container, marker)


def test_a_buffered_client_that_leaves_kills_the_command(api_server, client, printer, docker_node):
    marker = _numeric_marker()
    container = _app_container(client, docker_node, printer)
    body = json.dumps({"command": _sleeper(marker)}).encode()
    url = urlsplit(api_server)
    context = support.connection(api_server).ssl_context()  # the admin's certificate on a secured server
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw, \
            (context.wrap_socket(raw, server_hostname=url.hostname) if isinstance(context, ssl.SSLContext)
             else raw) as sock:
        sock.sendall(f"POST {_exec_path(printer)} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        running = support.wait_for(lambda: f"sleep 86{marker}" in (ps := _processes(docker_node, container)) and ps,
                                   timeout=15, what="the command running")
        assert f"sleep 86{marker}" in running
    assert marker not in _wait_gone(docker_node, container, marker)


def test_previous_logs_after_a_restart(client, printer, docker_node):
    pod = helpers.get_pod(client, printer, "printer")
    old = helpers.app_containers(docker_node, pod["metadata"]["uid"], "app")[0]["Id"]
    docker_node.docker("kill", old)
    helpers.wait_pod(client, printer, "printer",
                     lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                     what="printer restarted")
    assert _log(client, printer, "printer", previous="true").endswith("line 5\n")
