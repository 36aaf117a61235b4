"""GitOps benchmark (issue 15): commit to applied, idle cost, and memory of `reconcile gitops controller`.

One secured API server, one `git daemon` on 127.0.0.1 serving local repositories, one gitops
controller process (admin credentials; a Sync without a service account applies as it), and in the
same run:
1. Baseline: `reconcile apply -R -f` of a folder of N ConfigMaps (a CLI process); then, for
   reference, the same folder changed applied again (updates, as the timed commits are).
2. Interval: a GitRepository and a Sync with a 1 s interval; a commit that changes every object,
   timed from the commit to the Sync's lastAppliedRevision naming it. Target <= 1.3x the baseline.
3. Webhook: the same with a 1 h interval and a Receiver (generic-hmac); timed from the commit, the
   signed POST to the API server's hook (no client certificate, as a push from GitHub) included. Target <= 1.3x the baseline.
4. Idle: the controller's CPU seconds over 60 intervals in which nothing changed. Target < 1 s.
5. Memory: the controller's RSS with 10 repositories of N manifests applied. Target < 200 MB.
Every process started here is stopped by pid in `finally` blocks.

Usage: python bench/gitops.py [--objects 500] [--repositories 10] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from scheduler import HOST, cpu_seconds, free_port, start, stop, wait_ready
from secure_api import SecuredApi

from reconcile.client import api as client_api
from reconcile.etcdserver import embedded

API = "gitops.reconcile.dev/v1"
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def write_manifests(folder: Path, count: int, value: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"cm{i:04}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i:04}\ndata:\n  value: \"{value}\"\n")


def commit(repo: Path, count: int, value: str) -> str:
    write_manifests(repo, count, value)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", value)
    return git(repo, "rev-parse", "HEAD")


def new_repo(base: Path, name: str, count: int) -> tuple[Path, str]:
    repo = base / name
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    return repo, commit(repo, count, "v1")


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)  # polling the API for the state being timed, with a deadline
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def applied(client: client_api.Client, ns: str, name: str) -> str | None:
    return (client.get(API, "syncs", name, namespace=ns).get("status") or {}).get("lastAppliedRevision")


def add(client: client_api.Client, ns: str, name: str, url: str, interval: str) -> None:
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.create(API, "gitrepositories", {"apiVersion": API, "kind": "GitRepository", "metadata": {"name": name},
                                           "spec": {"url": url, "interval": interval, "ref": {"branch": "main"}}},
                  namespace=ns)
    client.create(API, "syncs", {"apiVersion": API, "kind": "Sync", "metadata": {"name": name},
                                 "spec": {"sourceRef": {"kind": "GitRepository", "name": name}, "path": ".",
                                          "interval": interval}}, namespace=ns)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_git_daemon(base: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                               f"--listen={HOST}", f"--port={port}", str(base)], stdout=log.open("wb"),
                              stderr=subprocess.STDOUT)

    def listening() -> bool:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(listening, 20, "git daemon")
    return daemon, f"git://{HOST}:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--idle-seconds", type=int, default=60)
    args = parser.parse_args()
    count = args.objects
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as tmp:
        tmp_path = Path(tmp)
        etcd = embedded.EmbeddedEtcd(tmp_path / "etcd")
        api = controller = daemon = None
        try:
            etcd.start()
            port = free_port()
            secure = SecuredApi(tmp_path)
            url = secure.url(HOST, port)
            log = tmp_path / "apiserver.log"
            api = start(["-m", "reconcile", "apiserver", "--etcd", etcd.endpoint, "--port", str(port),
                         *secure.apiserver_args()], log)
            wait_ready(url, api, log, verify=secure.ssl_context())
            kubeconfig = secure.kubeconfig_args(url)
            base = tmp_path / "repos"
            base.mkdir()
            daemon, git_url = start_git_daemon(base, tmp_path / "git-daemon.log")
            health = free_port()
            controller_log = tmp_path / "gitops.log"
            controller = start(["-m", "reconcile", "gitops", "controller", *kubeconfig, "--no-leader-elect",
                                "--state-dir", str(tmp_path / "gitops"), "--health-port", str(health),
                                "--workers", "4"], controller_log)
            wait_ready(f"http://{HOST}:{health}", controller, controller_log)
            with client_api.Client(secure.client_config(url)) as client:
                # 1. the baseline
                folder = tmp_path / "plain"
                write_manifests(folder, count, "v1")
                client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "bench-apply"}})
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "reconcile", "apply", "-R", "-f", str(folder),
                                       "-n", "bench-apply", *kubeconfig], capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(f"reconcile apply failed: {done.stderr[-2000:]}")
                baseline = time.perf_counter() - started
                print(f"reconcile apply -R of {count} ConfigMaps: {baseline:.2f} s (the baseline)")
                # the timed commits below change objects that exist; so does this second baseline (an
                # update costs the server more than a create), printed beside the first for reference
                write_manifests(folder, count, "v2")
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "reconcile", "apply", "-R", "-f", str(folder),
                                       "-n", "bench-apply", *kubeconfig], capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(f"reconcile apply failed: {done.stderr[-2000:]}")
                updates = time.perf_counter() - started
                print(f"reconcile apply -R of the same {count} ConfigMaps changed: {updates:.2f} s (for reference)")

                # 2. a 1 s interval
                repo, first = new_repo(base, "interval", count)
                add(client, "bench-interval", "app", f"{git_url}/interval", "1s")
                wait_for(lambda: applied(client, "bench-interval", "app") == f"main@sha1:{first}", 600,
                         "the first revision applied")
                started = time.perf_counter()
                second = commit(repo, count, "v2")
                wait_for(lambda: applied(client, "bench-interval", "app") == f"main@sha1:{second}", 600,
                         "the second revision applied")
                interval = time.perf_counter() - started
                print(f"commit to {count} objects applied, 1 s interval: {interval:.2f} s "
                      f"({interval / baseline:.2f}x the baseline; target <= 1.3x; "
                      f"{interval / updates:.2f}x the changed apply)")

                # 3. a webhook
                hook_repo, hook_first = new_repo(base, "webhook", count)
                add(client, "bench-webhook", "app", f"{git_url}/webhook", "1h")
                token = b"bench-token"
                client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook"},
                                                "data": {"token": base64.b64encode(token).decode()}},
                              namespace="bench-webhook")
                client.create(API, "receivers", {"apiVersion": API, "kind": "Receiver", "metadata": {"name": "push"},
                                                 "spec": {"type": "generic-hmac", "secretRef": {"name": "hook"},
                                                          "resources": [{"kind": "GitRepository", "name": "app"}]}},
                              namespace="bench-webhook")
                wait_for(lambda: applied(client, "bench-webhook", "app") == f"main@sha1:{hook_first}", 600,
                         "the webhook repository's first revision applied")
                path = wait_for(lambda: (client.get(API, "receivers", "push", namespace="bench-webhook").get("status")
                                         or {}).get("webhookPath"), 60, "the Receiver's path")
                started = time.perf_counter()
                pushed = commit(hook_repo, count, "v2")
                body = b'{"ref": "refs/heads/main"}'
                signature = hmac.new(token, body, hashlib.sha256).hexdigest()
                answer = httpx.post(f"{url}{path}", content=body, headers={"X-Signature": f"sha256={signature}"},
                                    timeout=30, verify=secure.ssl_context(anonymous=True))
                if answer.status_code != 200:
                    raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text}")
                wait_for(lambda: applied(client, "bench-webhook", "app") == f"main@sha1:{pushed}", 600,
                         "the pushed revision applied")
                webhook = time.perf_counter() - started
                print(f"commit to {count} objects applied, webhook (1 h interval): {webhook:.2f} s "
                      f"({webhook / baseline:.2f}x the baseline; target <= 1.3x; "
                      f"{webhook / updates:.2f}x the changed apply)")

                # 4. idle intervals
                before = cpu_seconds(controller.pid)
                time.sleep(args.idle_seconds)  # the quiet period being measured, not a synchronization
                idle = cpu_seconds(controller.pid) - before
                print(f"controller CPU over {args.idle_seconds} no-change 1 s intervals: {idle:.2f} s (target < 1 s)")

                # 5. memory with many repositories
                heads = {}
                for r in range(args.repositories - 2):  # the two above count among them
                    _, heads[f"bench-many-{r}"] = new_repo(base, f"many{r}", count)
                    add(client, f"bench-many-{r}", "app", f"{git_url}/many{r}", "1m")
                for ns, head in heads.items():
                    wait_for(lambda ns=ns, head=head: applied(client, ns, "app") == f"main@sha1:{head}", 900,
                             f"{ns} applied")
                print(f"controller RSS with {args.repositories} repositories of {count} manifests applied: "
                      f"{rss_mb(controller.pid):.0f} MB (target < 200 MB)")
        finally:
            stop(controller)
            stop(daemon)
            stop(api)
            etcd.stop()


if __name__ == "__main__":
    main()
