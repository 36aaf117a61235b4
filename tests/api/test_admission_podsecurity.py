"""Pod Security admission end to end: a real API server with an admission configuration file and
labelled initial namespaces; enforce, warn and audit through HTTP (and kubectl), workloads,
namespace relabelling, exemptions."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import prerequisites, support
from tests.api import helpers

ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"
AUDIT = "pod-security.kubernetes.io/audit"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def server_args(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """This module's server: the namespace `ops-tools` is exempt; initial namespaces are labelled."""
    folder = tmp_path_factory.mktemp("admission")
    (folder / "podsecurity.yaml").write_text(yaml.safe_dump({
        "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "privileged", "audit": "privileged", "warn": "privileged"},
        "exemptions": {"namespaces": ["ops-tools"], "usernames": [], "runtimeClasses": []}}))
    config = folder / "admission.yaml"
    config.write_text(yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
                                      "plugins": [{"name": "PodSecurity", "path": "podsecurity.yaml"}]}))
    return ("--admission-control-config-file", str(config), "--initial-namespaces-pod-security")


def _namespace(client: httpx.Client, **labels: str) -> str:
    name = helpers.unique("pss")
    helpers.create(client, "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    return name


def _pod(name: str = "p", **container_security: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox:1.36"}
    if container_security:
        container["securityContext"] = container_security
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}}


def _restricted_pod(name: str = "p") -> dict[str, Any]:
    return _pod(name, allowPrivilegeEscalation=False, runAsNonRoot=True, capabilities={"drop": ["ALL"]},
                seccompProfile={"type": "RuntimeDefault"})


def _warnings(response: httpx.Response) -> list[str]:
    """The Warning header's texts (the server sends `299 - "text"`, comma separated)."""
    header = response.headers.get("warning", "")
    found = []
    for part in header.split('299 - "')[1:]:
        text = part.rstrip().rstrip(",").rstrip()
        found.append(text[:-1].replace('\\"', '"').replace("\\\\", "\\"))
    return found


def test_initial_namespaces_are_labelled_when_asked(client: httpx.Client) -> None:
    default = client.get("/api/v1/namespaces/default").json()
    system = client.get("/api/v1/namespaces/kube-system").json()
    assert default["metadata"]["labels"][ENFORCE] == "baseline"
    assert system["metadata"]["labels"][ENFORCE] == "privileged"
    response = client.post("/api/v1/namespaces/default/pods", json=_pod("root-me", privileged=True))
    assert response.status_code == 403
    assert client.post("/api/v1/namespaces/kube-system/pods", json=_pod("ok", privileged=True)).status_code == 201


def test_enforce_refuses_with_upstreams_status(client: httpx.Client) -> None:
    ns = _namespace(client, **{ENFORCE: "baseline"})
    pod = _pod(privileged=True)
    pod["spec"].update(hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    pod["spec"]["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    response = client.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
    assert response.status_code == 403
    status = response.json()
    assert status["kind"] == "Status" and status["reason"] == "Forbidden" and status["code"] == 403
    assert status["details"] == {"name": "p", "kind": "pods"}
    assert status["message"] == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "c" must '
        'not include "SYS_ADMIN" in securityContext.capabilities.add), host namespaces (hostNetwork=true), hostPath '
        'volumes (volume "root"), privileged (container "c" must not set securityContext.privileged=true)')
    assert client.get(f"/api/v1/namespaces/{ns}/pods/p").status_code == 404
    allowed = client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod("fine"))
    assert allowed.status_code == 201, allowed.text
    assert not _warnings(allowed)


def test_restricted_needs_the_hardened_context(client: httpx.Client) -> None:
    ns = _namespace(client, **{ENFORCE: "restricted", "pod-security.kubernetes.io/enforce-version": "v1.30"})
    response = client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod(runAsUser=0))
    assert response.status_code == 403
    assert response.json()["message"] == (
        'pods "p" is forbidden: violates PodSecurity "restricted:v1.30": allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), runAsUser=0 (container "c" must not set runAsUser=0), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")')
    accepted = client.post(f"/api/v1/namespaces/{ns}/pods", json=_restricted_pod())
    assert accepted.status_code == 201, accepted.text
    stored = accepted.json()["spec"]["containers"][0]["securityContext"]
    assert stored["seccompProfile"] == {"type": "RuntimeDefault"}  # the new schema fields are stored as sent


def test_pod_level_fields_the_controls_read_are_accepted_by_the_schema(client: httpx.Client) -> None:
    ns = _namespace(client, **{WARN: "baseline"})
    pod = _pod(procMount="Unmasked", seLinuxOptions={"type": "spc_t"}, appArmorProfile={"type": "Unconfined"})
    pod["spec"]["securityContext"] = {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}],
                                      "seccompProfile": {"type": "Unconfined"}}
    response = client.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
    assert response.status_code == 201, response.text
    assert _warnings(response) == [
        'would violate PodSecurity "baseline:latest": forbidden AppArmor profile (container "c" must not set '
        'AppArmor profile type to "Unconfined"), procMount (container "c" must not set securityContext.procMount to '
        '"Unmasked"), seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"), '
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined"), forbidden sysctls '
        '(kernel.msgmax)']


def test_warn_mode_admits_with_a_warning_header(client: httpx.Client) -> None:
    ns = _namespace(client, **{WARN: "baseline"})
    response = client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod(privileged=True))
    assert response.status_code == 201
    assert _warnings(response) == ['would violate PodSecurity "baseline:latest": privileged (container "c" must not '
                                   'set securityContext.privileged=true)']
    assert response.headers["warning"].startswith('299 - "would violate PodSecurity \\"baseline:latest\\"')


def test_audit_mode_annotates_the_audit_event(client: httpx.Client, server_process: support.ApiServerProcess) -> None:
    ns = _namespace(client, **{AUDIT: "restricted"})
    response = client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod("audited"))
    assert response.status_code == 201
    assert not _warnings(response)

    def logged() -> bool:
        text = Path(server_process.log.name).read_text()
        return f"CREATE pods {ns}/audited" in text and "pod-security.kubernetes.io/audit-violations" in text and \
            'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in text

    support.wait_for(logged, timeout=10, what="the audit annotation in the server log")


def test_workloads_are_warned_not_refused(client: httpx.Client) -> None:
    ns = _namespace(client, **{ENFORCE: "baseline"})
    deployment = helpers.deployment("web")
    deployment["spec"]["template"]["spec"]["hostPID"] = True
    response = client.post(helpers.deploy_path(ns), json=deployment)
    assert response.status_code == 201, response.text
    # an explicit enforce level also warns at that level, so workloads hear about what their pods will meet
    assert _warnings(response) == ['would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)']
    scaled = client.patch(helpers.deploy_path(ns, "web"), json={"spec": {"replicas": 3}}, headers=MERGE)
    assert scaled.status_code == 200 and _warnings(scaled)
    rs = copy.deepcopy(deployment)
    rs.update(apiVersion="apps/v1", kind="ReplicaSet")
    rs["metadata"]["name"] = "web-rs"
    rs["spec"] = {k: v for k, v in rs["spec"].items() if k in ("replicas", "selector", "template")}
    response = client.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs)
    assert response.status_code == 201 and _warnings(response)


def test_a_stricter_label_warns_about_running_pods(client: httpx.Client) -> None:
    ns = _namespace(client)
    for name in ("b-priv", "a-priv"):
        assert client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod(name, privileged=True)).status_code == 201
    net = _pod("net")
    net["spec"]["hostNetwork"] = True
    assert client.post(f"/api/v1/namespaces/{ns}/pods", json=net).status_code == 201
    assert client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod("plain")).status_code == 201
    response = client.patch(f"/api/v1/namespaces/{ns}", json={"metadata": {"labels": {ENFORCE: "baseline"}}},
                            headers=MERGE)
    assert response.status_code == 200
    assert response.json()["metadata"]["labels"][ENFORCE] == "baseline"  # the label is set: warnings only
    assert _warnings(response) == [
        f'existing pods in namespace "{ns}" violate the new PodSecurity enforce level "baseline:latest"',
        "a-priv (and 1 other pod): privileged",
        "net: host namespaces",
    ]
    again = client.patch(f"/api/v1/namespaces/{ns}", json={"metadata": {"labels": {"team": "x"}}}, headers=MERGE)
    assert again.status_code == 200 and not _warnings(again)  # enforce unchanged: nothing re-evaluated
    # the running pods stay; a new privileged one is refused
    assert client.get(f"/api/v1/namespaces/{ns}/pods/a-priv").status_code == 200
    assert client.post(f"/api/v1/namespaces/{ns}/pods", json=_pod("c-priv", privileged=True)).status_code == 403


def test_invalid_labels_are_refused(client: httpx.Client) -> None:
    name = helpers.unique("bad")
    response = client.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": {ENFORCE: "strict"}}})
    assert response.status_code == 422
    assert response.json()["message"] == (
        f'Namespace "{name}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
        '"strict": must be one of privileged, baseline, restricted')
    ns = _namespace(client)
    response = client.patch(f"/api/v1/namespaces/{ns}",
                            json={"metadata": {"labels": {"pod-security.kubernetes.io/warn-version": "1.30"}}},
                            headers=MERGE)
    assert response.status_code == 422
    assert response.json()["message"] == (
        f'Namespace "{ns}" is invalid: metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: '
        '"1.30": must be "latest" or "v1.x"')


def test_exempt_namespaces_from_the_configuration_file(client: httpx.Client) -> None:
    response = client.post("/api/v1/namespaces", json={"metadata": {"name": "ops-tools",
                                                                    "labels": {ENFORCE: "restricted"}}})
    assert response.status_code == 201
    assert _warnings(response) == ['namespace "ops-tools" is exempt from Pod Security, and the policy '
                                   '(enforce=restricted:latest) will be ignored']
    pod = _pod(privileged=True)
    pod["spec"]["hostNetwork"] = True
    created = client.post("/api/v1/namespaces/ops-tools/pods", json=pod)
    assert created.status_code == 201, created.text
    assert not _warnings(created)


def test_kubectl_shows_the_refusal_and_the_warning(client: httpx.Client, kube_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    prerequisites.require_kubectl()
    kubectl = prerequisites.find_kubectl()
    assert kubectl is not None
    enforced = _namespace(client, **{ENFORCE: "baseline"})
    warned = _namespace(client, **{WARN: "restricted"})
    manifest = yaml.safe_dump(_pod("k", privileged=True))

    def run(ns: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "apply", "-n", ns, "-f", "-"], input=manifest, capture_output=True, text=True,
                              env=kube_env, timeout=60, cwd=tmp_path)

    refused = run(enforced)
    assert refused.returncode != 0
    assert 'pods "k" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set ' \
           'securityContext.privileged=true)' in refused.stderr
    admitted = run(warned)
    assert admitted.returncode == 0, admitted.stderr
    assert 'Warning: would violate PodSecurity "restricted:latest": privileged (container "c" must not set ' \
           'securityContext.privileged=true)' in admitted.stderr
