"""ObjectMeta validation: every standard metadata field checked against a fixed schema, then by
upstream's rules (names, label and annotation syntax, finalizers, owner references, timestamps).

One object that slips through with a wrong-typed field (an owner reference that is a string, labels
that are a list) is an object every controller and informer must then survive; so nothing is stored
that ObjectMeta's Go type could not hold. Type errors are 422 `Invalid` with the field's path, as
for any other field; unknown metadata fields are pruned (and refused under `fieldValidation=Strict`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from reconcile.api import registry, structural
from reconcile.core import errors, meta, names

ANNOTATIONS_LIMIT = 256 * 1024
Cause = dict[str, str]

_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "nullable": True, "additionalProperties": _STRING}
_TIME = {"type": "string", "nullable": True, "format": "date-time"}
OWNER_REFERENCE = {
    "type": "object",
    "required": ["apiVersion", "kind", "name", "uid"],
    "properties": {
        "apiVersion": _STRING, "kind": _STRING, "name": _STRING, "uid": _STRING,
        "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"},
    },
}
MANAGED_FIELDS_ENTRY = {
    "type": "object",
    "properties": {
        "manager": _STRING, "operation": {"type": "string", "enum": ["Apply", "Update"]}, "apiVersion": _STRING,
        "time": _TIME, "fieldsType": {"type": "string", "enum": ["FieldsV1"]}, "subresource": _STRING,
        "fieldsV1": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
OBJECT_META = {  # k8s.io/apimachinery ObjectMeta, as a structural schema
    "type": "object",
    "properties": {
        "name": _STRING, "generateName": _STRING, "namespace": _STRING, "selfLink": _STRING, "uid": _STRING,
        "resourceVersion": _STRING,
        "generation": {"type": "integer", "format": "int64"},
        "creationTimestamp": _TIME, "deletionTimestamp": _TIME,
        "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "nullable": True},
        "labels": _STRING_MAP, "annotations": _STRING_MAP,
        "ownerReferences": {"type": "array", "nullable": True, "items": OWNER_REFERENCE},
        "finalizers": {"type": "array", "nullable": True, "items": _STRING},
        "managedFields": {"type": "array", "nullable": True, "items": MANAGED_FIELDS_ENTRY},
    },
}


@functools.cache
def _validator() -> structural.SchemaValidator:
    return structural.SchemaValidator(OBJECT_META)


def type_errors(metadata: dict[str, Any]) -> list[structural.ValidationError]:
    """Where `metadata` does not fit ObjectMeta's types (empty when it does)."""
    return _validator().errors(metadata)


# Built-in groups whose object names are path segments (upstream's ValidateRBACName), not DNS
# subdomains: `system:node`, `system:controller:replicaset-controller`.
PATH_SEGMENT_GROUPS = frozenset({"rbac.authorization.k8s.io"})


def path_segment_errors(value: str) -> list[str]:
    """Upstream's IsValidPathSegmentName."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def name_causes(value: str, field: str, kind: str, *, path_segment: bool = False) -> list[Cause]:
    if path_segment:
        problems = path_segment_errors(value)
    elif kind == "Namespace":
        problems = names.dns1123_label_errors(value)
    elif kind == "Service":
        problems = names.dns1035_label_errors(value)
    else:
        problems = names.dns1123_subdomain_errors(value)
    return [errors.cause(field, f"Invalid value: {json.dumps(value)}: {problem}") for problem in problems]


def label_causes(labels: dict[str, str], field: str) -> list[Cause]:
    out = []
    for key, value in labels.items():
        for problem in names.qualified_name_errors(key):
            out.append(errors.cause(field, f"Invalid value: {json.dumps(key)}: {problem}"))
        for problem in names.label_value_errors(value):
            out.append(errors.cause(field, f"Invalid value: {json.dumps(value)}: {problem}"))
    return out


def annotation_causes(annotations: dict[str, str], field: str) -> list[Cause]:
    out = []
    total = 0
    for key, value in annotations.items():
        for problem in names.qualified_name_errors(key.lower()):
            out.append(errors.cause(field, f"Invalid value: {json.dumps(key)}: {problem}"))
        total += len(key) + len(value)
    if total > ANNOTATIONS_LIMIT:
        out.append(errors.cause(field, f"Too long: must have at most {ANNOTATIONS_LIMIT} bytes", "FieldValueTooLong"))
    return out


def owner_reference_causes(references: list[dict[str, Any]]) -> list[Cause]:
    """Upstream's ValidateOwnerReferences: every reference names its owner fully; one controller at most."""
    out: list[Cause] = []
    controllers: list[str] = []
    for index, reference in enumerate(references):
        field = f"metadata.ownerReferences[{index}]"
        api_version = reference["apiVersion"]
        version = api_version.rpartition("/")[2]
        if not version or api_version.count("/") > 1:
            out.append(errors.cause(f"{field}.apiVersion", f"Invalid value: {json.dumps(api_version)}: "
                                    "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not reference[key]:
                out.append(errors.cause(f"{field}.{key}", f'Invalid value: "": {key} must not be empty'))
        if reference.get("controller"):
            controllers.append(reference["name"])
    if len(controllers) > 1:
        out.append(errors.cause("metadata.ownerReferences", "Invalid value: []v1.OwnerReference: Only one reference "
                                "can have Controller set to true. Found \"true\" in references for "
                                + " and ".join(controllers)))
    return out


def time_causes(metadata: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    stamps = [(f"metadata.{key}", metadata.get(key)) for key in ("creationTimestamp", "deletionTimestamp")]
    stamps += [(f"metadata.managedFields[{i}].time", entry.get("time"))
               for i, entry in enumerate(metadata.get("managedFields") or [])]
    for field, value in stamps:
        if value is None:
            continue
        try:
            meta.parse_time(value)
        except ValueError:
            out.append(errors.cause(field, f"Invalid value: {json.dumps(value)}: must be an RFC 3339 date-time"))
    return out


def rule_causes(resource: registry.Resource, metadata: dict[str, Any]) -> list[Cause]:
    """Upstream's ObjectMeta rules, for metadata whose types are already right."""
    causes: list[Cause] = []
    name, generate = metadata.get("name"), metadata.get("generateName")
    segment = resource.builtin and resource.group in PATH_SEGMENT_GROUPS
    if name:
        causes += name_causes(name, "metadata.name", resource.kind, path_segment=segment)
    elif generate:
        masked = generate[:-1] + "a" if generate.endswith("-") else generate
        causes += name_causes(masked, "metadata.generateName", resource.kind, path_segment=segment)
    else:
        causes.append(errors.cause("metadata.name", "Required value: name or generateName is required",
                                   "FieldValueRequired"))
    namespace = metadata.get("namespace")
    if namespace and resource.namespaced:
        causes += name_causes(namespace, "metadata.namespace", "Namespace")
    if metadata.get("labels"):
        causes += label_causes(metadata["labels"], "metadata.labels")
    if metadata.get("annotations"):
        causes += annotation_causes(metadata["annotations"], "metadata.annotations")
    for index, finalizer in enumerate(metadata.get("finalizers") or []):
        for problem in names.qualified_name_errors(finalizer):
            causes.append(errors.cause(f"metadata.finalizers[{index}]", f"Invalid value: {json.dumps(finalizer)}: "
                                       f"{problem}"))
    causes += owner_reference_causes(metadata.get("ownerReferences") or [])
    causes += time_causes(metadata)
    return causes
