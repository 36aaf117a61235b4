"""What some tests need from the machine (dockerd, `ip`, root, kubectl 1.32), and what happens without it.

A developer without Docker may still run the rest of the suite: those tests skip, saying what is
missing. CI must not be green while skipping them, so under `CI` (CI sets `CI=true` for `.ci/run`)
or `RECONCILE_REQUIRE_PREREQUISITES=1` (which `make test` sets) a missing prerequisite fails the
test, with what to install; tests/conftest.py also turns any other skip into a failure there.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_VARIABLE = "RECONCILE_REQUIRE_PREREQUISITES"
KUBECTL_MINOR = "32"  # the kubectl the README promises to work with

DOCKER_INSTALL = "apt-get install docker.io busybox-static (`bash scripts/ensure-docker.sh` does it, as `make test` runs it)"
IP_INSTALL = "apt-get install iproute2"
ROOT_INSTALL = "run the tests as root: they create bridges with `ip link` and start private dockerd daemons"
KUBECTL_INSTALL = (f"put kubectl 1.{KUBECTL_MINOR} on PATH, or beside the real file the kubectl on PATH links to "
                   f"(any name starting with kubectl, e.g. kubectl.1.{KUBECTL_MINOR} as google-cloud-sdk ships it); "
                   "it is found by `kubectl version --client -o json`")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def required() -> bool:
    """True under CI or `make test`: a missing prerequisite is a failure, not a skip."""
    return _truthy(os.environ.get("CI")) or _truthy(os.environ.get(REQUIRE_VARIABLE))


def missing(what: str, *, install: str) -> NoReturn:
    """Skip the test (developer machine) or fail it (CI, make test), saying what to install."""
    if required():
        pytest.fail(f"{what} is missing, and under CI / make test that fails the test instead of skipping it. "
                    f"To install: {install}", pytrace=False)
    pytest.skip(f"{what} is missing (to install: {install})")


def require_docker() -> None:
    """Private dockerd daemons need dockerd and the docker CLI, `ip` and root."""
    if not (shutil.which("dockerd") and shutil.which("docker")):
        missing("dockerd (and the docker CLI)", install=DOCKER_INSTALL)
    if not shutil.which("ip"):
        missing("the ip command", install=IP_INSTALL)
    if os.geteuid() != 0:
        missing("root", install=ROOT_INSTALL)


def client_version(binary: str | Path) -> tuple[str, str] | None:
    """(major, minor) that `binary version --client -o json` reports, or None if it is not a kubectl."""
    try:
        result = subprocess.run([str(binary), "version", "--client", "-o", "json"], capture_output=True,
                                text=True, timeout=30)
        version = json.loads(result.stdout)["clientVersion"]
        return str(version["major"]), str(version["minor"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def _kubectl_candidates() -> list[Path]:
    """The kubectl on PATH, then every `kubectl*` file beside the real file it links to."""
    found = shutil.which("kubectl")
    if not found:
        return []
    real = Path(os.path.realpath(found))
    beside = sorted(p for p in real.parent.glob("kubectl*") if p.is_file() and os.access(p, os.X_OK))
    unique: dict[str, Path] = {}  # by the file each name resolves to
    for path in [Path(found), *beside]:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


@functools.cache
def find_kubectl(minor: str = KUBECTL_MINOR) -> str | None:
    """A kubectl that says it is 1.`minor`: an exact build first, else a vendor one ("32+")."""
    vendor: str | None = None
    for path in _kubectl_candidates():
        version = client_version(path)
        if version is None or version[0] != "1":
            continue
        if version[1] == minor:
            return str(path)
        if vendor is None and version[1].rstrip("+") == minor:
            vendor = str(path)
    return vendor


def require_kubectl() -> str:
    """The kubectl 1.32 to run, or skip/fail saying how to get one."""
    found = find_kubectl()
    if found is None:
        missing(f"kubectl 1.{KUBECTL_MINOR}", install=KUBECTL_INSTALL)
    return found


def require_nft() -> None:
    """Debian's `nft` (the service proxy's tool), or skip/fail saying how to get it."""
    if shutil.which("nft") is None:
        missing("nft", install="apt-get install nftables (scripts/ensure-docker.sh does, as root)")


def require_conntrack() -> None:
    """Debian's `conntrack` (the service proxy's UDP flow cleanup), or skip/fail saying how to get it."""
    if shutil.which("conntrack") is None:
        missing("conntrack", install="apt-get install conntrack (scripts/ensure-docker.sh does, as root)")


SSHD_INSTALL = ("apt-get install openssh-server openssh-client git (scripts/ensure-docker.sh installs openssh-server "
                "without starting a system sshd)")


def find_sshd() -> str | None:
    """Debian's OpenSSH server (not on a non-root PATH: /usr/sbin), or None."""
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)),
                                        None)


def require_sshd() -> str:
    """An OpenSSH server and client, ssh-keygen and git-upload-pack (for ssh:// sources), or skip/fail."""
    sshd = find_sshd()
    if sshd is None:
        missing("the OpenSSH server (sshd)", install=SSHD_INSTALL)
    for tool in ("ssh", "ssh-keygen", "git-upload-pack"):
        if shutil.which(tool) is None:
            missing(tool, install=SSHD_INSTALL)
    return sshd
