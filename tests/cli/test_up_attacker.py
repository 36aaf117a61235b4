"""`reconcile up` seen by an attacker: a local non-root user (made by the test, removed after it) on
the same host as the cluster, with curl and whatever files the state dir lets it read.

What it must not get: a route to etcd without the API server's client certificate, anything from the
API server without credentials (or with a bogus token, or with a certificate of a CA of its own making)
beyond the public health and version paths, and any key of the PKI (keys 0600, directories 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconcile.pki import certs
from tests import prerequisites, support

NODE = "up-attacker-test"  # its own node name: other clusters on the Docker engine keep their containers


@dataclass
class Target:
    state_dir: Path
    api: str  # https://127.0.0.1:PORT
    etcd: str  # https://127.0.0.1:PORT
    env: dict[str, str]


def _reconcile(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=180)


@pytest.fixture(scope="module")
def attacker() -> Iterator[str]:
    """A throwaway local user with no home, no shell and no groups of ours."""
    if os.geteuid() != 0:
        prerequisites.missing("root (to create a throwaway local user)", install="run the suite as root")
    name = f"rcatk{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture(scope="module")
def forged(attacker: str) -> Iterator[Path]:
    """A folder the attacker owns for the certificates it forges (pytest's own tmp dirs are root's, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="reconcile-forged-"))
    folder.chmod(0o755)
    subprocess.run(["chown", attacker, str(folder)], check=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """A cluster as `reconcile up` runs it, in a state dir whose parent anyone may enter (as a home
    directory often is), so only the state dir's own modes protect it."""
    parent = Path(tempfile.mkdtemp(prefix="reconcile-attacked-"))
    parent.chmod(0o755)
    state_dir = parent / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env.update(RECONCILE_STATE_DIR=str(state_dir), HOME=str(parent), RECONCILE_NODE_NAME=NODE)
    port = support.free_port()
    try:
        up = _reconcile("up", "--api-port", str(port), env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((state_dir / "state.json").read_text())
        yield Target(state_dir, state["server"], state["components"]["etcd"]["endpoint"], env)
    finally:
        _reconcile("down", "--remove-containers", env=env)
        shutil.rmtree(parent, ignore_errors=True)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, timeout=30)


def curl(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """curl as `user`: `-w` appends the HTTP status (000 when no HTTP answer came)."""
    return as_user(user, "curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args)


def status_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.rsplit("\n", 1)[-1]


def test_the_attacker_is_not_root(attacker: str) -> None:
    assert as_user(attacker, "id", "-u").stdout.strip() != "0"


def test_no_route_to_etcd_without_its_client_certificate(attacker: str, target: Target, forged: Path) -> None:
    body = '{"key": "AA==", "range_end": "AA=="}'  # every key
    tls = curl(attacker, "-k", "-X", "POST", "-d", body, target.etcd + "/v3/kv/range")
    assert tls.returncode != 0 and status_of(tls) == "000", tls.stdout + tls.stderr  # handshake refused
    plain = curl(attacker, "-X", "POST", "-d", body, target.etcd.replace("https:", "http:") + "/v3/kv/range")
    assert '"kvs"' not in plain.stdout and "/registry" not in plain.stdout, plain.stdout
    assert status_of(plain) in ("000", "400"), plain.stdout + plain.stderr  # no TLS: no answer with data
    # a certificate of its own CA does not open the door either
    cert, key = _foreign_client(forged, attacker, "root")
    forged = curl(attacker, "-k", "--cert", str(cert), "--key", str(key), "-X", "POST", "-d", body,
                  target.etcd + "/v3/kv/range")
    assert forged.returncode != 0 and status_of(forged) == "000", forged.stdout + forged.stderr


def test_the_api_without_credentials_is_401_except_public_paths(attacker: str, target: Target) -> None:
    for path in ("/healthz", "/readyz", "/livez", "/version"):
        assert status_of(curl(attacker, "-k", target.api + path)) == "200", path
    for path in ("/api/v1/namespaces", "/api/v1/namespaces/kube-system/secrets", "/apis",
                 "/api/v1/nodes", "/metrics"):
        answer = curl(attacker, "-k", target.api + path)
        assert status_of(answer) == "401", (path, answer.stdout)
        assert json.loads(answer.stdout.rsplit("\n", 1)[0])["message"] == "Unauthorized"
    written = curl(attacker, "-k", "-X", "POST", "-H", "Content-Type: application/json", "-d",
                   '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"owned"}}', target.api + "/api/v1/namespaces")
    assert status_of(written) == "401"
    plain = curl(attacker, target.api.replace("https:", "http:") + "/api/v1/namespaces")
    assert status_of(plain) != "200" and '"items"' not in plain.stdout  # HTTPS only


def test_a_bogus_token_is_401(attacker: str, target: Target) -> None:
    for token in ("bogus", "dev", "admin", "a" * 4096):
        answer = curl(attacker, "-k", "-H", f"Authorization: Bearer {token}", target.api + "/api/v1/namespaces")
        assert status_of(answer) == "401", (token[:10], answer.stdout)
    # impersonation headers without credentials prove nothing
    impersonating = curl(attacker, "-k", "-H", "Impersonate-User: kubernetes-admin", "-H",
                         "Impersonate-Group: system:masters", target.api + "/api/v1/namespaces")
    assert status_of(impersonating) == "401"


def test_a_certificate_of_another_ca_is_refused(attacker: str, target: Target, forged: Path) -> None:
    """A client certificate naming the admin, signed by a CA the attacker made: the handshake fails
    (our server asks for certificates of its CA only; upstream would answer 401)."""
    cert, key = _foreign_client(forged, attacker, "kubernetes-admin", "system:masters")
    answer = curl(attacker, "-k", "--cert", str(cert), "--key", str(key), target.api + "/api/v1/namespaces")
    assert status_of(answer) in ("000", "401"), answer.stdout + answer.stderr
    assert '"items"' not in answer.stdout


def test_the_state_dirs_keys_are_unreadable(attacker: str, target: Target) -> None:
    pki = target.state_dir / "pki"
    keys = sorted(pki.rglob("*.key"))
    assert len(keys) >= 10 and all((k.stat().st_mode & 0o777) == 0o600 for k in keys)
    for folder in (pki, pki / "etcd", pki / "nodes", target.state_dir / "kubeconfigs"):
        assert (folder.stat().st_mode & 0o777) == 0o700, folder
    assert (target.state_dir / "kubeconfig").stat().st_mode & 0o777 == 0o600
    for path in (pki / "ca.key", pki / "admin.key", pki / "apiserver-etcd-client.key", target.state_dir / "kubeconfig"):
        read = as_user(attacker, "cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr and not read.stdout, path
    assert as_user(attacker, "ls", str(pki)).returncode != 0
    # whatever the attacker can read in the state dir holds no key and no credential
    readable = as_user(attacker, "find", str(target.state_dir), "-type", "f", "-readable")
    for line in readable.stdout.splitlines():
        text = Path(line).read_text(errors="replace")
        assert "PRIVATE KEY" not in text and "client-key-data" not in text, line


def _foreign_client(folder: Path, attacker: str, user: str, *groups: str) -> tuple[Path, Path]:
    """A client certificate for `user` from a CA of the attacker's own, in files the attacker owns."""
    ca = certs.new_ca("attacker-ca")
    issued = certs.issue(ca, common_name=user, organizations=groups, client=True)
    stem = f"{user.replace(':', '_')}-{uuid.uuid4().hex[:4]}"
    cert, key = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert.write_bytes(issued.cert)
    key.write_bytes(issued.key)
    subprocess.run(["chown", attacker, str(cert), str(key)], check=True)
    return cert, key


def test_the_node_agent_refuses_a_caller_without_the_api_servers_certificate(attacker: str, target: Target) -> None:
    node = json.loads((target.state_dir / "state.json").read_text())["components"]["node"]["url"]
    for scheme_url in (node, node.replace("http:", "https:")):
        answer = curl(attacker, "-k", "-X", "POST", scheme_url + "/exec/default/any/c?command=id")
        # plain HTTP to a TLS port, or TLS without the API server's client certificate: no answer
        assert status_of(answer) in ("000", "401", "403"), (scheme_url, answer.stdout)
