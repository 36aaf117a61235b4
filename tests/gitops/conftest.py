"""Fixtures of the gitops tests: a Git repository served over smart HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain

from reconcile import testing
from tests.gitops import gitrepos

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
