"""The API server's GitOps webhooks (`POST /hooks/gitops/<digest>`), as a push from GitHub or CI
sends them: no cluster credentials, the path and the signature prove the sender. A signed push
annotates the Receiver's GitRepositories (nothing else, nowhere else); a forged, unsigned,
oversized or misdirected one changes nothing and gets a Status."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest

from reconcile.core import webhookreceiver
from tests import support
from tests.api import helpers

API = "/apis/gitops.reconcile.dev/v1"
TOKEN = b"hook-token-0123456789"
BODY = b'{"ref": "refs/heads/main"}'


@pytest.fixture(scope="module")
def anonymous(api_server: str) -> Iterator[httpx.Client]:
    with support.connection(api_server).http_client(anonymous=True) as c:
        yield c


def _signed(body: bytes = BODY, token: bytes = TOKEN) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(token, body, hashlib.sha256).hexdigest()}


def _repository(client: httpx.Client, ns: str, name: str) -> None:
    helpers.create(client, f"{API}/namespaces/{ns}/gitrepositories", {
        "apiVersion": "gitops.reconcile.dev/v1", "kind": "GitRepository", "metadata": {"name": name},
        "spec": {"url": "https://git.example.invalid/app.git", "interval": "1h"}})


def _receiver(client: httpx.Client, ns: str, name: str, targets: list[str], *, suspend: bool = False) -> str:
    """A generic-hmac Receiver and its Secret; its hook's path."""
    helpers.create(client, f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-token"},
        "data": {"token": base64.b64encode(TOKEN).decode()}})
    helpers.create(client, f"{API}/namespaces/{ns}/receivers", {
        "apiVersion": "gitops.reconcile.dev/v1", "kind": "Receiver", "metadata": {"name": name},
        "spec": {"type": "generic-hmac", "secretRef": {"name": f"{name}-token"}, "suspend": suspend,
                 "resources": [{"kind": "GitRepository", "name": t} for t in targets]}})
    return webhookreceiver.webhook_path(TOKEN, name, ns)


def _requested(client: httpx.Client, ns: str, name: str) -> str | None:
    got = client.get(f"{API}/namespaces/{ns}/gitrepositories/{name}").json()
    return (got["metadata"].get("annotations") or {}).get(webhookreceiver.REQUESTED_AT)


def test_a_signed_push_annotates_the_receivers_repositories_only(client: httpx.Client, anonymous: httpx.Client,
                                                                 ns: str) -> None:
    other = helpers.make_namespace(client)
    for name in ("app", "lib", "untouched"):
        _repository(client, ns, name)
    _repository(client, other, "app")
    path = _receiver(client, ns, "push", ["app", "lib", "missing"])

    answer = anonymous.post(path, content=BODY, headers=_signed())
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Success" and "3 GitRepositories" in answer.json()["message"]
    first = _requested(client, ns, "app")
    assert first is not None and _requested(client, ns, "lib") is not None
    assert _requested(client, ns, "untouched") is None and _requested(client, other, "app") is None
    managers = client.get(f"{API}/namespaces/{ns}/gitrepositories/app").json()["metadata"]["managedFields"]
    assert "gitops-receiver" in {m["manager"] for m in managers}

    again = anonymous.post(path, content=BODY, headers=_signed())  # each push is a new request
    assert again.status_code == 200 and (_requested(client, ns, "app") or "") > first


def test_anything_unproven_changes_nothing_and_gets_a_status(client: httpx.Client, anonymous: httpx.Client,
                                                              ns: str) -> None:
    _repository(client, ns, "app")
    path = _receiver(client, ns, "push", ["app"])
    suspended = _receiver(client, ns, "paused", ["app"], suspend=True)
    refusals = [
        (anonymous.post(path, content=BODY, headers=_signed(token=b"a guess")), 401, "invalid signature"),
        (anonymous.post(path, content=BODY), 401, "missing X-Signature header"),
        (anonymous.post(path, content=BODY + b" ", headers=_signed()), 401, "invalid signature"),
        (anonymous.get(path), 405, "only POST"),
        (anonymous.post(webhookreceiver.PATH_PREFIX + "0" * 64, content=BODY, headers=_signed()), 404, "not found"),
        (anonymous.post(suspended, content=BODY, headers=_signed()), 404, "not found"),
    ]
    big = b"x" * (webhookreceiver.MAX_BODY_BYTES + 1)
    refusals.append((anonymous.post(path, content=big, headers=_signed(big)), 413, "too large"))
    for answer, code, words in refusals:
        status = answer.json()
        assert (answer.status_code, status["kind"], status["code"]) == (code, "Status", code), answer.text
        assert words in status["message"]
    assert _requested(client, ns, "app") is None


def test_the_public_prefix_opens_nothing_else(anonymous: httpx.Client, ns: str) -> None:
    """Only the hook's own route answers anyone: a path that climbs out of it, or a neighbour of
    it, is refused as any anonymous request is."""
    for path in (f"{webhookreceiver.PATH_PREFIX}../../api/v1/namespaces/{ns}/secrets",
                 f"{webhookreceiver.PATH_PREFIX}x/../../../api/v1/secrets",
                 "/hooks/other/" + "0" * 64, "/hooks/gitops"):
        answer = anonymous.get(path)
        assert answer.status_code in (401, 404), (path, answer.status_code, answer.text)
        assert "items" not in answer.text
