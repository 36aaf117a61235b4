"""Kubernetes structural schemas (OpenAPI v3.0 with `x-kubernetes-*` extensions) as Draft 7 JSON Schema.

A module of its own because both the registry (checking a CRD's schema when it is created) and
validation (compiling a validator per resource) need the translation, and validation needs the registry.
"""

from __future__ import annotations

from typing import Any

INTEGER_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _is_integer(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind) or bool(
        schema.get("x-kubernetes-int-or-string"))


def to_jsonschema(schema: Any) -> Any:
    """Translate a Kubernetes structural (OpenAPI v3.0) schema into Draft 7 JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(v) for v in value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if value and bound in schema:
                out[key] = schema[bound]
        elif key in ("format", "default", "nullable", "description", "example", "externalDocs", "title"):
            continue
        elif key.startswith("x-kubernetes-") or key.startswith("x-"):
            continue
        else:
            out[key] = value
    if "exclusiveMinimum" in out:
        out.pop("minimum", None)
    if "exclusiveMaximum" in out:
        out.pop("maximum", None)
    bounds = INTEGER_FORMATS.get(schema.get("format", "")) if _is_integer(schema) else None
    if bounds is not None:  # int32/int64: the range a Go field of that type holds
        low, high = bounds
        if out.get("minimum", low - 1) < low and out.get("exclusiveMinimum", low - 1) < low:
            out.pop("minimum", None)
            out.pop("exclusiveMinimum", None)
            out["minimum"] = low
        if out.get("maximum", high + 1) > high and out.get("exclusiveMaximum", high + 1) > high:
            out.pop("maximum", None)
            out.pop("exclusiveMaximum", None)
            out["maximum"] = high
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema:
        out.pop("type", None)
    if schema.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out
