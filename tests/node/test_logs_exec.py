"""Logs and exec through the API server (proxied to the node agent), the CLI and kubectl."""

from __future__ import annotations

import subprocess

import pytest

from reconcile.core import errors
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

    client = client_api.Client(api_server)
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
    response = client.request("POST", f"/api/v1/namespaces/{printer}/pods/printer/exec",
                              json={"command": ["sh", "-c", "echo out; echo err >&2; exit 4"]})
    body = response.json()
    assert body["exitCode"] == 4 and "out\n" in body["output"] and "err\n" in body["output"]
    result = run_cli("exec", "printer", "-n", printer, "--", "cat", "/www/index.html", server=api_server)
    assert result.returncode == 0 and result.stdout == "hello\n", result.stderr
    result = run_cli("exec", "ticker-1", "-n", printer, "-c", "web", "--", "sh", "-c", "exit 7", server=api_server)
    assert result.returncode == 7


def test_previous_logs_after_a_restart(client, printer, docker_node):
    pod = helpers.get_pod(client, printer, "printer")
    old = helpers.app_containers(docker_node, pod["metadata"]["uid"], "app")[0]["Id"]
    docker_node.docker("kill", old)
    helpers.wait_pod(client, printer, "printer",
                     lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                     what="printer restarted")
    assert _log(client, printer, "printer", previous="true").endswith("line 5\n")
