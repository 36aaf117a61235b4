"""`reconcile up` / `status` / `down` in a temporary state dir, on free ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reconcile.cli import processes
from tests import support


def reconcile(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_up_status_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    port = support.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    # a node name of its own: a `make up` cluster on the same Docker engine keeps its containers
    env.update(RECONCILE_STATE_DIR=str(state_dir), HOME=str(tmp_path), RECONCILE_NODE_NAME="up-test")
    pids: list[int] = []
    try:
        result = reconcile("up", "--api-port", str(port), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"https://127.0.0.1:{port}" in result.stdout
        assert f"export KUBECONFIG={state_dir / 'kubeconfig'}" in result.stdout
        state = json.loads((state_dir / "state.json").read_text())
        pids = [state["components"][c]["pid"] for c in ("etcd", "apiserver")]
        assert all(processes.alive(pid) for pid in pids)

        status = reconcile("status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
        assert rows["etcd"][1:4] == [str(pids[0]), "true", "true"]
        assert rows["apiserver"][1:4] == [str(pids[1]), "true", "true"]

        again = reconcile("up", "--state-dir", str(state_dir), env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == len(state["components"])  # every component adopted
        assert json.loads((state_dir / "state.json").read_text())["components"]["apiserver"]["pid"] == pids[1]

        # cluster DNS behind kube-system/kube-dns (10.96.0.10): its Endpoints name the DNS server, the
        # mirroring controller made its slice, and with a proxy the node agent gives pods the cluster IP
        svc = json.loads(reconcile("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json", env=env).stdout)
        assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
        assert [(p["name"], p["protocol"]) for p in svc["spec"]["ports"]] == [("dns", "UDP"), ("dns-tcp", "TCP")]
        dns_entry = state["components"]["dns"]

        def mirrored() -> list[dict]:
            out = reconcile("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns",
                            "-o", "json", env=env)
            return json.loads(out.stdout)["items"] if out.returncode == 0 else []

        support.wait_for(lambda: [e["addresses"] for s in mirrored() for e in s["endpoints"]]
                         == [[dns_entry["address"]]], timeout=15, what="the kube-dns slice mirrored")
        if "proxy" in state["components"]:
            from reconcile.dns import wire

            assert state["components"]["node"]["dns_args"] == ["--cluster-dns", "10.96.0.10"]
            assert "answers at 10.96.0.10" in result.stdout
            assert wire.ready("10.96.0.10", 53)  # the host reaches it through the proxy's rules
        # the kubeconfig `up` wrote is found through the state dir with no flags
        listed = reconcile("get", "ns", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "default" in listed.stdout.split()
    finally:
        down = reconcile("down", "--state-dir", str(state_dir), "--remove-containers", env=env)
    assert down.returncode == 0, down.stderr
    assert "apiserver" in down.stdout and "etcd" in down.stdout
    assert "removed" in down.stdout
    # the node's pod network went with its containers
    leftover = subprocess.run(["docker", "network", "inspect", "reconcile-up-test"], capture_output=True)
    assert leftover.returncode != 0
    # and so did the node's service proxy rules (when `up` could run the proxy: root and nft)
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False) \
        if shutil.which("nft") else None
    assert tables is None or "reconcile-proxy-up-test" not in tables.stdout
    assert not any(processes.alive(pid) for pid in pids)
    status = reconcile("status", env=env)
    assert "nothing is running" in status.stdout


def test_up_reports_unhealthy_external_etcd(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RECONCILE_SERVER"}
    dead = f"http://127.0.0.1:{support.free_port()}"
    result = reconcile("up", "--state-dir", str(tmp_path), "--api-port", str(support.free_port()), "--etcd", dead,
                       env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: etcd at {dead} is not healthy"
    assert "apiserver" not in json.loads((tmp_path / "state.json").read_text() or "{}").get("components", {}) \
        if (tmp_path / "state.json").exists() else True
