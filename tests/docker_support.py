"""Private Docker engines for tests: several `dockerd` on one machine that leave each other alone.

What makes several daemons coexist (measured on this machine):
- each gets its own `--host` socket, `--data-root`, `--exec-root` and `--pidfile` (and so its own
  managed containerd under the exec root);
- each gets its OWN bridge, created here with `ip link` and passed as `--bridge`: a daemon started
  with `--bridge none` deletes the default `docker0` the others use, and two daemons must not
  share one;
- `--iptables=false` on every daemon: with iptables on, each daemon rewrites the shared DOCKER
  chains at start-up and they break each other's rules. Without iptables, published ports go
  through docker-proxy (userland, which is all 127.0.0.1 needs) and containers on a bridge reach
  each other and the host at layer 2;
- the networks a node agent creates are removed before the daemon stops, and their host bridges
  deleted after, so a leftover bridge can never shadow a later daemon's subnet.
Everything is stopped by pid, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from reconcile.node import agent as agent_mod
from reconcile.node import docker as docker_mod
from reconcile.node import images
from tests import prerequisites, support

BRIDGE_PREFIX = "rctest"  # host bridges this module creates: rctest0, rctest1, ...
TEST_IMAGES = {images.PAUSE_IMAGE: images.PAUSE_DOCKERFILE, images.HELLO_IMAGE: images.HELLO_DOCKERFILE}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _claim_bridge() -> tuple[str, int]:
    """Create the first free `rctestN` bridge (ip link add fails if it exists: the claim is atomic)."""
    for index in range(200):
        name = f"{BRIDGE_PREFIX}{index}"
        if _ip("link", "add", name, "type", "bridge", check=False).returncode == 0:
            return name, index
    raise RuntimeError("no free test bridge name")


def _allow_bridged_pod_traffic() -> None:
    """Keep pod-to-pod traffic on agent bridges (`rcn-*`) flowing even if another daemon on the
    machine runs with iptables on: it loads br_netfilter (bridged frames then cross the FORWARD
    chain) and may set the FORWARD policy to DROP. Idempotent; touches only our bridges."""
    if not shutil.which("iptables"):
        return
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            if f.read().strip() != "1":
                return
    except OSError:
        return
    rule = ["FORWARD", "-i", "rcn-+", "-o", "rcn-+", "-j", "ACCEPT"]
    if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode != 0:
        subprocess.run(["iptables", "-I", *rule], capture_output=True)


class DockerDaemon:
    """One private `dockerd` with its own socket, directories and bridge."""

    def __init__(self, *, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="reconcile-dockerd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.bridge: str | None = None
        self.bridge_cidr: str | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.root / "dockerd.log"
        # host bridges of agent networks on this daemon, deleted at stop even if the daemon was killed
        self.agent_bridges: set[str] = set()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, *, timeout: float = 60.0) -> DockerDaemon:
        self.bridge, index = _claim_bridge()
        self.bridge_cidr = f"10.231.{index}.1/24"
        _ip("addr", "add", self.bridge_cidr, "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _allow_bridged_pod_traffic()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--host", self.host,
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"),
                "--bridge", self.bridge,
                "--iptables=false",
                "--ip-masq=false",
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in pytest must not hit the daemon before we stop it
        )
        log.close()

        def ready() -> bool:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log_path.read_text()[-3000:]}")
            return self.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0

        try:
            support.wait_for(ready, timeout=timeout, interval=0.1, what="dockerd answering")
        except BaseException:
            self.stop()
            raise
        return self

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the docker CLI against this daemon."""
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
        env.pop("DOCKER_CONTEXT", None)
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, env=env,
                              timeout=timeout)

    def build_images(self, tags: dict[str, str] | None = None) -> None:
        """Build the test images (`reconcile-pause:1.0`, `reconcile-hello:1.0`) into this daemon."""

        async def build_all() -> None:
            runtime = docker_mod.DockerRuntime(self.host)
            try:
                for tag, dockerfile in (tags or TEST_IMAGES).items():
                    if not await runtime.image_present(tag):
                        await images.build(runtime, tag, dockerfile)
            finally:
                await runtime.close()

        asyncio.run(build_all())

    def container_ids(self, *filters: str, all: bool = True) -> list[str]:
        args = ["ps", "-q", "--no-trunc", *(["-a"] if all else [])]
        for f in filters:
            args += ["--filter", f]
        return [line for line in self.docker(*args).stdout.split() if line]

    def inspect(self, container_id: str) -> dict:
        return json.loads(self.docker("inspect", container_id).stdout)[0]

    def _network_bridges(self) -> list[str]:
        """Host bridge names of the daemon's user networks (to delete after the daemon is gone)."""
        found: list[str] = []
        listed = self.docker("network", "ls", "-q", "--filter", "driver=bridge", check=False).stdout.split()
        for network_id in listed:
            out = self.docker("network", "inspect", network_id, check=False).stdout
            with contextlib.suppress(ValueError, IndexError):
                info = json.loads(out)[0]
                if info.get("Name") == "bridge":
                    continue
                name = (info.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{info['Id'][:12]}"
                found.append(name)
        return found

    def stop(self, *, timeout: float = 30.0) -> None:
        """Remove containers and networks, stop the daemon by pid, delete its bridges and directories."""
        bridges: list[str] = []
        if self.process and self.process.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.container_ids()
                if ids:
                    self.docker("rm", "-f", "-v", *ids, check=False)
                bridges = self._network_bridges()
                self.docker("network", "prune", "-f", check=False)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for name in {*bridges, *self.agent_bridges, *([self.bridge] if self.bridge else [])}:
            _ip("link", "del", name, check=False)
        self.bridge = None
        self._unmount_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount_leftovers(self) -> None:
        """Mounts a killed daemon left under its root (overlay, netns) would make rmtree fail."""
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if str(self.root) in line.split()[1]]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@contextlib.contextmanager
def running_daemon(*, build: bool = True) -> Iterator[DockerDaemon]:
    """A started daemon (with the test images built), stopped afterwards."""
    daemon = DockerDaemon()
    daemon.start()
    try:
        if build:
            started = time.monotonic()
            daemon.build_images()
            daemon.build_seconds = time.monotonic() - started  # type: ignore[attr-defined]
        yield daemon
    finally:
        daemon.stop()


def require_docker() -> None:
    """This machine can run private daemons (dockerd, `ip`, root), or the test skips or fails
    saying what to install (fails under CI and make test: tests/prerequisites.py)."""
    prerequisites.require_docker()


class _LoggedChild:
    """A `python -m reconcile ...` child writing to `log_path`: what the agent and proxy wrappers share
    (waiting for the line that says it is up, its log, a graceful stop by pid)."""

    log_path: Path
    process: subprocess.Popen | None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_for_line(self, marker: str, start_offset: int, *, timeout: float, what: str) -> None:
        """Until `marker` appears in the log after `start_offset`; the log's tail if the child exits first."""
        def logged() -> bool:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{what} exited: {self.log_text()[-3000:]}")
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                return marker in f.read().decode("utf-8", "replace")

        support.wait_for(logged, timeout=timeout, interval=0.05, what=what)

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NodeAgentProcess(_LoggedChild):
    """`python -m reconcile node join` as a child process against one daemon, stopped (or killed) by pid."""

    _counter = 0

    def __init__(self, daemon: DockerDaemon, server: str, *, name: str, state_dir: Path,
                 extra_args: tuple[str, ...] = (), connect: tuple[str, ...] | None = None) -> None:
        assert daemon.bridge_cidr is not None
        NodeAgentProcess._counter += 1
        bridge_index = int(daemon.bridge_cidr.split(".")[2])
        self.daemon = daemon
        self.server = server
        self.name = name
        self.state_dir = state_dir
        # distinct per daemon (its bridge index was claimed atomically: the second octet) and per agent
        # of the session (the third): an agent's network outlives it on a session-wide daemon, so a
        # reused range would overlap ("Pool overlaps"). 256 agents per daemon, 16 daemons.
        self.pod_cidr = f"10.{232 + bridge_index % 16}.{NodeAgentProcess._counter % 256}.0/24"
        self.extra_args = extra_args
        # how the agent connects, as is (e.g. --server, --token, --ca-hash); None: its own identity
        # (system:node:NAME) on the suite's connection to `server`
        self.connect = connect
        self.process: subprocess.Popen | None = None
        self.log_path = state_dir / "agent.log"
        daemon.agent_bridges.add(agent_mod.bridge_name(name))

    def start(self, *, timeout: float = 60.0) -> NodeAgentProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        start_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RECONCILE_SERVER", None)  # it would beat the kubeconfig or --server given here
        connect = list(self.connect) if self.connect is not None else self.kubeconfig_args()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "node", "join", "--name", self.name, "--docker-host", self.daemon.host,
             *connect, "--state-dir", str(self.state_dir), "--port", "0",
             "--pod-cidr", self.pod_cidr, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        self._wait_for_line(f"node {self.name} joined", start_offset, timeout=timeout,
                            what=f"node agent {self.name}")
        return self

    def kubeconfig_args(self) -> list[str]:
        """The node's own identity (CN=system:node:NAME, O=system:nodes) on a secured server."""
        connection = support.connection(self.server)
        as_user = connection.user(f"system:node:{self.name}", "system:nodes") if connection.tls else None
        return connection.component_args(as_user=as_user)

    def remove_containers(self) -> None:
        """Remove every container this node's agent made (teardown: the agent leaves pods running)."""
        ids = self.daemon.container_ids(f"label=reconcile.node={self.name}")
        if ids:
            self.daemon.docker("rm", "-f", *ids, check=False)

    def kill(self) -> None:
        """SIGKILL: the agent gets no chance to clean up (its containers keep running)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ProxyProcess(_LoggedChild):
    """`python -m reconcile proxy --node NAME` as the system:kube-proxy identity, stopped by pid; its
    nft table, route and iptables rule are removed at `cleanup()` (`reconcile proxy --cleanup`)."""

    def __init__(self, server: str, *, node: str, log_path: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.server = server
        self.node = node
        self.log_path = log_path
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30.0) -> ProxyProcess:
        connection = support.connection(self.server)
        as_user = connection.user("system:kube-proxy") if connection.tls else None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RECONCILE_SERVER", None)
        start_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reconcile", "proxy", "--node", self.node,
                 *connection.component_args(as_user=as_user), "--min-sync-period", "0.1", "-v", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_for_line(f"proxy for node {self.node} programmed", start_offset, timeout=timeout,
                            what=f"proxy {self.node}")
        return self

    def cleanup(self) -> None:
        subprocess.run([sys.executable, "-m", "reconcile", "proxy", "--cleanup", "--node", self.node],
                       capture_output=True, text=True, check=False, timeout=60)
