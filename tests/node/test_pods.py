"""A pod bound to the node runs on Docker, with status, networking, env, volumes and ports."""

from __future__ import annotations

import base64

import httpx

from tests import support
from tests.node import helpers

SIDECAR = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


def test_pod_runs_and_reports_status(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("web", node_agent.name, helpers.container()), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "web", helpers.running_ready, what="web Running and Ready")
    status = obj["status"]
    assert status["podIP"].startswith(node_agent.pod_cidr.rsplit(".", 1)[0])
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "127.0.0.1"
    assert status["startTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    cs = helpers.container_status(obj, "app")
    assert cs["ready"] is True and cs["restartCount"] == 0 and cs["containerID"].startswith("docker://")
    assert "running" in cs["state"] and cs["image"] == helpers.HELLO and cs["imageID"].startswith("docker://sha256:")
    found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")
    assert len(found) == 1 and found[0]["State"]["Running"]
    assert found[0]["Id"] == cs["containerID"].removeprefix("docker://")
    labels = found[0]["Config"]["Labels"]
    assert labels["reconcile.pod.name"] == "web" and labels["reconcile.pod.namespace"] == namespace
    assert labels["reconcile.node"] == node_agent.name and labels["reconcile.restart-count"] == "0"
    infra = helpers.app_containers(docker_node, obj["metadata"]["uid"], "POD")
    assert len(infra) == 1 and found[0]["HostConfig"]["NetworkMode"] == f"container:{infra[0]['Id']}"


def test_containers_share_localhost_and_pods_reach_each_other(client, namespace, node_agent, docker_node):
    # the sidecar is Ready only once it reaches the web server on localhost
    probe = {"exec": {"command": ["wget", "-qO-", "http://localhost:8080/"]}, "periodSeconds": 1}
    two = helpers.pod("two", node_agent.name, helpers.container("web"),
                      helpers.container("sidecar", command=SIDECAR, readinessProbe=probe))
    client.create("v1", "pods", two, namespace=namespace)
    tcp = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    web = helpers.container("web", ports=[{"name": "http", "containerPort": 8080}], readinessProbe=tcp)
    client.create("v1", "pods", helpers.pod("other", node_agent.name, web), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "two", helpers.running_ready, what="two Ready")
    other = helpers.wait_pod(client, namespace, "other", helpers.running_ready, what="other Ready")
    sidecar = helpers.app_containers(docker_node, obj["metadata"]["uid"], "sidecar")[0]["Id"]
    assert docker_node.docker("exec", sidecar, "wget", "-qO-", "http://localhost:8080/").stdout == "hello\n"
    by_ip = f"http://{other['status']['podIP']}:8080/"
    assert docker_node.docker("exec", sidecar, "wget", "-qO-", by_ip).stdout == "hello\n"


def test_env_and_volumes_from_configmap_secret_and_fields(client, namespace, node_agent, docker_node):
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                       "data": {"greeting": "hi there", "other": "x"}}, namespace=namespace)
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                                    "data": {"password": base64.b64encode(b"s3cret").decode()}}, namespace=namespace)
    env = [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "COMBINED", "value": "$(POD_NAME)-$(GREETING)"},
    ]
    mounts = [{"name": "config", "mountPath": "/etc/config"}, {"name": "secret", "mountPath": "/etc/secret"},
              {"name": "scratch", "mountPath": "/scratch"}]
    volumes = [
        {"name": "config", "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "sub/greeting.txt"}]}},
        {"name": "secret", "secret": {"secretName": "sec"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    spec = helpers.pod("envy", node_agent.name, helpers.container(env=env, volumeMounts=mounts), volumes=volumes)
    client.create("v1", "pods", spec, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "envy", helpers.running_ready, what="envy Ready")
    found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
    values = dict(e.split("=", 1) for e in found["Config"]["Env"])
    assert values["GREETING"] == "hi there" and values["PASSWORD"] == "s3cret"
    assert values["POD_NAME"] == "envy" and values["POD_NAMESPACE"] == namespace
    assert values["POD_IP"] == obj["status"]["podIP"] and values["COMBINED"] == "envy-hi there"
    cat = docker_node.docker("exec", found["Id"], "cat", "/etc/config/sub/greeting.txt", "/etc/secret/password")
    assert cat.stdout == "hi theres3cret"
    assert docker_node.docker("exec", found["Id"], "ls", "/etc/config").stdout.split() == ["sub"]
    assert docker_node.docker("exec", found["Id"], "touch", "/scratch/file").returncode == 0


def test_missing_configmap_waits_with_config_error(client, namespace, node_agent):
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    client.create("v1", "pods", helpers.pod("noconf", node_agent.name, helpers.container(env=env)), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "noconf", lambda o: (helpers.container_status(o, "app").get("state") or {})
                           .get("waiting", {}).get("reason") == "CreateContainerConfigError", what="config error")
    assert "absent" in helpers.container_status(obj, "app")["state"]["waiting"]["message"]
    assert obj["status"]["phase"] == "Pending"


def test_host_port_is_published_on_the_node(client, namespace, node_agent):
    port = support.free_port()
    spec = helpers.pod("hp", node_agent.name, helpers.container(ports=[{"containerPort": 8080, "hostPort": port}]))
    client.create("v1", "pods", spec, namespace=namespace)
    helpers.wait_pod(client, namespace, "hp", helpers.running_ready, what="hp Ready")
    answer = support.wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=2), what="hostPort answers")
    assert answer.text == "hello\n"
