"""The Endpoints and EndpointSlice controllers against a real API server and controller-manager.

Pods are written by hand with the status a node agent would report (no Docker needed).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import meta
from tests import prerequisites, support
from tests.controllers import helpers
from tests.services.conftest import service

SLICES = "discovery.k8s.io/v1"


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server)
    process.start()
    try:
        support.wait_for(lambda: process.starts() >= 1, timeout=60, what="the controllers started")
        yield process
    finally:
        process.stop()


def pod(name: str, labels: dict[str, str], *, ports: list[dict] | None = None, node: str | None = None,
        **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                            "spec": {"containers": [{"name": "main", "image": "nginx:1", "ports": ports or []}],
                                     **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


def set_status(client: api.Client, ns: str, name: str, ip: str, *, ready: bool) -> None:
    now = meta.now_rfc3339()
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}
    client.patch("v1", "pods", name, {"status": status}, namespace=ns, subresource="status")


def run_pod(client: api.Client, ns: str, name: str, ip: str, labels: dict[str, str], *, ready: bool = True,
            **kwargs: Any) -> None:
    client.create("v1", "pods", pod(name, labels, **kwargs), namespace=ns)
    set_status(client, ns, name, ip, ready=ready)


def slices(client: api.Client, ns: str, svc: str) -> list[dict[str, Any]]:
    return client.list(SLICES, "endpointslices", namespace=ns,
                       label_selector=f"kubernetes.io/service-name={svc}")["items"]


def endpoints_of(client: api.Client, ns: str, svc: str) -> dict[str, Any] | None:
    try:
        return client.get("v1", "endpoints", svc, namespace=ns)
    except Exception:  # noqa: BLE001 - not there yet
        return None


def all_endpoints(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["addresses"][0]: e for s in found for e in s.get("endpoints") or []}


def test_slices_and_endpoints_follow_readiness(controller_manager, client: api.Client, ns: str) -> None:
    svc = client.create("v1", "services", service("web", ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
                        namespace=ns)
    http = [{"name": "http", "containerPort": 8080}]
    run_pod(client, ns, "web-a", "10.1.0.1", {"app": "web"}, ports=http, node="node-a")
    run_pod(client, ns, "web-b", "10.1.0.2", {"app": "web"}, ports=http, node="node-b", ready=False)
    run_pod(client, ns, "other", "10.1.0.3", {"app": "other"}, ports=http)

    def two() -> bool:
        return set(all_endpoints(slices(client, ns, "web"))) == {"10.1.0.1", "10.1.0.2"}

    support.wait_for(two, timeout=20, what="both pods in the slice")
    [found] = slices(client, ns, "web")
    assert found["addressType"] == "IPv4" and found["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    labels = found["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert found["metadata"]["name"].startswith("web-")
    [owner] = found["metadata"]["ownerReferences"]
    assert owner["uid"] == svc["metadata"]["uid"] and owner["controller"] is True and owner["kind"] == "Service"
    points = all_endpoints([found])
    assert points["10.1.0.1"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert points["10.1.0.2"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert points["10.1.0.1"]["nodeName"] == "node-a"
    assert points["10.1.0.1"]["targetRef"]["name"] == "web-a" and points["10.1.0.1"]["targetRef"]["kind"] == "Pod"
    support.wait_for(lambda: (endpoints_of(client, ns, "web") or {}).get("subsets"), timeout=10, what="endpoints")
    [subset] = endpoints_of(client, ns, "web")["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.1.0.1"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.1.0.2"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    # readiness flips: both objects follow within a second
    set_status(client, ns, "web-b", "10.1.0.2", ready=True)
    set_status(client, ns, "web-a", "10.1.0.1", ready=False)
    started = time.monotonic()

    def flipped() -> bool:
        points = all_endpoints(slices(client, ns, "web"))
        ep = endpoints_of(client, ns, "web") or {}
        ready_ips = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        return points["10.1.0.2"]["conditions"]["ready"] and not points["10.1.0.1"]["conditions"]["ready"] \
            and ready_ips == ["10.1.0.2"]

    support.wait_for(flipped, timeout=5, interval=0.02, what="readiness change in slices and endpoints")
    assert time.monotonic() - started < 1.0
    # a deleted pod leaves
    client.delete("v1", "pods", "web-b", namespace=ns, grace_period_seconds=0)
    support.wait_for(lambda: set(all_endpoints(slices(client, ns, "web"))) == {"10.1.0.1"}, timeout=5,
                     what="web-b gone")


def test_terminating_and_publish_not_ready(controller_manager, client: api.Client, ns: str) -> None:
    client.create("v1", "services", service("t", ports=[{"port": 80}]), namespace=ns)
    client.create("v1", "services", service("p", ports=[{"port": 80}], publishNotReadyAddresses=True,
                                            selector={"app": "t"}), namespace=ns)
    run_pod(client, ns, "t-1", "10.2.0.1", {"app": "t"}, node="nowhere")  # bound: its delete waits
    run_pod(client, ns, "t-2", "10.2.0.2", {"app": "t"}, ready=False)
    support.wait_for(lambda: len(all_endpoints(slices(client, ns, "t"))) == 2, timeout=10, what="t slices")
    client.delete("v1", "pods", "t-1", namespace=ns)

    def terminating() -> bool:
        point = all_endpoints(slices(client, ns, "t")).get("10.2.0.1")
        return point is not None and point["conditions"] == {"ready": False, "serving": True, "terminating": True}

    support.wait_for(terminating, timeout=10, what="terminating endpoint")
    support.wait_for(lambda: [a["ip"] for s in (endpoints_of(client, ns, "t") or {}).get("subsets") or []
                              for a in s.get("addresses") or []] == [], timeout=10,
                     what="terminating pod out of Endpoints")
    ep = endpoints_of(client, ns, "t")
    assert [a["ip"] for s in ep["subsets"] for a in s.get("notReadyAddresses") or []] == ["10.2.0.2"]

    def published() -> bool:
        points = all_endpoints(slices(client, ns, "p"))
        return len(points) == 2 and all(p["conditions"]["ready"] for p in points.values())

    support.wait_for(published, timeout=10, what="publishNotReadyAddresses: all ready")
    support.wait_for(lambda: sorted(a["ip"] for s in (endpoints_of(client, ns, "p") or {}).get("subsets") or []
                                    for a in s.get("addresses") or []) == ["10.2.0.1", "10.2.0.2"],
                     timeout=10, what="publishNotReadyAddresses endpoints")


def test_named_port_resolved_per_pod_splits_slices_and_hostname(controller_manager, client: api.Client,
                                                                ns: str) -> None:
    client.create("v1", "services", service("db", clusterIP="None",
                                            ports=[{"name": "sql", "port": 5432, "targetPort": "sql"}]), namespace=ns)
    run_pod(client, ns, "db-0", "10.3.0.1", {"app": "db"}, ports=[{"name": "sql", "containerPort": 8080}],
            hostname="db-0", subdomain="db")
    run_pod(client, ns, "db-1", "10.3.0.2", {"app": "db"}, ports=[{"name": "sql", "containerPort": 9090}],
            hostname="db-1", subdomain="elsewhere")

    def split() -> bool:
        found = slices(client, ns, "db")
        return sorted(s["ports"][0]["port"] for s in found if s.get("ports")) == [8080, 9090] and len(found) == 2

    support.wait_for(split, timeout=10, what="two slices by port map")
    points = all_endpoints(slices(client, ns, "db"))
    assert points["10.3.0.1"]["hostname"] == "db-0" and "hostname" not in points["10.3.0.2"]
    assert all(s["metadata"]["labels"]["service.kubernetes.io/headless"] == "" for s in slices(client, ns, "db"))
    support.wait_for(lambda: len((endpoints_of(client, ns, "db") or {}).get("subsets") or []) == 2, timeout=10,
                     what="two subsets")
    subsets = endpoints_of(client, ns, "db")["subsets"]
    host = {a["ip"]: a.get("hostname") for s in subsets for a in s["addresses"]}
    assert host == {"10.3.0.1": "db-0", "10.3.0.2": None}


def test_at_most_100_per_slice_and_placeholder(controller_manager, client: api.Client, ns: str) -> None:
    client.create("v1", "services", service("many", ports=[{"port": 80}]), namespace=ns)
    client.create("v1", "services", service("none", ports=[{"port": 80}], selector={"app": "nothing"}), namespace=ns)
    for i in range(150):
        body = pod(f"m-{i}", {"app": "many"})
        body["status"] = {}
        client.create("v1", "pods", body, namespace=ns)
        set_status(client, ns, f"m-{i}", f"10.4.{i // 250}.{i % 250 + 1}", ready=True)

    def packed() -> list[dict[str, Any]] | None:
        found = slices(client, ns, "many")
        return found if sorted(len(s.get("endpoints") or []) for s in found) == [50, 100] else None

    found = support.wait_for(packed, timeout=30, what="150 endpoints in two slices")
    assert sorted(len(s["endpoints"]) for s in found) == [50, 100]

    def placeholder() -> dict[str, Any] | None:
        found = slices(client, ns, "none")
        return found[0] if len(found) == 1 and not found[0].get("endpoints") and not found[0].get("ports") else None

    empty = support.wait_for(placeholder, timeout=10, what="placeholder slice")
    assert not empty.get("endpoints") and not empty.get("ports")
    assert empty["metadata"]["labels"]["kubernetes.io/service-name"] == "none"

    def no_subsets() -> dict[str, Any] | None:
        endpoints = endpoints_of(client, ns, "none")
        return endpoints if endpoints is not None and endpoints.get("subsets") in ([], None) else None

    endpoints = support.wait_for(no_subsets, timeout=10, what="empty Endpoints")
    assert endpoints["metadata"]["name"] == "none" and not endpoints.get("subsets")


MIRROR = "endpointslicemirroring-controller.k8s.io"


def managed_by(found: list[dict[str, Any]], who: str) -> list[dict[str, Any]]:
    return [s for s in found if s["metadata"].get("labels", {}).get("endpointslice.kubernetes.io/managed-by") == who]


def selectorless(client: api.Client, ns: str, name: str, subsets: list[dict], **labels: str) -> None:
    body = service(name)
    del body["spec"]["selector"]
    client.create("v1", "services", body, namespace=ns)
    client.create("v1", "endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                      "metadata": {"name": name, "labels": labels}, "subsets": subsets},
                  namespace=ns)


def test_selectorless_service_is_mirrored_and_hand_written_parts_left_alone(controller_manager, client: api.Client,
                                                                           ns: str) -> None:
    selectorless(client, ns, "manual", [{"addresses": [{"ip": "192.0.2.10", "nodeName": "n1"}],
                                         "notReadyAddresses": [{"ip": "192.0.2.11"}, {"ip": "not-an-ip"}],
                                         "ports": [{"name": "http", "port": 80}]}], team="a")
    client.create(SLICES, "endpointslices", {
        "apiVersion": SLICES, "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
        "endpoints": [{"addresses": ["192.0.2.10"]}], "ports": [{"port": 80}]}, namespace=ns)
    support.wait_for(lambda: managed_by(slices(client, ns, "manual"), MIRROR), timeout=10, what="mirrored slice")
    [mirrored] = managed_by(slices(client, ns, "manual"), MIRROR)
    assert mirrored["metadata"]["labels"]["team"] == "a"
    assert mirrored["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert mirrored["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert {e["addresses"][0]: e["conditions"]["ready"] for e in mirrored["endpoints"]} == \
        {"192.0.2.10": True, "192.0.2.11": False}
    assert [e.get("nodeName") for e in mirrored["endpoints"]] == ["n1", None]
    # the Endpoints controller never touches a selector-less Service's Endpoints; the hand-written slice stays
    assert endpoints_of(client, ns, "manual")["subsets"][0]["addresses"] == [{"ip": "192.0.2.10", "nodeName": "n1"}]
    assert "manual-1" in [s["metadata"]["name"] for s in slices(client, ns, "manual")]
    # an edit of the Endpoints is mirrored; a forged edit of the mirrored slice is put right
    current = endpoints_of(client, ns, "manual")
    current["subsets"][0]["addresses"].append({"ip": "192.0.2.12"})
    client.replace("v1", "endpoints", current, namespace=ns)

    def mirrored_ips() -> set[str]:
        return {e["addresses"][0] for s in managed_by(slices(client, ns, "manual"), MIRROR) for e in s["endpoints"]}

    support.wait_for(lambda: mirrored_ips() == {"192.0.2.10", "192.0.2.11", "192.0.2.12"}, timeout=10,
                     what="the edit mirrored")
    [mirrored] = managed_by(slices(client, ns, "manual"), MIRROR)
    mirrored["endpoints"] = [{"addresses": ["203.0.113.66"], "conditions": {"ready": True}}]
    client.replace(SLICES, "endpointslices", mirrored, namespace=ns)
    support.wait_for(lambda: mirrored_ips() == {"192.0.2.10", "192.0.2.11", "192.0.2.12"}, timeout=10,
                     what="the forged slice restored")
    client.delete("v1", "endpoints", "manual", namespace=ns)
    support.wait_for(lambda: not managed_by(slices(client, ns, "manual"), MIRROR), timeout=15,
                     what="mirrored slice gone with the Endpoints")


def test_mirroring_skips_selectors_and_opted_out(controller_manager, client: api.Client, ns: str) -> None:
    selectorless(client, ns, "optout", [{"addresses": [{"ip": "192.0.2.20"}], "ports": [{"port": 80}]}],
                 **{"endpointslice.kubernetes.io/skip-mirror": "true"})
    # a selecting Service with a hand-written Endpoints of its name: the EndpointSlice controller's, never mirrored
    client.create("v1", "services", service("selected"), namespace=ns)
    selectorless(client, ns, "marker", [{"addresses": [{"ip": "192.0.2.21"}], "ports": [{"port": 80}]}])
    support.wait_for(lambda: managed_by(slices(client, ns, "marker"), MIRROR), timeout=10, what="marker mirrored")
    support.wait_for(lambda: slices(client, ns, "selected"), timeout=10, what="selected placeholder")
    assert not managed_by(slices(client, ns, "optout"), MIRROR)
    assert not managed_by(slices(client, ns, "selected"), MIRROR)
    # a selector added later: the mirrored slices go
    client.patch("v1", "services", "marker", {"spec": {"selector": {"app": "marker"}}}, namespace=ns)
    support.wait_for(lambda: not managed_by(slices(client, ns, "marker"), MIRROR), timeout=10,
                     what="mirrored slice removed once the Service has a selector")


def test_service_delete_removes_endpoints_and_slices(controller_manager, client: api.Client, ns: str) -> None:
    client.create("v1", "services", service("bye"), namespace=ns)
    run_pod(client, ns, "bye-1", "10.5.0.1", {"app": "bye"})
    support.wait_for(lambda: all_endpoints(slices(client, ns, "bye")), timeout=10, what="bye slice")
    support.wait_for(lambda: endpoints_of(client, ns, "bye") is not None, timeout=10, what="bye endpoints")
    client.delete("v1", "services", "bye", namespace=ns)
    support.wait_for(lambda: endpoints_of(client, ns, "bye") is None and not slices(client, ns, "bye"),
                     timeout=15, what="endpoints and slices gone")


def test_kubectl_get_and_describe(controller_manager, client: api.Client, ns: str, kube_env: dict[str, str]) -> None:
    """The real kubectl 1.32: `get svc,endpoints,endpointslices` columns and `describe svc` as upstream prints them."""
    prerequisites.require_kubectl()
    svc = client.create("v1", "services", service("shop", kind="NodePort", sessionAffinity="ClientIP",
                                                  ports=[{"name": "http", "port": 80, "targetPort": 8080}]),
                        namespace=ns)
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    run_pod(client, ns, "shop-1", "10.6.0.1", {"app": "shop"})
    support.wait_for(lambda: all_endpoints(slices(client, ns, "shop")) and
                     (endpoints_of(client, ns, "shop") or {}).get("subsets"), timeout=10, what="shop endpoints")

    def kubectl(*args: str) -> str:
        result = subprocess.run([prerequisites.find_kubectl(), *args, "-n", ns], capture_output=True, text=True,
                                env=kube_env, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = kubectl("get", "svc,endpoints,endpointslices")
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] in lines
    assert any(row[:5] == ["service/shop", "NodePort", ip, "<none>", f"80:{node_port}/TCP"] for row in lines)
    assert ["NAME", "ENDPOINTS", "AGE"] in lines
    assert any(row[:2] == ["endpoints/shop", "10.6.0.1:8080"] for row in lines)
    assert ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"] in lines
    assert any(row[0].startswith("endpointslice.discovery.k8s.io/shop-") and row[1:4] == ["IPv4", "8080", "10.6.0.1"]
               for row in lines)
    described = kubectl("describe", "svc", "shop")
    fields = {}
    for line in described.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            fields[key.strip()] = value.strip()
    assert fields["Name"] == "shop" and fields["Namespace"] == ns
    assert fields["Selector"] == "app=shop" and fields["Type"] == "NodePort"
    assert fields["IP Family Policy"] == "SingleStack" and fields["IP Families"] == "IPv4"
    assert fields["IP"] == ip and fields["IPs"] == ip
    assert fields["Port"] == "http  80/TCP" and fields["TargetPort"] == "8080/TCP"
    assert fields["NodePort"] == f"http  {node_port}/TCP"
    assert fields["Endpoints"] == "10.6.0.1:8080"
    assert fields["Session Affinity"] == "ClientIP" and fields["External Traffic Policy"] == "Cluster"
    assert fields["Internal Traffic Policy"] == "Cluster"
