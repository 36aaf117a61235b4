"""Render a chart and its enabled dependencies into documents: the sandboxed, bounded templates of
`core.templating` with the objects Helm users expect (values, release, chart, capabilities, files,
template) and its filters (functions.py), `lookup` and `tpl`.

The output is split into parsed documents, each remembering its template and position, so any
later failure (the server's dry run, a conflict) names where the object came from. Nothing here
talks to a server: `lookup` is a callable the caller passes (empty for `chart template`).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconcile.charting import chart as chart_mod
from reconcile.charting import functions, schema, values, versions
from reconcile.core import templating

HOOK = "charts.reconcile.dev/hook"
NOTES = "NOTES.txt.j2"
DEFAULT_KUBE_VERSION = "v1.32.0"
MAX_RENDER_SECONDS = 10.0
MAX_OUTPUT_CHARS = 10_000_000

Lookup = Callable[[str, str, str, str], Any]


class RenderError(ValueError):
    """The chart did not render; the message names the template file and line (or document)."""


@dataclass(frozen=True)
class ReleaseInfo:
    name: str
    namespace: str
    revision: int = 1
    is_install: bool = True
    service: str = "reconcile"

    @property
    def is_upgrade(self) -> bool:
        return not self.is_install


@dataclass(frozen=True)
class Capabilities:
    api_versions: tuple[str, ...] = ("v1", "apps/v1")
    kube_version: str = DEFAULT_KUBE_VERSION

    def as_object(self) -> dict[str, Any]:
        parsed = versions.parse(self.kube_version)
        return {"api_versions": list(self.api_versions),
                "kube_version": {"version": self.kube_version, "major": str(parsed.major), "minor": str(parsed.minor)}}


@dataclass
class Document:
    """One rendered object and where it came from."""

    template: str  # e.g. guestbook/charts/kvstore/templates/statefulset.yaml.j2
    index: int  # 0-based document number within that template's output
    obj: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.template} (document {self.index + 1})"

    @property
    def hook_events(self) -> list[str]:
        raw = ((self.obj.get("metadata") or {}).get("annotations") or {}).get(HOOK, "")
        return [e.strip() for e in str(raw).split(",") if e.strip()]


@dataclass
class Rendered:
    documents: list[Document] = field(default_factory=list)  # what the release applies
    hooks: list[Document] = field(default_factory=list)
    crds: list[Document] = field(default_factory=list)  # crds/ of the chart and its dependencies
    notes: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # the coalesced values the top chart saw

    def manifest(self) -> str:
        """The documents as one YAML stream with `# Source:` comments (what `get manifest` shows)."""
        return to_manifest(self.documents)


# libyaml's parser and emitter when PyYAML was built with it (5-10x faster than the pure-Python ones)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _ManifestDumper(_Dumper):  # type: ignore[misc, valid-type]
    """Multi-line strings (scripts, config files) as `|` blocks, so a manifest reads like its source."""


def _str(dumper: Any, value: str) -> yaml.Node:
    if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_str(value)


_ManifestDumper.add_representer(str, _str)


def to_manifest(docs: list[Document]) -> str:
    parts = []
    for doc in docs:
        body = yaml.dump(doc.obj, Dumper=_ManifestDumper, sort_keys=False, allow_unicode=True)
        parts.append(f"---\n# Source: {doc.template}\n" + body)
    return "".join(parts)


def from_manifest(text: str) -> list[Document]:
    """The inverse of `to_manifest` (for the previous release's objects)."""
    docs: list[Document] = []
    counts: dict[str, int] = {}
    for chunk in text.split("---\n"):
        if not chunk.strip():
            continue
        source = "manifest"
        first, _, rest = chunk.partition("\n")
        if first.startswith("# Source: "):
            source = first.removeprefix("# Source: ").strip()
        obj = yaml.load(chunk, Loader=_Loader)
        if isinstance(obj, dict):
            index = counts.get(source, 0)
            counts[source] = index + 1
            docs.append(Document(source, index, obj))
    return docs


class _Files:
    """`files`: the chart's other files, read-only; a path that climbs out of the chart finds nothing."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def _key(self, name: str) -> str:
        path = posixpath.normpath(str(name))
        if path.startswith(("/", "..")) or path == ".":
            raise templating.SecurityError(f"files: {name!r} is outside the chart")
        return path

    def get(self, name: str) -> str:
        data = self._files.get(self._key(name))
        return "" if data is None else data.decode("utf-8", errors="replace")

    def get_bytes(self, name: str) -> bytes:
        return self._files.get(self._key(name), b"")

    def glob(self, pattern: str) -> dict[str, str]:
        return {p: d.decode("utf-8", errors="replace") for p, d in sorted(self._files.items())
                if fnmatch.fnmatchcase(p, pattern)}

    def lines(self, name: str) -> list[str]:
        return self.get(name).splitlines()

    def names(self) -> list[str]:
        return sorted(self._files)


def render(chart: chart_mod.Chart, user_values: dict[str, Any], release: ReleaseInfo, *,
           capabilities: Capabilities | None = None, lookup: Lookup | None = None,
           max_seconds: float = MAX_RENDER_SECONDS, max_chars: int = MAX_OUTPUT_CHARS) -> Rendered:
    """All documents of `chart` (and enabled dependencies) for `release`; raises RenderError,
    schema.SchemaError or values.ValuesError."""
    capabilities = capabilities or Capabilities()
    if chart.type == "library":
        raise RenderError(f"{chart.name}: library charts are not installable (type: library)")
    _check_kube_version(chart, capabilities)
    merged, _ = values.coalesce(chart, user_values)
    out = Rendered(values=merged)
    budget = _Budget(max_chars)
    _render_chart(chart, merged, release, capabilities, lookup, chart.name, out, budget, max_seconds, top=True)
    return out


class _Budget:
    def __init__(self, max_chars: int) -> None:
        self.left = max_chars
        self.max_chars = max_chars

    def spend(self, text: str, where: str) -> None:
        self.left -= len(text)
        if self.left < 0:
            raise RenderError(f"{where}: the chart's output is larger than the limit of {self.max_chars} characters")


def _check_kube_version(chart: chart_mod.Chart, capabilities: Capabilities) -> None:
    if chart.kube_version and not versions.satisfies(capabilities.kube_version, chart.kube_version):
        raise RenderError(f"chart requires kubeVersion: {chart.kube_version} which is incompatible with "
                          f"Kubernetes {capabilities.kube_version}")


def _render_chart(chart: chart_mod.Chart, merged: dict[str, Any], release: ReleaseInfo, capabilities: Capabilities,
                  lookup: Lookup | None, path: str, out: Rendered, budget: _Budget, max_seconds: float,
                  *, top: bool) -> None:
    if chart.schema is not None:
        schema.validate(chart.schema, merged, path)
    for source, text in chart.crds().items():
        for index, obj in _parse(text, f"{path}/{source}"):
            out.crds.append(Document(f"{path}/{source}", index, obj))
    _, enabled = values.coalesce(chart, {k: v for k, v in merged.items()}) if chart.dependencies else ({}, [])
    for dep, sub, sub_values in enabled:
        _check_kube_version(sub, capabilities)
        if sub.type == "library":
            continue
        _render_chart(sub, sub_values, release, capabilities, lookup, f"{path}/charts/{dep.name}", out, budget,
                      max_seconds, top=False)
    sources = chart.templates()
    names = sorted(n for n in sources if not posixpath.basename(n).startswith("_") and n != NOTES)
    env_holder: dict[str, templating.BoundedTemplates] = {}

    def tpl(text: Any, scope: Any = None) -> str:
        context = dict(base) if scope is None else {**base, "values": scope}
        return env_holder["env"].render_string(str(text), **context)

    def do_lookup(api_version: str, kind: str, namespace: str = "", name: str = "") -> Any:
        return {} if lookup is None else lookup(api_version, kind, namespace, name)

    env = templating.BoundedTemplates(
        templating.named(sources), max_seconds=max_seconds, max_chars=budget.max_chars,
        filters=functions.FILTERS, globals={"lookup": do_lookup, "tpl": tpl})
    env_holder["env"] = env
    base: dict[str, Any] = {
        "values": merged,
        "release": {"name": release.name, "namespace": release.namespace, "revision": release.revision,
                    "is_install": release.is_install, "is_upgrade": release.is_upgrade, "service": release.service},
        "chart": dict(chart.metadata),
        "capabilities": capabilities.as_object(),
        "files": _Files(chart.other_files()),
    }
    for name in names:
        where = f"{path}/templates/{name}"
        text = _render_one(env, name, where, sources, {**base, "template": {"name": where,
                                                                               "base_path": f"{path}/templates"}})
        budget.spend(text, where)
        for index, obj in _parse(text, where):
            doc = Document(where, index, obj)
            _check_object(doc)
            (out.hooks if doc.hook_events else out.documents).append(doc)
    if top and NOTES in sources:
        where = f"{path}/templates/{NOTES}"
        out.notes = _render_one(env, NOTES, where, sources, {**base, "template": {"name": where}})


def _render_one(env: templating.BoundedTemplates, name: str, where: str, sources: dict[str, str],
                context: dict[str, Any]) -> str:
    try:
        return env.render(name, **context)
    except templating.TemplateError as exc:
        found = templating.location(exc, sources)
        base = where.rsplit("/templates/", 1)[0] + "/templates/"
        place = f"{base}{found[0]}:{found[1]}" if found else where
        kind = "" if isinstance(exc, functions.RequiredValueError) else f"{type(exc).__name__}: "
        raise RenderError(f"{place}: {kind}{exc.message or exc}") from None


def _parse(text: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    """(position in the YAML stream, object) of each non-empty document."""
    try:
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise RenderError(f"{where}: the rendered output is not YAML: {exc}") from None
    out = []
    for index, obj in enumerate(loaded):
        if obj is None:
            continue
        if not isinstance(obj, dict):
            raise RenderError(f"{where} (document {index + 1}): a document must be a mapping (an object)")
        out.append((index, obj))
    return out


def _check_object(doc: Document) -> None:
    obj = doc.obj
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise RenderError(f"{doc.where}: {key} is required")
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
    if not isinstance(name, str) or not name:
        raise RenderError(f"{doc.where}: metadata.name is required")
