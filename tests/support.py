"""Test helpers: start real processes on free ports and wait on conditions with deadlines."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the condition may raise while the thing is not up yet
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: last error {last_error!r}")


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


async def eventually(condition: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01,
                     what: str = "") -> Any:
    """`wait_for` for async tests: polls a sync or async condition without blocking the event loop the
    code under test runs on; an exception from the condition means "not yet"."""
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
