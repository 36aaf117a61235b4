"""End to end on real Docker engines: three nodes, each its own dockerd, the whole control plane.

The tests run in file order and share the module's cluster; the last one kills a node for good.
Deployments use the locally built `reconcile-hello:1.0` (busybox httpd; exits at once on SIGTERM).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.node import images
from tests import support
from tests.conftest import run_cli
from tests.e2e import conftest as e2e

APP = "app"
SERVE = ["sh", "-c", "echo serving $VALUE; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def deployment(name: str, replicas: int, *, value: str = "one", **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {
        "name": APP, "image": images.HELLO_IMAGE, "command": SERVE, "env": [{"name": "VALUE", "value": value}],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
    }
    if "resources" in pod_spec:
        container["resources"] = pod_spec.pop("resources")
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 5, "containers": [container],
                                           **pod_spec}}}}


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pods_of(client: client_api.Client, ns: str, app: str) -> list[dict[str, Any]]:
    """The app's pods that are not being deleted."""
    items = client.list("v1", "pods", namespace=ns, label_selector=f"app={app}").get("items") or []
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready_pods(client: client_api.Client, ns: str, app: str, count: int) -> list[dict[str, Any]] | None:
    pods = pods_of(client, ns, app)
    return pods if len(pods) == count and all(is_ready(p) for p in pods) else None


def wait_ready(client: client_api.Client, ns: str, app: str, count: int, *, timeout: float = 60,
               also: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        pods = ready_pods(client, ns, app, count)
        return pods if pods is not None and (also is None or also(pods)) else None

    return support.wait_for(done, timeout=timeout, interval=0.1, what=f"{count} Ready pods of {app}")


def running_containers(cluster: e2e.Cluster, ns: str, *, name: str = APP) -> list[tuple[str, str, str]]:
    """(node, container id, pod uid) of every running container `name` of namespace `ns`, on live nodes."""
    found = []
    for node in cluster.live_nodes():
        out = cluster.daemons[node].docker(
            "ps", "--no-trunc", "--filter", f"label=reconcile.pod.namespace={ns}",
            "--filter", f"label=reconcile.container.name={name}",
            "--format", '{{.ID}} {{.Label "reconcile.pod.uid"}}').stdout
        for line in out.splitlines():
            cid, _, uid = line.partition(" ")
            found.append((node, cid, uid))
    return found


def app_status(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == APP:
            return status
    return {}


def exec_in(client: client_api.Client, ns: str, pod: str, command: list[str]) -> dict[str, Any]:
    return client.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/exec",
                          json={"container": APP, "command": command}).json()


@pytest.fixture(scope="module")
def web(cluster: e2e.Cluster, api_server: str) -> str:
    """Namespace of the `web` Deployment (3 replicas) the tests below share."""
    with client_api.Client(support.connection(api_server).client_config()) as client:
        ns = "e2e-web"
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        client.create("apps/v1", "deployments", deployment("web", 3), namespace=ns)
        try:
            wait_ready(client, ns, "web", 3, timeout=90)
        except AssertionError:
            raise AssertionError(cluster.logs()) from None
    return ns


def test_three_replicas_run_three_containers(cluster: e2e.Cluster, client: client_api.Client, web: str) -> None:
    pods = wait_ready(client, web, "web", 3)
    containers = running_containers(cluster, web)
    assert len(containers) == 3
    assert {uid for _, _, uid in containers} == {p["metadata"]["uid"] for p in pods}
    where = {p["metadata"]["uid"]: p["spec"]["nodeName"] for p in pods}
    assert all(where[uid] == node for node, _, uid in containers), "each container runs on its pod's node"
    assert len(running_containers(cluster, web, name="POD")) == 3  # one infra container per pod


def test_docker_kill_restarts_the_container_in_place(cluster: e2e.Cluster, client: client_api.Client,
                                                     web: str) -> None:
    pod = wait_ready(client, web, "web", 3)[0]
    uid, node = pod["metadata"]["uid"], pod["spec"]["nodeName"]
    before = app_status(pod).get("restartCount", 0)
    [(_, cid, _)] = [c for c in running_containers(cluster, web) if c[2] == uid]
    [(_, infra, _)] = [c for c in running_containers(cluster, web, name="POD") if c[2] == uid]
    cluster.daemons[node].docker("kill", cid)

    def restarted() -> dict[str, Any] | None:
        current = client.get("v1", "pods", pod["metadata"]["name"], namespace=web)
        status = app_status(current)
        return current if status.get("restartCount") == before + 1 and "running" in (status.get("state") or {}) \
            and is_ready(current) else None

    current = support.wait_for(restarted, timeout=30, interval=0.05, what="the killed container running again")
    assert current["metadata"]["uid"] == uid and current["spec"]["nodeName"] == node
    assert current["status"].get("podIP") == pod["status"].get("podIP"), "in place: the pod keeps its IP"
    [(_, new_cid, _)] = [c for c in running_containers(cluster, web) if c[2] == uid]
    assert new_cid != cid
    assert [c for c in running_containers(cluster, web, name="POD") if c[2] == uid][0][1] == infra


def test_deleted_pod_is_replaced(cluster: e2e.Cluster, client: client_api.Client, web: str) -> None:
    victim = wait_ready(client, web, "web", 3)[0]
    uid = victim["metadata"]["uid"]
    client.delete("v1", "pods", victim["metadata"]["name"], namespace=web)
    wait_ready(client, web, "web", 3, also=lambda pods: uid not in {p["metadata"]["uid"] for p in pods})
    support.wait_for(lambda: all(c[2] != uid for c in running_containers(cluster, web)), timeout=30,
                     what="the deleted pod's containers gone")
    assert len(running_containers(cluster, web)) == 3


def test_logs_and_exec_through_the_api(cluster: e2e.Cluster, client: client_api.Client, web: str,
                                       api_server: str) -> None:
    pod = wait_ready(client, web, "web", 3)[0]
    name = pod["metadata"]["name"]
    log = support.wait_for(lambda: client.request("GET", f"/api/v1/namespaces/{web}/pods/{name}/log").text,
                           timeout=10, what="log output")
    assert log.startswith("serving one")
    result = exec_in(client, web, name, ["sh", "-c", "echo value=$VALUE; exit 3"])
    assert result == {"exitCode": 3, "output": "value=one\n"}
    cli_logs = run_cli("logs", name, "-n", web, server=api_server)
    assert cli_logs.returncode == 0 and "serving one" in cli_logs.stdout, cli_logs.stderr
    cli_exec = run_cli("exec", name, "-n", web, "--", "cat", "/www/index.html", server=api_server)
    assert cli_exec.returncode == 0 and cli_exec.stdout == "hello\n", cli_exec.stdout + cli_exec.stderr


def test_too_big_requests_are_unschedulable_with_the_message(cluster: e2e.Cluster, client: client_api.Client,
                                                              ns: str) -> None:
    client.create("apps/v1", "deployments",
                  deployment("big", 1, resources={"requests": {"memory": "100Ti"}}), namespace=ns)

    def unschedulable() -> dict[str, Any] | None:
        for pod in pods_of(client, ns, "big"):
            for condition in (pod.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                    return condition
        return None

    condition = support.wait_for(unschedulable, timeout=30, what="PodScheduled=False, Unschedulable")
    assert condition["status"] == "False"
    assert condition["message"].startswith(f"0/{e2e.NODES} nodes are available: {e2e.NODES} Insufficient memory"), \
        condition["message"]
    # The scheduler records its Event after it wrote the condition: wait for it rather than read once.
    support.wait_for(lambda: any(e.get("reason") == "FailedScheduling"
                                 for e in client.list("v1", "events", namespace=ns).get("items") or []),
                     timeout=15, what="a FailedScheduling Event")
    assert not any(p["spec"].get("nodeName") for p in pods_of(client, ns, "big"))
    client.delete("apps/v1", "deployments", "big", namespace=ns)


def test_anti_affinity_spreads_three_replicas_over_three_nodes(cluster: e2e.Cluster, client: client_api.Client,
                                                                ns: str) -> None:
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    client.create("apps/v1", "deployments", deployment("spread", 3, affinity=affinity), namespace=ns)
    pods = wait_ready(client, ns, "spread", 3)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    client.patch("apps/v1", "deployments", "spread", {"spec": {"replicas": 4}}, namespace=ns)

    def fourth_unschedulable() -> str | None:
        for pod in pods_of(client, ns, "spread"):
            for condition in (pod.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                    return str(condition.get("message"))
        return None

    message = support.wait_for(fourth_unschedulable, timeout=30, what="the 4th replica unschedulable")
    assert "anti-affinity" in message, message
    client.delete("apps/v1", "deployments", "spread", namespace=ns)


def test_rolling_update_keeps_enough_pods_ready(cluster: e2e.Cluster, client: client_api.Client, ns: str) -> None:
    replicas, max_unavailable = 3, 1
    client.create("apps/v1", "deployments", deployment("roll", replicas), namespace=ns)
    wait_ready(client, ns, "roll", replicas)
    client.patch("apps/v1", "deployments", "roll", {"spec": {"template": {"spec": {"containers": [
        {"name": APP, "env": [{"name": "VALUE", "value": "two"}]}]}}}}, namespace=ns, patch_type="strategic")
    least_ready, least_running, samples = replicas, replicas, 0

    def value(pod: dict[str, Any]) -> str:
        return pod["spec"]["containers"][0]["env"][0]["value"]

    deadline = time.monotonic() + 90
    while True:
        pods = pods_of(client, ns, "roll")
        least_ready = min(least_ready, sum(1 for p in pods if is_ready(p)))
        least_running = min(least_running, len(running_containers(cluster, ns)))
        samples += 1
        dep = client.get("apps/v1", "deployments", "roll", namespace=ns)
        status = dep.get("status") or {}
        if (status.get("observedGeneration") == dep["metadata"]["generation"]
                and status.get("updatedReplicas") == replicas and status.get("availableReplicas") == replicas
                and status.get("replicas") == replicas and len(pods) == replicas
                and all(is_ready(p) and value(p) == "two" for p in pods)):
            break
        assert time.monotonic() < deadline, f"rollout did not finish: {status}"
    assert least_ready >= replicas - max_unavailable, f"only {least_ready} pods Ready at one moment"
    assert least_running >= replicas - max_unavailable, f"only {least_running} containers running at one moment"
    assert samples > 5
    for pod in pods_of(client, ns, "roll"):
        assert exec_in(client, ns, pod["metadata"]["name"], ["sh", "-c", "echo $VALUE"])["output"] == "two\n"
    client.delete("apps/v1", "deployments", "roll", namespace=ns)


def test_drain_moves_pods_to_the_other_nodes(cluster: e2e.Cluster, client: client_api.Client, web: str,
                                            api_server: str) -> None:
    pods = wait_ready(client, web, "web", 3)
    node = max(cluster.live_nodes(), key=lambda n: sum(p["spec"]["nodeName"] == n for p in pods))
    moving = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == node}
    drained = run_cli("node", "drain", node, "--timeout", "60s", server=api_server, timeout=90)
    try:
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert drained.stdout.strip().endswith(f"node/{node} drained")
        assert not running_containers(cluster, web) or all(n != node for n, _, _ in running_containers(cluster, web))
        moved = wait_ready(client, web, "web", 3, also=lambda ps: not moving & {p["metadata"]["uid"] for p in ps})
        assert all(p["spec"]["nodeName"] != node for p in moved)
    finally:
        run_cli("node", "uncordon", node, server=api_server)


def _lease_renewals(client: client_api.Client, node: str, count: int) -> Callable[[], bool]:
    """A condition true once the node's Lease was renewed `count` times after this call."""
    seen: list[str] = []

    def renewed() -> bool:
        renew = client.get("coordination.k8s.io/v1", "leases", node, namespace="kube-node-lease")["spec"]["renewTime"]
        if not seen or seen[-1] != renew:
            seen.append(renew)
        return len(seen) > count

    return renewed


# Ten agent starts: about 2 s each on an idle machine, 8-14 s each at load 8-11 on two cores.
@pytest.mark.timeout(300)
def test_kill9_of_the_agent_ten_times_restarts_and_duplicates_nothing(cluster: e2e.Cluster,
                                                                       client: client_api.Client, web: str,
                                                                       ns: str) -> None:
    """Each restart adopts what runs: no container is stopped, recreated or duplicated.

    Every SIGKILL leaves the node silent until the next agent has started. On a loaded machine
    that takes longer than this cluster's node grace plus default toleration (4 s + 2 s), so the
    node lifecycle controller rightly evicts pods without a toleration of their own (a delete with
    grace 0), and the next agent rightly removes the containers of pods that no longer exist:
    the lost-node behaviour of the last test, not adoption. So the pods here tolerate the
    unreachable and not-ready taints for ever, as pods that must ride out node outages do, and
    run on the node with the fewest `web` pods (those do not tolerate, and would move meanwhile).
    """
    web_pods = wait_ready(client, web, "web", 3)
    node = min(cluster.live_nodes(), key=lambda n: sum(p["spec"]["nodeName"] == n for p in web_pods))
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute"}
                   for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")]
    client.create("apps/v1", "deployments", deployment("steady", 2, nodeSelector={"kubernetes.io/hostname": node},
                                                       tolerations=tolerations), namespace=ns)
    pods = wait_ready(client, ns, "steady", 2)
    mine = {p["metadata"]["uid"] for p in pods}
    assert all(p["spec"]["nodeName"] == node for p in pods)
    daemon, agent = cluster.daemons[node], cluster.agents[node]
    filters = (f"label=reconcile.node={node}", f"label=reconcile.pod.namespace={ns}")

    def running() -> set[str]:
        return set(daemon.container_ids(*filters, all=False))

    def pods_left() -> str:
        """For a failure: whether the pods themselves are still there (then the agent lost them)."""
        left = {p["metadata"]["uid"] for p in client.list("v1", "pods", namespace=ns)["items"]}
        return f"pods still in the API: {sorted(mine & left)} of {sorted(mine)}"

    containers_before = running()
    assert len(containers_before) == 2 * len(mine)  # an infra and an app container per pod
    restarts_before = {p["metadata"]["uid"]: app_status(p).get("restartCount") for p in pods}
    for round_ in range(10):
        agent.kill()
        agent.start()
        assert running() == containers_before, f"after restart {round_ + 1}; {pods_left()}"
    support.wait_for(_lease_renewals(client, node, 2), timeout=15, what="the agent running for a while")
    assert running() == containers_before, f"containers were restarted or duplicated; {pods_left()}"
    for uid in mine:  # exactly one app and one infra container per pod, as before
        assert len([c for c in running_containers(cluster, ns) if c[2] == uid]) == 1
        assert len([c for c in running_containers(cluster, ns, name="POD") if c[2] == uid]) == 1
    after = wait_ready(client, ns, "steady", 2)
    assert {p["metadata"]["uid"] for p in after} == set(restarts_before)
    assert {p["metadata"]["uid"]: app_status(p).get("restartCount") for p in after} == restarts_before
    client.delete("apps/v1", "deployments", "steady", namespace=ns)


def test_lost_node_pods_are_recreated_on_the_other_nodes(cluster: e2e.Cluster, client: client_api.Client,
                                                         web: str) -> None:
    """Runs last: kills a node for good (its agent by SIGKILL, then its dockerd by pid)."""
    pods = wait_ready(client, web, "web", 3)
    node = max(cluster.live_nodes(), key=lambda n: sum(p["spec"]["nodeName"] == n for p in pods))
    lost = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == node}
    assert lost
    started = time.monotonic()
    cluster.agents[node].kill()
    cluster.dead.add(node)
    cluster.daemons[node].stop()

    def node_unknown() -> bool:
        got = client.get("v1", "nodes", node)
        ready = [c for c in got["status"]["conditions"] if c["type"] == "Ready"]
        taints = [t["key"] for t in (got.get("spec") or {}).get("taints") or []]
        return ready[0]["status"] == "Unknown" and "node.kubernetes.io/unreachable" in taints

    support.wait_for(node_unknown, timeout=e2e.GRACE + 15, interval=0.1, what="the lost node Unknown and tainted")
    moved = wait_ready(client, web, "web", 3, timeout=e2e.GRACE + e2e.TOLERATION + 60,
                       also=lambda ps: not lost & {p["metadata"]["uid"] for p in ps})
    elapsed = time.monotonic() - started
    assert all(p["spec"]["nodeName"] != node for p in moved)
    assert len(running_containers(cluster, web)) == 3
    remaining = {p["metadata"]["uid"] for p in client.list("v1", "pods", namespace=web)["items"]}
    assert not lost & remaining, "the lost node's pods were deleted"
    print(f"pods of the lost node Ready elsewhere after {elapsed:.1f}s")
