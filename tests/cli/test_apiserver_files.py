"""The audit policy and encryption configuration `reconcile up` writes: once, private, and usable."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconcile.api import auditpolicy
from reconcile.cli import apiserver_files
from reconcile.store import encryption


def test_the_audit_policy_is_written_once_and_private(tmp_path: Path) -> None:
    args = apiserver_files.audit_args(tmp_path)
    policy = tmp_path / "audit-policy.yaml"
    assert args[:4] == ["--audit-policy-file", str(policy), "--audit-log-path", str(tmp_path / "audit.log")]
    assert policy.read_text() == auditpolicy.DEFAULT_POLICY and (policy.stat().st_mode & 0o777) == 0o600
    policy.write_text(policy.read_text() + "  # edited\n")
    apiserver_files.audit_args(tmp_path)
    assert policy.read_text().endswith("# edited\n")  # an operator's edit survives the next `up`
    auditpolicy.load(policy)


def test_the_encryption_configuration_is_made_once_and_then_always_used(tmp_path: Path) -> None:
    assert apiserver_files.encryption_args(tmp_path, create=False) == []
    args = apiserver_files.encryption_args(tmp_path, create=True)
    config = tmp_path / "encryption-config.yaml"
    assert args == ["--encryption-provider-config", str(config)]
    assert (config.stat().st_mode & 0o777) == 0o600
    text = config.read_text()
    # without the flag, an existing configuration is still passed: its key is the cluster's
    assert apiserver_files.encryption_args(tmp_path, create=False) == args
    assert config.read_text() == text  # never a new key
    transformers = encryption.load(config)
    assert transformers.covers("", "secrets") and not transformers.covers("", "configmaps")
    stored = transformers.to_storage("core/secrets/ns/s", b"value")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key-") and b"value" not in stored
    assert transformers.from_storage("core/secrets/ns/old", b"plain") == (b"plain", True)  # identity reads, stale
    providers = yaml.safe_load(text)["resources"][0]["providers"]
    assert list(providers[0]) == ["aesgcm"] and providers[1] == {"identity": {}}


def test_two_clusters_get_different_keys(tmp_path: Path) -> None:
    one = yaml.safe_load(apiserver_files.new_encryption_config())
    two = yaml.safe_load(apiserver_files.new_encryption_config())
    secret = lambda doc: doc["resources"][0]["providers"][0]["aesgcm"]["keys"][0]["secret"]  # noqa: E731
    assert secret(one) != secret(two)
