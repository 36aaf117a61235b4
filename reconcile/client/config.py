"""Where the client finds its server: arguments, environment, kubeconfig files.

Precedence (first match wins), so a flag always beats the environment and the environment
beats files: `server` argument, `RECONCILE_SERVER`, `kubeconfig` argument, `KUBECONFIG`
(a `:`-separated list merged like kubectl: the first file to name an entry wins), the
kubeconfig `reconcile up` writes in the state dir, `~/.kube/config`, and last, inside a pod, the
in-cluster configuration (`in_cluster_config`, as the official client's `load_incluster_config`):
`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the CA and the ServiceAccount token
that the node agent projects into /var/run/secrets/kubernetes.io/serviceaccount/, and its
namespace. The token file is read again whenever it changes (the node agent refreshes it).

TLS material follows kubectl's fields: `certificate-authority(-data)`, `client-certificate(-data)`,
`client-key(-data)`, `insecure-skip-tls-verify`. Inline data is written once to files in a private
per-user directory (the TLS library loads keys from files), which is checked to be ours and 0700
before anything is read from or written to it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STATE_DIR_ENV = "RECONCILE_STATE_DIR"
SERVER_ENV = "RECONCILE_SERVER"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"
SERVICE_PORT_ENV = "KUBERNETES_SERVICE_PORT"
# Where a pod finds its ServiceAccount token, the cluster CA and its namespace (tests pass another root).
IN_CLUSTER_ROOT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(ValueError):
    """No usable server could be found, or a kubeconfig is malformed."""


@dataclass
class ClientConfig:
    """Everything needed to open a connection to one API server."""

    server: str  # base URL, e.g. "http://127.0.0.1:6443" (no trailing slash)
    token: str | None = None  # bearer token, sent on every request
    verify: bool | str = True  # TLS: False = skip verification, str = CA bundle path
    namespace: str = "default"  # default namespace for namespaced calls made by callers (CLI)
    cert: tuple[str, str] | None = None  # client certificate and key file paths
    token_file: str | None = None  # bearer token read from this file, again whenever it changes (in-cluster)
    impersonate: str | None = None  # Impersonate-User on every request (client-go's rest.Config.Impersonate)

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")


def state_dir() -> Path:
    """The folder `reconcile up` keeps its pid files, logs and kubeconfig in."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else Path.home() / ".local" / "share" / "reconcile"


def default_kubeconfig_paths() -> list[Path]:
    """The files looked at when neither an argument nor an environment variable names one."""
    return [state_dir() / "kubeconfig", Path.home() / ".kube" / "config"]


def load_config(
    *, server: str | None = None, kubeconfig: str | None = None, context: str | None = None
) -> ClientConfig:
    """Resolve the connection settings by the documented precedence."""
    if server:
        return ClientConfig(server=server)
    env_server = os.environ.get(SERVER_ENV)
    if env_server:
        return ClientConfig(server=env_server)
    if kubeconfig:
        return _from_files([Path(kubeconfig)], context=context, required=True)
    env_paths = os.environ.get("KUBECONFIG")
    if env_paths:
        paths = [Path(p) for p in env_paths.split(os.pathsep) if p]
        return _from_files(paths, context=context, required=False)
    for path in default_kubeconfig_paths():
        if path.is_file():
            return _from_files([path], context=context, required=True)
    in_cluster = in_cluster_config()
    if in_cluster is not None:
        return in_cluster
    tried = ", ".join(str(p) for p in default_kubeconfig_paths())
    raise ConfigError(
        f"no API server configured: pass --server, set {SERVER_ENV} or KUBECONFIG, or run `reconcile up` "
        f"(looked for {tried})"
    )


def in_cluster_config(*, root: Path | None = None, environ: Mapping[str, str] | None = None) -> ClientConfig | None:
    """The configuration of a process in a pod, or None when this is not one (the service variables
    or the token and CA files are missing), as the official client's `load_incluster_config`."""
    env = os.environ if environ is None else environ
    host, port = env.get(SERVICE_HOST_ENV, ""), env.get(SERVICE_PORT_ENV, "")
    folder = root if root is not None else IN_CLUSTER_ROOT
    token, ca = folder / "token", folder / "ca.crt"
    if not host or not port or not token.is_file() or not ca.is_file():
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address (Go's JoinHostPort)
    namespace = "default"
    try:
        namespace = (folder / "namespace").read_text().strip() or namespace
    except OSError:
        pass
    return ClientConfig(server=f"https://{host}:{port}", verify=str(ca), namespace=namespace,
                        token_file=str(token))


def write_kubeconfig(
    path: Path, server: str, *, namespace: str = "default", token: str | None = None,
    ca_data: bytes | None = None, cert_data: bytes | None = None, key_data: bytes | None = None,
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None,
) -> None:
    """Write a one-context kubeconfig that kubectl, the Python client, kopf and we all read.

    `*_data` (PEM) is embedded base64 as `certificate-authority-data`, `client-certificate-data`,
    `client-key-data` (a file that stands alone: the user's kubeconfig); `*_file` is referenced by
    absolute path (components' kubeconfigs next to the PKI, so a renewal needs no rewrite)."""
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": server}
    if ca_data is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    elif ca_file is not None:
        cluster["certificate-authority"] = str(Path(ca_file).resolve())
    if cert_data is not None and key_data is not None:
        user["client-certificate-data"] = base64.b64encode(cert_data).decode()
        user["client-key-data"] = base64.b64encode(key_data).decode()
    elif cert_file is not None and key_file is not None:
        user["client-certificate"] = str(Path(cert_file).resolve())
        user["client-key"] = str(Path(key_file).resolve())
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "reconcile", "cluster": cluster}],
        "users": [{"name": "reconcile", "user": user}],
        "contexts": [
            {
                "name": "reconcile",
                "context": {"cluster": "reconcile", "user": "reconcile", "namespace": namespace},
            }
        ],
        "current-context": "reconcile",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file


def _from_files(paths: list[Path], *, context: str | None, required: bool) -> ClientConfig:
    merged = _merge([_read(p, required=required) for p in paths])
    if not merged["source"]:
        raise ConfigError(f"kubeconfig not found: {', '.join(str(p) for p in paths)}")
    return _config_from(merged, context=context)


def _read(path: Path, *, required: bool) -> tuple[Path, dict[str, Any]] | None:
    if not path.is_file():
        if required:
            raise ConfigError(f"kubeconfig not found: {path}")
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    return path, doc


def _merge(docs: list[tuple[Path, dict[str, Any]] | None]) -> dict[str, Any]:
    """kubectl's merge rule: the first file that defines a named entry (or current-context) wins."""
    merged: dict[str, Any] = {
        "clusters": {},
        "users": {},
        "contexts": {},
        "current-context": None,
        "source": {},
    }
    for item in docs:
        if item is None:
            continue
        path, doc = item
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                name = entry.get("name")
                if name is not None and name not in merged[section]:
                    merged[section][name] = entry.get(inner) or {}
                    merged["source"][(section, name)] = path.parent
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def _config_from(merged: dict[str, Any], *, context: str | None) -> ClientConfig:
    name = context or merged["current-context"]
    if not name:
        raise ConfigError("kubeconfig has no current-context and no context was given")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise ConfigError(f'context "{name}" not found in kubeconfig')
    cluster_name = ctx.get("cluster")
    cluster = merged["clusters"].get(cluster_name)
    if cluster is None or not cluster.get("server"):
        raise ConfigError(f'cluster "{cluster_name}" of context "{name}" has no server')
    base = merged["source"].get(("clusters", cluster_name), Path("."))
    user_name = ctx.get("user")
    user = merged["users"].get(user_name) or {}
    user_base = merged["source"].get(("users", user_name), Path("."))
    return ClientConfig(
        server=str(cluster["server"]),
        token=_token(user, user_base),
        verify=_verify(cluster, base),
        namespace=ctx.get("namespace") or "default",
        cert=_cert(user, user_base),
    )


def _token(user: dict[str, Any], base: Path) -> str | None:
    if user.get("token"):
        return str(user["token"])
    if user.get("tokenFile"):
        return _resolve(base, user["tokenFile"]).read_text().strip()
    return None


def _verify(cluster: dict[str, Any], base: Path) -> bool | str:
    if cluster.get("insecure-skip-tls-verify"):
        return False
    if cluster.get("certificate-authority"):
        return str(_resolve(base, cluster["certificate-authority"]))
    if cluster.get("certificate-authority-data"):
        return _materialize(cluster["certificate-authority-data"], "ca.crt")
    return True


def _cert(user: dict[str, Any], base: Path) -> tuple[str, str] | None:
    if user.get("client-certificate") and user.get("client-key"):
        return str(_resolve(base, user["client-certificate"])), str(_resolve(base, user["client-key"]))
    if user.get("client-certificate-data") and user.get("client-key-data"):
        return (
            _materialize(user["client-certificate-data"], "client.crt"),
            _materialize(user["client-key-data"], "client.key"),
        )
    return None


def _resolve(base: Path, value: str) -> Path:
    """Relative paths in a kubeconfig are relative to the file that holds them."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _materialize(data_b64: str, suffix: str) -> str:
    """The TLS library loads keys from files; write inline data once, named by its hash, into a
    directory only we can use (another user who made it first, or a symlink, would get to plant a
    CA or read a key: such a directory is refused)."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except ValueError as exc:
        raise ConfigError(f"kubeconfig {suffix} data is not base64: {exc}") from None
    folder = _private_folder()
    path = folder / f"{hashlib.sha256(raw).hexdigest()[:32]}-{suffix}"
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current != raw:
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        tmp.replace(path)
    return str(path)


def _private_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"reconcile-kubeconfig-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(f"{folder} is not a private directory of this user (owner, mode 0700): "
                          "remove it, it holds kubeconfig key material")
    return folder
