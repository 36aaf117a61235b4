"""Test helpers: start real processes on free ports and wait on conditions with deadlines.

`free_port`, `wait_for` and `eventually` are the public test kit's (`reconcile.testing`), so plugin
authors and this suite wait the same way; they are named here for the tests' convenience.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import httpx

from reconcile import testing

free_port = testing.free_port
wait_for = testing.wait_for
eventually = testing.eventually


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


class ApiServerProcess:
    """`python -m reconcile apiserver` as a child process, stopped by pid."""

    def __init__(self, etcd_endpoint: str, *, prefix: str, extra_args: tuple[str, ...] = ()) -> None:
        self.etcd_endpoint = etcd_endpoint
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="apiserver-", suffix=".log", delete=False)

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "reconcile", "apiserver",
                "--etcd", self.etcd_endpoint, "--port", str(self.port), "--etcd-prefix", self.prefix,
                *self.extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

        def ready() -> bool:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"apiserver exited: {open(self.log.name).read()[-3000:]}")
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200

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
