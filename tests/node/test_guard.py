"""The node agent's second line of defence, pure and against a real dockerd: pods that got past Pod
Security admission (admitted, then their namespace was labelled, then they were bound) are
rejected before anything of them runs, unless their namespace enforces privileged; hostPath under
the node's allow-list is fine anywhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.client import api as client_api
from reconcile.node import guard
from tests import support
from tests.node import helpers

ENFORCE = "pod-security.kubernetes.io/enforce"


# --- pure ------------------------------------------------------------------------------------------

def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def test_problems_name_what_needs_privileged() -> None:
    pod = _pod(hostNetwork=True, hostIPC=True,
               initContainers=[{"name": "init", "image": "x", "securityContext": {"privileged": True}}],
               volumes=[{"name": "root", "hostPath": {"path": "/"}}, {"name": "tmp", "emptyDir": {}},
                        {"name": "data", "hostPath": {"path": "/srv/data"}}])
    assert guard.problems(pod, allowed_host_paths=("/srv",)) == [
        'privileged (container "init" must not set securityContext.privileged=true)',
        "host namespaces (hostNetwork=true, hostIPC=true)",
        "hostPath volumes (volume \"root\" (/) outside the node's allowed host paths: /srv)"]
    assert guard.problems(_pod(volumes=[{"name": "data", "hostPath": {"path": "/srv/data"}}]),
                          allowed_host_paths=("/srv",)) == []
    assert guard.problems(_pod()) == []


def test_the_allow_list_is_component_wise_and_sees_through_dot_dot_and_links(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, allowed / "escape")
    prefixes = (str(allowed),)
    assert guard.host_path_allowed(str(allowed), prefixes)
    assert guard.host_path_allowed(str(allowed / "sub" / "file"), prefixes)
    assert not guard.host_path_allowed(str(allowed) + "x", prefixes)
    assert not guard.host_path_allowed(str(allowed / ".." / "outside"), prefixes)
    assert not guard.host_path_allowed(str(allowed / "escape"), prefixes)  # a link out of the allowed directory
    assert not guard.host_path_allowed("relative/path", prefixes)
    assert not guard.host_path_allowed(str(allowed), ())


def test_namespace_levels() -> None:
    def ns(value: str | None) -> dict[str, Any]:
        return {"metadata": {"labels": {ENFORCE: value} if value else {}}}

    assert guard.namespace_level(ns("baseline"), guard.PRIVILEGED) == "baseline"
    assert guard.namespace_level(ns(None), guard.PRIVILEGED) == "privileged"
    assert guard.namespace_level(ns(None), "restricted") == "restricted"
    assert guard.namespace_level(ns("bogus"), "baseline") == "baseline"


# --- with a real dockerd ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def allowed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("allowed-host-paths"))


@pytest.fixture(scope="module")
def agent_args(allowed_dir: Path) -> tuple[str, ...]:
    return ("--lease-interval", "2", "--allowed-host-paths", str(allowed_dir))


@pytest.fixture
def http(api_server: str) -> Iterator[httpx.Client]:
    with support.connection(api_server).http_client() as c:
        yield c


def _sneak_in(client: client_api.Client, http: httpx.Client, namespace: str, node: str, name: str,
              level: str | None, *, container: dict[str, Any] | None = None, **spec: Any) -> None:
    """Create the pod unscheduled in an unlabelled (privileged by default) namespace, then label the
    namespace, then bind the pod: admission saw it under privileged, the node sees the new label."""
    body = helpers.pod(name, node, container or helpers.container(), **spec)
    del body["spec"]["nodeName"]
    client.create("v1", "pods", body, namespace=namespace)
    if level:
        client.patch("v1", "namespaces", namespace, {"metadata": {"labels": {ENFORCE: level}}})
    response = http.post(f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
                         json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                               "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    assert response.status_code == 201, response.text


def _events(client: client_api.Client, namespace: str, pod: str) -> list[dict[str, Any]]:
    items = client.list("v1", "events", namespace=namespace).get("items") or []
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == pod]


def test_a_privileged_pod_in_a_baseline_namespace_is_rejected(client, http, namespace, node_agent, docker_node):
    _sneak_in(client, http, namespace, node_agent.name, "root", "baseline", hostPID=True,
              volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])
    obj = helpers.wait_pod(client, namespace, "root", lambda o: (o.get("status") or {}).get("phase") == "Failed",
                           what="the pod rejected")
    message = (f'the node refuses pod "root": host namespaces (hostPID=true); hostPath volumes (volume "etc" (/etc) '
               f"outside the node's allowed host paths: {node_agent.extra_args[-1]}); namespace \"{namespace}\" "
               'enforces Pod Security level "baseline", and only "privileged" allows this')
    assert obj["status"]["reason"] == "Forbidden"
    assert obj["status"]["message"] == f"Pod was rejected: {message}"
    assert helpers.pod_containers(docker_node, obj["metadata"]["uid"]) == []  # not even the sandbox
    support.wait_for(lambda: [e for e in _events(client, namespace, "root")
                              if e["reason"] == "Forbidden" and e["type"] == "Warning" and e["message"] == message],
                     timeout=15, what="the Forbidden event")


def test_the_same_pod_runs_where_the_namespace_enforces_privileged(client, http, namespace, node_agent, docker_node):
    _sneak_in(client, http, namespace, node_agent.name, "trusted", "privileged", hostIPC=True)
    obj = helpers.wait_pod(client, namespace, "trusted", helpers.running_ready, what="trusted Running")
    assert helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")


def test_an_unlabelled_namespace_follows_the_default_level(client, http, namespace, node_agent, docker_node):
    _sneak_in(client, http, namespace, node_agent.name, "plain", None,
              volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])
    obj = helpers.wait_pod(client, namespace, "plain", helpers.running_ready,
                           what="plain Running (default privileged)")
    assert obj["status"]["phase"] == "Running"  # not rejected: the default level is privileged
    assert helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")


def test_host_paths_under_the_allow_list_run_anywhere(client, http, namespace, node_agent, docker_node, allowed_dir):
    data = allowed_dir / "data"
    data.mkdir(exist_ok=True)
    (data / "hello.txt").write_text("from the host\n")
    container = helpers.container(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    _sneak_in(client, http, namespace, node_agent.name, "reader", "restricted", container=container,
              volumes=[{"name": "data", "hostPath": {"path": str(data)}}])
    obj = helpers.wait_pod(client, namespace, "reader", helpers.running_ready, what="reader Running")
    app = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]["Id"]
    assert docker_node.docker("exec", app, "cat", "/data/hello.txt").stdout == "from the host\n"
