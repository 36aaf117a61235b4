"""Fixtures of the gitops tests: a Git repository served over smart HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain

from reconcile import testing
from tests.gitops import gitrepos, sshd

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the test's output stays readable
        pass


@pytest.fixture
def http_repo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """dulwich's smart-HTTP server on 127.0.0.1 behind basic auth (alice / pw) or a bearer token."""
    src = gitrepos.init(tmp_path / "served", {"app/cm.yaml": CM.format("served")})
    app = make_wsgi_chain(DictBackend({"/": Repo(str(src))}))
    accepted = {"Basic " + base64.b64encode(b"alice:pw").decode(), "Bearer tok-123"}

    def guarded(environ, start_response):
        if environ.get("HTTP_AUTHORIZATION") not in accepted:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"denied"]
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, guarded, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", src
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real `git daemon` serving a folder of repositories over git:// on 127.0.0.1 (stopped by pid)."""
    base = tmp_path / "daemon"
    base.mkdir()
    port = testing.free_port()
    process = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                                "--listen=127.0.0.1", f"--port={port}", str(base)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("git daemon did not start listening") from None
                time.sleep(0.05)  # polling a condition (the port answering) with a deadline
        yield f"git://127.0.0.1:{port}", base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _serve(app) -> tuple[Any, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def redirecting(tmp_path: Path) -> Iterator[tuple[str, list[str | None]]]:
    """Two origins on 127.0.0.1: the one a user names redirects every request to another, which serves
    a repository and records the Authorization header of each request it gets.

    Yields (the URL the user writes, the Authorization headers the other origin received)."""
    src = gitrepos.init(tmp_path / "elsewhere", {"app/cm.yaml": CM.format("elsewhere")})
    app = make_wsgi_chain(DictBackend({"/": Repo(str(src))}))
    seen: list[str | None] = []

    def recording(environ, start_response):
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        return app(environ, start_response)

    other, other_thread = _serve(recording)
    target = f"http://127.0.0.1:{other.server_port}"

    def redirect(environ, start_response):
        location = target + environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            location += "?" + environ["QUERY_STRING"]
        start_response("307 Temporary Redirect", [("Location", location)])
        return [b""]

    named, named_thread = _serve(redirect)
    try:
        yield f"http://127.0.0.1:{named.server_port}/", seen
    finally:
        for server, thread in ((named, named_thread), (other, other_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.SSHServer]:
    """A real OpenSSH server on 127.0.0.1 (own host key, one authorized key), shared by a module."""
    with sshd.serve(tmp_path_factory.mktemp("sshd")) as server:
        yield server
