"""Pure logic of the endpoint controllers (no server): upstream's capacity rules and port resolution."""

from __future__ import annotations

from typing import Any

from reconcile.controllers import endpoints, endpointslice, servicepods
from reconcile.controllers import endpointslicemirroring as mirroring


def _pod(i: int, *, ready: bool = True, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"u{i}", "labels": labels or {"app": "a"}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8000 + i % 2}]}],
                     **spec},
            "status": {"phase": "Running", "podIP": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


SVC = {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}


def test_endpoints_truncate_at_1000_ready_first() -> None:
    pods = [_pod(i, ready=i % 2 == 0) for i in range(1200)]
    subsets, truncated = endpoints.desired_subsets(SVC, pods)
    assert truncated
    [subset] = subsets
    assert len(subset["addresses"]) == 600 and len(subset["notReadyAddresses"]) == 400
    small, truncated = endpoints.desired_subsets(SVC, pods[:1000])
    assert not truncated and len(small[0]["addresses"]) + len(small[0]["notReadyAddresses"]) == 1000


def test_named_port_resolution_and_unresolved_pods() -> None:
    named = {"metadata": {"name": "a", "namespace": "ns"},
             "spec": {"selector": {"app": "a"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"},
                                                          {"name": "udp", "port": 53, "targetPort": "http",
                                                           "protocol": "UDP"}]}}
    pod = _pod(1)
    assert servicepods.endpoint_ports(named, pod) == [{"name": "web", "port": 8001, "protocol": "TCP"}]
    sidecar = _pod(2)
    sidecar["spec"]["containers"][0]["ports"] = []
    sidecar["spec"]["initContainers"] = [{"name": "s", "restartPolicy": "Always",
                                          "ports": [{"name": "http", "containerPort": 7000}]}]
    assert servicepods.endpoint_ports(named, sidecar)[0]["port"] == 7000
    groups = endpointslice.desired_endpoints(named, [_pod(0), _pod(1), sidecar])
    assert sorted(ports[0]["port"] for ports, _ in groups.values()) == [7000, 8000, 8001]


def test_candidates_skip_finished_ipless_and_other_namespaces() -> None:
    finished = _pod(1)
    finished["status"]["phase"] = "Succeeded"
    no_ip = _pod(2)
    del no_ip["status"]["podIP"]
    elsewhere = _pod(3)
    elsewhere["metadata"]["namespace"] = "other"
    unlabelled = _pod(4, labels={"app": "b"})
    odd = _pod(5)
    odd["status"]["conditions"] = "not a list"
    found = servicepods.candidates(SVC, [_pod(0), finished, no_ip, elsewhere, unlabelled, odd])
    assert [p["metadata"]["name"] for p in found] == ["p0", "p5"]
    assert not servicepods.serving(odd)
    assert not servicepods.managed({"spec": {"type": "ExternalName", "selector": {}}})
    assert not servicepods.managed({"spec": {}}) and servicepods.managed({"spec": {"selector": {}}})


def test_zone_from_the_node() -> None:
    placed = _pod(0, nodeName="n1")
    unplaced = _pod(1)
    [(_, points)] = [g for g in endpointslice.desired_endpoints(
        SVC, [placed, unplaced], {"n1": "zone-a"}.get).values()]
    assert points["u0"]["zone"] == "zone-a" and points["u0"]["nodeName"] == "n1"
    assert "zone" not in points["u1"] and "nodeName" not in points["u1"]


def test_mirroring_groups_by_ports_and_family_caps_at_1000() -> None:
    subsets = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)],
                "ports": [{"port": 80}]},
               {"addresses": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}],  # a duplicate is mirrored once
                "notReadyAddresses": [{"ip": f"10.9.0.{i}"} for i in range(200)], "ports": [{"port": 80}]}]
    groups = mirroring.desired_groups({"subsets": subsets})
    assert sum(len(eps) for _ports, eps in groups.values()) == mirroring.MAX_MIRRORED
    families = {family for (_key, family) in groups}
    assert families == {"IPv4", "IPv6"}
    assert all(ports == [{"name": "", "port": 80, "protocol": "TCP"}] for ports, _ in groups.values())
    assert mirroring.should_mirror({"metadata": {}})
    assert not mirroring.should_mirror({"metadata": {"labels": {mirroring.SKIP_MIRROR_LABEL: "true"}}})
    assert not mirroring.should_mirror({"metadata": {"annotations": {mirroring.LEADER_ANNOTATION: "{}"}}})
