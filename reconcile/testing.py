"""The test kit for plugin authors: a real etcd + API server, and a runner for an operator.

    pytest_plugins = ["reconcile.testing"]          # in conftest.py: provides `reconcile_cluster`

    def test_hello(reconcile_cluster):
        reconcile_cluster.apply("crd.yaml")
        with OperatorRunner("handlers.py", server=reconcile_cluster.client_config):
            reconcile_cluster.apply("website.yaml")
            wait_for(lambda: reconcile_cluster.client.get(...)["status"].get("ready"))

Everything is real (no mocks), like controller-runtime's envtest; set `RECONCILE_TEST_ETCD` to
reuse a running etcd instead of starting one. A `Cluster` starts secured as `reconcile up` does (a
PKI of its own, etcd on TLS with client certificates, the API server on HTTPS with the client CA and
RBAC; `Cluster(tls=False)` for plain HTTP where every caller is trusted): `.client_config` is the admin's, `.kubeconfig()` writes one for kubectl, the official client or
kopf, and `OperatorRunner(..., server=cluster.client_config)` runs a plugin with it. `wait_for` (and
`eventually` for async tests) poll a condition with a deadline instead of sleeping; `free_port` gives a
loopback port for a server a test starts. The project's own tests use these same helpers.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from reconcile.client import aio, api
from reconcile.client import config as config_mod
from reconcile.core import errors
from reconcile.engine import clock as clock_mod
from reconcile.engine.sdk import loading, operator, registry
from reconcile.etcdserver import embedded
from reconcile.pki import cluster as pki_cluster

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `condition` until it returns something truthy and return that; fail after `timeout` seconds.

    An exception from the condition counts as "not yet" (the thing may not be up); the last one is
    in the failure message.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: last error {last_error!r}")


async def eventually(condition: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.01,
                     what: str = "") -> Any:
    """`wait_for` for async tests: polls a sync or async condition without blocking the event loop
    the code under test runs on."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:  # not there yet
            last_error = exc
        else:
            if value:
                return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: last error {last_error!r}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it), for a server to bind."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """An etcd (own or shared) plus one API server subprocess on a free port, stopped by pid; with
    `tls=True` (the default) secured as `reconcile up` runs it: HTTPS, client certificates, RBAC (a
    shared `RECONCILE_TEST_ETCD` stays plain)."""

    def __init__(self, *, etcd: str | None = None, tls: bool = True) -> None:
        self.etcd_endpoint = etcd or os.environ.get("RECONCILE_TEST_ETCD")
        self._etcd_pid: int | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="reconcile-testkit-"))
        self.tls = tls
        self.pki: pki_cluster.ClusterPki | None = None
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._client: api.Client | None = None
        self._config: config_mod.ClientConfig | None = None

    @classmethod
    def connect(cls, url: str, config: config_mod.ClientConfig | None = None) -> Cluster:
        """A Cluster for an API server that is already running (nothing to start or stop); `config`
        carries its credentials (a plain server needs none)."""
        cluster = cls(etcd="external", tls=False)
        cluster.url = url
        cluster._config = config
        return cluster

    def start(self, *, timeout: float = 30.0) -> Cluster:
        if self.url:
            return self
        args: list[str] = []
        if self.tls:
            self.pki = pki_cluster.ClusterPki(self._dir / "pki")
            self.pki.ensure()
            args += ["--tls-cert-file", str(self.pki.apiserver.cert), "--tls-private-key-file",
                     str(self.pki.apiserver.key), "--client-ca-file", str(self.pki.ca.cert),
                     "--authorization-mode", "RBAC"]
        if self.etcd_endpoint is None:
            self.etcd_endpoint, self._etcd_pid, _ = embedded.start_detached(
                self._dir / "etcd", timeout=timeout, tls=self._etcd_tls())
            if self.pki is not None:
                args += ["--etcd-cacert", str(self.pki.etcd_ca.cert), "--etcd-cert",
                         str(self.pki.apiserver_etcd_client.cert), "--etcd-key", str(self.pki.apiserver_etcd_client.key)]
        port = free_port()
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        log = open(self._dir / "apiserver.log", "wb")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "apiserver", "--etcd", self.etcd_endpoint, "--port", str(port),
             "--etcd-prefix", f"/testkit-{uuid.uuid4().hex[:10]}/registry", *args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"apiserver exited: {self.log_tail()}")
            self.client.request("GET", "/readyz")  # raises until the server answers 200
            return True

        try:
            wait_for(ready, timeout=timeout, what="the API server")
        except BaseException:
            self.stop()
            raise
        return self

    def _etcd_tls(self) -> embedded.MemberTls | None:
        if self.pki is None:
            return None
        ca = self.pki.etcd_ca.cert
        return embedded.MemberTls(trusted_ca=ca, cert=self.pki.etcd_server.cert, key=self.pki.etcd_server.key,
                                  peer_trusted_ca=ca, peer_cert=self.pki.etcd_peer.cert, peer_key=self.pki.etcd_peer.key)

    @property
    def client_config(self) -> config_mod.ClientConfig:
        """How to reach the server as its administrator (`kubernetes-admin`, `system:masters` with TLS)."""
        if self._config is not None:
            return self._config
        if self.pki is None:
            return config_mod.ClientConfig(server=self.url)
        return config_mod.ClientConfig(server=self.url, verify=str(self.pki.ca.cert),
                                          cert=(str(self.pki.admin.cert), str(self.pki.admin.key)))

    def kubeconfig(self, path: str | Path | None = None) -> Path:
        """Write a kubeconfig for the administrator (certificates embedded, as `reconcile up` writes it)."""
        target = Path(path) if path else self._dir / "kubeconfig"
        if self._config is not None and self.pki is None:  # connected: the credentials it was given
            cfg = self._config
            cert, key = cfg.cert or (None, None)
            config_mod.write_kubeconfig(target, self.url, token=cfg.token,
                                        ca_file=Path(cfg.verify) if isinstance(cfg.verify, str) else None,
                                        cert_file=Path(cert) if cert else None, key_file=Path(key) if key else None)
        elif self.pki is None:
            config_mod.write_kubeconfig(target, self.url)
        else:
            admin = self.pki.admin.read()
            config_mod.write_kubeconfig(target, self.url, ca_data=self.pki.ca.cert.read_bytes(),
                                           cert_data=admin.cert, key_data=admin.key)
        return target

    def log_tail(self) -> str:
        path = self._dir / "apiserver.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def client(self) -> api.Client:
        """A sync client for the test's own reads and writes."""
        if self._client is None:
            self._client = api.Client(self.client_config)
        return self._client

    def apply(self, source: str | Path | dict[str, Any] | list[dict[str, Any]], *, namespace: str = "default") -> list[dict]:
        """Create (or replace) the objects of a YAML file, YAML text, or dicts; waits for CRDs to be served."""
        if isinstance(source, dict):
            docs = [source]
        elif isinstance(source, list):
            docs = source
        else:
            text = Path(source).read_text() if Path(str(source)).is_file() else str(source)
            docs = [d for d in yaml.safe_load_all(text) if d]
        created = []
        for doc in docs:
            res = self.client.resource_for(doc["apiVersion"], doc["kind"])
            ns = (doc.get("metadata") or {}).get("namespace") or namespace if res.namespaced else None
            try:
                created.append(self.client.create(doc["apiVersion"], res.plural, doc, namespace=ns))
            except errors.AlreadyExists:
                live = self.client.get(doc["apiVersion"], res.plural, doc["metadata"]["name"], namespace=ns)
                doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}}
                created.append(self.client.replace(doc["apiVersion"], res.plural, doc, namespace=ns))
            if doc["kind"] == "CustomResourceDefinition":
                self._wait_served(doc)
        return created

    def _wait_served(self, crd: dict[str, Any]) -> None:
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]

        def served() -> bool:
            return any(r.plural == plural and r.group == group for r in self.client.discover(refresh=True))

        wait_for(served, what=f"{plural}.{group} to be served")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._etcd_pid is not None:
            _stop_pid(self._etcd_pid)
            self._etcd_pid = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_pid(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaps it when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: check it is gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            done = 0
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def reconcile_cluster() -> Iterator[Cluster]:
    """A real etcd + API server for the test session (`.url`, `.client`, `.apply(...)`)."""
    with Cluster() as cluster:
        yield cluster


class OperatorRunner:
    """Runs a plugin (file, module, entry point name, or a `Registry`) in a background thread.

    On entry it returns once the operator has synced its caches and runs its handlers; on exit
    it stops gracefully and re-raises what crashed the operator, if anything (as kopf's KopfRunner).
    """

    def __init__(
        self,
        plugin: str | Path | registry.Registry,
        *,
        server: str | config_mod.ClientConfig,  # a URL, or a config with credentials (`Cluster.client_config`)
        namespaces: list[str] | None = None,
        namespace: str | None = None,
        settings: operator.Settings | None = None,
        clock: clock_mod.Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.registry = plugin if isinstance(plugin, registry.Registry) else loading.load(plugin)
        self.server = server
        self.namespaces = namespaces if namespaces is not None else ([namespace] if namespace else None)
        self.settings = settings
        self.clock = clock
        self.timeout = timeout
        self.operator: operator.Operator | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.exception: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> OperatorRunner:
        self._thread = threading.Thread(target=self._main, name="reconcile-operator", daemon=True)
        self._thread.start()
        if not self._started.wait(self.timeout):
            raise TimeoutError(f"the operator did not start within {self.timeout}s")
        if self.exception is not None:
            raise self.exception
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self.timeout + 30)
        if self.exception is not None and exc[0] is None:
            raise self.exception

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` (a coroutine function or plain function) on the operator's loop and return its result."""
        assert self.loop is not None

        async def wrapper() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(self.timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.exception = exc
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aio.AsyncClient(self.server) as client:
            self.operator = operator.Operator(client, registry=self.registry, namespaces=self.namespaces,
                                              clock=self.clock, settings=self.settings)
            await self.operator.start()
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await self.operator.stop()
