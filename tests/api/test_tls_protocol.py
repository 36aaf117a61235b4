"""The TLS client certificate reaches the pipeline: a real uvicorn serving the real pipeline over TLS
with our protocol (on asyncio and on uvloop, which `serve()` uses), the x509 authenticator in the
authenticate stage, and a resource endpoint that answers with the user it was handed."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop

from reconcile.api import authn, authz, clientcerts, http, httpserver, pipeline
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster
from tests import support


async def _who(request: Any, info: Any, verb: str, user: authn.UserInfo) -> Any:
    return http.json_response({"user": user.name, "groups": list(user.groups), "verb": verb,
                               "tls": request.scope["extensions"]["tls"]["tls_version"]})


async def _others(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await http.json_response({"path": scope["path"]})(scope, receive, send)


class Served:
    """uvicorn with `ApiHttpProtocol` and the API server's TLS context, on its own loop in a thread."""

    def __init__(self, pki: pki_cluster.ClusterPki, *, loop: str) -> None:
        self.port = support.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        app = pipeline.Pipeline(resources=_who, others=_others, authorizer=authz.AlwaysAllow(),
                                authenticator=authn.Chain([clientcerts.ClientCertificates(pki.ca.cert.read_bytes())]))
        context = httpserver.server_context(cert_file=str(pki.apiserver.cert), key_file=str(pki.apiserver.key),
                                            client_ca_file=str(pki.ca.cert))
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, http=httpserver.ApiHttpProtocol, lifespan="off",
            log_level="warning", ssl_context_factory=lambda _config, _default: context))
        self.loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        support.wait_for(lambda: self.server.started, timeout=15, what="uvicorn to listen")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.loop.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pki_cluster.ClusterPki:
    pki = pki_cluster.ClusterPki(tmp_path_factory.mktemp("tls-protocol") / "pki")
    pki.ensure()
    return pki


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest, pki: pki_cluster.ClusterPki) -> Iterator[support.Connection]:
    with Served(pki, loop=request.param) as server:
        yield support.Connection(server.url, pki)


def test_the_certificates_subject_is_the_user(served: support.Connection, pki: pki_cluster.ClusterPki) -> None:
    with served.http_client() as client:
        for _ in range(3):  # one connection, several requests: each scope carries the certificate
            answer = client.get("/api/v1/namespaces")
            assert answer.status_code == 200, answer.text
            assert answer.json()["user"] == "kubernetes-admin"
            assert answer.json()["groups"] == ["system:masters", "system:authenticated"]
            assert answer.json()["tls"] in (0x0303, 0x0304)
    bob = served.user("bob", "dev", "ops")
    with served.http_client(as_user=bob) as client:
        answer = client.get("/api/v1/namespaces/x/pods/y")
        assert answer.json() == {"user": "bob", "groups": ["dev", "ops", "system:authenticated"], "verb": "get",
                                 "tls": answer.json()["tls"]}


def test_without_a_certificate_only_public_paths_answer(served: support.Connection) -> None:
    with served.http_client(anonymous=True) as client:
        refused = client.get("/api/v1/namespaces")
        assert refused.status_code == 401
        assert refused.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        assert client.get("/apis").status_code == 401  # a non-resource path is no exception
        for public in ("/healthz", "/readyz", "/livez", "/version"):
            assert client.get(public).status_code == 200, public


def _refused(connection: support.Connection, issued: certs.Issued, directory: Path) -> None:
    """A client presenting `issued` (and trusting the server) gets no HTTP answer at all."""
    (directory / "c.crt").write_bytes(issued.cert)
    (directory / "c.key").write_bytes(issued.key)
    context = connection.ssl_context(anonymous=True)
    assert not isinstance(context, bool)
    context.load_cert_chain(str(directory / "c.crt"), str(directory / "c.key"))
    with httpx.Client(base_url=connection.url, verify=context, timeout=10) as client:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            client.get("/api/v1/namespaces")


def test_a_certificate_of_another_ca_does_not_get_through_the_handshake(
        served: support.Connection, tmp_path: Path) -> None:
    other = certs.new_ca(pki_cluster.CLUSTER_CA_NAME)  # even under the same CA name
    _refused(served, certs.issue(other, common_name="kubernetes-admin", organizations=("system:masters",),
                                 client=True), tmp_path)


def test_an_expired_certificate_of_our_ca_is_refused(served: support.Connection, pki: pki_cluster.ClusterPki,
                                                     tmp_path: Path) -> None:
    expired = certs.issue(pki.ca.read(), common_name="late", client=True, days=1,
                          start=certs.now() - datetime.timedelta(days=3))
    _refused(served, expired, tmp_path)


def test_a_serving_certificate_is_no_client_certificate(served: support.Connection, pki: pki_cluster.ClusterPki,
                                                        tmp_path: Path) -> None:
    _refused(served, pki.apiserver.read(), tmp_path)
