"""Kubernetes protobuf request bodies the server reads (wire notes §3): the `k8s\\0` envelope and the
messages of the kinds that kubectl 1.32 sends only in protobuf to endpoints served here by code.

Today that is `authentication.k8s.io/v1` TokenRequest (`kubectl create token`); answers are JSON,
which kubectl accepts. Each decoder turns the message into the JSON shape the handler validates
anyway, so a protobuf request meets exactly the checks a JSON one does.
"""

from __future__ import annotations

from typing import Any

from reconcile.core import errors, protowire

MAGIC = b"k8s\x00"
MEDIA_TYPES = frozenset({"application/vnd.kubernetes.protobuf", "application/protobuf"})


def is_protobuf(body: bytes, media_type: str) -> bool:
    return media_type in MEDIA_TYPES or body[:4] == MAGIC


def _bad(kind: str, why: str) -> errors.BadRequest:
    return errors.BadRequest(f"the body of the request could not be decoded as a protobuf {kind}: {why}")


def envelope(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a runtime.Unknown after the magic."""
    if body[:4] != MAGIC or len(body) == 4:
        raise _bad("object", "missing the k8s\\0 envelope")
    api_version = kind = ""
    raw = b""
    for number, value in protowire.fields(body[4:]):
        if number == 1:
            for inner, part in protowire.fields(protowire.message(value)):
                if inner == 1:
                    api_version = protowire.text(part)
                elif inner == 2:
                    kind = protowire.text(part)
        elif number == 2:
            raw = protowire.message(value)
    if not api_version or not kind:
        raise _bad("object", "the envelope names no apiVersion or kind")
    return api_version, kind, raw


def _object_meta(data: bytes) -> dict[str, Any]:
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid"}
    meta: dict[str, Any] = {}
    for number, value in protowire.fields(data):
        if number in names and protowire.text(value):
            meta[names[number]] = protowire.text(value)
    return meta


def _bound_object_ref(data: bytes) -> dict[str, Any]:
    names = {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"}
    return {names[n]: protowire.text(v) for n, v in protowire.fields(data) if n in names}


def _token_request_spec(data: bytes) -> dict[str, Any]:
    spec: dict[str, Any] = {"audiences": []}
    for number, value in protowire.fields(data):
        if number == 1:
            spec["audiences"].append(protowire.text(value))
        elif number == 4:
            spec["expirationSeconds"] = protowire.signed64(value)
        elif number == 3:
            spec["boundObjectRef"] = _bound_object_ref(protowire.message(value))
    return spec


def token_request(body: bytes) -> dict[str, Any]:
    """A protobuf `authentication.k8s.io/v1` TokenRequest as its JSON shape (status is dropped:
    the server fills it)."""
    try:
        api_version, kind, raw = envelope(body)
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}, "spec": {}}
        for number, value in protowire.fields(raw):
            if number == 1:
                obj["metadata"] = _object_meta(protowire.message(value))
            elif number == 2:
                obj["spec"] = _token_request_spec(protowire.message(value))
    except protowire.WireError as exc:
        raise _bad("TokenRequest", str(exc)) from None
    return obj
