"""JSON Web Tokens: the one module that speaks to PyJWT (signing and verifying ServiceAccount tokens).

Everything else sees claims as plain dicts and `TokenError`; PyJWT's exceptions stay here. Keys are
PEM bytes (reconcile/pki/certs.py reads and makes them); the algorithm is the key's (RS256 for RSA,
ES256/384/512 for ECDSA), never the token's say: a verifier is given `(public PEM, algorithm)` pairs
and PyJWT is told to accept that one algorithm per key, so an `alg: none` or an HMAC token keyed
with the public key (the classic confusion attack) does not verify.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt


class TokenError(ValueError):
    """Not a JWT, a signature that does not verify, or claims that do not parse."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    public_pem: bytes
    algorithm: str  # what this key signs with: RS256, ES256, ...
    kid: str


@functools.lru_cache(maxsize=64)
def _prepared(pem: bytes, algorithm: str) -> Any:
    """The key object of a PEM, parsed once. PyJWT parses a PEM it is given on every call, and
    loading an RSA private key checks its consistency: 36 ms per signed token, half the API
    server's CPU while 50 pods started (each asks for a projected ServiceAccount token). A key
    object passes through PyJWT's key preparation unchanged (0.3 ms per token)."""
    return jwt.get_algorithm_by_name(algorithm).prepare_key(pem)


def sign(claims: dict[str, Any], private_pem: bytes, *, algorithm: str, kid: str) -> str:
    """A compact JWS of `claims`, header {"alg", "kid"} as upstream's (no "typ")."""
    return jwt.encode(claims, _prepared(private_pem, algorithm), algorithm=algorithm,
                      headers={"kid": kid, "typ": None})


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of something shaped as a JWS, unverified (None: not a JWT). Only for routing a
    token to the authenticator whose issuer it names, as upstream's; nothing is trusted from it."""
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def verify(token: str, keys: Sequence[VerificationKey]) -> dict[str, Any]:
    """The claims of `token` if one of `keys` signed it (the header's kid picks the key to try first).
    Time and audience are the caller's to check (upstream's order and messages); raises TokenError."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(f"not a JWT: {exc}") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    ordered = sorted(keys, key=lambda k: k.kid != kid)
    for key in ordered:
        try:
            claims = jwt.decode(token, _prepared(key.public_pem, key.algorithm), algorithms=[key.algorithm],
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False, "verify_iss": False, "verify_sub": False,
                                         "verify_jti": False})
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAlgorithmError:
            continue
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        if not isinstance(claims, dict):
            raise TokenError("the token's claims are not an object")
        return claims
    raise TokenError("invalid signature")
