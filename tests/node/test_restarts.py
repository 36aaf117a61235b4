"""Healing and probes: killed containers restart in place, probes restart and gate, restartPolicy, pulls."""

from __future__ import annotations

from reconcile.core import meta
from tests import support
from tests.node import helpers

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


def _waiting_reason(obj: dict, name: str = "app") -> str | None:
    return ((helpers.container_status(obj, name).get("state") or {}).get("waiting") or {}).get("reason")


def _events(client, namespace: str, pod: str) -> list[dict]:
    items = client.list("v1", "events", namespace=namespace).get("items") or []
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == pod]


def test_docker_kill_restarts_in_place_within_a_second(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("victim", node_agent.name, helpers.container()), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "victim", helpers.running_ready, what="victim Ready")
    uid, ip = obj["metadata"]["uid"], obj["status"]["podIP"]
    old = helpers.app_containers(docker_node, uid, "app")[0]["Id"]
    docker_node.docker("kill", old)
    new = support.wait_for(lambda: [c for c in helpers.app_containers(docker_node, uid, "app") if c["Id"] != old],
                           timeout=10, interval=0.02, what="a new app container running")[0]
    dead = docker_node.inspect(old)
    # the latency from Docker's own clock: when the old one died -> when the new one started
    latency = (meta.parse_time(new["State"]["StartedAt"]) - meta.parse_time(dead["State"]["FinishedAt"])).total_seconds()
    print(f"restart latency after docker kill: {latency:.3f}s")
    assert latency < 1.0, f"restart took {latency:.3f}s"
    assert new["Config"]["Labels"]["reconcile.restart-count"] == "1"
    obj = helpers.wait_pod(client, namespace, "victim",
                           lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                           what="restartCount 1 and Ready")
    status = helpers.container_status(obj, "app")
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert obj["status"]["podIP"] == ip  # the infra container kept the pod's network
    # the second crash in a row backs off (10 s): CrashLoopBackOff while waiting
    docker_node.docker("kill", new["Id"])
    obj = helpers.wait_pod(client, namespace, "victim", lambda o: _waiting_reason(o) == "CrashLoopBackOff",
                           what="CrashLoopBackOff")
    assert helpers.container_status(obj, "app")["restartCount"] == 1
    assert obj["status"]["phase"] == "Running" and helpers.condition(obj, "Ready") == "False"
    support.wait_for(lambda: any(e["reason"] == "BackOff" for e in _events(client, namespace, "victim")),
                     what="a BackOff event")


def test_failing_liveness_probe_restarts_the_container(client, namespace, node_agent):
    probe = {"httpGet": {"path": "/missing", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    client.create("v1", "pods", helpers.pod("sick", node_agent.name, helpers.container(livenessProbe=probe)),
                  namespace=namespace)
    helpers.wait_pod(client, namespace, "sick", lambda o: helpers.container_status(o, "app").get("restartCount", 0) >= 1,
                     timeout=30, what="a liveness restart")
    reasons = {e["reason"] for e in _events(client, namespace, "sick")}
    assert {"Unhealthy", "Killing", "Created", "Started"} <= reasons


def test_readiness_gates_ready_until_the_probe_passes(client, namespace, node_agent, docker_node):
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
    client.create("v1", "pods", helpers.pod("gated", node_agent.name, helpers.container(readinessProbe=probe)),
                  namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "gated", lambda o: o["status"].get("phase") == "Running",
                           what="gated Running")
    uid = obj["metadata"]["uid"]
    assert helpers.condition(obj, "Ready") == "False" and helpers.condition(obj, "ContainersReady") == "False"
    assert helpers.container_status(obj, "app")["ready"] is False
    container = helpers.app_containers(docker_node, uid, "app")[0]["Id"]
    docker_node.docker("exec", container, "touch", "/tmp/ready")
    helpers.wait_pod(client, namespace, "gated", helpers.running_ready, timeout=10, what="gated Ready")
    docker_node.docker("exec", container, "rm", "/tmp/ready")
    helpers.wait_pod(client, namespace, "gated", lambda o: helpers.condition(o, "Ready") == "False", timeout=10,
                     what="gated unready again")


def test_startup_probe_holds_readiness_back(client, namespace, node_agent, docker_node):
    startup = {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 60}
    client.create("v1", "pods", helpers.pod("slow", node_agent.name, helpers.container(startupProbe=startup)),
                  namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "slow", lambda o: o["status"].get("phase") == "Running", what="Running")
    assert helpers.condition(obj, "Ready") == "False"
    assert helpers.container_status(obj, "app")["started"] is False
    container = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]["Id"]
    docker_node.docker("exec", container, "touch", "/tmp/started")
    obj = helpers.wait_pod(client, namespace, "slow", helpers.running_ready, timeout=10, what="slow Ready")
    assert helpers.container_status(obj, "app")["started"] is True


def test_restart_policy_never_ends_in_succeeded_or_failed(client, namespace, node_agent):
    ok = helpers.pod("ok", node_agent.name, helpers.container(command=["sh", "-c", "exit 0"]), restartPolicy="Never")
    bad = helpers.pod("bad", node_agent.name, helpers.container(command=["sh", "-c", "exit 3"]), restartPolicy="Never")
    retry = helpers.pod("retry", node_agent.name, helpers.container(command=["sh", "-c", "exit 0"]),
                        restartPolicy="OnFailure")
    for spec in (ok, bad, retry):
        client.create("v1", "pods", spec, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "ok", lambda o: o["status"].get("phase") == "Succeeded", what="Succeeded")
    assert helpers.container_status(obj, "app")["state"]["terminated"]["reason"] == "Completed"
    obj = helpers.wait_pod(client, namespace, "bad", lambda o: o["status"].get("phase") == "Failed", what="Failed")
    terminated = helpers.container_status(obj, "app")["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert helpers.condition(obj, "Ready") == "False"
    obj = helpers.wait_pod(client, namespace, "retry", lambda o: o["status"].get("phase") == "Succeeded",
                           what="OnFailure + exit 0 -> Succeeded")
    assert helpers.container_status(obj, "app")["restartCount"] == 0


def test_unpullable_image_reports_err_image_pull_then_backoff(client, namespace, node_agent):
    spec = helpers.pod("nopull", node_agent.name, helpers.container(image="127.0.0.1:1/missing:1"))
    created = client.create("v1", "pods", spec, namespace=namespace)
    # ErrImagePull lasts only until the agent's next sync (milliseconds), so polling can miss it: watch
    # the pod from its creation and see every status it is given, in order.
    seen: list[str] = []
    for event in client.watch("v1", "pods", namespace=namespace, field_selector="metadata.name=nopull",
                              resource_version=created["metadata"]["resourceVersion"], timeout_seconds=25):
        reason = _waiting_reason(event["object"]) if event["type"] in ("ADDED", "MODIFIED") else None
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        if _backoff_after_error(seen):
            break
    assert _backoff_after_error(seen), seen
    obj = helpers.get_pod(client, namespace, "nopull")
    assert obj["status"]["phase"] == "Pending"
    reasons = {e["reason"] for e in _events(client, namespace, "nopull")}
    assert {"Pulling", "Failed"} <= reasons


def _backoff_after_error(reasons: list[str]) -> bool:
    return "ErrImagePull" in reasons and "ImagePullBackOff" in reasons[reasons.index("ErrImagePull"):]


def test_killed_infra_container_gets_a_new_sandbox(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("sandbox", node_agent.name, helpers.container()), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "sandbox", helpers.running_ready, what="sandbox Ready")
    uid = obj["metadata"]["uid"]
    infra = helpers.app_containers(docker_node, uid, "POD")[0]["Id"]
    docker_node.docker("kill", infra)
    obj = helpers.wait_pod(client, namespace, "sandbox",
                           lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                           what="a new sandbox and the app restarted in it")
    new_infra = helpers.app_containers(docker_node, uid, "POD")
    assert len(new_infra) == 1 and new_infra[0]["Id"] != infra
    app = helpers.app_containers(docker_node, uid, "app")
    assert len(app) == 1 and app[0]["HostConfig"]["NetworkMode"] == f"container:{new_infra[0]['Id']}"
    assert obj["status"]["podIP"]


def test_a_command_that_cannot_start_backs_off_instead_of_spinning(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("nocmd", node_agent.name, helpers.container(command=["/no/such/binary"])),
                  namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "nocmd", lambda o: _waiting_reason(o) == "CrashLoopBackOff",
                           what="CrashLoopBackOff for a binary that does not exist")
    uid = obj["metadata"]["uid"]
    attempts = helpers.app_containers(docker_node, uid, "app", running=False)
    assert len(attempts) <= 2  # current + previous kept; no pile of attempts
    assert helpers.container_status(obj, "app")["restartCount"] == 1
    assert helpers.container_status(obj, "app")["lastState"]["terminated"]["exitCode"] != 0


def test_a_changed_container_definition_is_restarted_in_place(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("changing", node_agent.name, helpers.container(command=SLEEPER),
                                            helpers.container("steady", command=SLEEPER)), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "changing", helpers.running_ready, what="changing Ready")
    uid = obj["metadata"]["uid"]
    old = helpers.app_containers(docker_node, uid, "app")[0]
    steady = helpers.app_containers(docker_node, uid, "steady")[0]["Id"]
    client.patch("v1", "pods", "changing", {"spec": {"containers": [
        {"name": "app", "image": helpers.PAUSE, "command": SLEEPER}, {"name": "steady", "image": helpers.HELLO,
                                                                    "command": SLEEPER}]}}, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "changing",
                           lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                           what="app restarted with its new image")
    [new] = helpers.app_containers(docker_node, uid, "app")
    assert new["Id"] != old["Id"] and new["Config"]["Image"] == helpers.PAUSE
    assert new["Config"]["Labels"]["reconcile.container.hash"] != old["Config"]["Labels"]["reconcile.container.hash"]
    assert helpers.container_status(obj, "app")["image"] == helpers.PAUSE
    assert [c["Id"] for c in helpers.app_containers(docker_node, uid, "steady")] == [steady], "the other kept running"
    assert docker_node.inspect(old["Id"])["State"]["Status"] == "exited", "the old attempt is kept as previous"
    messages = [e["message"] for e in _events(client, namespace, "changing") if e["reason"] == "Killing"]
    assert "Container app definition changed, will be restarted" in messages
