"""Kubeconfig reading and the precedence of server sources (no server needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from reconcile.client import config
from tests import support


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ambient configuration leaks in: empty HOME and state dir, no env overrides."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(config.STATE_DIR_ENV, str(tmp_path / "state"))
    monkeypatch.delenv(config.SERVER_ENV, raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return home


def write(path: Path, server: str, *, namespace: str = "default") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(support.kubeconfig_text(server, namespace))
    return path


def test_server_argument_beats_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(config.SERVER_ENV, "http://env:1")
    monkeypatch.setenv("KUBECONFIG", str(write(tmp_path / "k", "http://kube:1")))
    cfg = config.load_config(server="http://arg:1/", kubeconfig=str(write(tmp_path / "a", "http://file:1")))
    assert cfg.server == "http://arg:1"
    assert cfg.token is None


def test_env_server_beats_kubeconfig_argument(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(config.SERVER_ENV, "http://env:1")
    assert config.load_config(kubeconfig=str(write(tmp_path / "a", "http://file:1"))).server == "http://env:1"


def test_kubeconfig_argument_beats_env_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write(tmp_path / "k", "http://kube:1")))
    cfg = config.load_config(kubeconfig=str(write(tmp_path / "a", "http://file:1", namespace="team")))
    assert (cfg.server, cfg.namespace, cfg.token) == ("http://file:1", "team", "dev")


def test_env_kubeconfig_beats_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config.write_kubeconfig(tmp_path / "state" / "kubeconfig", "http://state:1")
    monkeypatch.setenv("KUBECONFIG", str(write(tmp_path / "k", "http://kube:1")))
    assert config.load_config().server == "http://kube:1"


def test_state_dir_beats_home_kube_config(clean_env: Path, tmp_path: Path) -> None:
    write(clean_env / ".kube" / "config", "http://home:1")
    assert config.load_config().server == "http://home:1"
    config.write_kubeconfig(tmp_path / "state" / "kubeconfig", "http://state:1", namespace="ns1")
    cfg = config.load_config()
    assert (cfg.server, cfg.namespace, cfg.token) == ("http://state:1", "ns1", None)


def test_nothing_configured_says_what_to_do() -> None:
    with pytest.raises(config.ConfigError, match="reconcile up"):
        config.load_config()


def test_missing_kubeconfig_argument_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="not found"):
        config.load_config(kubeconfig=str(tmp_path / "nope"))


def test_kubeconfig_env_list_merges_first_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = tmp_path / "one"
    first.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "http://first:1"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    second = write(tmp_path / "two", "http://second:1")  # defines cluster "local", context "local", current
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{first}:{second}")
    assert config.load_config().server == "http://second:1"  # current-context comes from the second file
    assert config.load_config(context="x").server == "http://first:1"
    with pytest.raises(config.ConfigError, match='context "nope" not found'):
        config.load_config(context="nope")


def test_tls_and_user_fields(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "token").write_text("from-file\n")
    doc = {
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://h:1",
                    "certificate-authority-data": base64.b64encode(pem).decode(),
                },
            },
            {"name": "insecure", "cluster": {"server": "https://h:2", "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {
                "name": "u",
                "user": {"tokenFile": "token", "client-certificate": "c.crt", "client-key": "c.key"},
            }
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "c", "user": "u"}},
            {"name": "b", "context": {"cluster": "insecure", "user": "u"}},
        ],
        "current-context": "a",
    }
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(doc))
    cfg = config.load_config(kubeconfig=str(path))
    assert cfg.token == "from-file"
    assert isinstance(cfg.verify, str) and Path(cfg.verify).read_bytes() == pem
    assert cfg.cert == (str(tmp_path / "c.crt"), str(tmp_path / "c.key"))  # relative to the kubeconfig
    assert config.load_config(kubeconfig=str(path), context="b").verify is False


def test_write_kubeconfig_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "kubeconfig"
    config.write_kubeconfig(path, "http://127.0.0.1:7000", namespace="apps", token="t0k")
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = config.load_config(kubeconfig=str(path))
    assert (cfg.server, cfg.namespace, cfg.token, cfg.verify) == (
        "http://127.0.0.1:7000",
        "apps",
        "t0k",
        True,
    )


def _in_cluster_root(tmp_path: Path, *, token: bool = True, ca: bool = True, namespace: str | None = "team") -> Path:
    root = tmp_path / "sa"
    root.mkdir(parents=True)
    if token:
        (root / "token").write_text("t0ken\n")
    if ca:
        (root / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    if namespace is not None:
        (root / "namespace").write_text(namespace)
    return root


ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_cluster_config_as_the_official_client(tmp_path: Path) -> None:
    root = _in_cluster_root(tmp_path)
    found = config.in_cluster_config(root=root, environ=ENV)
    assert found is not None
    assert (found.server, found.verify, found.namespace, found.token, found.token_file) == (
        "https://10.96.0.1:443", str(root / "ca.crt"), "team", None, str(root / "token"))
    v6 = config.in_cluster_config(root=root, environ={**ENV, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert v6 is not None and v6.server == "https://[fd00::1]:443"
    no_ns = config.in_cluster_config(root=_in_cluster_root(tmp_path / "x", namespace=None), environ=ENV)
    assert no_ns is not None and no_ns.namespace == "default"


def test_not_in_a_cluster_without_the_variables_or_the_files(tmp_path: Path) -> None:
    root = _in_cluster_root(tmp_path)
    assert config.in_cluster_config(root=root, environ={}) is None
    assert config.in_cluster_config(root=root, environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None
    assert config.in_cluster_config(root=_in_cluster_root(tmp_path / "a", token=False), environ=ENV) is None
    assert config.in_cluster_config(root=_in_cluster_root(tmp_path / "b", ca=False), environ=ENV) is None


def test_load_config_falls_back_to_in_cluster_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _in_cluster_root(tmp_path)
    monkeypatch.setattr(config, "IN_CLUSTER_ROOT", root)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(config.STATE_DIR_ENV, str(tmp_path / "state"))
    for name in ("KUBECONFIG", config.SERVER_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert config.load_config().server == "https://10.96.0.1:443"
    home_config = tmp_path / "home" / ".kube" / "config"
    home_config.parent.mkdir(parents=True)
    config.write_kubeconfig(home_config, "https://elsewhere:6443")
    assert config.load_config().server == "https://elsewhere:6443"  # a kubeconfig beats in-cluster


def test_token_file_auth_reads_the_file_again_when_it_changes(tmp_path: Path) -> None:
    from reconcile.client import api

    path = tmp_path / "token"
    path.write_text("one\n")
    auth = api.TokenFileAuth(str(path))
    assert auth.current() == "one"
    replacement = tmp_path / "new"
    replacement.write_text("two")
    replacement.replace(path)
    assert auth.current() == "two"
    path.unlink()
    assert auth.current() == "two"  # mid-replacement: the last token read
