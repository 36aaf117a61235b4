"""Kubernetes structural schemas (OpenAPI v3.0 with `x-kubernetes-*` extensions) as Draft 7 JSON Schema,
and the one seam to the JSON Schema libraries (`jsonschema`, `fastjsonschema`).

A module of its own because the registry (checking a CRD's schema when it is created), validation
(a validator per resource) and ObjectMeta validation all need the translation and the validators,
and validation needs the registry.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema
import jsonschema

ValidationError = jsonschema.ValidationError  # what `SchemaValidator.errors` returns, for callers' types

# Formats are not checked (as with jsonschema without a format checker): any string passes.
_ANY_FORMAT = {name: (lambda value: True) for name in (
    "date-time", "date", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uri-reference", "uuid",
    "regex", "int-or-string", "byte", "int32", "int64", "float", "double", "password", "binary",
)}


class SchemaValidator:
    """A structural schema compiled for checking values.

    The fast path: fastjsonschema compiles the schema to Python code (an order of magnitude faster
    per object). It only ever says "valid"; on any failure jsonschema judges again and reports every
    error, so what is accepted and what is reported is jsonschema's word.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        translated = to_jsonschema(schema)
        self._validator = jsonschema.Draft7Validator(translated)
        try:
            self._fast: Any = fastjsonschema.compile(translated, formats=_ANY_FORMAT)
        except fastjsonschema.JsonSchemaDefinitionException:
            self._fast = None  # a schema it cannot compile: jsonschema alone

    def valid_fast(self, value: Any) -> bool:
        if self._fast is None:
            return False
        try:
            self._fast(value)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    def errors(self, value: Any) -> list[jsonschema.ValidationError]:
        """Every way `value` fails the schema (empty when it fits)."""
        if self.valid_fast(value):
            return []
        return list(self._validator.iter_errors(value))


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` (structural) is not a valid schema, or None."""
    try:
        jsonschema.Draft7Validator.check_schema(to_jsonschema(schema))
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


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
