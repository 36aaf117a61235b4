"""`reconcile chart ...` end to end: the CLI process against a real API server, as its admin."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = str(ROOT / "charts" / "webapp")
GUESTBOOK = str(ROOT / "charts" / "guestbook")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def ns(api_server: str) -> str:
    name = unique("chartcli")
    ok(run_cli("create", "namespace", name, server=api_server))
    return name


def test_create_lint_template_package(api_server: str, ns: str, tmp_path: Path) -> None:
    out = ok(run_cli("chart", "create", "mine", "-p", str(tmp_path), server=api_server))
    assert out.strip() == f"Creating {tmp_path / 'mine'}"
    out = ok(run_cli("chart", "lint", str(tmp_path / "mine"), "-n", ns, server=api_server))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    out = fails(run_cli("chart", "lint", str(tmp_path / "mine"), "--set", "replicaCount=-1", server=api_server))
    del out
    result = run_cli("chart", "lint", str(tmp_path / "mine"), "--set", "replicaCount=-1", server=api_server)
    assert "replicaCount: -1 is less than the minimum of 0" in result.stdout
    assert "1 chart(s) linted, 1 chart(s) failed" in result.stdout
    # the server's validation: a rendered object the schema of its kind rejects
    ok(run_cli("chart", "template", "x", str(tmp_path / "mine"), server=api_server))
    result = run_cli("chart", "lint", str(tmp_path / "mine"), "-n", ns, "--set-string", "containerPort=80",
                     server=api_server)
    assert result.returncode == 1 and "[ERROR]" in result.stdout, result.stdout

    docs = list(yaml.safe_load_all(ok(run_cli("chart", "template", "web", WEBAPP, "--set", "replicaCount=2",
                                              "-n", "prod", server=api_server))))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Pod"]
    assert docs[0]["spec"]["replicas"] == 2
    out = ok(run_cli("chart", "package", GUESTBOOK, "-d", str(tmp_path), server=api_server))
    archive = tmp_path / "guestbook-0.1.0.tgz"
    assert f"saved it to: {archive}" in out
    assert f"Digest: sha256:{hashlib.sha256(archive.read_bytes()).hexdigest()}" in out
    packed = ok(run_cli("chart", "template", "gb", str(archive), server=api_server))
    assert packed == ok(run_cli("chart", "template", "gb", GUESTBOOK, server=api_server))


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "replicaCount"], 'key "replicaCount" has no value'),
    (["--set", "replicaCount=-1"], "replicaCount: -1 is less than the minimum of 0"),
    (["--set", "image.repository="], "image.repository: '' should be non-empty"),
    (["-f", "/nonexistent.yaml"], "cannot read values file /nonexistent.yaml"),
    (["--set", "probes=1"], "UndefinedError"),
])
def test_template_errors_are_one_clear_line(api_server: str, args: list[str], message: str) -> None:
    result = run_cli("chart", "template", "web", WEBAPP, *args, server=api_server)
    assert result.returncode in (1, 2), result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_release_lifecycle_through_the_cli(api_server: str, ns: str, tmp_path: Path) -> None:
    name = unique("web")
    out = ok(run_cli("chart", "install", name, WEBAPP, "-n", ns, "--set", "config.index\\.html=hi",
                     server=api_server))
    assert f"NAME: {name}\n" in out and "STATUS: deployed\nREVISION: 1\n" in out
    assert f"Reach it inside the cluster at http://{name}-webapp.{ns}.svc:80/" in out  # NOTES
    cm = json.loads(ok(run_cli("get", "configmap", f"{name}-webapp", "-n", ns, "-o", "json", server=api_server)))
    assert cm["data"] == {"index.html": "hi"}

    listed = ok(run_cli("chart", "list", "-n", ns, server=api_server))
    assert listed.splitlines()[0].split() == ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP",
                                              "VERSION"]
    assert any(line.split()[:3] == [name, ns, "1"] and "webapp-0.1.0" in line for line in listed.splitlines())
    assert name in ok(run_cli("chart", "list", "-A", server=api_server))

    values_file = tmp_path / "more.yaml"
    values_file.write_text("replicaCount: 2\nsecret: {token: t}\n")
    diff = run_cli("chart", "diff", "upgrade", name, WEBAPP, "-n", ns, "-f", str(values_file), "--no-color",
                   server=api_server)
    assert diff.returncode == 1, diff
    assert "-  replicas: 1" in diff.stdout and "+  replicas: 2" in diff.stdout
    assert f"Secret/{ns}/{name}-webapp (upgrade)" in diff.stdout
    assert f"ConfigMap/{ns}/{name}-webapp (live)" in diff.stdout  # dropped by the new values: deleted
    out = ok(run_cli("chart", "upgrade", name, WEBAPP, "-n", ns, "-f", str(values_file), server=api_server))
    assert f'Release "{name}" has been upgraded.' in out and "REVISION: 2" in out
    assert f"is upgraded as release {name} (revision 2)" in out  # NOTES after an upgrade too
    assert fails(run_cli("get", "configmap", f"{name}-webapp", "-n", ns, server=api_server))
    nochange = run_cli("chart", "diff", "upgrade", name, WEBAPP, "-n", ns, server=api_server)
    assert nochange.returncode == 0 and nochange.stdout == "", nochange

    assert "USER-SUPPLIED VALUES:\nreplicaCount: 2\nsecret:\n  token: t\n" == ok(
        run_cli("chart", "get", "values", name, "-n", ns, server=api_server))
    assert "index.html" in ok(run_cli("chart", "get", "values", name, "-n", ns, "--revision", "1", server=api_server))
    manifest = ok(run_cli("chart", "get", "manifest", name, "-n", ns, server=api_server))
    assert "# Source: webapp/templates/secret.yaml.j2" in manifest
    assert "is upgraded as release" in ok(run_cli("chart", "get", "notes", name, "-n", ns, server=api_server))

    ok(run_cli("chart", "rollback", name, "1", "-n", ns, server=api_server))
    history = ok(run_cli("chart", "history", name, "-n", ns, server=api_server)).splitlines()
    assert [line.split()[0] + " " + line.split()[2] for line in history[1:]] == [
        "1 superseded", "2 superseded", "3 deployed"]
    assert history[-1].endswith("Rollback to 1")
    assert "STATUS: deployed\nREVISION: 3" in ok(run_cli("chart", "status", name, "-n", ns, server=api_server))

    out = ok(run_cli("chart", "uninstall", name, "-n", ns, server=api_server))
    assert out.strip() == f'release "{name}" uninstalled'
    assert fails(run_cli("get", "deployment", f"{name}-webapp", "-n", ns, server=api_server))
    assert "release: not found" in fails(run_cli("chart", "status", name, "-n", ns, server=api_server))


def test_diff_is_coloured_on_request_and_plain_when_piped(api_server: str, ns: str) -> None:
    name = unique("colour")
    ok(run_cli("chart", "install", name, WEBAPP, "-n", ns, server=api_server))
    coloured = run_cli("chart", "diff", "upgrade", name, WEBAPP, "-n", ns, "--set", "replicaCount=2", "--color",
                       server=api_server)
    assert coloured.returncode == 1, coloured
    assert "\x1b[31m-  replicas: 1\x1b[0m" in coloured.stdout and "\x1b[32m+  replicas: 2\x1b[0m" in coloured.stdout
    plain = run_cli("chart", "diff", "upgrade", name, WEBAPP, "-n", ns, "--set", "replicaCount=2", server=api_server)
    assert "+  replicas: 2" in plain.stdout and "\x1b[" not in plain.stdout


def test_guestbook_with_its_dependency_installs(api_server: str, ns: str) -> None:
    name = unique("gb")
    ok(run_cli("chart", "install", name, GUESTBOOK, "-n", ns, "--set", "kvstore.maxKeyLength=8", server=api_server))
    kv = json.loads(ok(run_cli("get", "deployment", f"{name}-kvstore", "-n", ns, "-o", "json", server=api_server)))
    assert kv["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MAX_KEY_LENGTH", "value": "8"}]
    ok(run_cli("get", "service", f"{name}-guestbook", "-n", ns, server=api_server))
    ok(run_cli("chart", "uninstall", name, "-n", ns, server=api_server))


def test_install_conflicts_and_bad_input_are_clear(api_server: str, ns: str) -> None:
    name = unique("dup")
    ok(run_cli("chart", "install", name, WEBAPP, "-n", ns, server=api_server))
    err = fails(run_cli("chart", "install", name, WEBAPP, "-n", ns, server=api_server))
    assert "cannot re-use a name that is still in use" in err
    err = fails(run_cli("chart", "install", unique("other"), WEBAPP, "-n", ns, "--set", f"fullnameOverride={name}-webapp",
                        server=api_server))
    assert "exists and cannot be imported into the current release" in err
    assert 'must equal "other-' in err or "must equal" in err
    assert "must be a lowercase DNS-1123 label" in fails(run_cli("chart", "install", "Bad_Name", WEBAPP,
                                                                 server=api_server))
    assert "invalid duration" in run_cli("chart", "install", unique("t"), WEBAPP, "--timeout", "soon",
                                         server=api_server).stderr
    assert "has no deployed releases" in fails(run_cli("chart", "upgrade", unique("none"), WEBAPP, "-n", ns,
                                                       server=api_server))
    out = ok(run_cli("chart", "upgrade", "--install", unique("fresh"), WEBAPP, "-n", ns, server=api_server))
    assert "REVISION: 1" in out


BAD_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: "{{ release.name }}-web"}
spec:
  replicas: {{ values.replicas | tojson }}
  replicaz: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: reconcile-hello:1.0
        imagePullPolcy: Never
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "{{ release.name }}-cm"}
data: {ok: "yes"}
"""


def test_lint_checks_rendered_objects_against_the_servers_openapi(api_server: str, ns: str, tmp_path: Path) -> None:
    from tests.charts.chartkit import write_chart

    bad = write_chart(tmp_path, "bad", values={"replicas": "two"}, templates={"web.yaml.j2": BAD_DEPLOYMENT})
    result = run_cli("chart", "lint", str(bad), "-n", ns, server=api_server)
    assert result.returncode == 1, result
    errors = [line for line in result.stdout.splitlines() if line.startswith("[ERROR]")]
    where = "[ERROR] bad/templates/web.yaml.j2 (document 1): Deployment/release-name-web: "
    assert errors == [
        where + 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        where + 'unknown field "spec.replicaz"',
        where + 'unknown field "spec.template.spec.containers[0].imagePullPolcy"',
    ], result.stdout
    assert "1 chart(s) linted, 1 chart(s) failed" in result.stdout
    # the bundled charts (every optional object on) have no field the server does not know
    for chart_path, extra in ((WEBAPP, ["--set", "persistence.enabled=true", "--set", "config.a=b",
                                        "--set", "secret.t=s", "--set", "resources.limits.cpu=100m",
                                        "--set", "env.MODE=x"]),
                              (GUESTBOOK, [])):
        out = ok(run_cli("chart", "lint", chart_path, "-n", ns, *extra, server=api_server))
        assert "[ERROR]" not in out and "0 chart(s) failed" in out, out


def test_lint_without_a_server_still_checks_schema_and_templates(tmp_path: Path) -> None:
    from tests import support

    dead = f"http://127.0.0.1:{support.free_port()}"  # nothing listens: lint says so and checks the rest
    good = run_cli("chart", "lint", WEBAPP, server=dead)
    assert good.returncode == 0, good
    assert "[INFO] no API server reachable" in good.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in good.stdout
    bad = run_cli("chart", "lint", WEBAPP, "--set", "replicaCount=-1", server=dead)
    assert bad.returncode == 1 and "replicaCount: -1 is less than the minimum of 0" in bad.stdout, bad
