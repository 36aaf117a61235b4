"""The review APIs: questions to the authorizer and the authenticator, asked by creating an object.

`authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview,
LocalSubjectAccessReview and SelfSubjectRulesReview (`kubectl auth can-i --list`), and
`authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`) and TokenReview (does a bearer
token authenticate, and as whom: asked of the server's own token authenticators, audiences and all). They are create-only and
never stored: `handlers` hands a POST of one to `Reviews.create`, which answers with the object and
its `status` filled in (201, as any create). Who may ask is the pipeline's business (RBAC's
`system:basic-user` lets every authenticated user ask about themselves).

The answer comes from the same authorizer chain that judges real requests, with the same
attributes the pipeline would build, so can-i never disagrees with what the request then meets.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import authenticators, authn, authorizers, authz, registry, satokens, tokens
from reconcile.core import errors, meta, selectors

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"

Handler = Callable[[registry.Resource, str | None, dict[str, Any], authn.UserInfo], Awaitable[dict[str, Any]]]


def _invalid(resource: registry.Resource, field: str, message: str) -> errors.Invalid:
    return errors.Invalid.for_object(resource.kind, "", [errors.cause(field, message)], group=resource.group)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _checked(resource: registry.Resource, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                f"{resource.kind}: the body must be a JSON or YAML object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", resource.kind) or api_version not in (None, "", resource.api_version):
        raise errors.BadRequest(f'{kind} in version "{api_version}" cannot be handled as a {resource.kind}: '
                                f"expected kind {resource.kind} ({resource.api_version})")
    for part in ("metadata", "spec"):
        if body.get(part) is not None and not isinstance(body[part], dict):
            raise errors.BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                    f"{resource.kind}: {part} must be an object")
    return body


def _attributes_spec(resource: registry.Resource, spec: dict[str, Any]) -> tuple[dict | None, dict | None]:
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    for field, value, keys in (("resourceAttributes", res, ("namespace", "verb", "group", "version", "resource",
                                                            "subresource", "name")),
                               ("nonResourceAttributes", non, ("path", "verb"))):
        if value is None:
            continue
        if not isinstance(value, dict) or any(not isinstance(value.get(k, ""), str) for k in keys):
            raise errors.BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                    f"{resource.kind}: spec.{field} must be an object of strings")
    if res is None and non is None:
        raise _invalid(resource, "spec.resourceAttributes", 'Invalid value: "null": exactly one of '
                       "nonResourceAttributes or resourceAttributes must be specified")
    if res is not None and non is not None:
        raise _invalid(resource, "spec.nonResourceAttributes", f"Invalid value: {json.dumps(non)}: cannot be "
                       "specified in combination with resourceAttributes")
    return res, non


def field_requirements(selector: Any) -> tuple[selectors.FieldRequirement, ...]:
    """`resourceAttributes.fieldSelector` (1.31+): its `rawSelector`, else its `requirements` with
    `In`/`NotIn` of one value. What cannot be read gives no terms, as upstream's authorizers see a
    selector that failed to parse (an authorizer that needs one then refuses)."""
    if not isinstance(selector, dict):
        return ()
    raw = selector.get("rawSelector")
    if isinstance(raw, str) and raw:
        try:
            return selectors.parse_field_terms(raw).requirements
        except errors.ApiError:
            return ()
    found = []
    for req in selector.get("requirements") or []:
        if not isinstance(req, dict) or not isinstance(req.get("key"), str):
            return ()
        values = req.get("values")
        if req.get("operator") not in ("In", "NotIn") or not isinstance(values, list) or len(values) != 1 \
                or not isinstance(values[0], str):
            return ()  # upstream: "fieldSelectors do not yet support multiple values" and the like
        found.append(selectors.FieldRequirement(req["key"], "=" if req["operator"] == "In" else "!=", values[0]))
    return tuple(found)


def attributes_for(user: authn.UserInfo, res: dict[str, Any] | None, non: dict[str, Any] | None) -> authz.Attributes:
    """The attributes the pipeline would build for the request described."""
    if res is not None:
        return authz.Attributes(user, res.get("verb", ""), True, "", res.get("group", ""), res.get("version", ""),
                                res.get("resource", ""), res.get("subresource", ""), res.get("namespace", ""),
                                res.get("name", ""), field_requirements(res.get("fieldSelector")))
    assert non is not None
    return authz.Attributes(user, non.get("verb", ""), False, non.get("path", ""))


def _status(decision: authz.Decision) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _answer(resource: registry.Resource, body: dict[str, Any], status: dict[str, Any], *,
            namespace: str | None = None, stamped: bool = False) -> dict[str, Any]:
    metadata = dict(body.get("metadata") or {})
    for server_field in ("resourceVersion", "uid", "generation"):
        metadata.pop(server_field, None)
    if namespace:
        metadata["namespace"] = namespace
    metadata["creationTimestamp"] = meta.now_rfc3339() if stamped else None
    return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata,
            "spec": body.get("spec") or {}, "status": status}


def _subject(resource: registry.Resource, spec: dict[str, Any]) -> authn.UserInfo:
    name, uid = spec.get("user") or "", spec.get("uid") or ""
    groups, extra = spec.get("groups") or [], spec.get("extra") or {}
    if not isinstance(name, str) or not isinstance(uid, str) or not _strings(groups) or not isinstance(extra, dict) \
            or not all(isinstance(k, str) and _strings(v) for k, v in extra.items()):
        raise errors.BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                f"{resource.kind}: spec.user, uid, groups and extra must be strings")
    if not name and not groups:
        raise _invalid(resource, "spec.user", 'Invalid value: "": at least one of user or group must be specified')
    return authn.UserInfo(name, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})


class Reviews:
    """Answers the review kinds; `handlers` asks `handler_for` for each resource request."""

    def __init__(self, authorizer: authorizers.Chain, *, token_authenticators: list[tokens.TokenAuthenticator] | None = None,
                 api_audiences: tuple[str, ...] = ()) -> None:
        self.authorizer = authorizer
        self.token_authenticators = token_authenticators if token_authenticators is not None else []
        self.api_audiences = list(api_audiences)
        self._handlers: dict[tuple[str, str], Handler] = {
            (AUTHORIZATION, "selfsubjectaccessreviews"): self.self_subject_access_review,
            (AUTHORIZATION, "subjectaccessreviews"): self.subject_access_review,
            (AUTHORIZATION, "localsubjectaccessreviews"): self.local_subject_access_review,
            (AUTHORIZATION, "selfsubjectrulesreviews"): self.self_subject_rules_review,
            (AUTHENTICATION, "selfsubjectreviews"): self.self_subject_review,
            (AUTHENTICATION, "tokenreviews"): self.token_review,
        }

    def handler_for(self, resource: registry.Resource) -> Handler | None:
        if not resource.builtin:
            return None
        return self._handlers.get((resource.group, resource.plural))

    async def self_subject_access_review(self, resource: registry.Resource, namespace: str | None,
                                         body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        spec = _checked(resource, body).get("spec") or {}
        res, non = _attributes_spec(resource, spec)
        decision = await self.authorizer.authorize(attributes_for(user, res, non))
        return _answer(resource, body, _status(decision))

    async def subject_access_review(self, resource: registry.Resource, namespace: str | None,
                                    body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        spec = _checked(resource, body).get("spec") or {}
        res, non = _attributes_spec(resource, spec)
        decision = await self.authorizer.authorize(attributes_for(_subject(resource, spec), res, non))
        return _answer(resource, body, _status(decision))

    async def local_subject_access_review(self, resource: registry.Resource, namespace: str | None,
                                          body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        spec = _checked(resource, body).get("spec") or {}
        given = (body.get("metadata") or {}).get("namespace")
        if not namespace or (given and given != namespace):
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on "
                                    "the request")
        if spec.get("nonResourceAttributes") is not None:
            raise _invalid(resource, "spec.nonResourceAttributes", "Invalid value: disallowed on this kind of "
                           "request")
        res, non = _attributes_spec(resource, spec)
        assert res is not None
        if res.get("namespace", "") != namespace:
            raise errors.BadRequest(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
        decision = await self.authorizer.authorize(attributes_for(_subject(resource, spec), res, non))
        return _answer(resource, body, _status(decision), namespace=namespace)

    async def self_subject_rules_review(self, resource: registry.Resource, namespace: str | None,
                                        body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        spec = _checked(resource, body).get("spec") or {}
        wanted = spec.get("namespace")
        if not isinstance(wanted, str) or not wanted:
            raise errors.BadRequest("no namespace on request")
        found = self.authorizer.rules_for(user, wanted)
        status: dict[str, Any] = {
            "resourceRules": [_resource_rule(r.to_dict()) for r in found.resource_rules],
            "nonResourceRules": [_non_resource_rule(r.to_dict()) for r in found.non_resource_rules],
            "incomplete": found.incomplete,
        }
        if found.errors:
            status["evaluationError"] = ", ".join(found.errors)
        return _answer(resource, body, status)

    async def self_subject_review(self, resource: registry.Resource, namespace: str | None,
                                  body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        _checked(resource, body)
        return _answer(resource, body, {"userInfo": authn.describe(user)}, stamped=True)

    async def token_review(self, resource: registry.Resource, namespace: str | None,
                           body: dict[str, Any], user: authn.UserInfo) -> dict[str, Any]:
        """Upstream's TokenReview: the token as a bearer token of a request would be judged; a failure
        says why in status.error (the one place a reason is given: the caller holds the token)."""
        spec = _checked(resource, body).get("spec") or {}
        if namespace:
            raise errors.BadRequest(f"namespace is not allowed on this type: {namespace}")
        token, audiences = spec.get("token"), spec.get("audiences") or []
        if not isinstance(token, str) or not token:
            raise errors.BadRequest("token is required for TokenReview in authentication")
        if not _strings(audiences):
            raise errors.BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                                    f"{resource.kind}: spec.audiences must be a list of strings")
        status = await self._review_token(token, list(audiences))
        return _answer(resource, body, status, stamped=True)

    async def _review_token(self, token: str, audiences: list[str]) -> dict[str, Any]:
        requested = audiences or self.api_audiences
        for authenticator in self.token_authenticators:
            if isinstance(authenticator, satokens.ServiceAccountTokens):
                review = authenticator.review(token, requested or None)
                if review is None:
                    continue
                if review.user is None:
                    return {"user": {}, "error": review.error}
                return {"authenticated": True, "audiences": review.audiences,
                        "user": authn.describe(authenticators.with_authenticated(review.user))}
            found = await authenticator.authenticate_token(token)
            if found is not None:  # audience-agnostic (the token file): valid for the server's own audiences
                shared = [a for a in requested if a in self.api_audiences] if self.api_audiences else requested
                if requested and self.api_audiences and not shared:
                    return {"user": {}, "error": "token audiences are invalid for the target audiences"}
                status: dict[str, Any] = {"authenticated": True,
                                          "user": authn.describe(authenticators.with_authenticated(found))}
                if shared:
                    status["audiences"] = shared
                return status
        return {"user": {}, "error": "invalid bearer token"}


def _resource_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in rule}


def _non_resource_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: rule[k] for k in ("verbs", "nonResourceURLs") if k in rule}
