"""ReplicaSet controller against a real API server: scaling under churn, adoption, release, status."""

from __future__ import annotations

import random
import threading
from typing import Any

from reconcile.client import api
from reconcile.core import errors, meta
from tests import support
from tests.controllers import helpers


def _replicaset(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": helpers.pod_template(labels), **spec}}


def _owned(pods: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [p for p in pods if (meta.controller_owner(p) or {}).get("uid") == uid]


def _pods(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", namespace=ns).get("items") or []


def _settled(client: api.Client, ns: str, name: str, want: int) -> bool:
    rs = client.get("apps/v1", "replicasets", name, namespace=ns)
    status = rs.get("status") or {}
    return (len(_pods(client, ns)) == want and status.get("replicas") == want
            and status.get("observedGeneration") == rs["metadata"]["generation"])


def test_scale_up_and_down_under_concurrent_deletions(controller_manager, client: api.Client, ns: str,
                                                      api_server: str) -> None:
    rs = client.create("apps/v1", "replicasets", _replicaset("churn", 0), namespace=ns)
    seen_max: dict[str, int] = {"count": 0}
    limit = {"value": 0}
    violations: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        count = len(pods)
        seen_max["count"] = max(seen_max["count"], count)
        if count > limit["value"]:
            violations.append(f"{count} pods exist with at most {limit['value']} wanted")

    stop = threading.Event()
    deleted = {"count": 0}

    def delete_randomly() -> None:
        rng = random.Random(7)
        with api.Client(support.connection(api_server).client_config()) as c:
            while not stop.is_set():
                pods = _pods(c, ns)
                if pods:
                    victim = rng.choice(pods)
                    try:
                        c.delete("v1", "pods", victim["metadata"]["name"], namespace=ns)
                        deleted["count"] += 1
                    except errors.NotFound:
                        pass
                stop.wait(0.02)  # pacing of the chaos, not synchronization

    with helpers.PodWatcher(api_server, ns, check=check) as watcher:
        for want in (50, 5, 0):
            limit["value"] = max(limit["value"], want)
            stop.clear()
            chaos = threading.Thread(target=delete_randomly, daemon=True)
            chaos.start()
            client.patch("apps/v1", "replicasets", "churn", {"spec": {"replicas": want}}, namespace=ns,
                         subresource="scale")
            support.wait_for(lambda w=want: len(watcher.pods) >= min(w, 10) or w == 0, timeout=30,
                             what=f"pods towards {want}")
            stop.set()
            chaos.join()
            support.wait_for(lambda w=want: _settled(client, ns, "churn", w), timeout=60,
                             what=f"replicaset settled at {want}")
            limit["value"] = want
            assert len(_owned(_pods(client, ns), rs["metadata"]["uid"])) == want
    assert not violations, violations[:5]
    assert seen_max["count"] == 50
    assert deleted["count"] > 0


def test_status_counts_ready_and_available(controller_manager, client: api.Client, ns: str) -> None:
    client.create("apps/v1", "replicasets", _replicaset("st", 3), namespace=ns)
    support.wait_for(lambda: len(_pods(client, ns)) == 3, timeout=20, what="3 pods")
    rs = client.get("apps/v1", "replicasets", "st", namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)

    def status() -> dict[str, Any]:
        return client.get("apps/v1", "replicasets", "st", namespace=ns).get("status") or {}

    support.wait_for(lambda: status().get("availableReplicas") == 3, timeout=20, what="3 available")
    st = status()
    assert st["readyReplicas"] == 3 and st["fullyLabeledReplicas"] == 3 and st["replicas"] == 3
    assert st["selector"] == "app=st"
    assert st["observedGeneration"] == rs["metadata"]["generation"]
    scale = client.get("apps/v1", "replicasets", "st", namespace=ns, subresource="scale")
    assert scale["status"] == {"replicas": 3, "selector": "app=st"}
    pod = _pods(client, ns)[0]
    ref = meta.controller_owner(pod)
    assert ref is not None and ref["kind"] == "ReplicaSet" and ref["blockOwnerDeletion"] is True
    assert pod["metadata"]["name"].startswith("st-") and len(pod["metadata"]["name"]) == len("st-") + 5
    assert pod["metadata"]["labels"] == {"app": "st"}


def test_adopts_orphans_and_releases_non_matching(controller_manager, client: api.Client, ns: str) -> None:
    orphan = client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                          "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
                                          "spec": {"containers": [{"name": "main", "image": "nginx:1"}]}},
                           namespace=ns)
    rs = client.create("apps/v1", "replicasets", _replicaset("adopt", 2), namespace=ns)
    uid = rs["metadata"]["uid"]
    support.wait_for(lambda: _settled(client, ns, "adopt", 2), timeout=20, what="2 pods")
    adopted = client.get("v1", "pods", "orphan", namespace=ns)
    assert (meta.controller_owner(adopted) or {}).get("uid") == uid
    assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
    assert len(_owned(_pods(client, ns), uid)) == 2  # one adopted + one created, not two created
    # relabel a pod out of the selector: it is released and replaced
    client.patch("v1", "pods", "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace=ns)
    support.wait_for(lambda: not (client.get("v1", "pods", "orphan", namespace=ns)["metadata"].get("ownerReferences")),
                     timeout=20, what="orphan released")
    support.wait_for(lambda: len(_owned(_pods(client, ns), uid)) == 2, timeout=20, what="replacement pod")
    assert len(_pods(client, ns)) == 3


def test_scale_down_prefers_not_ready_pods(controller_manager, client: api.Client, ns: str) -> None:
    client.create("apps/v1", "replicasets", _replicaset("pick", 4), namespace=ns)
    support.wait_for(lambda: len(_pods(client, ns)) == 4, timeout=20, what="4 pods")
    pods = sorted(_pods(client, ns), key=lambda p: p["metadata"]["name"])
    ready = pods[:2]
    helpers.mark_pods_ready_stand_in(client, ns, ready)
    support.wait_for(lambda: (client.get("apps/v1", "replicasets", "pick", namespace=ns).get("status") or {})
                     .get("readyReplicas") == 2, timeout=20, what="2 ready")
    client.patch("apps/v1", "replicasets", "pick", {"spec": {"replicas": 2}}, namespace=ns, subresource="scale")
    support.wait_for(lambda: _settled(client, ns, "pick", 2), timeout=20, what="2 pods")
    assert sorted(p["metadata"]["name"] for p in _pods(client, ns)) == sorted(p["metadata"]["name"] for p in ready)
