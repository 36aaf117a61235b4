"""The API server's security files for `reconcile up`: the audit policy and the encryption configuration.

Both live in the state dir, are written once and then left alone (the operator may edit them: the
next `up` uses what is there). The encryption configuration holds the cluster's key, so once it
exists it is always passed on, whatever the flags say: dropping it would leave every Secret
unreadable. To stop encrypting, put `identity: {}` first in it, restart and run
`reconcile secrets rotate` (the rewrite stores plaintext), then remove the key.
"""

from __future__ import annotations

import base64
import datetime
import os
import secrets
from pathlib import Path

from reconcile.api import auditpolicy

AUDIT_POLICY = "audit-policy.yaml"
AUDIT_LOG = "audit.log"
AUDIT_LOG_MAXSIZE_MB = 100
AUDIT_LOG_MAXBACKUP = 5
ENCRYPTION_CONFIG = "encryption-config.yaml"


def audit_args(state_dir: Path) -> list[str]:
    """Write the default audit policy (unless one is there) and the flags that turn auditing on."""
    policy = state_dir / AUDIT_POLICY
    if not policy.exists():
        _write_private(policy, auditpolicy.DEFAULT_POLICY)
    return ["--audit-policy-file", str(policy), "--audit-log-path", str(state_dir / AUDIT_LOG),
            "--audit-log-maxsize", str(AUDIT_LOG_MAXSIZE_MB), "--audit-log-maxbackup", str(AUDIT_LOG_MAXBACKUP)]


def encryption_args(state_dir: Path, *, create: bool) -> list[str]:
    """The encryption flag when the state dir has a configuration (made now with a new key if `create`)."""
    config = state_dir / ENCRYPTION_CONFIG
    if not config.exists():
        if not create:
            return []
        _write_private(config, new_encryption_config())
    return ["--encryption-provider-config", str(config)]


def new_encryption_config() -> str:
    """Secrets under AES-GCM with a fresh 256-bit key; identity after it, so Secrets written before
    encryption was turned on stay readable until `reconcile secrets rotate` rewrites them."""
    name = "key-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    key = base64.b64encode(secrets.token_bytes(32)).decode()  # the OS's CSPRNG
    return ("apiVersion: apiserver.config.k8s.io/v1\n"
            "kind: EncryptionConfiguration\n"
            "resources:\n"
            "  - resources: [secrets]\n"
            "    providers:\n"
            "      # new writes use the first key of the first provider; to rotate, add a new key first,\n"
            "      # restart (reconcile down && reconcile up), run `reconcile secrets rotate`, then drop the old key\n"
            "      - aesgcm:\n"
            "          keys:\n"
            f"            - name: {name}\n"
            f"              secret: {key}\n"
            "      - identity: {}\n")


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (it may hold a key; audit policies name users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
