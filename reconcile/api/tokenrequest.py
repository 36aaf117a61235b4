"""The TokenRequest subresource: `POST .../namespaces/NS/serviceaccounts/NAME/token`.

As upstream's pkg/registry/core/serviceaccount/storage/token.go: the request is checked (a 400 naming
the field, a 422 for expirationSeconds outside 600 s .. 2^32 s) and defaulted (3600 s, the API's
audiences); a `boundObjectRef` must name an existing Pod of the same ServiceAccount (its Node then
rides along), Secret or Node, with the uid it names; a request beyond
--service-account-max-token-expiration is shortened with a warning, and a pod-bound request for
exactly 3607 s for the API's own audiences gets a token valid a year that warns after 3607 s
(--service-account-extend-token-expiration). The claims and the signature are `satokens`'.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import jwts, satokens
from reconcile.core import errors, meta

# (plural, namespace, name) -> the object (a consistent read), raising NotFound
Getter = Callable[[str, str | None, str], Awaitable[dict[str, Any]]]


def _invalid(causes: list[dict[str, str]]) -> errors.Invalid:
    return errors.Invalid.for_object("TokenRequest", "", causes, group=satokens.GROUP)


def _bad_body(why: str) -> errors.BadRequest:
    return errors.BadRequest(f'TokenRequest in version "v1" cannot be handled as a TokenRequest: {why}')


def parse_request(body: Any) -> dict[str, Any]:
    """The request's shape checked (a 400 naming the field otherwise) and defaulted."""
    if not isinstance(body, dict):
        raise _bad_body("the body must be a JSON or YAML object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", "TokenRequest") or api_version not in (None, "", satokens.API_VERSION):
        raise _bad_body(f"expected kind TokenRequest ({satokens.API_VERSION}), got {kind} ({api_version})")
    metadata = body.get("metadata") if body.get("metadata") is not None else {}
    spec = body.get("spec") if body.get("spec") is not None else {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise _bad_body("metadata and spec must be objects")
    audiences = spec.get("audiences") if spec.get("audiences") is not None else []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _bad_body("spec.audiences must be a list of strings")
    seconds = spec.get("expirationSeconds")
    if seconds is None or seconds == 0:
        seconds = satokens.DEFAULT_EXPIRATION
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise _bad_body("spec.expirationSeconds must be an integer")
    ref = spec.get("boundObjectRef")
    if ref is not None:
        if not isinstance(ref, dict) or not all(isinstance(ref.get(k, ""), str)
                                                for k in ("kind", "apiVersion", "name", "uid")):
            raise _bad_body("spec.boundObjectRef must be an object of strings")
    causes = []
    if seconds < satokens.MIN_EXPIRATION:
        causes.append(errors.cause("spec.expirationSeconds",
                                   f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"))
    if seconds > satokens.MAX_EXPIRATION:
        causes.append(errors.cause("spec.expirationSeconds",
                                   f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"))
    if causes:
        raise _invalid(causes)
    new_spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": seconds}
    if ref is not None:
        new_spec["boundObjectRef"] = {k: ref[k] for k in ("kind", "apiVersion", "name", "uid") if ref.get(k)}
    return {"metadata": dict(metadata), "spec": new_spec}


class TokenIssuer:
    """Serves `POST .../serviceaccounts/NAME/token`."""

    def __init__(self, signer: satokens.Signer, settings: satokens.Settings, get: Getter,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer = signer
        self.settings = settings
        self.issuer = settings.issuer_list()[0]
        self.audiences = list(settings.audiences())
        self.get = get
        self.clock = clock

    def token(self, found: dict[str, Any]) -> str:
        return jwts.sign(found, self.signer.private_pem, algorithm=self.signer.algorithm, kid=self.signer.kid)

    async def create(self, namespace: str, name: str, body: Any) -> tuple[dict[str, Any], list[str]]:
        """The answered TokenRequest and the warnings for the client."""
        request = parse_request(body)
        service_account = await self.get("serviceaccounts", namespace, name)
        spec = request["spec"]
        if not spec["audiences"]:
            spec["audiences"] = list(self.audiences)
        metadata = request["metadata"]
        metadata.setdefault("name", name)
        metadata.setdefault("namespace", namespace)
        pod = node = secret = None
        ref = spec.get("boundObjectRef")
        if ref is not None:
            pod, node, secret = await self._bound(name, namespace, ref)
        warnings = []
        seconds = spec["expirationSeconds"]
        maximum = self.settings.max_expiration
        if maximum > 0 and seconds > maximum:
            warnings.append(f"requested expiration of {seconds} seconds shortened to {maximum} seconds")
            seconds = spec["expirationSeconds"] = maximum
        now = int(self.clock())
        expiration, warn_after = seconds, 0
        if (self.settings.extend_expiration and pod is not None and seconds == satokens.WARN_ONLY_EXPIRATION
                and all(a in self.audiences for a in spec["audiences"])):  # upstream's isKubeAudiences
            expiration, warn_after = satokens.EXTENDED_EXPIRATION, seconds
        found = satokens.claims(issuer=self.issuer, service_account=service_account, audiences=spec["audiences"],
                       expiration=expiration, now=now, pod=pod, node=node, secret=secret, warn_after=warn_after)
        metadata["creationTimestamp"] = _stamp(now)
        answer = {"kind": "TokenRequest", "apiVersion": satokens.API_VERSION, "metadata": metadata, "spec": spec,
                  "status": {"token": self.token(found),
                             "expirationTimestamp": _stamp(now + seconds)}}
        return answer, warnings

    async def _bound(self, name: str, namespace: str, ref: dict[str, str]) -> tuple[dict | None, dict | None, dict | None]:
        kind, api_version = ref.get("kind", ""), ref.get("apiVersion", "")
        group, _, _version = api_version.rpartition("/")
        pod = node = secret = None
        if group == "" and kind == "Pod":
            pod = await self.get("pods", namespace, ref.get("name", ""))
            if ((pod.get("spec") or {}).get("serviceAccountName") or "default") != name:
                raise errors.BadRequest(f'cannot bind token for serviceaccount "{name}" to pod running with '
                                        "different serviceaccount name.")
            target = pod
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                with contextlib.suppress(errors.NotFound):
                    node = await self.get("nodes", None, node_name)
        elif group == "" and kind == "Node":
            node = target = await self.get("nodes", None, ref.get("name", ""))
        elif group == "" and kind == "Secret":
            secret = target = await self.get("secrets", namespace, ref.get("name", ""))
        else:
            raise errors.BadRequest(f"cannot bind token to object of type {group}/{_version or api_version}, "
                                    f"Kind={kind}")
        uid = str((target.get("metadata") or {}).get("uid") or "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.Conflict.for_resource(
                kind, ref.get("name", ""), why=f"the UID in the bound object reference ({ref['uid']}) does not match "
                "the UID in record. The object might have been deleted and then recreated")
        return pod, node, secret


def _stamp(seconds: int) -> str:
    return meta.format_time(datetime.datetime.fromtimestamp(seconds, datetime.UTC))
