"""The webhook receiver's decisions: a valid signature requests a fetch; anything else never does."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import webhookreceiver as receiver

TOKEN = b"s3cret-token"
TARGETS = (("team-a", "app"),)
BODY = b'{"ref": "refs/heads/main"}'


def _receiver(type_: str, events: tuple[str, ...] = ()) -> receiver.Receiver:
    return receiver.Receiver("team-a", "push", type_, TOKEN, events, TARGETS)


def _sign(body: bytes, algorithm: str = "sha256", token: bytes = TOKEN) -> str:
    return f"{algorithm}=" + hmac.new(token, body, getattr(hashlib, algorithm)).hexdigest()


def test_generic_hmac_accepts_a_valid_signature_only() -> None:
    r = _receiver("generic-hmac")
    ok = receiver.handle("POST", {"X-Signature": _sign(BODY)}, BODY, r)
    assert ok.status == 200 and ok.trigger and ok.targets == TARGETS
    assert receiver.handle("POST", {"x-signature": _sign(BODY, "sha512")}, BODY, r).trigger  # any header case
    assert receiver.handle("POST", {"X-Signature": _sign(BODY).upper().replace("SHA256", "sha256")}, BODY, r).trigger
    for headers, message in (({}, "missing X-Signature header"),
                             ({"X-Signature": ""}, "missing X-Signature header"),
                             ({"X-Signature": _sign(BODY, "sha1")}, "X-Signature: expected sha256=<hex> or sha512=<hex>"),
                             ({"X-Signature": "deadbeef"}, "X-Signature: expected sha256=<hex> or sha512=<hex>"),
                             ({"X-Signature": _sign(BODY + b" ")}, "invalid signature"),
                             ({"X-Signature": _sign(BODY, token=b"other")}, "invalid signature"),
                             ({"X-Signature": "sha256=\u00e9\u00e9"}, "invalid signature")):
        decision = receiver.handle("POST", headers, BODY, r)
        assert (decision.status, decision.message, decision.trigger) == (401, message, False), headers


def test_github_signature_ping_and_event_filter() -> None:
    r = _receiver("github", events=("push",))
    signed = {"X-Hub-Signature-256": _sign(BODY), "X-GitHub-Event": "push"}
    assert receiver.handle("POST", signed, BODY, r).trigger
    assert receiver.handle("POST", {**signed, "X-GitHub-Event": "ping"}, BODY, r) == receiver.Decision(200, "pong")
    ignored = receiver.handle("POST", {**signed, "X-GitHub-Event": "issues"}, BODY, r)
    assert ignored.status == 200 and not ignored.trigger
    # an unsigned ping is refused too: nothing is answered before the signature holds
    assert receiver.handle("POST", {"X-GitHub-Event": "ping"}, BODY, r).status == 401
    assert receiver.handle("POST", {**signed, "X-Hub-Signature-256": _sign(b"forged")}, BODY, r).status == 401


def test_gitlab_token() -> None:
    r = _receiver("gitlab")
    assert receiver.handle("POST", {"X-Gitlab-Token": TOKEN.decode(), "X-Gitlab-Event": "Push Hook"}, BODY, r).trigger
    assert receiver.handle("POST", {"X-Gitlab-Token": "wrong"}, BODY, r).status == 401
    assert receiver.handle("POST", {}, BODY, r).message == "missing X-Gitlab-Token header"


def test_method_size_unknown_path_and_type() -> None:
    r = _receiver("generic-hmac")
    assert receiver.handle("GET", {"X-Signature": _sign(b"")}, b"", r).status == 405
    big = b"x" * (receiver.MAX_BODY_BYTES + 1)
    assert receiver.handle("POST", {"X-Signature": _sign(big)}, big, r).status == 413
    assert receiver.handle("POST", {}, BODY, None).status == 404
    assert receiver.handle("POST", {}, BODY, _receiver("bitbucket")).status == 400
    assert receiver.handle("POST", {}, BODY, _receiver("generic")).trigger  # the path is the secret


def test_path_and_patch() -> None:
    r = _receiver("generic")
    assert r.path == "/hooks/gitops/" + hashlib.sha256(TOKEN + b"push" + b"team-a").hexdigest()
    assert receiver.webhook_path(b"other", "push", "team-a") != r.path
    assert receiver.request_patch("2026-01-01T00:00:00Z") == {
        "metadata": {"annotations": {receiver.REQUESTED_AT: "2026-01-01T00:00:00Z"}}}


@given(body=st.binary(max_size=512), signature=st.text(max_size=200))
def test_no_forged_signature_triggers(body: bytes, signature: str) -> None:
    decision = receiver.handle("POST", {"X-Signature": signature}, body, _receiver("generic-hmac"))
    valid = {_sign(body), _sign(body, "sha512")}
    assert decision.trigger == (signature.strip().lower() in {v.lower() for v in valid})
    assert decision.status in (200, 401)


def test_a_receiver_from_its_object_and_secret() -> None:
    obj = {"metadata": {"name": "push", "namespace": "team-a"},
           "spec": {"type": "github", "events": ["push"], "secretRef": {"name": "hook"},
                    "resources": [{"kind": "GitRepository", "name": "app"}, {"kind": "Bucket", "name": "b"},
                                  {"kind": "GitRepository"}, "junk"]}}
    secret = {"data": {"token": "IHMzY3JldC10b2tlbgo="}}  # base64 of " s3cret-token\n": trimmed
    found = receiver.from_object(obj, receiver.token(secret))
    assert found == receiver.Receiver("team-a", "push", "github", TOKEN, ("push",), (("team-a", "app"),))
    assert receiver.secret_name(obj) == "hook" and receiver.secret_name({}) == ""
    for bad in ({}, {"data": {}}, {"data": {"token": "not base64!"}}, {"data": {"token": 7}}):
        assert receiver.token(bad) == b""
