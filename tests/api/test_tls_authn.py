"""The x509 authenticator and the authenticator chain, on real certificates (no server needed)."""

from __future__ import annotations

import datetime
import time

import pytest

from reconcile.api import authn, clientcerts
from reconcile.core import errors
from reconcile.pki import certs


@pytest.fixture(scope="module")
def ca() -> certs.Issued:
    return certs.new_ca("authn-ca")


def _presenting(issued: certs.Issued, **headers: str) -> authn.Credentials:
    return authn.Credentials(headers, peer_certificate=certs.pem_to_der(issued.cert))


async def test_cn_is_the_user_and_o_the_groups(ca: certs.Issued) -> None:
    auth = clientcerts.ClientCertificates(ca.cert)
    user = await auth.authenticate(_presenting(certs.issue(ca, common_name="alice", organizations=("a", "b"),
                                                           client=True)))
    assert user == authn.UserInfo("alice", groups=("a", "b", "system:authenticated"))
    masters = await auth.authenticate(_presenting(certs.issue(
        ca, common_name="root", organizations=("system:masters", "system:authenticated"), client=True)))
    assert masters is not None and masters.groups == ("system:masters", "system:authenticated")  # no duplicate


async def test_no_certificate_is_no_answer(ca: certs.Issued) -> None:
    assert await clientcerts.ClientCertificates(ca.cert).authenticate(authn.Credentials({})) is None


async def test_a_certificate_nobody_verified_is_refused_whatever_the_tls_layer_did(ca: certs.Issued) -> None:
    """Were TLS terminated elsewhere without the client CA, the authenticator still checks."""
    auth = clientcerts.ClientCertificates(ca.cert)
    foreign = certs.issue(certs.new_ca("authn-ca"), common_name="mallory", organizations=("system:masters",),
                          client=True)
    expired = certs.issue(ca, common_name="late", client=True, days=1,
                          start=certs.now() - datetime.timedelta(days=3))
    serving = certs.issue(ca, common_name="srv", server=True, dns_names=("localhost",))
    for bad in (foreign, expired, serving):
        with pytest.raises(errors.Unauthorized) as refused:
            await auth.authenticate(_presenting(bad))
        assert refused.value.message == "Unauthorized"  # the reason is logged, not sent


async def test_a_certificate_without_a_common_name_is_refused(ca: certs.Issued) -> None:
    with pytest.raises(errors.Unauthorized):
        await clientcerts.ClientCertificates(ca.cert).authenticate(_presenting(
            certs.issue(ca, common_name="", organizations=("system:masters",), client=True)))


async def test_answers_are_cached_until_the_certificate_expires(ca: certs.Issued) -> None:
    auth = clientcerts.ClientCertificates(ca.cert, cache_size=2)
    issued = [certs.issue(ca, common_name=f"u{i}", client=True) for i in range(3)]
    first = await auth.authenticate(_presenting(issued[0]))
    assert await auth.authenticate(_presenting(issued[0])) is first  # the cached object
    for other in issued[1:]:
        await auth.authenticate(_presenting(other))
    assert len(auth._cache) == 2 and certs.pem_to_der(issued[0].cert) not in auth._cache  # oldest dropped
    short = certs.issue(ca, common_name="short", client=True, days=1)
    der = certs.pem_to_der(short.cert)
    await auth.authenticate(authn.Credentials({}, peer_certificate=der))
    user, _ = auth._cache[der]
    auth._cache[der] = (user, time.time() - 1)  # as if it had just expired
    assert await auth.authenticate(authn.Credentials({}, peer_certificate=der)) == user  # verified again
    assert auth._cache[der][1] > time.time()


class _Fixed:
    def __init__(self, user: authn.UserInfo | None = None, *, reject: bool = False) -> None:
        self.user, self.reject, self.asked = user, reject, 0

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        self.asked += 1
        if self.reject:
            raise errors.Unauthorized("Unauthorized")
        return self.user


async def test_chain_first_user_wins_and_rejections_count_only_when_nobody_proves_one() -> None:
    alice, bob = authn.UserInfo("alice"), authn.UserInfo("bob")
    nothing, first, second = _Fixed(), _Fixed(alice), _Fixed(bob)
    assert await authn.Chain([nothing, first, second]).authenticate(authn.Credentials({})) == alice
    assert second.asked == 0
    assert await authn.Chain([_Fixed(reject=True), second]).authenticate(authn.Credentials({})) == bob
    with pytest.raises(errors.Unauthorized):
        await authn.Chain([_Fixed(reject=True), _Fixed()]).authenticate(authn.Credentials({}))
    assert await authn.Chain([_Fixed(), _Fixed()]).authenticate(authn.Credentials({})) is None
    assert await authn.Chain([]).authenticate(authn.Credentials({})) is None
