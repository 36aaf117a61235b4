"""The node agent's authorization attributes, its SubjectAccessReview cache, and the rotation
deadline: pure logic, no processes (the real thing is in test_agent_tls.py and test_join.py)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import errors
from reconcile.node import authz, rotation, tls
from reconcile.pki import certs


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/exec/ns/pod/c", ("create", "proxy")),
    ("GET", "/containerLogs/ns/pod/c", ("get", "proxy")),
    ("GET", "/healthz", ("get", "healthz")),
    ("GET", "/stats/summary", ("get", "stats")),
    ("GET", "/metrics", ("get", "metrics")),
    ("GET", "/logs/syslog", ("get", "log")),
    ("GET", "/statsx", ("get", "proxy")),  # a prefix is a whole path segment
    ("DELETE", "/pods", ("delete", "pods")),
])
def test_attributes_are_the_kubelets(method: str, path: str, expected: tuple[str, str]) -> None:
    assert authz.attributes(method, path) == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_cached_allowed_longer_than_denied() -> None:
    asked: list[dict] = []
    answer = {"allowed": False}

    async def review(body: dict) -> dict:
        asked.append(body)
        return dict(answer)

    clock = FakeClock()
    authorizer = authz.WebhookAuthorizer("n1", review, clock=clock)
    caller = authz.Caller("mallory", ("devs",))
    with pytest.raises(errors.Forbidden, match="user=mallory, verb=create, resource=nodes, subresource=proxy"):
        await authorizer.authorize(caller, "create", "proxy")
    assert asked[0]["spec"]["resourceAttributes"] == {"verb": "create", "resource": "nodes", "subresource": "proxy",
                                                      "name": "n1"}
    answer["allowed"] = True
    clock.now = authz.DENIED_TTL - 1
    with pytest.raises(errors.Forbidden):
        await authorizer.authorize(caller, "create", "proxy")  # still the cached denial
    clock.now = authz.DENIED_TTL + 1
    await authorizer.authorize(caller, "create", "proxy")
    assert len(asked) == 2
    clock.now += authz.ALLOWED_TTL - 1
    await authorizer.authorize(caller, "create", "proxy")
    assert len(asked) == 2
    await authorizer.authorize(authz.Caller("mallory", ("devs", "more")), "create", "proxy")  # groups are the key too
    assert len(asked) == 3


async def test_a_review_that_fails_denies() -> None:
    async def review(body: dict) -> dict:
        raise errors.ServiceUnavailable("API server down")

    with pytest.raises(errors.Forbidden):
        await authz.WebhookAuthorizer("n1", review).authorize(authz.Caller("x", ()), "get", "proxy")


def test_the_authenticator_needs_a_verified_certificate() -> None:
    ca = certs.new_ca("agent-ca")
    authenticator = authz.Authenticator(ca.cert)
    good = certs.issue(ca, common_name="kube-apiserver-kubelet-client", organizations=("system:masters",), client=True)
    assert authenticator.caller(good.cert.decode()) == authz.Caller("kube-apiserver-kubelet-client", ("system:masters",))
    foreign = certs.issue(certs.new_ca("agent-ca"), common_name="kube-apiserver-kubelet-client", client=True)
    for bad in (None, "", foreign.cert.decode()):
        with pytest.raises(errors.Unauthorized):
            authenticator.caller(bad)


@given(st.integers(min_value=60, max_value=10**8), st.floats(min_value=0.7, max_value=0.9))
def test_the_rotation_deadline_is_70_to_90_percent_of_the_lifetime(seconds: int, share: float) -> None:
    ca = _CA
    start = certs.now()
    issued = certs.sign_csr(ca, certs.new_csr(_KEY, common_name="system:node:n1", organizations=("system:nodes",)),
                            lifetime=datetime.timedelta(seconds=seconds))
    found = certs.info(issued)
    deadline = rotation.next_deadline(issued, fraction=lambda: share)
    lifetime = found.not_after - found.not_before
    assert found.not_before + lifetime * 0.7 - datetime.timedelta(seconds=1) <= deadline
    assert deadline <= found.not_before + lifetime * 0.9 + datetime.timedelta(seconds=1)
    assert found.not_after <= start + datetime.timedelta(seconds=seconds + 5)
    assert rotation.JITTER == (0.7, 0.9)


def test_a_self_signed_serving_certificate_is_reused_while_it_fits(tmp_path) -> None:
    first = tls.self_signed(tmp_path, name="n1", address="127.0.0.1")
    pem = first.cert.read_bytes()
    assert tls.self_signed(tmp_path, name="n1", address="127.0.0.1").cert.read_bytes() == pem
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    assert tls.self_signed(tmp_path, name="n1", address="10.0.0.9").cert.read_bytes() != pem  # a new address


_CA = certs.new_ca("rotation-ca")
_KEY = certs.new_key()
