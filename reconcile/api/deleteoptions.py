"""DeleteOptions as upstream's typed decoding reads them: each field of its Go type, or a 400.

A body is read loosely otherwise, and a loose read misleads: `"dryRun": "All"` (a string) or
`{"All": 1}` passed for a dry run by accident of Python's `in`, a number there was a 500, and a
grace period beyond int64 was stored on a pod and made every later encode of it fail. Pure: the
handler reads the body and the query, `rest.delete` acts on what `normalized` returns.
"""

from __future__ import annotations

from typing import Any

from reconcile.core import errors

API_VERSIONS = frozenset({"v1", "meta.k8s.io/v1", "meta.k8s.io/v1beta1"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DRY_RUN_ALL = "All"
# Upstream's unsafe delete of an object the store cannot decode (1.32, alpha there; see rest.delete).
UNSAFE_DELETE = "ignoreStoreReadErrorWithClusterBreakingPotential"


def _type_error(field: str, value: Any, go_type: str) -> errors.BadRequest:
    kind = "null" if value is None else {bool: "bool", int: "number", float: "number", str: "string",
                                         list: "array", dict: "object"}.get(type(value), "value")
    return errors.BadRequest(f"DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: json: cannot "
                             f"unmarshal {kind} into Go struct field DeleteOptions.{field} of type {go_type}")


def grace_period(value: Any, *, field: str = "gracePeriodSeconds") -> int | None:
    """An int64 or None."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not INT64_MIN <= value <= INT64_MAX:
        raise _type_error(field, value, "int64")
    return value


def normalized(body: Any, *, query_policy: str | None = None, query_grace: int | None = None) -> dict[str, Any]:
    """The options of a delete: the body's (None when there is none), then the query's over them."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise errors.BadRequest("DeleteOptions must be an object")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    for field, value in (("apiVersion", api_version), ("kind", kind)):
        if value is not None and not isinstance(value, str):  # before any set lookup: a map is unhashable
            raise _type_error(field, value, "string")
    if api_version not in (None, "") and api_version not in API_VERSIONS:
        raise errors.BadRequest(f'no kind "DeleteOptions" is registered for version "{api_version}"')
    if kind not in (None, "", "DeleteOptions"):
        raise errors.BadRequest(f"the body of a delete must be DeleteOptions, not {kind!r}")
    options: dict[str, Any] = {}
    grace = grace_period(body.get("gracePeriodSeconds"))
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    for field, go_type, allowed in (("propagationPolicy", "v1.DeletionPropagation", str),
                                    ("orphanDependents", "bool", bool),
                                    (UNSAFE_DELETE, "bool", bool)):
        value = body.get(field)
        if value is not None and not isinstance(value, allowed):
            raise _type_error(field, value, go_type)
        if value is not None:
            options[field] = value
    preconditions = body.get("preconditions")
    if preconditions is not None:
        if not isinstance(preconditions, dict):
            raise _type_error("preconditions", preconditions, "v1.Preconditions")
        for field in ("uid", "resourceVersion"):
            value = preconditions.get(field)
            if value is not None and not isinstance(value, str):
                raise _type_error(f"preconditions.{field}", value, "string")
        options["preconditions"] = {k: v for k, v in preconditions.items() if k in ("uid", "resourceVersion")}
    dry_run = body.get("dryRun")
    if dry_run is not None:
        if not isinstance(dry_run, list) or not all(isinstance(v, str) for v in dry_run):
            raise _type_error("dryRun", dry_run, "[]string")
        for value in dry_run:
            if value != DRY_RUN_ALL:
                raise errors.BadRequest(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        options["dryRun"] = list(dry_run)
    if query_policy:
        options["propagationPolicy"] = query_policy
    grace = grace_period(query_grace)
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if "propagationPolicy" in options and options.get("orphanDependents") is not None:
        raise errors.BadRequest("propagationPolicy: Invalid value: orphanDependents and propagationPolicy "
                                "may not both be set")
    return options


def is_dry_run(options: dict[str, Any]) -> bool:
    return DRY_RUN_ALL in (options.get("dryRun") or ())
