"""The pure parts of `reconcile port-forward`: port arguments, kubectl's service-port translation
and its choice of pod (`sort.Reverse(podutils.ActivePods)`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.cli.portforward_cmd import PortSpec, most_active, translate


@pytest.mark.parametrize(("text", "local", "remote"), [
    ("8080", -1, "8080"), ("18080:80", 18080, "80"), (":80", 0, "80"), ("http", -1, "http"),
    ("0:80", 0, "80"), ("9000:http", 9000, "http"),
])
def test_port_arguments(text: str, local: int, remote: str) -> None:
    assert PortSpec.parse(text) == PortSpec(local, remote)


@pytest.mark.parametrize(("text", "message"), [
    ("abc:80", "Error parsing local port 'abc'"), ("70000:80", "Error parsing local port '70000'"),
    ("80:", "Error parsing remote port"), ("0", "Error parsing remote port '0'"),
    ("-1:80", "Error parsing local port '-1'"), ("80:65536", "Error parsing remote port '65536'"),
])
def test_bad_port_arguments(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PortSpec.parse(text)


@given(st.text(max_size=12))
def test_any_port_argument_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        spec = PortSpec.parse(text)
    except ValueError as exc:
        assert "Error parsing" in str(exc)
        return
    assert -1 <= spec.local <= 65535 and spec.remote


POD = {"metadata": {"name": "web"},
       "spec": {"containers": [{"name": "a", "ports": [{"name": "http", "containerPort": 8080}]},
                               {"name": "b", "ports": [{"name": "metrics", "containerPort": 9090}]}]}}


def _service(*ports: dict, cluster_ip: str = "10.96.0.5") -> dict:
    return {"metadata": {"name": "svc"}, "spec": {"clusterIP": cluster_ip, "ports": list(ports)}}


def test_pod_ports_by_number_and_name() -> None:
    specs = [PortSpec.parse(p) for p in ("8080", "http", "1234:metrics", ":80")]
    assert translate(specs, POD) == [(8080, 8080), (8080, 8080), (1234, 9090), (0, 80)]


def test_service_ports_become_target_ports() -> None:
    service = _service({"name": "web", "port": 80, "targetPort": "http"}, {"name": "m", "port": 81, "targetPort": 9090},
                       {"name": "same", "port": 82})
    specs = [PortSpec.parse(p) for p in ("80", "web", "5000:81", "82", ":m")]
    assert translate(specs, POD, service) == [(80, 8080), (80, 8080), (5000, 9090), (82, 82), (0, 9090)]


def test_headless_service_ports_are_the_pods() -> None:
    assert translate([PortSpec.parse("80")], POD, _service({"port": 80, "targetPort": 8080}, cluster_ip="None")) == \
        [(80, 80)]


@pytest.mark.parametrize(("port", "message"), [
    ("81", "service svc does not have a service port 81"),
    ("nope", "service 'svc' does not have a named port 'nope'"),
    ("82", "pod 'web' does not have a named port 'grpc'"),
])
def test_service_port_errors(port: str, message: str) -> None:
    service = _service({"name": "web", "port": 80, "targetPort": "http"}, {"port": 82, "targetPort": "grpc"})
    with pytest.raises(ValueError, match=message):
        translate([PortSpec.parse(port)], POD, service)


def _pod(name: str, *, node: str | None = "n1", phase: str = "Running", ready: bool = True,
         since: str = "2026-01-01T00:00:00Z", restarts: int = 0, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": since}],
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_the_most_active_pod_is_chosen() -> None:
    assert most_active([]) is None
    choices = [_pod("pending", phase="Pending"), _pod("unready", ready=False), _pod("unbound", node=None),
               _pod("ready-late", since="2026-01-02T00:00:00Z"), _pod("ready-early"),
               _pod("restarted", restarts=3)]
    assert most_active(choices)["metadata"]["name"] == "ready-early"
    assert most_active(choices[:2])["metadata"]["name"] == "unready"  # Running beats Pending, ready or not
    assert most_active([_pod("new", created="2026-02-01T00:00:00Z"), _pod("old")])["metadata"]["name"] == "old"
