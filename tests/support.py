"""Test helpers: start real processes on free ports and wait on conditions with deadlines.

`free_port`, `wait_for` and `eventually` are the public test kit's (`reconcile.testing`), so plugin
authors and this suite wait the same way; they are named here for the tests' convenience.

`ApiServerProcess(..., tls=True)` starts the API server as `reconcile up` does: HTTPS only, the
client CA of a fresh cluster PKI, so a request proves its user with a client certificate. What a
test needs to talk to a server comes from `connection(url)` (a kubeconfig, a `ClientConfig`, an
httpx client; as the admin or as any user), whichever way the server was started, so a fixture
written with it serves a plain and a TLS server alike. `DEFAULT_TLS` (True: the suite runs secured, with
RBAC) is the default of every `ApiServerProcess`; processes a test starts take `connection.component_args()`
(a kubeconfig) or `connection.env()` (KUBECONFIG) instead of a bare URL.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reconcile import testing
from reconcile.client import config as client_config
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster

free_port = testing.free_port
wait_for = testing.wait_for
eventually = testing.eventually

# The suite runs secured, as `reconcile up` does: HTTPS with the client CA (admin requests carry the
# system:masters certificate) and RBAC. A test about the plain mode passes `tls=False` and says why.
DEFAULT_TLS = True
DEFAULT_AUTHORIZATION = ("--authorization-mode", "Node,RBAC")  # unless a test passes --authorization-mode itself


def kubeconfig_text(server: str, namespace: str = "default") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "{server}"}}
users:
- name: admin
  user: {{token: "dev"}}
contexts:
- name: local
  context: {{cluster: local, user: admin, namespace: {namespace}}}
current-context: local
"""


@dataclass
class Connection:
    """How to reach one API server: its URL, and with TLS its PKI (whose CA signs client certificates)."""

    url: str
    pki: pki_cluster.ClusterPki | None = None
    _users: dict[certs.Identity, pki_cluster.Pair] = field(default_factory=dict)
    _kubeconfigs: dict[tuple[Path | None, str], Path] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.pki is not None

    def user(self, name: str, *groups: str) -> pki_cluster.Pair:
        """A client certificate for `name` in `groups`, signed by the server's client CA (made once)."""
        assert self.pki is not None, "a plain server has no client CA"
        identity = certs.Identity(name, tuple(groups))
        if identity not in self._users:
            issued = certs.issue(self.pki.ca.read(), common_name=name, organizations=tuple(groups), client=True)
            pair = self.pki.pair(f"users/{uuid.uuid4().hex[:8]}-{name.replace(':', '_')}")  # the PKI may be shared
            pair.cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pair.key.write_bytes(issued.key)
            pair.key.chmod(0o600)
            pair.cert.write_bytes(issued.cert)
            self._users[identity] = pair
        return self._users[identity]

    def _pair(self, as_user: pki_cluster.Pair | None) -> pki_cluster.Pair | None:
        if self.pki is None:
            return None
        return as_user or self.pki.admin

    def client_config(self, *, as_user: pki_cluster.Pair | None = None, namespace: str = "default") -> client_config.ClientConfig:
        """A `reconcile.client` config: the admin's certificate unless `as_user` (see `user`)."""
        pair = self._pair(as_user)
        if pair is None or self.pki is None:
            return client_config.ClientConfig(server=self.url, namespace=namespace)
        return client_config.ClientConfig(server=self.url, verify=str(self.pki.ca.cert), namespace=namespace,
                                          cert=(str(pair.cert), str(pair.key)))

    def write_kubeconfig(self, path: Path, *, namespace: str = "default",
                         as_user: pki_cluster.Pair | None = None) -> Path:
        """A kubeconfig for kubectl and the official client (certificates embedded, as `up` writes)."""
        pair = self._pair(as_user)
        if pair is None or self.pki is None:
            path.write_text(kubeconfig_text(self.url, namespace))
            return path
        client_config.write_kubeconfig(path, self.url, namespace=namespace, ca_data=self.pki.ca.cert.read_bytes(),
                                       cert_data=pair.cert.read_bytes(), key_data=pair.key.read_bytes())
        return path

    def kubeconfig(self, *, as_user: pki_cluster.Pair | None = None, namespace: str = "default") -> Path:
        """A kubeconfig file (made once per user and namespace) for a process the test starts: the
        components, operators and the CLI take it as `--kubeconfig` or `KUBECONFIG`."""
        key = (as_user.cert if as_user else None, namespace)
        if key not in self._kubeconfigs:
            folder = Path(tempfile.mkdtemp(prefix="kubeconfig-"))
            folder.chmod(0o700)
            atexit.register(shutil.rmtree, folder, True)  # it holds a copy of a key
            self._kubeconfigs[key] = self.write_kubeconfig(folder / "kubeconfig", namespace=namespace, as_user=as_user)
        return self._kubeconfigs[key]

    def component_args(self, *, as_user: pki_cluster.Pair | None = None) -> list[str]:
        """`--kubeconfig PATH` for `reconcile controller-manager|scheduler|node join|operator run`."""
        return ["--kubeconfig", str(self.kubeconfig(as_user=as_user))]

    def env(self, *, as_user: pki_cluster.Pair | None = None, namespace: str = "default") -> dict[str, str]:
        """The environment for a CLI or kubectl run against this server (and no $RECONCILE_SERVER)."""
        env = {k: v for k, v in os.environ.items() if k != "RECONCILE_SERVER"}
        env["KUBECONFIG"] = str(self.kubeconfig(as_user=as_user, namespace=namespace))
        return env

    def ssl_context(self, *, as_user: pki_cluster.Pair | None = None, anonymous: bool = False) -> ssl.SSLContext | bool:
        """What httpx takes as `verify`: the CA, and a client certificate unless `anonymous`."""
        if self.pki is None:
            return True
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        pair = self._pair(as_user)
        if pair is not None and not anonymous:
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def http_client(self, *, as_user: pki_cluster.Pair | None = None, anonymous: bool = False,
                    timeout: float = 15.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout,
                            verify=self.ssl_context(as_user=as_user, anonymous=anonymous))

    def async_http_client(self, *, as_user: pki_cluster.Pair | None = None, anonymous: bool = False,
                          timeout: float = 15.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                 verify=self.ssl_context(as_user=as_user, anonymous=anonymous))


_CONNECTIONS: dict[str, Connection] = {}


def connection(url: str) -> Connection:
    """The connection of a server this suite started (by URL), or a plain one for any other URL."""
    return _CONNECTIONS.get(url.rstrip("/")) or Connection(url.rstrip("/"))


_SHARED_PKI: list[pki_cluster.ClusterPki] = []


def shared_pki() -> pki_cluster.ClusterPki:
    """One cluster PKI for the session's API servers (making one costs about a second under load):
    each server still has its own etcd prefix; a test that needs a CA of its own passes `pki`."""
    if not _SHARED_PKI:
        folder = Path(tempfile.mkdtemp(prefix="apiserver-pki-"))
        atexit.register(shutil.rmtree, folder, True)
        pki = pki_cluster.ClusterPki(folder / "pki")
        pki.ensure()
        _SHARED_PKI.append(pki)
    return _SHARED_PKI[0]


def process_log(prefix: str) -> typing.IO[bytes]:
    """A log file for a child process, kept until the session ends (a failing test's message and a
    test reading the log after stopping the child still find it), then removed: a full run starts
    thousands of children, and their logs must not pile up in /tmp."""
    log = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False)
    atexit.register(_remove_quietly, log.name)
    return log


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class ApiServerProcess:
    """`python -m reconcile apiserver` as a child process, stopped by pid.

    With `tls=True` it serves HTTPS with a PKI of its own (or `pki`, shared with e.g. an etcd the test
    started): the serving certificate, and the cluster CA as client CA (x509 authentication)."""

    def __init__(self, etcd_endpoint: str, *, prefix: str, extra_args: tuple[str, ...] = (),
                 tls: bool | None = None, pki: pki_cluster.ClusterPki | None = None) -> None:
        self.etcd_endpoint = etcd_endpoint
        self.prefix = prefix
        self.port = free_port()
        self.tls = DEFAULT_TLS if tls is None else tls
        self.pki: pki_cluster.ClusterPki | None = None
        if self.tls:
            self.pki = pki or shared_pki()
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.connection = Connection(self.url, self.pki)
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.log = process_log("apiserver-")

    def tls_args(self) -> list[str]:
        """TLS and the client CA, and RBAC unless the test chose an --authorization-mode (a plain server
        stays AlwaysAllow: nothing proves who calls it, so RBAC would see only system:anonymous)."""
        if self.pki is None:
            return []
        authorization = [] if "--authorization-mode" in self.extra_args else [*DEFAULT_AUTHORIZATION]
        return ["--tls-cert-file", str(self.pki.apiserver.cert), "--tls-private-key-file", str(self.pki.apiserver.key),
                "--client-ca-file", str(self.pki.ca.cert), *authorization]

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_ready` waits): the suite launches the next
        module's server while the current module runs."""
        _CONNECTIONS[self.url] = self.connection
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "reconcile", "apiserver",
                "--etcd", self.etcd_endpoint, "--port", str(self.port), "--etcd-prefix", self.prefix,
                *self.tls_args(), *self.extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the launched server answers /readyz (stopped, with its log in the error, if not)."""
        verify = self.connection.ssl_context(anonymous=True)  # /readyz is public

        def ready() -> bool:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"apiserver exited: {open(self.log.name).read()[-3000:]}")
            return httpx.get(self.url + "/readyz", timeout=1, verify=verify).status_code == 200

        try:
            wait_for(ready, timeout=timeout, interval=0.05, what="apiserver /readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"apiserver did not start: {open(self.log.name).read()[-3000:]}") from None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
