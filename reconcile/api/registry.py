"""The schema registry: every servable resource, built from CustomResourceDefinition documents.

Built-in kinds and user CRDs go through the same door (`Registry.add_crd`), so the server, discovery,
OpenAPI, validation and tables all read one table of `Resource`s and nothing special-cases built-ins
except `Resource.builtin` (strategic merge patch is allowed only for those).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from reconcile.api import structural
from reconcile.core import errors, paths

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


@dataclass(frozen=True)
class ScaleSpec:
    """Where the scale subresource reads and writes replica counts (CRD `subresources.scale`)."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None


@dataclass(frozen=True)
class Resource:
    """One served group/version/resource; immutable so it can be shared across requests."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    has_status: bool
    scale: ScaleSpec | None
    schema: dict
    printer_columns: tuple[dict, ...]
    builtin: bool
    crd_name: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def __hash__(self) -> int:  # schema is a dict; identity of a Resource is its GVR + owning CRD
        return hash((self.group, self.version, self.plural, self.crd_name))


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version ordering: GA > beta > alpha, higher numbers first, others last by name."""
    match = _VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


# libyaml's loader when PyYAML was built with it: the built-in CRDs are ~1 MB of YAML read at every
# start, and the pure-Python loader takes seconds for them (the safe subset either way).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _builtin_docs() -> tuple[dict, ...]:
    folder = paths.data_dir("crds")
    docs: list[dict] = []
    for path in sorted(folder.glob("*.yaml")):
        with path.open() as handle:
            docs.extend(doc for doc in yaml.load_all(handle, Loader=_LOADER) if doc)
    return tuple(docs)


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@functools.cache
def shipped_schemas() -> frozenset[str]:
    """Every shipped CRD version's schema, canonical JSON. Each is checked against the JSON Schema
    metaschema by tests/api_unit/test_registry.py, so serving them at every start skips that check
    (0.6 s of each start); any other schema, or a shipped one a user changed, is checked."""
    return frozenset(_canonical((v.get("schema") or {}).get("openAPIV3Schema"))
                     for doc in _builtin_docs() for v in (doc.get("spec") or {}).get("versions") or []
                     if isinstance((v.get("schema") or {}).get("openAPIV3Schema"), dict))


def builtin_crds() -> list[dict]:
    """The CRD documents shipped in crds/ (deep copies: callers may mutate them)."""
    import copy

    return [copy.deepcopy(doc) for doc in _builtin_docs()]


@functools.cache
def builtin_names() -> frozenset[str]:
    """Names of the shipped CRDs; only these may use the core group or a dotless group."""
    return frozenset(doc["metadata"]["name"] for doc in _builtin_docs())


def _invalid(name: str, causes: list[dict[str, str]]) -> errors.Invalid:
    return errors.Invalid.for_object("CustomResourceDefinition", name, causes, group="apiextensions.k8s.io")


def validate_crd(crd: dict) -> None:
    """Reject a CRD we could not serve, naming each bad field as apiextensions does."""
    causes: list[dict[str, str]] = []
    add = causes.append
    meta = crd.get("metadata") or {}
    spec = crd.get("spec")
    name = str(meta.get("name") or "")
    if not isinstance(spec, dict):
        raise _invalid(name, [errors.cause("spec", "Required value", "FieldValueRequired")])
    builtin = name in builtin_names()
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural") or ""
    if not isinstance(group, str) or (not group and not builtin):
        add(errors.cause("spec.group", "Required value", "FieldValueRequired"))
    elif group and not _DNS_SUBDOMAIN.match(group):
        add(errors.cause("spec.group", f'Invalid value: "{group}": should be a valid DNS subdomain'))
    elif "." not in group and not builtin:
        add(errors.cause("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'))
    for field in ("plural", "singular", "kind", "listKind"):
        value = names.get(field)
        if field in ("plural", "kind") and not value:
            add(errors.cause(f"spec.names.{field}", "Required value", "FieldValueRequired"))
        elif value and field in ("plural", "singular") and not _DNS_LABEL.match(value):
            add(errors.cause(f"spec.names.{field}", f'Invalid value: "{value}": a lowercase RFC 1123 label must '
                             "consist of lower case alphanumeric characters or '-', and must start and end with an "
                             "alphanumeric character"))
        elif value and field in ("kind", "listKind") and not _KIND.match(value):
            add(errors.cause(f"spec.names.{field}", f'Invalid value: "{value}": may have mixed case, but should '
                             "otherwise match: ^[a-z]([-a-z0-9]*[a-z0-9])?$"))
    for short in names.get("shortNames") or []:
        if not isinstance(short, str) or not _DNS_LABEL.match(short):
            add(errors.cause("spec.names.shortNames", f'Invalid value: "{short}": a lowercase RFC 1123 label'))
    if isinstance(group, str) and plural:
        expected = f"{plural}.{group}" if group else plural
        if name != expected:
            add(errors.cause("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        add(errors.cause("spec.scope", f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
                         "FieldValueNotSupported"))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        add(errors.cause("spec.versions", "Invalid value: null: must have exactly one version marked as storage "
                         "version"))
        versions = []
    seen: set[str] = set()
    storage = 0
    for index, version in enumerate(versions):
        causes.extend(_version_causes(f"spec.versions[{index}]", version, seen))
        storage += 1 if isinstance(version, dict) and version.get("storage") else 0
    if versions and storage != 1:
        add(errors.cause("spec.versions", f"Invalid value: {len(versions)}: must have exactly one version marked "
                         "as storage version"))
    if causes:
        raise _invalid(name, causes)


def _version_causes(path: str, version: Any, seen: set[str]) -> list[dict[str, str]]:
    if not isinstance(version, dict):
        return [errors.cause(path, "Invalid value: must be an object")]
    causes: list[dict[str, str]] = []
    vname = version.get("name")
    if not isinstance(vname, str) or not _DNS_LABEL.match(vname):
        causes.append(errors.cause(f"{path}.name", f'Invalid value: "{vname}": a DNS-1035 label'))
    elif vname in seen:
        causes.append(errors.cause(f"{path}.name", f'Duplicate value: "{vname}"', "FieldValueDuplicate"))
    else:
        seen.add(vname)
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        causes.append(errors.cause(f"{path}.schema.openAPIV3Schema", "Required value: schemas are required",
                                   "FieldValueRequired"))
    else:
        problem = None if _canonical(schema) in shipped_schemas() else structural.schema_problem(schema)
        if problem is not None:
            causes.append(errors.cause(f"{path}.schema.openAPIV3Schema", f"Invalid value: {problem}"))
        if schema.get("type", "object") != "object":
            causes.append(errors.cause(f"{path}.schema.openAPIV3Schema.type",
                                       f'Unsupported value: "{schema.get("type")}": supported values: "object"',
                                       "FieldValueNotSupported"))
    for ci, column in enumerate(version.get("additionalPrinterColumns") or []):
        cpath = f"{path}.additionalPrinterColumns[{ci}]"
        for key in ("name", "jsonPath"):
            if not isinstance(column, dict) or not column.get(key):
                causes.append(errors.cause(f"{cpath}.{key}", "Required value", "FieldValueRequired"))
        if isinstance(column, dict) and column.get("type") not in _COLUMN_TYPES:
            supported = ", ".join(f'"{t}"' for t in _COLUMN_TYPES)
            causes.append(errors.cause(f"{cpath}.type", f'Unsupported value: "{column.get("type")}": supported '
                                       f"values: {supported}", "FieldValueNotSupported"))
    scale = (version.get("subresources") or {}).get("scale")
    if scale is not None:
        for key in ("specReplicasPath", "statusReplicasPath"):
            if not isinstance(scale, dict) or not str(scale.get(key) or "").startswith(".spec" if key[1] == "p"
                                                                                     else ".status"):
                causes.append(errors.cause(f"{path}.subresources.scale.{key}", "Required value",
                                           "FieldValueRequired"))
    return causes


def resources_from_crd(crd: dict) -> list[Resource]:
    """One `Resource` per served version of a (valid) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    name = crd["metadata"]["name"]
    out: list[Resource] = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or {}
        scale = sub.get("scale")
        out.append(
            Resource(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                list_kind=names.get("listKind") or names["kind"] + "List",
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in sub,
                scale=ScaleSpec(scale["specReplicasPath"], scale["statusReplicasPath"],
                                scale.get("labelSelectorPath")) if scale else None,
                schema=version["schema"]["openAPIV3Schema"],
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                builtin=name in builtin_names(),
                crd_name=name,
            )
        )
    return out


class Registry:
    """The live table of servable resources; the server mutates it as CRDs come and go.

    Invariant: `_by_gvr` and `_by_kind` hold exactly the resources of the CRDs in `_crds`.
    """

    def __init__(self) -> None:
        self._crds: dict[str, dict] = {}
        self._owned: dict[str, list[Resource]] = {}
        self._by_gvr: dict[tuple[str, str, str], Resource] = {}
        self._by_kind: dict[tuple[str, str], Resource] = {}
        self.revision = 0  # bumps on every change, so OpenAPI hashes and caches can key on it

    def add_crd(self, crd: dict) -> list[Resource]:
        """Register (or re-register, on update) a CRD's served versions."""
        validate_crd(crd)
        name = crd["metadata"]["name"]
        new = resources_from_crd(crd)
        for res in new:
            other = self._by_gvr.get((res.group, res.version, res.plural))
            if other is not None and other.crd_name != name:
                raise _invalid(name, [errors.cause("spec.names.plural", f'Invalid value: "{res.plural}": '
                                                   f"already served by {other.crd_name}")])
            other = self._by_kind.get((res.api_version, res.kind))
            if other is not None and other.crd_name != name:
                raise _invalid(name, [errors.cause("spec.names.kind", f'Invalid value: "{res.kind}": '
                                                   f"already served by {other.crd_name}")])
        self._drop(name)
        self._crds[name] = crd
        self._owned[name] = new
        for res in new:
            self._by_gvr[(res.group, res.version, res.plural)] = res
            self._by_kind[(res.api_version, res.kind)] = res
        self.revision += 1
        return new

    def remove_crd(self, crd_name: str) -> list[Resource]:
        """Stop serving a CRD; returns what was removed (empty if unknown)."""
        removed = self._drop(crd_name)
        self._crds.pop(crd_name, None)
        if removed:
            self.revision += 1
        return removed

    def _drop(self, crd_name: str) -> list[Resource]:
        removed = self._owned.pop(crd_name, [])
        for res in removed:
            self._by_gvr.pop((res.group, res.version, res.plural), None)
            self._by_kind.pop((res.api_version, res.kind), None)
        return removed

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        return self._by_kind.get((api_version, kind))

    def crd(self, crd_name: str) -> dict | None:
        return self._crds.get(crd_name)

    def resources(self) -> list[Resource]:
        return sorted(self._by_gvr.values(), key=lambda r: (r.group, version_priority(r.version), r.plural))

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, preferred first ("" is the core group)."""
        out: dict[str, set[str]] = {}
        for group, version, _ in self._by_gvr:
            out.setdefault(group, set()).add(version)
        return {group: sorted(versions, key=version_priority) for group, versions in sorted(out.items())}


def with_builtins() -> Registry:
    """A registry holding every shipped CRD (what a fresh server starts from)."""
    registry = Registry()
    for doc in builtin_crds():
        registry.add_crd(doc)
    return registry
