"""Real kubectl 1.32 with PriorityClasses, Ingresses and IngressClasses (plain http, no auth):
`kubectl get pc|ing|ingressclass` print upstream's columns, a pod applied with a priorityClassName
gets its priority, `kubectl create` refusals come back with the server's words and exit 1. (The
protobuf bodies of `kubectl create priorityclass|ingress` are checked against their
`--dry-run=client -o json` in test_kubectl_protobuf.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests import prerequisites
from tests.api import helpers

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    prerequisites.require_kubectl()


@pytest.fixture
def kubectl(kube_env: dict[str, str], tmp_path: Path) -> Run:
    binary = prerequisites.find_kubectl()
    assert binary is not None

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, env=kube_env,
                              timeout=60, cwd=tmp_path)
    return run


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_get_pc_lists_the_system_classes_and_ours(kubectl: Run, client: httpx.Client) -> None:
    name = helpers.unique("batch")
    made = kubectl("create", "priorityclass", name, "--value=1000", "--description=x", "--preemption-policy=Never")
    assert made.returncode == 0 and made.stdout.strip() == f"priorityclass.scheduling.k8s.io/{name} created", made
    try:
        done = kubectl("get", "pc")
        assert done.returncode == 0, done.stderr
        rows = _table(done.stdout)
        assert rows[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
        by_name = {r[0]: r for r in rows[1:]}
        assert by_name["system-node-critical"][1:3] == ["2000001000", "false"]
        assert by_name["system-cluster-critical"][4] == "PreemptLowerPriority"
        assert by_name[name][1:3] == ["1000", "false"] and by_name[name][4] == "Never"
        described = kubectl("describe", "pc", name)
        assert described.returncode == 0 and "Value:             1000" in described.stdout, described
        too_high = kubectl("create", "priorityclass", helpers.unique("huge"), "--value=2000000000")
        assert too_high.returncode == 1
        assert "is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000" \
            in too_high.stderr, too_high.stderr
        kept = kubectl("delete", "pc", "system-node-critical")
        assert kept.returncode == 1 and "this is a system priority class and cannot be deleted" in kept.stderr
    finally:
        kubectl("delete", "pc", name)


def test_a_pod_applied_with_a_class_gets_its_priority(kubectl: Run, client: httpx.Client, ns: str,
                                                     tmp_path: Path) -> None:
    pod = helpers.pod("critical")
    pod["spec"]["priorityClassName"] = "system-cluster-critical"
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    applied = kubectl("apply", "-n", ns, "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    shown = kubectl("get", "pod", "critical", "-n", ns, "-o", "jsonpath={.spec.priority} {.spec.preemptionPolicy}")
    assert shown.stdout == "2000000000 PreemptLowerPriority", shown
    pod["metadata"]["name"] = "unknown"
    pod["spec"]["priorityClassName"] = "no-such-class"
    refused = kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(pod))
    assert refused.returncode == 1
    assert 'pods "unknown" is forbidden: no PriorityClass with name no-such-class was found' in refused.stderr, refused


def test_get_ing_and_ingressclass_print_upstreams_columns(kubectl: Run, client: httpx.Client, ns: str) -> None:
    made = kubectl("create", "ingress", "simple", "-n", ns, "--class=nginx", "--rule=foo.com/bar=svc1:8080",
                   "--rule=foo.com/=svc:https,tls=secret")
    assert made.returncode == 0 and made.stdout.strip() == "ingress.networking.k8s.io/simple created", made
    done = kubectl("get", "ing", "-n", ns)
    assert done.returncode == 0, done.stderr
    rows = _table(done.stdout)
    assert rows[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert rows[1][:3] == ["simple", "nginx", "foo.com"] and rows[1][3:5] == ["80,", "443"]
    described = kubectl("describe", "ing", "simple", "-n", ns)
    assert described.returncode == 0, described.stderr
    assert "Ingress Class:    nginx" in described.stdout and "secret terminates foo.com" in described.stdout
    assert "/bar   svc1:8080" in described.stdout, described.stdout
    name = helpers.unique("ic")
    helpers.create(client, "/apis/networking.k8s.io/v1/ingressclasses", {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": name},
        "spec": {"controller": "example.com/ingress"}})
    try:
        classes = _table(kubectl("get", "ingressclass", name).stdout)
        assert classes[0] == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
        assert classes[1][:3] == [name, "example.com/ingress", "<none>"]
    finally:
        kubectl("delete", "ingressclass", name)


def test_a_bad_ingress_is_refused_with_the_field(kubectl: Run, ns: str) -> None:
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad"},
            "spec": {"rules": [{"host": "foo.com", "http": {"paths": [
                {"path": "/x", "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]}}
    refused = kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(body))
    assert refused.returncode == 1
    assert 'The Ingress "bad" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be ' \
           "specified" in refused.stderr, refused.stderr


def test_explain_reads_the_new_kinds_schemas(kubectl: Run) -> None:
    for resource, field in (("pc", "preemptionPolicy"), ("ingress.spec.rules", "host"),
                            ("ingressclass.spec", "controller")):
        explained = kubectl("explain", resource)
        assert explained.returncode == 0 and field in explained.stdout, explained


def test_a_global_default_class_is_given_to_pods_without_one(kubectl: Run, ns: str) -> None:
    name, other = helpers.unique("dflt"), helpers.unique("other")
    made = kubectl("create", "priorityclass", name, "--value=7", "--global-default", "--description=d")
    assert made.returncode == 0, made.stderr
    try:
        second = kubectl("create", "priorityclass", other, "--value=8", "--global-default")
        assert second.returncode == 1
        assert f"PriorityClass {name} is already marked as default. Only one default can exist" in second.stderr
        ran = kubectl("run", "plain", "-n", ns, "--image=busybox:1.36", "--restart=Never")
        assert ran.returncode == 0, ran.stderr
        shown = kubectl("get", "pod", "plain", "-n", ns, "-o", "jsonpath={.spec.priorityClassName} {.spec.priority}")
        assert shown.stdout == f"{name} 7", shown
        rows = {r[0]: r for r in _table(kubectl("get", "pc").stdout)[1:]}
        assert rows[name][2] == "true"
    finally:
        kubectl("delete", "pc", name)
