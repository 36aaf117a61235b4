"""Errors as Kubernetes `Status` objects, shared by every layer.

The API server turns any `ApiError` into a `metav1.Status` response; the client turns a
`Status` response back into the same class (`from_status`), so code on both sides of the
wire catches the same exceptions. Messages follow apimachinery's errors.go word for word,
because kubectl and kopf print or parse them.

Storage errors (`StorageError` and subclasses) are raised by `reconcile.store` and mean
nothing on the wire until the API layer maps them to a resource-aware `ApiError`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error that has a Kubernetes `Status` form."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:  # {} included: clients read fields of it (kubectl's debug does)
            status["details"] = self.details
        return status


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


NO_SUCH_RESOURCE = "the server could not find the requested resource"


def no_such_resource() -> NotFound:
    """A path the server does not serve, as kube-apiserver's NotFound handler words it: with empty
    `details` (clients read `details.name` of any 404; kubectl debug panicked without it)."""
    return NotFound(NO_SUCH_RESOURCE, details={})


def _details(resource: str, name: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def for_resource(cls, resource: str, name: str, group: str = "") -> NotFound:
        """`deployments.apps "web" not found`."""
        return cls(f'{_qualified(resource, group)} "{name}" not found', details=_details(resource, name, group))


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def for_resource(cls, resource: str, name: str, group: str = "") -> AlreadyExists:
        return cls(f'{_qualified(resource, group)} "{name}" already exists', details=_details(resource, name, group))


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def for_resource(cls, resource: str, name: str, group: str = "", *, why: str | None = None) -> Conflict:
        why = why or "the object has been modified; please apply your changes to the latest version and try again"
        return cls(
            f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
            details=_details(resource, name, group),
        )


class Gone(ApiError):
    """410: a resourceVersion or continue token older than the compaction point."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    """422 with one cause per bad field; `details.kind` is the Kind, not the plural."""

    code = 422
    reason = "Invalid"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, details=details, **kwargs)

    @property
    def causes(self) -> list[dict[str, str]]:
        return list((self.details or {}).get("causes", []))

    @classmethod
    def for_object(cls, kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> Invalid:
        """`Deployment.apps "web" is invalid: [spec.replicas: Invalid value: -1: ..., ...]`."""
        parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
        if group:
            details["group"] = group
        return cls(f'{_qualified(kind, group)} "{name}" is invalid: {joined}', details=details)


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One entry of `details.causes`."""
    return {"reason": reason, "message": message, "field": field}


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(ApiError):
    code = 504
    reason = "Timeout"


_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        AlreadyExists,
        Conflict,
        RequestEntityTooLarge,
        UnsupportedMediaType,
        Invalid,
        TooManyRequests,
        InternalError,
        ServiceUnavailable,
        Timeout,
    )
}
_BY_REASON["Gone"] = Gone
_BY_REASON["Expired"] = Gone
_BY_CODE: dict[int, type[ApiError]] = {}
for _cls in reversed(list(_BY_REASON.values())):
    _BY_CODE.setdefault(_cls.code, _cls)
_BY_CODE[409] = Conflict


def from_status(status: dict[str, Any], *, http_code: int | None = None) -> ApiError:
    """Rebuild the typed error from a `Status` body (client side)."""
    reason = str(status.get("reason") or "")
    code = int(status.get("code") or http_code or 500)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or ApiError
    return cls(
        str(status.get("message") or reason or f"HTTP {code}"),
        details=status.get("details"),
        code=code,
        reason=reason or cls.reason,
    )


# --- storage errors (raised by reconcile.store, mapped to ApiError by reconcile.api) ---


class StorageError(Exception):
    """Something went wrong talking to the store."""


class KeyExists(StorageError):
    """Create found the key already present."""


class RevisionConflict(StorageError):
    """The key's mod_revision was not the one expected (or the key is gone)."""


class KeyMissing(StorageError):
    """The key does not exist."""


class Compacted(StorageError):
    """The requested revision is older than the store's compaction point."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compact revision {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


class ValueTooLarge(StorageError):
    """The value is over the store's request size limit."""


class StoreUnavailable(StorageError):
    """The store did not answer."""


class FutureRevision(StorageError):
    """A read asked for a revision the store has not reached yet."""
