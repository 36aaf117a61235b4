"""The node agent's pure rules, without Docker: phases, backoff, pull policy, rendering, env, volume paths."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from reconcile.node import backoff, containers, docker, environment, plan, pods, render, status, volumes

NODE = render.NodeView("n1", "127.0.0.1", "reconcile-n1", "reconcile-pause:1.0", "10.9.0.0/24")
POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
       "spec": {"containers": [{"name": "c", "image": "img:1"}]}, "status": {}}


def _state(kind: str, **fields) -> dict:
    return {"name": "c", "ready": False, "restartCount": 0, "state": {kind: fields}, "lastState": {}}


@pytest.mark.parametrize(("states", "policy", "expected"), [
    ([_state("waiting", reason="ContainerCreating")], "Always", "Pending"),
    ([_state("running")], "Never", "Running"),
    ([_state("terminated", exitCode=0)], "Never", "Succeeded"),
    ([_state("terminated", exitCode=1)], "Never", "Failed"),
    ([_state("terminated", exitCode=0), _state("terminated", exitCode=2)], "OnFailure", "Running"),
    ([_state("terminated", exitCode=0)], "OnFailure", "Succeeded"),
    ([_state("terminated", exitCode=0)], "Always", "Running"),
    ([{**_state("waiting", reason="CrashLoopBackOff"), "lastState": {"terminated": {"exitCode": 1}}}],
     "Always", "Running"),
])
def test_phase_follows_the_kubelet(states, policy, expected):
    assert status.phase(states, policy, previous="Running") == expected


def test_terminal_phase_is_sticky():
    assert status.phase([_state("running")], "Always", previous="Failed") == "Failed"


def test_crash_backoff_first_restart_is_immediate_then_doubles_to_the_cap():
    assert [backoff.crash_delay(n) for n in range(7)] == [0, 10, 20, 40, 80, 160, 300]
    assert backoff.crash_delay(50) == 300


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("localhost:5000/x", "Always"),
    ("reconcile-hello:1.0", "IfNotPresent"), ("127.0.0.1:1/missing:1", "IfNotPresent"),
])
def test_default_pull_policy(image, policy):
    assert pods.default_pull_policy(image) == policy


def test_split_image_handles_registry_ports_and_digests():
    assert docker.split_image("127.0.0.1:1/missing:1") == ("127.0.0.1:1/missing", "1")
    assert docker.split_image("localhost:5000/a/b") == ("localhost:5000/a/b", "latest")
    assert docker.split_image("a@sha256:00") == ("a@sha256:00", "")


def test_should_restart():
    assert plan.should_restart("Always", 0) and plan.should_restart("OnFailure", 1)
    assert not plan.should_restart("OnFailure", 0) and not plan.should_restart("Never", 1)


def test_container_template_maps_the_pod_onto_docker_arguments():
    container = {"name": "c", "image": "img:1", "command": ["/bin/app"], "workingDir": "/w",
                 "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
    spec = render.Renderer().container(pod=POD, container=container, node=NODE, name="k8s_c", labels={"l": "v"},
                                       infra_id="abc", env=[{"name": "A", "value": "1"}], command=["/bin/app"],
                                       args=None, mounts=["/h:/c:ro"])
    assert spec["entrypoint"] == ["/bin/app"] and spec["command"] == []  # a command alone drops the image CMD
    assert spec["network_mode"] == "container:abc" and spec["working_dir"] == "/w"
    assert spec["mem_limit"] == 64 * 1024 * 1024 and spec["nano_cpus"] == 250_000_000
    assert spec["environment"] == ["A=1"] and spec["volumes"] == ["/h:/c:ro"] and spec["labels"] == {"l": "v"}


def test_infra_template_publishes_host_ports():
    pod = json.loads(json.dumps(POD))
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080},
                                             {"containerPort": 53, "hostPort": 5353, "protocol": "UDP",
                                              "hostIP": "127.0.0.2"},
                                             {"containerPort": 9000}]
    spec = render.Renderer().infra(pod=pod, node=NODE, name="k8s_POD", labels={})
    assert spec["ports"] == {"80/tcp": {"HostIp": "127.0.0.1", "HostPort": "8080"},
                             "53/udp": {"HostIp": "127.0.0.2", "HostPort": "5353"}}
    assert spec["network"] == "reconcile-n1" and spec["hostname"] == "p"


def test_user_templates_override_and_strict_undefined_fails_loudly(tmp_path: Path):
    (tmp_path / "infra.json.j2").write_text('{"image": {{ node.infra_image | tojson }}, "name": "custom"}')
    renderer = render.Renderer(tmp_path)
    assert renderer.infra(pod=POD, node=NODE, name="x", labels={}) == {"image": "reconcile-pause:1.0",
                                                                       "name": "custom"}
    (tmp_path / "container.json.j2").write_text('{"image": "{{ container.no_such_field }}"}')
    with pytest.raises(render.RenderError, match="no_such_field"):
        renderer.container(pod=POD, container=POD["spec"]["containers"][0], node=NODE, name="x", labels={},
                           infra_id="i", env=[], command=None, args=None, mounts=[])
    (tmp_path / "container.json.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(render.RenderError):
        renderer.container(pod=POD, container=POD["spec"]["containers"][0], node=NODE, name="x", labels={},
                           infra_id="i", env=[], command=None, args=None, mounts=[])


def test_env_resolution_expands_references_and_reports_missing_keys():
    objects = {("configmaps", "cm"): {"data": {"k": "v"}},
               ("secrets", "s"): {"data": {"pw": base64.b64encode(b"p").decode()}}}

    async def fetch(plural: str, namespace: str, name: str):
        return objects.get((plural, name))

    container = {"name": "c", "image": "i", "args": ["$(A)", "$$(A)", "$(UNKNOWN)"],
                 "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                 "env": [{"name": "A", "value": "a"}, {"name": "B", "value": "$(A)-$(CM_k)"},
                         {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                         {"name": "O", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x",
                                                                          "optional": True}}}]}
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}, "spec": {}, "status": {}}
    env, command, args = asyncio.run(environment.resolve(pod, container, fetch, host_ip="127.0.0.1"))
    assert {e["name"]: e["value"] for e in env} == {"CM_k": "v", "A": "a", "B": "a-v", "P": "p", "L": "web"}
    assert command is None and args == ["a", "$(A)", "$(UNKNOWN)"]
    container["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "absent"}}})
    with pytest.raises(environment.ConfigError, match="couldn't find key absent"):
        asyncio.run(environment.resolve(pod, container, fetch, host_ip="127.0.0.1"))


def test_volume_paths_cannot_escape(tmp_path: Path):
    async def fetch(plural: str, namespace: str, name: str):
        return {"data": {"k": "v"}}

    vols = volumes.Volumes(tmp_path, fetch)
    pod = {"metadata": {"uid": "u", "namespace": "ns"},
           "spec": {"volumes": [{"name": "c", "configMap": {"name": "x", "items": [{"key": "k", "path": "../x"}]}}]}}
    with pytest.raises(volumes.VolumeError, match="must not contain"):
        asyncio.run(vols.prepare(pod))
    with pytest.raises(volumes.VolumeError):
        vols.mounts({"volumeMounts": [{"name": "c", "mountPath": "/m", "subPath": "/abs"}]}, {"c": str(tmp_path)})


def test_labels_and_names_follow_the_contract():
    labels = containers.labels_for(POD, "c", node="n1", restarts=2)
    assert labels == {"reconcile.pod.uid": "u-1", "reconcile.pod.namespace": "ns", "reconcile.pod.name": "p",
                      "reconcile.container.name": "c", "reconcile.node": "n1", "reconcile.restart-count": "2"}
    assert containers.docker_name(POD, "c", 2) == "k8s_c_p_ns_u-1_2"


async def test_agent_health_reports_what_its_supervisor_finds() -> None:
    """/readyz fails while an informer is stopped, /healthz only once it stayed stopped (liveness)."""
    import httpx

    from reconcile.node import server

    problems: dict[str, list[str]] = {"ready": ["informer for pods stopped"], "live": []}
    app = server.create_app(None, None, readiness=lambda: problems["ready"],  # type: ignore[arg-type]
                            liveness=lambda: problems["live"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and "informer for pods" in ready.text
        assert (await http.get("/healthz")).status_code == 200
        problems["live"] = ["informer for pods stopped"]
        assert (await http.get("/healthz")).status_code == 503
        problems["ready"], problems["live"] = [], []
        assert (await http.get("/readyz")).status_code == 200 and (await http.get("/healthz")).status_code == 200
