"""ssh:// sources over a real OpenSSH server on 127.0.0.1: the Secret's identity and known_hosts, and
nothing else, decide; hostile hosts and users are refused before any process runs.

The server is Debian's sshd (tests/gitops/sshd.py); the client is the system `ssh`. Where a test must
show that no process ran, PATH holds a probe `ssh` that records its arguments (and a positive
control shows the probe is reached when a process does run).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconcile.gitops import git, ssh
from tests.gitops import gitrepos, sshd
from tests.gitops.sshd import SSHServer

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


@pytest.fixture(scope="module")
def served(ssh_server: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(ssh:// URL, HEAD) of a repository the server serves by its absolute path."""
    src = gitrepos.init(tmp_path_factory.mktemp("ssh-src") / "repo", {"app/cm.yaml": CM.format("over-ssh")})
    gitrepos.git(src, "config", "core.sshCommand", "touch /nonexistent-marker")  # the source's config: unused
    return ssh_server.url(src), gitrepos.git(src, "rev-parse", "HEAD")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's folder for this test only: what the fetch leaves there can be listed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH that records its argument vector and fails; returns the record's path."""
    folder = tmp_path / "probe-bin"
    folder.mkdir()
    record = tmp_path / "probe-argv"
    script = folder / "ssh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\nexit 255\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return record


def _creds(server: SSHServer, **changes: str) -> git.Credentials:
    values = {"identity": server.identity, "known_hosts": server.known_hosts, **changes}
    return git.Credentials(**values)


def test_a_fetch_over_ssh_gives_the_revision_and_leaves_no_key_behind(
        ssh_server: SSHServer, served: tuple[str, str], tmp_path: Path, private_tmp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, head = served
    markers = [tmp_path / "git-ssh-ran", tmp_path / "git-ssh-command-ran"]
    for variable, marker in zip(("GIT_SSH", "GIT_SSH_COMMAND"), markers, strict=True):
        monkeypatch.setenv(variable, f"touch {marker}")  # what git (and dulwich's porcelain) would honour
    fetched = git.fetch(url, git.Ref(branch="main"), tmp_path / "cache", credentials=_creds(ssh_server))
    assert fetched.revision == f"main@sha1:{head}"
    assert fetched.url == url.replace(f"{ssh_server.user}@", "")  # the user is not part of what is shown
    out = tmp_path / "out"
    out.mkdir()
    git.checkout(fetched, out)
    assert (out / "app" / "cm.yaml").read_text() == CM.format("over-ssh")
    assert not any(m.exists() for m in markers) and not Path("/nonexistent-marker").exists()
    assert list(private_tmp.iterdir()) == []  # the key and known_hosts went with the fetch


def test_a_wrong_or_unknown_host_key_is_refused_clearly(ssh_server: SSHServer, served: tuple[str, str],
                                                       tmp_path: Path, private_tmp: Path) -> None:
    url, _ = served
    _, other = sshd.keygen(tmp_path / "other-host")
    wrong = f"[127.0.0.1]:{ssh_server.port} {other}\n"
    with pytest.raises(git.GitError) as caught:
        git.fetch(url, git.Ref(branch="main"), tmp_path / "c1", credentials=_creds(ssh_server, known_hosts=wrong))
    text = str(caught.value)
    assert f"the host key of 127.0.0.1:{ssh_server.port} does not match the Secret's known_hosts" in text
    assert "Host key verification failed" in text and "SHA256:" in text
    elsewhere = f"127.0.0.2 {ssh_server.host_key}\n"  # the right key, for another host: no trust on first use
    with pytest.raises(git.GitError, match=r"is not in the Secret's known_hosts \(host keys are never trusted"):
        git.fetch(url, git.Ref(branch="main"), tmp_path / "c2", credentials=_creds(ssh_server, known_hosts=elsewhere))
    assert list(private_tmp.iterdir()) == []
    assert not (tmp_path / "c2" / "objects" / "pack").is_dir() or not list((tmp_path / "c2").rglob("*.pack"))


def test_a_wrong_identity_fails_and_no_key_reaches_the_message(ssh_server: SSHServer, served: tuple[str, str],
                                                              tmp_path: Path) -> None:
    url, _ = served
    other, _ = sshd.keygen(tmp_path / "other-client")
    with pytest.raises(git.GitError) as caught:
        git.fetch(url, git.Ref(branch="main"), tmp_path / "c1", credentials=_creds(ssh_server, identity=other))
    text = str(caught.value)
    assert f"authentication to 127.0.0.1:{ssh_server.port} failed" in text and "Permission denied" in text
    key_lines = [line for key in (other, ssh_server.identity) for line in key.splitlines() if len(line) > 20]
    assert not any(line in text for line in key_lines)
    with pytest.raises(git.GitError, match="the Secret's identity is not a usable private key") as caught:
        git.fetch(url, git.Ref(branch="main"), tmp_path / "c2",
                  credentials=_creds(ssh_server, identity="-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n"))
    assert "bm90IGEga2V5" not in str(caught.value) and "reconcile-ssh-" not in str(caught.value)


def test_an_encrypted_identity_is_decrypted_with_its_password_and_never_left_behind(
        ssh_server: SSHServer, served: tuple[str, str], tmp_path: Path, private_tmp: Path) -> None:
    """Flux's `password` key: the passphrase of the identity. The fetch authenticates with the key
    it decrypts; no decrypted key, passphrase or temp file is left, and ssh never got a prompt."""
    url, head = served
    passphrase = "correct horse 7-battery"
    locked = sshd.encrypted(ssh_server.identity, tmp_path / "locked", passphrase)
    with pytest.raises(TypeError, match="password-protected"):  # really encrypted: unreadable without it
        serialization.load_ssh_private_key(locked.encode(), None)
    fetched = git.fetch(url, git.Ref(branch="main"), tmp_path / "cache",
                        credentials=_creds(ssh_server, identity=locked, password=passphrase))
    assert fetched.revision == f"main@sha1:{head}"
    assert list(private_tmp.iterdir()) == []


def test_a_wrong_or_missing_password_names_the_key_and_never_shows_it(
        ssh_server: SSHServer, served: tuple[str, str], tmp_path: Path, probe: Path) -> None:
    """Refused before any `ssh` runs (the probe sees nothing), naming `password`, without its value."""
    url, _ = served
    locked = sshd.encrypted(ssh_server.identity, tmp_path / "locked", "the-right-one")
    for password, message in ((None, "the identity is encrypted (passphrase-protected): the Secret needs the "
                                     "key password"),
                              ("hunter2-wrong", "the key password does not decrypt the identity")):
        with pytest.raises(git.GitError) as caught:
            git.fetch(url, git.Ref(branch="main"), tmp_path / "cache",
                      credentials=_creds(ssh_server, identity=locked, **({"password": password} if password else {})))
        text = str(caught.value)
        assert message in text and text.startswith(f"ssh://127.0.0.1:{ssh_server.port}")
        assert "hunter2-wrong" not in text and "the-right-one" not in text
    with pytest.raises(git.GitError, match="the key password is set, but the identity is not encrypted"):
        git.fetch(url, git.Ref(branch="main"), tmp_path / "cache",
                  credentials=_creds(ssh_server, password="not-needed"))
    assert not probe.exists()


def test_decrypt_identity_reads_pem_keys_too_and_passes_plain_keys_through() -> None:
    """PKCS#1 (`BEGIN RSA PRIVATE KEY` with a DEK-Info header) and PKCS#8 (`BEGIN ENCRYPTED
    PRIVATE KEY`) encrypted keys decrypt to the same key as OpenSSH text; an unencrypted key, or text
    that is no key at all (ssh reports it), comes back unchanged when no password is set."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    for format_ in (serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8):
        locked = key.private_bytes(serialization.Encoding.PEM, format_,
                                   serialization.BestAvailableEncryption(b"pem-pass")).decode()
        assert "ENCRYPTED" in locked
        plain = ssh.decrypt_identity(locked, "pem-pass")
        assert plain.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        loaded = serialization.load_ssh_private_key(plain.encode(), None)
        assert loaded.public_key().public_bytes(serialization.Encoding.OpenSSH,  # type: ignore[union-attr]
                                                serialization.PublicFormat.OpenSSH) == public
        with pytest.raises(ssh.IdentityError, match="needs the key password"):
            ssh.decrypt_identity(locked, None)
        with pytest.raises(ssh.IdentityError, match="does not decrypt") as caught:
            ssh.decrypt_identity(locked, "pem-wrong")
        assert "pem-wrong" not in str(caught.value)
    unencrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
    assert ssh.decrypt_identity(unencrypted, None) == unencrypted
    assert ssh.decrypt_identity("not a key", None) == "not a key"


@pytest.mark.parametrize("url, message", [
    ("ssh://-oProxyCommand=touch%20x/repo", "no valid host"),
    ("ssh://-oProxyCommand=id/repo", "no valid host"),
    ("ssh://%2DoProxyCommand=id@127.0.0.1/repo", "the user name is not a login name"),
    ("ssh://a%20b@127.0.0.1/repo", "the user name is not a login name"),
    ("ssh://a%0Ab@127.0.0.1/repo", "the user name is not a login name"),
    ("ssh://git@host_%25h/repo", "is not a host name"),
    ("ssh://git:hunter2-pw@127.0.0.1/repo", "a password in an ssh:// URL is not supported"),
    ("git@github.example:org/repo.git", "scp-like address .* write ssh://user@host/path"),
    ("ssh://git@127.0.0.1/repo -oProxyCommand=id", "whitespace"),
])
def test_hostile_ssh_urls_are_refused_before_any_process(url: str, message: str, probe: Path,
                                                         ssh_server: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(git.InvalidURL, match=message) as caught:
        git.fetch(url, git.Ref(branch="main"), tmp_path / "cache", credentials=_creds(ssh_server))
    assert "hunter2-pw" not in str(caught.value)
    assert not probe.exists() and not (tmp_path / "cache").exists()


def test_ssh_without_known_hosts_or_identity_runs_nothing(probe: Path, ssh_server: SSHServer, tmp_path: Path) -> None:
    url = f"ssh://git@127.0.0.1:{ssh_server.port}/repo"
    for credentials, message in ((None, "needs spec.secretRef naming a Secret with the keys identity and known_hosts"),
                                 (_creds(ssh_server, known_hosts=""), "needs the key known_hosts"),
                                 (_creds(ssh_server, identity=""), "identity and known_hosts")):
        with pytest.raises(git.GitError, match=message):
            git.fetch(url, git.Ref(branch="main"), tmp_path / "cache", credentials=credentials)
    assert not probe.exists()
    # the positive control: a well-formed fetch does reach the probe, with our fixed arguments only
    with pytest.raises(git.GitError, match="fetch failed"):
        git.fetch(url, git.Ref(branch="main"), tmp_path / "cache", credentials=_creds(ssh_server))
    argv = probe.read_text().splitlines()
    assert argv[:2] == ["-F", "/dev/null"]
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null",
                   "IdentitiesOnly=yes", "IdentityAgent=none", "ProxyCommand=none"):
        assert option in argv
    assert argv[-3:-1] == ["--", "git@127.0.0.1"] and argv[-1] == "git-upload-pack '/repo'"
    assert argv[argv.index("-p") + 1] == str(ssh_server.port)


def test_key_material_is_private_and_removed(tmp_path: Path, private_tmp: Path) -> None:
    with ssh.KeyMaterial("-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----", "host ssh-ed25519 AAAA") as material:
        assert stat.S_IMODE(material.root.stat().st_mode) == 0o700
        for path in (material.identity, material.known_hosts):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.parent == material.root
        assert material.identity.read_text() == "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
        assert material.hide_paths(f'Load key "{material.identity}": bad') == 'Load key "identity": bad'
    assert not material.root.exists() and list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("host, user", [("-oProxyCommand=x", None), ("a b", None), ("", None), ("h", "-l"),
                                        ("h", "a;b"), ("h", ""), ("h\n", None), ("%h", None), ("h", "x" * 65)])
def test_check_target_refuses_what_ssh_could_read_as_an_option(host: str, user: str | None) -> None:
    with pytest.raises(ValueError):
        ssh.check_target(host, user)


@pytest.mark.parametrize("host, user", [("github.com", "git"), ("127.0.0.1", None), ("::1", "deploy"),
                                        ("git-host.example", "a.b-c")])
def test_check_target_admits_ordinary_hosts_and_users(host: str, user: str | None) -> None:
    ssh.check_target(host, user)
