"""Fixtures of the gitops tests: a Git repository served over smart HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain

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
