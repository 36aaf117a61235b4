"""The ssh:// transport of GitRepository sources: the system `ssh`, run with a fixed argument vector.

Flux's source-controller reads an SSH private key (`identity`) and the server's host keys
(`known_hosts`) from the GitRepository's Secret; so does this. What makes it safe to run `ssh` for
a URL someone else wrote:
- the argument vector is ours alone, never a shell: no options come from the URL, the repository,
  `~/.ssh/config`, `/etc/ssh/ssh_config` (`-F /dev/null`), `core.sshCommand`, `GIT_SSH` or
  `GIT_SSH_COMMAND`; the host and user are checked (no leading `-`, no whitespace or control
  characters) and follow `--`, so neither can be read as an option;
- the host key must be in the Secret's `known_hosts` (`StrictHostKeyChecking=yes`, the user's and
  the system's known hosts files unused): no trust on first use, and nothing is written back;
- only the Secret's key is offered (`IdentitiesOnly`, no agent), never a password or a prompt
  (`BatchMode`), and no forwarding of any kind;
- the key and known_hosts are written 0600 into a private 0700 folder for one fetch and removed
  after it; `ssh` gets a minimal environment (PATH only);
- a passphrase-protected identity (Flux's Secret key `password`) is decrypted here, in memory, by
  `cryptography`: `ssh` never sees the passphrase (BatchMode has no prompt to give it to), and the
  decrypted key exists on disk only as that 0600 file, for that one fetch.

No `dulwich` here (git.py is its one seam): this module builds the command and explains `ssh`'s
errors; git.py's SSH vendor runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

DEFAULT_USER = "git"  # Flux's (go-git's) user when the URL names none
DEFAULT_PORT = 22

# a DNS name or an IPv4/IPv6 address: nothing ssh could read as an option or a token
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|[0-9A-Fa-f:.]+")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.+-]{0,63}")  # POSIX-like login names (git, deploy, a.b-c)


def check_target(host: str, username: str | None) -> None:
    """ValueError unless `host` and `username` are safe as `ssh`'s destination argument."""
    if not host or host.startswith("-") or not _HOST.fullmatch(host):
        raise ValueError(f"the host {host!r} is not a host name or IP address")
    if username is None:
        return
    if not _USER.fullmatch(username):
        raise ValueError("the user name is not a login name (letters, digits, '_', '.', '+', '-'; "
                         "not starting with '-')")


def _normalised(text: str) -> str:
    """The Secret's text with Unix line ends and a final newline (ssh refuses a key without one)."""
    text = text.replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


class IdentityError(ValueError):
    """The Secret's identity and password do not make a usable key (the message names the Secret's
    key at fault, `identity` or `password`, and never holds either's value)."""


def _is_pem_key(data: bytes) -> bool:
    return b"-----BEGIN " in data and b" PRIVATE KEY-----" in data and b"OPENSSH PRIVATE KEY" not in data


def _load(data: bytes, password: bytes | None) -> object:
    if _is_pem_key(data):
        return serialization.load_pem_private_key(data, password)
    return serialization.load_ssh_private_key(data, password)


def decrypt_identity(identity: str, password: str | None) -> str:
    """The identity `ssh` can read without a prompt: as given when it is not encrypted, else
    decrypted with `password` (an OpenSSH key, or a PEM one in PKCS#1 or PKCS#8) and written back
    as an unencrypted OpenSSH key. IdentityError when the key is encrypted and `password` is absent
    or wrong, or `password` is set for a key that is not encrypted (as Flux, which refuses that too).

    Without `password` a key cryptography cannot read is passed on as it is: `ssh` then says what
    is wrong with it (see `explain`), as before passphrases were supported.
    """
    data = _normalised(identity).encode()
    if not password:
        try:
            _load(data, None)
        except TypeError:  # cryptography's word for "encrypted, and no password given"
            raise IdentityError("the identity is encrypted (passphrase-protected): the Secret needs the key "
                                "password") from None
        except (ValueError, UnsupportedAlgorithm):
            pass  # not a key cryptography reads: ssh judges it
        return identity
    try:
        key = _load(data, password.encode())
    except TypeError:  # a password for a key that has none
        raise IdentityError("the key password is set, but the identity is not encrypted: remove password "
                            "from the Secret or store the encrypted key") from None
    except UnsupportedAlgorithm:
        raise IdentityError("the identity is encrypted with a cipher or key derivation that is not "
                            "supported") from None
    except ValueError:
        raise IdentityError("the key password does not decrypt the identity (a wrong password, or a key that "
                            "is not an OpenSSH or PEM private key)") from None
    try:
        plain = key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                  serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    except (ValueError, TypeError, AttributeError, UnsupportedAlgorithm):
        raise IdentityError("the identity's key type cannot be used over ssh:// (use ed25519, ECDSA or "
                            "RSA)") from None
    return plain.decode()


class KeyMaterial:
    """The Secret's identity and known_hosts as files only this process may read, for one fetch.

    A context manager: the folder and both files are gone when it closes, whatever happened.
    """

    def __init__(self, identity: str, known_hosts: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="reconcile-ssh-"))  # mkdtemp: 0700, ours
        try:
            os.chmod(self.root, 0o700)
            self.identity = self._write("identity", identity)
            self.known_hosts = self._write("known_hosts", known_hosts)
        except BaseException:
            self.close()
            raise

    def _write(self, name: str, text: str) -> Path:
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(_normalised(text).encode())
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> KeyMaterial:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hide_paths(self, message: str) -> str:
        """`message` naming the Secret's keys (`identity`, `known_hosts`) instead of our temp files."""
        return message.replace(str(self.root) + os.sep, "")


def find_ssh() -> str:
    """The OpenSSH client on PATH, or LookupError saying what is missing."""
    found = shutil.which("ssh")
    if not found:
        raise LookupError("ssh:// needs the OpenSSH client (`ssh`) on the controller's PATH")
    return found


def command(ssh_binary: str, material: KeyMaterial, host: str, remote_command: bytes, *, port: int | None = None,
            username: str | None = None, protocol_version: int | None = None,
            connect_timeout: float | None = None) -> list[str | bytes]:
    """The whole argument vector for one `ssh` run: every option fixed here, then `--`, then the target.

    `remote_command` is dulwich's `git-upload-pack '<path>'` (the path single-quoted by dulwich for
    the remote login shell, which runs it whatever we do).
    """
    check_target(host, username)
    argv: list[str | bytes] = [
        ssh_binary, "-F", "/dev/null", "-x", "-T", "-a", "-k",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={material.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", f"IdentityFile={material.identity}",
        "-o", "CertificateFile=none",
        "-o", "PreferredAuthentications=publickey",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "ProxyCommand=none",
        "-o", "ProxyJump=none",
        "-o", "PermitLocalCommand=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "ClearAllForwardings=yes",
        "-o", "ForwardAgent=no",
        "-o", "LogLevel=ERROR",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-p", str(int(port or DEFAULT_PORT)),
    ]
    if connect_timeout:
        argv += ["-o", f"ConnectTimeout={max(1, int(connect_timeout))}"]
    if protocol_version:
        argv += ["-o", f"SetEnv=GIT_PROTOCOL=version={int(protocol_version)}"]
    destination = f"{username}@{host}" if username else host
    return [*argv, "--", destination, remote_command]


def environment() -> dict[str, str]:
    """`ssh`'s environment: PATH only (no SSH_AUTH_SOCK, SSH_ASKPASS, GIT_SSH*, LD_* from ours)."""
    return {"PATH": os.environ.get("PATH") or os.defpath}


def explain(stderr: str, host: str, port: int | None) -> str:
    """`ssh`'s error output as one clear sentence: what failed (host key, the key file, authentication)
    first, then ssh's own words (without the banner of a changed host key)."""
    where = f"{host}:{port or DEFAULT_PORT}"
    lowered = stderr.lower()
    lines = [line.strip() for line in stderr.splitlines()]
    if "host key verification failed" in lowered or "no matching host key" in lowered:
        sent = re.search(r"(\w+) key sent by the remote host is\s*(SHA256:[A-Za-z0-9+/=]+)", stderr, re.DOTALL)
        if sent or "has changed" in lowered or "remote host identification" in lowered:
            shown = f" (the server sent the {sent[1]} key {sent[2].rstrip('.')})" if sent else ""
            return (f"the host key of {where} does not match the Secret's known_hosts{shown}: "
                    "Host key verification failed")
        detail = "; ".join(line for line in lines if line and not line.startswith("@"))[:300]
        return (f"the host key of {where} is not in the Secret's known_hosts (host keys are never trusted on "
                f"first use): {detail}")
    detail = "; ".join(line for line in lines if line and not line.startswith("@"))[:500] or \
        "ssh exited without a message"
    if "load key" in lowered or "invalid format" in lowered:
        return f"the Secret's identity is not a usable private key (an unencrypted OpenSSH or PEM key): {detail}"
    if "permission denied" in lowered:
        return f"authentication to {where} failed: the server refused the Secret's identity: {detail}"
    return f"ssh to {where} failed: {detail}"
