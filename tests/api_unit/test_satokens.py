"""ServiceAccount tokens without a server: the issuer's claims and expiry rules, the authenticator's
checks at their edges (leeway, issuers, bound objects), durations."""

from __future__ import annotations

from typing import Any

import jwt.algorithms
import pytest

from reconcile.api import jwts, satokens, tokenrequest
from reconcile.core import errors
from reconcile.pki import certs

ISSUER = satokens.DEFAULT_ISSUER
NOW = 1_800_000_000
SA = {"metadata": {"name": "app", "namespace": "team", "uid": "sa-uid"}}
POD = {"metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"},
       "spec": {"serviceAccountName": "app", "nodeName": "n1"}}
NODE = {"metadata": {"name": "n1", "uid": "node-uid"}}
SECRET = {"metadata": {"name": "s", "namespace": "team", "uid": "secret-uid"}}


@pytest.fixture(scope="module")
def key() -> bytes:
    return certs.new_signing_key()


def _signer(key: bytes) -> satokens.Signer:
    public = certs.signing_public_key(key)
    return satokens.Signer(key, "RS256", certs.key_id(public))


def _authenticator(key: bytes, objects: dict[tuple[str, str | None, str], dict], now: list[float]
                   ) -> satokens.ServiceAccountTokens:
    public = certs.signing_public_key(key)
    verification = [jwts.VerificationKey(public, "RS256", certs.key_id(public))]

    def lookup(group: str, plural: str, namespace: str | None, name: str) -> dict | None:
        return objects.get((plural, namespace, name))

    return satokens.ServiceAccountTokens(verification, issuers=[ISSUER, "https://old-issuer"],
                                         api_audiences=[ISSUER], lookup=lookup, clock=lambda: now[0])


def _objects() -> dict[tuple[str, str | None, str], dict]:
    return {("serviceaccounts", "team", "app"): SA, ("pods", "team", "p"): POD, ("nodes", None, "n1"): NODE,
            ("secrets", "team", "s"): SECRET}


def _issuer(key: bytes, objects: dict, **settings: Any) -> tokenrequest.TokenIssuer:
    async def get(plural: str, namespace: str | None, name: str) -> dict:
        found = objects.get((plural, namespace, name))
        if found is None:
            raise errors.NotFound.for_resource(plural, name)
        return found

    return tokenrequest.TokenIssuer(_signer(key), satokens.Settings(**settings), get, clock=lambda: NOW)


async def test_pod_bound_token_carries_the_pod_and_its_node(key: bytes) -> None:
    objects = _objects()
    answer, warnings = await _issuer(key, objects).create("team", "app", {"spec": {
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "pod-uid"}}})
    assert warnings == []
    user = _authenticator(key, objects, [NOW + 10]).review(answer["status"]["token"])
    assert user is not None and user.user is not None
    assert user.user.extra[satokens.EXTRA_NODE_NAME] == ("n1",) and user.user.extra[satokens.EXTRA_POD_UID] == ("pod-uid",)
    del objects[("nodes", None, "n1")]  # the node went: its pods' tokens go with it
    assert _authenticator(key, objects, [NOW + 10]).review(answer["status"]["token"]).error == (
        "service account token has been invalidated")


async def test_the_year_long_projected_token_only_for_the_apis_own_audiences(key: bytes) -> None:
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
    issuer = _issuer(key, _objects())
    own, _ = await issuer.create("team", "app", {"spec": {"boundObjectRef": ref, "expirationSeconds": 3607}})
    vault, _ = await issuer.create("team", "app", {"spec": {"boundObjectRef": ref, "expirationSeconds": 3607,
                                                            "audiences": ["vault"]}})
    unbound, _ = await issuer.create("team", "app", {"spec": {"expirationSeconds": 3607}})
    lifetimes = [jwts.unverified_claims(a["status"]["token"]) for a in (own, vault, unbound)]
    assert [c["exp"] - c["iat"] for c in lifetimes] == [satokens.EXTENDED_EXPIRATION, 3607, 3607]
    assert own["status"]["expirationTimestamp"] == vault["status"]["expirationTimestamp"]  # what was asked for
    no_extension = _issuer(key, _objects(), extend_expiration=False)
    plain, _ = await no_extension.create("team", "app", {"spec": {"boundObjectRef": ref, "expirationSeconds": 3607}})
    claims = jwts.unverified_claims(plain["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3607 and "warnafter" not in claims["kubernetes.io"]


async def test_secret_and_node_bindings(key: bytes) -> None:
    objects = _objects()
    issuer = _issuer(key, objects)
    secret, _ = await issuer.create("team", "app", {"spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1",
                                                                                  "name": "s"}}})
    assert jwts.unverified_claims(secret["status"]["token"])["kubernetes.io"]["secret"] == {"name": "s",
                                                                                          "uid": "secret-uid"}
    objects[("secrets", "team", "s")] = {"metadata": {"name": "s", "namespace": "team", "uid": "new"}}
    assert "secret UID (new) does not match claim (secret-uid)" in _authenticator(key, objects, [NOW]).review(
        secret["status"]["token"]).error


def test_leeway_issuers_and_malformed_claims(key: bytes) -> None:
    now = [float(NOW)]
    auth = _authenticator(key, _objects(), now)
    signer = _signer(key)

    def token(**changes: Any) -> str:
        claims = satokens.claims(issuer=ISSUER, service_account=SA, audiences=[ISSUER], expiration=600, now=NOW)
        claims.update(changes)
        return jwts.sign(claims, key, algorithm="RS256", kid=signer.kid)

    now[0] = NOW + 600 + 59
    assert auth.review(token()).user is not None  # within go-jose's minute of leeway
    now[0] = NOW + 600 + 61
    assert auth.review(token()).error == "service account token has expired"
    now[0] = NOW
    assert auth.review(token(nbf=NOW + 120)).error == "service account token is not valid yet"
    assert auth.review(token(iat=NOW + 120)).error == "service account token is issued in the future"
    assert auth.review(token(iss="https://old-issuer")).user is not None  # every issuer is accepted
    assert auth.review(token(iss="https://someone-else")) is None  # not ours: the next authenticator's
    assert auth.review(token(exp="soon")).error == "service account token has an invalid exp claim"
    assert auth.review(token(**{"kubernetes.io": "x"})).error.endswith("missing kubernetes claims")
    assert auth.review(token(aud=ISSUER)).user is not None  # a single audience as a string, as go-jose reads it
    assert auth.review("not-a-jwt") is None


def test_request_validation() -> None:
    assert tokenrequest.parse_request({"spec": {}})["spec"] == {"audiences": [], "expirationSeconds": 3600}
    with pytest.raises(errors.Invalid):
        tokenrequest.parse_request({"spec": {"expirationSeconds": -1}})
    for bad in ({"spec": {"expirationSeconds": True}}, {"spec": {"boundObjectRef": {"name": 1}}},
                {"metadata": "x"}, {"apiVersion": "v1", "kind": "TokenRequest"}):
        with pytest.raises(errors.BadRequest):
            tokenrequest.parse_request(bad)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("48h", 172800), ("1h30m", 5400), ("3600s", 3600),
                                               ("1.5h", 5400), ("10m0s", 600)])
def test_durations(text: str, seconds: int) -> None:
    assert satokens.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1d", "h", "10", "-1h", "1h x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        satokens.parse_duration(text)


def test_a_signing_key_is_parsed_once_not_per_token(key: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyJWT parses a PEM on every call; an RSA private key's load took 36 ms, half the API
    server's CPU while 50 pods asked for projected tokens. Keys are parsed once and reused."""
    parsed: list[bytes] = []
    real = jwt.algorithms.RSAAlgorithm.prepare_key

    def counting(self: Any, material: Any) -> Any:
        if isinstance(material, bytes | str):
            parsed.append(material if isinstance(material, bytes) else material.encode())
        return real(self, material)

    monkeypatch.setattr(jwt.algorithms.RSAAlgorithm, "prepare_key", counting)
    fresh = certs.new_signing_key()  # not yet parsed by another test in this process
    public = certs.signing_public_key(fresh)
    verification = [jwts.VerificationKey(public, "RS256", "k")]
    for n in range(5):
        token = jwts.sign({"n": n}, fresh, algorithm="RS256", kid="k")
        assert jwts.verify(token, verification)["n"] == n
    assert parsed.count(fresh) == 1
    assert parsed.count(public) == 1
