"""Shared fixtures: one real etcd per test session, one API server per test module.

Each test (store) or module (API server) gets its own key prefix, so nothing leaks
between tests that share the etcd.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import prerequisites, support


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI and make test no skip passes for green: a test skipped for any reason (a skip mark,
    a data file missing, ...) is reported failed, with its reason. Prerequisites the suite knows
    (tests/prerequisites.py) already fail with what to install; this catches every other skip."""
    report = yield
    if report.skipped and prerequisites.required() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped ({reason}), and under CI / make test a skip is a failure: "
                           "make the test runnable here or give it a prerequisite in tests/prerequisites.py")
    return report


_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Setup, call and teardown time summed per test file, for the summary below."""
    path = report.nodeid.split("::", 1)[0]
    _MODULE_SECONDS[path] = _MODULE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The slowest test files (fixtures included): where the suite's 30-minute budget goes. Printed
    before pytest's summary line, which stays last."""
    if len(_MODULE_SECONDS) < 20:
        return  # a focused run: the per-test durations say enough
    total = sum(_MODULE_SECONDS.values())
    terminalreporter.write_sep("=", f"slowest 20 test files of {len(_MODULE_SECONDS)} ({total:.0f} s in all)")
    for path, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1])[:20]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {path}")


@pytest.fixture(scope="session")
def etcd_endpoint() -> Iterator[str]:
    from reconcile.etcdserver import embedded

    with tempfile.TemporaryDirectory(prefix="reconcile-etcd-") as data_dir:
        etcd = embedded.EmbeddedEtcd(Path(data_dir))
        etcd.start()
        try:
            yield etcd.endpoint
        finally:
            etcd.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}/registry"


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    """Extra `reconcile apiserver` flags for the module's server; a module overrides this to change them."""
    return ()


class _DefaultServers:
    """Hands out API servers started with the default flags, each launched one module ahead.

    A server takes about three seconds of CPU to start (imports, bootstrap writes), and most modules
    take the defaults: while one module runs, the next module's server starts beside it, so its start
    overlaps the tests instead of adding to them. Every module still gets a fresh server of its own,
    with its own etcd prefix; the spare is stopped at the end of the session."""

    def __init__(self, etcd_endpoint: str) -> None:
        self.etcd_endpoint = etcd_endpoint
        self.spare: support.ApiServerProcess | None = None

    def _launch(self) -> support.ApiServerProcess:
        server = support.ApiServerProcess(self.etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry")
        server.launch()
        return server

    def take(self) -> support.ApiServerProcess:
        server, self.spare = self.spare or self._launch(), None
        server.wait_ready()
        self.spare = self._launch()
        return server

    def close(self) -> None:
        if self.spare is not None:
            self.spare.stop()
            self.spare = None


@pytest.fixture(scope="session")
def default_servers(etcd_endpoint: str) -> Iterator[_DefaultServers]:
    servers = _DefaultServers(etcd_endpoint)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def server_process(request: pytest.FixtureRequest, etcd_endpoint: str,
                   server_args: tuple[str, ...]) -> Iterator[support.ApiServerProcess]:
    """A real API server process on a free port with its own etcd prefix (known to the test, which may
    write beside the server straight into etcd). With the default flags it comes from
    `default_servers`, started while the previous module ran."""
    if server_args:
        server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry",
                                          extra_args=server_args)
        server.start()
    else:
        server = request.getfixturevalue("default_servers").take()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_server(server_process: support.ApiServerProcess) -> str:
    """The module's server URL."""
    return server_process.url


@pytest.fixture
def kube_env(api_server: str, tmp_path: Path) -> dict[str, str]:
    """Environment for real clients (kubectl, the python client): a kubeconfig for the server."""
    kubeconfig = support.connection(api_server).write_kubeconfig(tmp_path / "kubeconfig")
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    env.pop("RECONCILE_SERVER", None)
    return env


def run_cli(*args: str, server: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m reconcile ARGS` against `server`, as its admin (a kubeconfig from its connection)."""
    env = support.connection(server).env()
    return subprocess.run(
        [sys.executable, "-m", "reconcile", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
async def ac(api_server: str) -> AsyncIterator[Any]:
    """An async API client on the module's server (reconcile.client.aio.AsyncClient)."""
    from reconcile.client import aio

    async with aio.AsyncClient(support.connection(api_server).client_config()) as client:
        yield client
