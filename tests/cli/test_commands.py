"""The CLI against a real API server: apply, get, describe, delete, api-resources, explain, create."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests import support
from tests.conftest import run_cli


@functools.cache
def _admin(api_server: str) -> httpx.Client:
    """Raw requests beside the CLI, as the server's admin (one client per server)."""
    return support.connection(api_server).http_client()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [line.split() for line in text.strip().splitlines()]
    return lines[0], lines[1:]


@pytest.fixture(scope="module")
def ns(api_server: str) -> str:
    name = unique("cli")
    ok(run_cli("create", "namespace", name, server=api_server))
    return name


def deployment(name: str, *, replicas: int = 1, image: str = "reconcile-hello:1.0") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def configmap(name: str, data: dict[str, str], **labels: str) -> dict:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def write_docs(path: Path, *docs: dict) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_apply_created_configured_unchanged(api_server: str, ns: str, tmp_path: Path) -> None:
    cm, dep = unique("cfg"), unique("web")
    file = write_docs(tmp_path / "app.yaml", configmap(cm, {"a": "1", "b": "2"}), deployment(dep))
    out = ok(run_cli("apply", "-f", str(file), "-n", ns, server=api_server))
    assert out.splitlines() == [f"configmap/{cm} created", f"deployment.apps/{dep} created"]
    out = ok(run_cli("apply", "-f", str(file), "-n", ns, server=api_server))
    assert out.splitlines() == [f"configmap/{cm} unchanged", f"deployment.apps/{dep} unchanged"]
    write_docs(file, configmap(cm, {"a": "1"}), deployment(dep, replicas=3))
    out = ok(run_cli("apply", "-f", str(file), "-n", ns, server=api_server))
    assert out.splitlines() == [f"configmap/{cm} configured", f"deployment.apps/{dep} configured"]
    live = json.loads(ok(run_cli("get", "cm", cm, "-n", ns, "-o", "json", server=api_server)))
    assert live["data"] == {"a": "1"}  # the removed key is gone (three-way patch)
    live = json.loads(ok(run_cli("get", "deploy", dep, "-n", ns, "-o", "json", server=api_server)))
    assert live["spec"]["replicas"] == 3
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]


def test_apply_dry_run_and_stdin(api_server: str, ns: str) -> None:
    cm = unique("dry")
    text = yaml.safe_dump(configmap(cm, {"k": "v"}))
    out = ok(run_cli("apply", "-f", "-", "-n", ns, "--dry-run=server", server=api_server, stdin=text))
    assert out.strip() == f"configmap/{cm} created (server dry run)"
    missing = run_cli("get", "configmap", cm, "-n", ns, server=api_server)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f'Error from server (NotFound): configmaps "{cm}" not found'
    ok(run_cli("apply", "-f", "-", "-n", ns, server=api_server, stdin=text))


def test_apply_server_side(api_server: str, ns: str, tmp_path: Path) -> None:
    cm = unique("ssa")
    file = write_docs(tmp_path / "ssa.yaml", configmap(cm, {"k": "v"}))
    assert ok(run_cli("apply", "--server-side", "-f", str(file), "-n", ns, server=api_server)).strip() \
        == f"configmap/{cm} created"
    assert ok(run_cli("apply", "--server-side", "-f", str(file), "-n", ns, server=api_server)).strip() \
        == f"configmap/{cm} unchanged"
    write_docs(file, configmap(cm, {"k": "v2"}))
    assert ok(run_cli("apply", "--server-side", "-f", str(file), "-n", ns, server=api_server)).strip() \
        == f"configmap/{cm} configured"


def test_apply_reports_bad_documents_with_lines(api_server: str, ns: str, tmp_path: Path) -> None:
    good1, good2 = unique("good"), unique("good")
    text = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {good1}
data: {{k: v}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
  labels: [unclosed
---
apiVersion: example.com/v1
kind: NoSuchKind
metadata:
  name: x
---
metadata:
  name: nokind
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: bad-field
bogus: 1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {good2}
"""
    file = tmp_path / "mixed.yaml"
    file.write_text(text)
    result = run_cli("apply", "-f", str(file), "-n", ns, server=api_server)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [f"configmap/{good1} created", f"configmap/{good2} created"]
    errors = result.stderr
    assert f"{file}:11" in errors  # the YAML error, on its line
    assert f"{file}:13" in errors and 'no matches for kind "NoSuchKind"' in errors
    assert f"{file}:18" in errors and "kind" in errors
    assert f"{file}:21" in errors and "Error from server (BadRequest)" in errors and "bogus" in errors
    ok(run_cli("get", "cm", good1, good2, "-n", ns, server=api_server))


def test_apply_namespace_crd_and_instance_in_one_batch(api_server: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    group, other_ns = f"cli{suffix}.example.com", f"batch-{suffix}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "description": "What it wants.",
                                                               "properties": {"size": {"type": "integer"}}}}}}}]},
    }
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1", "namespace": other_ns},
              "spec": {"size": 2}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}}
    file = write_docs(tmp_path / "batch.yaml", gadget, crd, namespace)
    out = ok(run_cli("apply", "-f", str(file), server=api_server))
    assert out.splitlines() == [f"namespace/{other_ns} created",
                                f"customresourcedefinition.apiextensions.k8s.io/gadgets.{group} created",
                                f"gadget.{group}/g1 created"]
    out = ok(run_cli("get", f"gadgets.{group}", "-n", other_ns, "-o", "name", server=api_server))
    assert out.strip() == f"gadget.{group}/g1"
    explained = ok(run_cli("explain", "gadget.spec", server=api_server))
    assert "KIND:       Gadget" in explained and "What it wants." in explained and "size\t<integer>" in explained


def test_get_outputs(api_server: str, ns: str, tmp_path: Path) -> None:
    a, b = unique("ga"), unique("gb")
    file = write_docs(tmp_path / "g.yaml", configmap(a, {"x": "1"}, tier="front"),
                      configmap(b, {"x": "1", "y": "2"}, tier="back"))
    ok(run_cli("apply", "-f", str(file), "-n", ns, server=api_server))
    headers, rows = table(ok(run_cli("get", "configmaps", "-n", ns, server=api_server)))
    assert headers[0] == "NAME" and "AGE" in headers
    assert {a, b} <= {r[0] for r in rows}
    headers, rows = table(ok(run_cli("get", "cm", "-n", ns, "-l", "tier=front", server=api_server)))
    assert [r[0] for r in rows] == [a]
    headers, rows = table(ok(run_cli("get", "cm", "-A", "-l", "tier in (front,back)", server=api_server)))
    assert headers[:2] == ["NAMESPACE", "NAME"]
    assert sorted(r[:2] for r in rows if r[0] == ns) == sorted([[ns, a], [ns, b]])
    headers, rows = table(ok(run_cli("get", "cm", "-n", ns, "--field-selector", f"metadata.name={b}",
                                     server=api_server)))
    assert [r[0] for r in rows] == [b]
    doc = yaml.safe_load(ok(run_cli("get", "configmap", a, "-n", ns, "-o", "yaml", server=api_server)))
    assert doc["kind"] == "ConfigMap" and doc["data"] == {"x": "1"}
    listing = json.loads(ok(run_cli("get", "cm", "-n", ns, "-l", "tier", "-o", "json", server=api_server)))
    assert listing["kind"] == "List" and {i["metadata"]["name"] for i in listing["items"]} == {a, b}
    assert all(i["kind"] == "ConfigMap" for i in listing["items"])
    names = ok(run_cli("get", "cm", "-n", ns, "-l", "tier", "-o", "name", server=api_server)).split()
    assert sorted(names) == sorted([f"configmap/{a}", f"configmap/{b}"])
    headers, rows = table(ok(run_cli("get", "ns", ns, server=api_server)))
    assert rows[0][0] == ns


def test_get_wide_uses_priority_columns(api_server: str, ns: str, tmp_path: Path) -> None:
    dep = unique("wide")
    ok(run_cli("apply", "-f", str(write_docs(tmp_path / "d.yaml", deployment(dep))), "-n", ns, server=api_server))
    narrow, _ = table(ok(run_cli("get", "deploy", dep, "-n", ns, server=api_server)))
    wide, rows = table(ok(run_cli("get", "deployments.apps", dep, "-n", ns, "-o", "wide", server=api_server)))
    assert narrow[0] == "NAME" and len(wide) >= len(narrow)
    server_table = _admin(api_server).get(f"{api_server}/apis/apps/v1/namespaces/{ns}/deployments/{dep}",
                             headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    expected = [c["name"].upper() for c in server_table["columnDefinitions"] if c.get("priority", 0) == 0]
    assert " ".join(narrow) == " ".join(expected)


def test_errors_are_kubectl_like(api_server: str, ns: str) -> None:
    result = run_cli("get", "deploy", "nope", "-n", ns, server=api_server)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'
    result = run_cli("get", "foos", server=api_server)
    assert result.returncode == 1 and 'the server doesn\'t have a resource type "foos"' in result.stderr
    assert "Traceback" not in result.stderr


def test_describe_shows_events(api_server: str, ns: str, tmp_path: Path) -> None:
    cm = unique("desc")
    ok(run_cli("apply", "-f", str(write_docs(tmp_path / "c.yaml", configmap(cm, {"k": "v"}, app="d"))), "-n", ns,
               server=api_server))
    live = json.loads(ok(run_cli("get", "cm", cm, "-n", ns, "-o", "json", server=api_server)))
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{cm}.1", "namespace": ns},
        "involvedObject": {"kind": "ConfigMap", "apiVersion": "v1", "name": cm, "namespace": ns,
                           "uid": live["metadata"]["uid"]},
        "reason": "Checked", "message": "looked at it", "type": "Normal", "source": {"component": "tester"},
        "count": 1, "firstTimestamp": live["metadata"]["creationTimestamp"],
        "lastTimestamp": live["metadata"]["creationTimestamp"],
    }
    response = _admin(api_server).post(f"{api_server}/api/v1/namespaces/{ns}/events", json=event)
    assert response.status_code == 201, response.text
    out = ok(run_cli("describe", "configmap", cm, "-n", ns, server=api_server))
    assert f"Name:         {cm}" in out and f"Namespace:    {ns}" in out and "Labels:       app=d" in out
    assert "Data:" in out and "  k:  v" in out
    events = out[out.index("Events:"):]
    assert "Checked" in events and "looked at it" in events and "tester" in events


def test_delete_waits_until_gone(api_server: str, ns: str, tmp_path: Path) -> None:
    cm = unique("del")
    obj = configmap(cm, {"k": "v"})
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    ok(run_cli("apply", "-f", str(write_docs(tmp_path / "c.yaml", obj)), "-n", ns, server=api_server))
    proc = subprocess.Popen([sys.executable, "-m", "reconcile", "delete", "cm", cm, "-n", ns, "--wait",
                             *support.connection(api_server).component_args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"{api_server}/api/v1/namespaces/{ns}/configmaps/{cm}"
    support.wait_for(lambda: _admin(api_server).get(url).json().get("metadata", {}).get("deletionTimestamp"), timeout=20,
                     what="deletionTimestamp set")
    assert proc.poll() is None  # still waiting: the finalizer holds the object
    _admin(api_server).patch(url, json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == f'configmap "{cm}" deleted'
    assert _admin(api_server).get(url).status_code == 404


def test_delete_from_file_and_not_found(api_server: str, ns: str, tmp_path: Path) -> None:
    cm, dep = unique("delf"), unique("delf")
    file = write_docs(tmp_path / "d.yaml", configmap(cm, {"k": "v"}), deployment(dep))
    ok(run_cli("apply", "-f", str(file), "-n", ns, server=api_server))
    out = ok(run_cli("delete", "-f", str(file), "-n", ns, server=api_server))
    assert out.splitlines() == [f'configmap "{cm}" deleted', f'deployment.apps "{dep}" deleted']
    result = run_cli("delete", "deploy", dep, "-n", ns, server=api_server)
    assert result.returncode == 1
    assert result.stderr.strip() == f'Error from server (NotFound): deployments.apps "{dep}" not found'


def test_delete_no_wait_foreground(api_server: str, ns: str, tmp_path: Path) -> None:
    # Foreground deletion holds the object until the garbage collector clears it; --no-wait returns at once.
    dep = unique("fg")
    ok(run_cli("apply", "-f", str(write_docs(tmp_path / "d.yaml", deployment(dep))), "-n", ns, server=api_server))
    out = ok(run_cli("delete", f"deploy/{dep}", "-n", ns, "--cascade=foreground", "--no-wait", server=api_server))
    assert out.strip() == f'deployment.apps "{dep}" deleted'


def test_api_resources(api_server: str) -> None:
    headers, rows = table(ok(run_cli("api-resources", server=api_server)))
    assert headers == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
    assert ["namespaces", "ns", "v1", "false", "Namespace"] in rows


def test_explain(api_server: str) -> None:
    out = ok(run_cli("explain", "deployment", server=api_server))
    assert "KIND:       Deployment" in out and "VERSION:    v1" in out and "FIELDS:" in out
    assert "spec\t<Object>" in out
    out = ok(run_cli("explain", "deploy.spec.replicas", server=api_server))
    assert "FIELD: replicas <integer>" in out
    out = ok(run_cli("explain", "pods.spec.containers", server=api_server))
    assert "FIELD: containers <[]Object>" in out and "image\t<string>" in out
    result = run_cli("explain", "deploy.spec.bogus", server=api_server)
    assert result.returncode == 1 and 'field "bogus" does not exist' in result.stderr


def test_create_namespace(api_server: str) -> None:
    name = unique("made")
    assert ok(run_cli("create", "namespace", name, server=api_server)).strip() == f"namespace/{name} created"
    result = run_cli("create", "ns", name, server=api_server)
    assert result.returncode == 1
    assert result.stderr.strip() == f'Error from server (AlreadyExists): namespaces "{name}" already exists'


def test_get_watch_streams_rows(api_server: str, ns: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reconcile", "get", "cm", "-n", ns, "-w", *support.connection(api_server).component_args()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        support.wait_for(lambda: lines and lines[0].split()[0] == "NAME", timeout=20, what="watch header")
        cm = unique("watched")
        _admin(api_server).post(f"{api_server}/api/v1/namespaces/{ns}/configmaps",
                   json=configmap(cm, {"k": "v"})).raise_for_status()
        support.wait_for(lambda: any(line.split()[:1] == [cm] for line in lines), timeout=20, what="watch row")
        row = next(line.split() for line in lines if line.split()[:1] == [cm])
        assert row[1] == "1"  # the DATA column: one key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_kubeconfig_flag_on_group_beats_environment(api_server: str) -> None:
    # run_cli points KUBECONFIG at a dead address; the flag (a kubeconfig with the admin's certificate) wins
    flag = support.connection(api_server).component_args()
    out = ok(run_cli(*flag, "get", "ns", "default", "-o", "name", server="http://127.0.0.1:1"))
    assert out.strip() == "namespace/default"
    result = run_cli("get", "ns", server="http://127.0.0.1:1")
    assert result.returncode == 1 and result.stderr.startswith("error: cannot reach the API server")


def test_apply_namespace_mismatch(api_server: str, ns: str, tmp_path: Path) -> None:
    obj = configmap(unique("mm"), {"k": "v"})
    obj["metadata"]["namespace"] = "elsewhere"
    result = run_cli("apply", "-f", str(write_docs(tmp_path / "m.yaml", obj)), "-n", ns, server=api_server)
    assert result.returncode == 1
    assert f"{tmp_path / 'm.yaml'}:1" in result.stderr and "--namespace=elsewhere" in result.stderr


def test_apply_invalid_object_names_fields_and_line(api_server: str, ns: str, tmp_path: Path) -> None:
    dep = deployment(unique("bad"), replicas=-1)
    file = write_docs(tmp_path / "ok.yaml", configmap(unique("pre"), {"k": "v"}), dep)
    result = run_cli("apply", "-f", str(file), "-n", ns, server=api_server)
    assert result.returncode == 1
    assert f"{file}:" in result.stderr and "spec.replicas" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout.count(" created") == 1


def test_hello_example_applies(api_server: str) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "hello"
    target = unique("hello")
    ok(run_cli("create", "namespace", target, server=api_server))
    out = ok(run_cli("apply", "-f", str(examples), "-n", target, server=api_server))
    assert out.splitlines() == ["configmap/hello-config created", "deployment.apps/hello created",
                                "service/hello created"]
    out = ok(run_cli("apply", "-f", str(examples), "-n", target, server=api_server))
    assert all(line.endswith(" unchanged") for line in out.splitlines())
    live = json.loads(ok(run_cli("get", "deploy", "hello", "-n", target, "-o", "json", server=api_server)))
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert live["spec"]["replicas"] == 2 and container["image"] == "reconcile-hello:1.0"
    assert container["command"] == ["httpd", "-f", "-p", "8080", "-h", "/www"]


def test_get_all_expands_the_category(api_server: str, ns: str, tmp_path: Path) -> None:
    name = unique("all")
    ok(run_cli("apply", "-n", ns, "-f", str(write_docs(tmp_path / "d.yaml", deployment(name))), server=api_server))
    out = ok(run_cli("get", "all", "-n", ns, server=api_server))
    assert f"deployment.apps/{name}" in out
    assert "configmap" not in out  # configmaps are not in the `all` category
