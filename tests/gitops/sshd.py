"""A real OpenSSH server on 127.0.0.1 for ssh:// sources: its own host key, authorized key, config
and pid file in a temp folder, on a free port, started as a child (`sshd -D -e`) and stopped by pid.

It logs in as the user running the tests (root in CI: `PermitRootLogin prohibit-password`, keys
only) and serves any repository by its absolute path, as a Git host over SSH does.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconcile import testing
from tests import prerequisites


def keygen(path: Path, comment: str = "test") -> tuple[str, str]:
    """A new unencrypted ed25519 key pair at `path`: (private key text, public key line)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True)
    return path.read_text(), Path(f"{path}.pub").read_text().strip()


def encrypted(identity: str, path: Path, passphrase: str) -> str:
    """`identity` (an unencrypted private key) re-encrypted by `ssh-keygen -p` with `passphrase`, as a
    user protects a deploy key; written 0600 at `path`, returned as text."""
    path.write_text(identity)
    path.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(path)], check=True,
                   capture_output=True)
    return path.read_text()


@dataclasses.dataclass
class SSHServer:
    port: int
    user: str
    identity: str  # the authorized client key (private)
    host_key: str  # the server's public host key line (`ssh-ed25519 AAAA...`)
    log: Path

    def url(self, repository: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository}"

    @property
    def known_hosts(self) -> str:
        """As `ssh-keyscan -p PORT 127.0.0.1` writes it (a non-default port is part of the name)."""
        return f"[127.0.0.1]:{self.port} {' '.join(self.host_key.split()[:2])}\n"


def _config(root: Path, port: int, user: str) -> str:
    return "\n".join([
        "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {root / 'host_key'}", f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}", "StrictModes no", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", f"AllowUsers {user}", "AllowTcpForwarding no", "AllowAgentForwarding no",
        "X11Forwarding no", "PermitTTY no", "PermitUserEnvironment no", "AcceptEnv GIT_PROTOCOL", "LogLevel VERBOSE",
        "",
    ])


@contextmanager
def serve(root: Path) -> Iterator[SSHServer]:
    """Start sshd with state in `root`; yield it; stop it by pid."""
    sshd = prerequisites.require_sshd()
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder (root only)
    root.mkdir(parents=True, exist_ok=True)
    _, host_key = keygen(root / "host_key", "host")
    identity, authorized = keygen(root / "client_key", "client")
    (root / "authorized_keys").write_text(authorized + "\n")
    port, user = testing.free_port(), getpass.getuser()
    (root / "sshd_config").write_text(_config(root, port, user))
    log = root / "sshd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while b"Server listening" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)  # polling a condition (sshd says it listens) with a deadline
        yield SSHServer(port, user, identity, host_key, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
