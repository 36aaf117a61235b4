"""Defaulting, unknown-field handling and validation of objects against their resource's schema.

One pass of our own walks the object with the structural schema (it has to: defaults, null pruning and
unknown fields are not JSON Schema notions); the value checks then go through a JSON Schema validator (`structural.SchemaValidator`)
compiled once per `Resource`. Messages follow Kubernetes word for word because kubectl prints them.
ObjectMeta is fixed, so it is checked against its own schema (`objectmeta_validation`), never the CRD's.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import deque
from typing import Any

from reconcile.api import objectmeta_validation, registry, structural
from reconcile.core import errors

FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
_ROOT_FIXED = ("apiVersion", "kind", "metadata")  # always allowed at the top; checked by the server

# --- schema compilation ---------------------------------------------------------------------------------


class Compiled:
    """What `prepare` needs per Resource, built once: the raw schema (for the structural walk) and
    its validator (for the value checks)."""

    def __init__(self, resource: registry.Resource) -> None:
        root = dict(resource.schema)
        props = dict(root.get("properties") or {})
        for key in _ROOT_FIXED:  # ObjectMeta is checked on its own, apiVersion/kind by the server
            props.pop(key, None)
        root["properties"] = props
        self.schema = root
        self.validator = structural.SchemaValidator(root)


@functools.lru_cache(maxsize=1024)
def compiled(resource: registry.Resource) -> Compiled:
    return Compiled(resource)


# --- the structural walk: null pruning, defaults, unknown fields, list-map keys --------------------------


def _walk(value: Any, schema: dict, path: str, unknown: list[str], causes: list[dict[str, str]]) -> None:
    declared = schema.get("type")
    if isinstance(value, dict):
        if declared not in (None, "object"):
            return  # a type error, reported by the value checks: nothing here is an unknown field
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        if props is None and addl is None and preserve and not embedded:
            return
        for key in list(value):
            child = value[key]
            sub = props.get(key) if props else None
            if sub is None and isinstance(addl, dict):
                sub = addl
            if sub is None:
                if addl is True or preserve or (embedded and key in ("apiVersion", "kind", "metadata")):
                    continue
                unknown.append(f"{path}.{key}" if path else key)
                del value[key]
                continue
            if child is None:
                if not sub.get("nullable"):
                    del value[key]
                continue
            if isinstance(child, float):
                value[key] = _integral(child, sub)
                continue
            _walk(child, sub, f"{path}.{key}" if path else key, unknown, causes)
        if props:
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                    _walk(value[key], sub, f"{path}.{key}" if path else key, unknown, causes)
    elif isinstance(value, list):
        if declared not in (None, "array"):
            return
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                if isinstance(item, float):
                    value[index] = _integral(item, items)
                elif item is not None:
                    _walk(item, items, f"{path}[{index}]", unknown, causes)
        if schema.get("x-kubernetes-list-type") == "map":
            _check_map_keys(value, schema.get("x-kubernetes-list-map-keys") or [], path, causes)


_INT64 = (-(2**63), 2**63 - 1)


def _integral(value: float, schema: dict) -> float | int:
    """`2.0` where the schema says integer is `2`: JSON Schema counts it an integer, so it passes, and
    stored as a float it would reach controllers that count with it (`range(2.0)`). Upstream's
    decoding keeps a custom resource's integral float as the integer it serializes to; a fraction,
    or a value beyond int64, stays as sent and fails the type or range check."""
    declared = schema.get("type")
    wants_integer = declared == "integer" or (isinstance(declared, list) and "integer" in declared) or bool(
        schema.get("x-kubernetes-int-or-string"))
    if wants_integer and value.is_integer() and _INT64[0] <= value <= _INT64[1]:
        return int(value)
    return value


def _check_map_keys(items: list, keys: list[str], path: str, causes: list[dict[str, str]]) -> None:
    """Kubernetes rejects two entries of a list-map with the same key (two containers named "web")."""
    seen: set[tuple] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
        if key in seen:
            if len(keys) == 1:
                field, shown = f"{path}[{index}].{keys[0]}", _show(item.get(keys[0]))
            else:
                field, shown = f"{path}[{index}]", json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))
            causes.append(errors.cause(field, f"Duplicate value: {shown}", "FieldValueDuplicate"))
        seen.add(key)


# --- jsonschema errors -> Kubernetes causes ------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)[:200]


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def format_path(parts: deque | list) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _causes_for(error: structural.ValidationError, done: set[str], *, prefix: str = "") -> list[dict[str, str]]:
    path = format_path(error.absolute_path)
    if prefix:
        path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
    where = path or "<root>"
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        out = []
        for prop in expected:
            field = f"{path}.{prop}" if path else prop
            if isinstance(value, dict) and prop not in value and field not in done:
                done.add(field)
                out.append(errors.cause(field, "Required value", "FieldValueRequired"))
        return out
    if kind == "type":
        wanted = ",".join(expected) if isinstance(expected, list) else expected
        actual = json_type(value)
        return [errors.cause(path, f'Invalid value: "{actual}": {where} in body must be of type {wanted}: '
                                   f'"{actual}"', "FieldValueTypeInvalid")]
    if kind == "enum":
        supported = ", ".join(_show(v) for v in expected)
        return [errors.cause(path, f"Unsupported value: {_show(value)}: supported values: {supported}",
                             "FieldValueNotSupported")]
    templates = {
        "minimum": "should be greater than or equal to {}",
        "maximum": "should be less than or equal to {}",
        "exclusiveMinimum": "should be greater than {}",
        "exclusiveMaximum": "should be less than {}",
        "pattern": "should match '{}'",
        "minLength": "should be at least {} chars long",
        "maxLength": "should be at most {} chars long",
        "minItems": "should have at least {} items",
        "maxItems": "should have at most {} items",
        "minProperties": "should have at least {} properties",
        "maxProperties": "should have at most {} properties",
        "multipleOf": "should be a multiple of {}",
    }
    if kind in templates:
        shown = len(value) if kind in ("minItems", "maxItems", "minProperties", "maxProperties") else _show(value)
        return [errors.cause(path, f"Invalid value: {shown}: {where} in body {templates[kind].format(expected)}")]
    if kind == "uniqueItems":
        return [errors.cause(path, f"Duplicate value: {_show(value)}", "FieldValueDuplicate")]
    return [errors.cause(path, f"Invalid value: {_show(value)}: {error.message}")]


def decode_error(resource: registry.Resource, detail: str) -> errors.BadRequest:
    kind = resource.kind
    return errors.BadRequest(f'{kind} in version "{resource.version}" cannot be handled as a {kind}: {detail}')


def _meta_causes(resource: registry.Resource, meta: dict, unknown: list[str]) -> list[dict[str, str]]:
    """Prune unknown metadata fields (into `unknown`), refuse wrong types, then apply upstream's rules."""
    causes: list[dict[str, str]] = []
    _walk(meta, objectmeta_validation.OBJECT_META, "metadata", unknown, causes)
    type_errors = objectmeta_validation.type_errors(meta)
    if type_errors:
        done: set[str] = set()
        for error in type_errors:
            causes += _causes_for(error, done, prefix="metadata")
        return causes
    return causes + objectmeta_validation.rule_causes(resource, meta)


# --- kind-specific checks that a schema cannot express ----------------------------------------------------------


def _selector_matches(selector: dict, labels: dict) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and key in labels and labels[key] in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _workload_causes(obj: dict, kind: str = "deployment") -> list[dict[str, str]]:
    """Deployments, ReplicaSets and StatefulSets: a non-empty selector that selects the pod template's labels."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("selector"), dict):
        return []
    causes: list[dict[str, str]] = []
    selector = spec["selector"]
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(errors.cause("spec.selector", f"Invalid value: {{}}: empty selector is invalid for {kind}"))
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    labels = template_meta.get("labels") or {}
    if isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()):
        causes += objectmeta_validation.label_causes(labels, "spec.template.metadata.labels")
        if not causes and not _selector_matches(selector, labels):
            shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
            causes.append(errors.cause("spec.template.metadata.labels",
                                       f"Invalid value: {shown}: `selector` does not match template `labels`"))
    if isinstance(template_meta.get("annotations"), dict):
        causes += objectmeta_validation.annotation_causes(template_meta["annotations"], "spec.template.metadata.annotations")
    return causes


_KIND_CHECKS = {("apps", "Deployment"): _workload_causes, ("apps", "ReplicaSet"): _workload_causes,
                ("apps", "StatefulSet"): lambda obj: _workload_causes(obj, "statefulset")}


# --- entry point -------------------------------------------------------------------------------------------------------


def prepare(resource: registry.Resource, obj: dict, *, field_validation: str = "Strict") -> list[str]:
    """Default, prune and validate `obj` in place before it is stored; returns warnings (Warn mode).

    Unknown fields are dropped in every mode; Strict turns them into a 400 instead, before value checks,
    as upstream's strict decoder does.
    """
    if field_validation not in FIELD_VALIDATION:
        raise errors.BadRequest(f'fieldValidation parameter unsupported: "{field_validation}"; supported values: '
                                '"Ignore", "Strict", "Warn"')
    if not isinstance(obj, dict):
        raise decode_error(resource, f"json: cannot unmarshal {json_type(obj)} into Go value of type "
                                      f"struct")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    elif not isinstance(meta, dict):
        raise decode_error(resource, f"json: cannot unmarshal {json_type(meta)} into Go struct field "
                                      f"{resource.kind}.metadata of type v1.ObjectMeta")
    unknown: list[str] = []
    causes = _meta_causes(resource, meta, unknown)
    comp = compiled(resource)
    body = {k: v for k, v in obj.items() if k not in _ROOT_FIXED}
    _walk(body, comp.schema, "", unknown, causes)
    if unknown and field_validation == "Strict":
        listed = ", ".join(f'unknown field "{field}"' for field in unknown)
        raise decode_error(resource, f"strict decoding error: {listed}")
    for key in [k for k in obj if k not in _ROOT_FIXED and k not in body]:
        del obj[key]
    obj.update(body)
    done: set[str] = set()
    for error in comp.validator.errors(body):
        causes += _causes_for(error, done)
    check = _KIND_CHECKS.get((resource.group, resource.kind)) if resource.builtin else None
    if check is not None and not causes:
        causes += check(obj)
    if causes:
        raise errors.Invalid.for_object(resource.kind, meta.get("name") or "", causes, group=resource.group)
    if field_validation == "Warn":
        return [f'unknown field "{field}"' for field in unknown]
    return []
