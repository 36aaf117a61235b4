"""`reconcile gitops` as a process, as its own identity (system:gitops-controller, leader election
included) against a secured API server: a Git repository served over git:// on 127.0.0.1 becomes a
published artifact, its Sync applies it as the Sync's ServiceAccount, and a new commit reaches the
cluster without anyone touching the GitRepository or the Sync; a Receiver's signed push fetches at
once, a forged one changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.api.rbac import policy
from reconcile.client import api as client_api
from reconcile.core import errors
from reconcile.core import webhookreceiver as receiver
from reconcile.testing import free_port
from tests import support
from tests.gitops import gitrepos, syncsupport

API = "gitops.reconcile.dev/v1"


@pytest.fixture
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    yield c
    c.close()


@pytest.fixture
def gitops_process(api_server: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    connection = support.connection(api_server)
    kubeconfig = connection.kubeconfig(as_user=connection.user(policy.GITOPS_USER))
    health = free_port()
    log = support.process_log("gitops-")
    process = subprocess.Popen([sys.executable, "-m", "reconcile", "gitops", "controller", "--kubeconfig", str(kubeconfig),
                                "--state-dir", str(tmp_path / "gitops"), "--health-port", str(health), "-v"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        support.wait_for(lambda: _ready(health), timeout=60,
                         what=f"gitops /readyz; log:\n{Path(log.name).read_text()[-3000:]}")
        yield process, Path(log.name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _tenant(client: client_api.Client) -> str:
    """A namespace whose ServiceAccount `deployer` may manage ConfigMaps there, and nothing else."""
    ns = f"gp-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": "deployer"}}, namespace=ns)
    rbac = "rbac.authorization.k8s.io/v1"
    client.create(rbac, "roles", {"apiVersion": rbac, "kind": "Role", "metadata": {"name": "configmaps"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}, namespace=ns)
    client.create(rbac, "rolebindings", {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "deployer"},
                                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "configmaps"},
                                         "subjects": [{"kind": "ServiceAccount", "name": "deployer",
                                                       "namespace": ns}]}, namespace=ns)
    return ns


def _value(client: client_api.Client, ns: str) -> str | None:
    try:
        return client.get("v1", "configmaps", "settings", namespace=ns)["data"]["mode"]
    except errors.NotFound:
        return None


def test_a_commit_reaches_the_cluster_through_the_gitops_process(
        client: client_api.Client, api_server: str, gitops_process: tuple[subprocess.Popen, Path],
        git_daemon: tuple[str, Path]) -> None:
    process, log = gitops_process
    base_url, base = git_daemon
    repo = gitrepos.init(base / "app", {"settings.yaml": syncsupport.configmap("settings", {"mode": "one"})})
    first = gitrepos.git(repo, "rev-parse", "HEAD")
    ns = _tenant(client)
    admin = support.connection(api_server).kubeconfig()

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "reconcile", "gitops", *args, "--kubeconfig", str(admin),
                               "-n", ns], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    assert "sync.gitops.reconcile.dev/app created" in cli(
        "add", "app", "--url", f"{base_url}/app", "--ref", "main", "--interval", "1s",
        "--service-account", "deployer")

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    def applied() -> str | None:
        return (client.get(API, "syncs", "app", namespace=ns).get("status") or {}).get("lastAppliedRevision")

    support.wait_for(lambda: applied() == f"main@sha1:{first}", timeout=60,
                     what=f"the first commit applied; log:\n{tail()}")
    assert _value(client, ns) == "one"
    source = client.get(API, "gitrepositories", "app", namespace=ns)
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{first}"
    second = gitrepos.commit_files(repo, {"settings.yaml": syncsupport.configmap("settings", {"mode": "two"})})
    support.wait_for(lambda: applied() == f"main@sha1:{second}", timeout=60,
                     what=f"the new commit applied; log:\n{tail()}")
    assert _value(client, ns) == "two"
    listed = cli("list")
    assert "app" in listed and f"main@sha1:{second}" in listed and "True" in listed
    shown = cli("status", "app")
    assert f"applied revision:    main@sha1:{second}" in shown and f"ConfigMap {ns}/settings" in shown
    assert cli("tree", "app").splitlines()[1:] == [f"└── ConfigMap/{ns}/settings  Current: no health to check"]
    _diff_shows_the_next_sync(repo, ns, admin)
    assert process.poll() is None
    lease = client.get("coordination.k8s.io/v1", "leases", "reconcile-gitops", namespace="kube-system")
    assert lease["spec"]["holderIdentity"]
    with support.connection(api_server).http_client(anonymous=True) as pusher:  # a push carries no credentials
        _a_signed_push_fetches_at_once(client, pusher, ns, repo, applied, tail)
    # an hour's interval now: `gitops sync --wait` fetches and applies at once; a suspended Sync applies nothing
    assert "suspended" in cli("suspend", "app")
    fourth = gitrepos.commit_files(repo, {"settings.yaml": syncsupport.configmap("settings", {"mode": "four"})})
    assert cli("resume", "app").strip().endswith("resumed")
    synced = cli("sync", "app", "--wait", "--timeout", "60")
    assert synced.splitlines()[-1].startswith("True"), synced
    # what the Sync and its source said, should this fail again (it did once in CI, not reproduced since)
    states = (synced, client.get(API, "syncs", "app", namespace=ns).get("status"),
              client.get(API, "gitrepositories", "app", namespace=ns).get("status"))
    assert applied() == f"main@sha1:{fourth}", (fourth, states, tail())
    assert _value(client, ns) == "four"


def _a_signed_push_fetches_at_once(client: client_api.Client, pusher: httpx.Client, ns: str, repo: Path,
                                   applied: Any, tail: Any) -> None:
    """A Receiver (generic-hmac), its hook on the API server: a forged or unsigned push changes
    nothing; a signed one makes the GitRepository fetch now (its interval is an hour here), and the
    commit is applied."""
    client.patch(API, "gitrepositories", "app", {"spec": {"interval": "1h"}}, namespace=ns)
    token = b"s3cret-token"
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook"},
                                    "data": {"token": base64.b64encode(token).decode()}}, namespace=ns)
    client.create(API, "receivers", {"apiVersion": API, "kind": "Receiver", "metadata": {"name": "push"},
                                     "spec": {"type": "generic-hmac", "secretRef": {"name": "hook"},
                                              "resources": [{"kind": "GitRepository", "name": "app"}]}}, namespace=ns)

    def path() -> str | None:
        return (client.get(API, "receivers", "push", namespace=ns).get("status") or {}).get("webhookPath")

    hook = support.wait_for(path, timeout=30, what=f"the Receiver's webhookPath; log:\n{tail()}")
    assert hook == receiver.webhook_path(token, "push", ns)
    third = gitrepos.commit_files(repo, {"settings.yaml": syncsupport.configmap("settings", {"mode": "three"})})
    body = b'{"ref": "refs/heads/main"}'
    forged = hmac.new(b"guess", body, hashlib.sha256).hexdigest()
    assert pusher.post(hook, content=body, headers={"X-Signature": f"sha256={forged}"}).status_code == 401
    assert pusher.post(hook, content=body).status_code == 401
    assert pusher.post(f"/hooks/gitops/{'0' * 64}", content=body).status_code == 404
    annotations = client.get(API, "gitrepositories", "app", namespace=ns)["metadata"].get("annotations") or {}
    assert "gitops.reconcile.dev/requestedAt" not in annotations
    signed = hmac.new(token, body, hashlib.sha256).hexdigest()
    answer = pusher.post(hook, content=body, headers={"X-Signature": f"sha256={signed}"})
    assert answer.status_code == 200, answer.text
    support.wait_for(lambda: applied() == f"main@sha1:{third}", timeout=60,
                     what=f"the pushed commit applied; log:\n{tail()}")
    assert _value(client, ns) == "three"


def _diff_shows_the_next_sync(repo: Path, ns: str, admin: Path) -> None:
    """`gitops diff --path` of a changed checkout: the changed value and an added object, exit 1;
    of the synced checkout: nothing, exit 0; a broken file is named."""
    def diff(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconcile", "gitops", "diff", "app", "--path", str(folder),
                               "--no-color", "--kubeconfig", str(admin), "-n", ns],
                              capture_output=True, text=True, timeout=120)

    with tempfile.TemporaryDirectory(prefix="gitops-diff-") as scratch:
        local = Path(scratch) / "checkout"
        shutil.copytree(repo, local, ignore=shutil.ignore_patterns(".git"))
        same = diff(local)
        assert (same.returncode, same.stdout) == (0, ""), (same.stdout, same.stderr)
        (local / "settings.yaml").write_text(syncsupport.configmap("settings", {"mode": "changed"}))
        (local / "extra.yaml").write_text(syncsupport.configmap("extra", {"k": "v"}))
        changed = diff(local)
        assert changed.returncode == 1, changed.stderr
        assert "-  mode: two" in changed.stdout and "+  mode: changed" in changed.stdout
        assert f"+++ ConfigMap/{ns}/extra (sync)" in changed.stdout
        (local / "extra.yaml").unlink()
        (local / "settings.yaml").unlink()
        pruned = diff(local)
        assert pruned.returncode == 1 and f"+++ ConfigMap/{ns}/settings (pruned)" in pruned.stdout
        (local / "bad.yaml").write_text("kind: [unclosed\n")
        broken = diff(local)
        assert broken.returncode != 0 and "bad.yaml" in broken.stderr
