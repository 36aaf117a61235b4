"""Render one Sync's path of an artifact into objects: plain YAML folders or a chart.

A folder is read recursively (`.yaml`/`.yml`, sorted by path), multi-document. YAML is bounded
(file size, nodes, aliases) so an alias-expansion bomb is refused before it expands, and every
error names the file, the document and the field. Charts are rendered by a `ChartRenderer`
callable the process injects (charting is a sibling layer, never imported from here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 10_000
MAX_NODES = 200_000
MAX_ALIASES = 100

ChartRenderer = Callable[[Path, dict[str, Any], str, str], list[tuple[str, int, dict[str, Any]]]]
"""(chart folder, values, release name, namespace) -> [(template, document index, object)]."""


class RenderError(ValueError):
    """The path did not render; the message names file, document and field."""


@dataclass
class Document:
    source: str  # path relative to the artifact root
    index: int  # 0-based
    obj: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index + 1})"


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_bounds(text: str, source: str) -> None:
    """Count nodes and aliases on the event stream before composing (an alias bomb never expands)."""
    nodes = aliases = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise RenderError(f"{source}: more than {MAX_ALIASES} YAML aliases (refused: alias expansion)")
            elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                nodes += 1
                if nodes > MAX_NODES:
                    raise RenderError(f"{source}: more than {MAX_NODES} YAML nodes")
    except yaml.YAMLError as exc:
        raise RenderError(f"{source}: invalid YAML: {_yaml_message(exc)}") from None


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)


def parse(text: str, source: str) -> list[Document]:
    """The objects of one YAML stream; empty documents are skipped (but counted)."""
    _check_bounds(text, source)
    docs: list[Document] = []
    try:
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise RenderError(f"{source}: invalid YAML: {_yaml_message(exc)}") from None
    for index, obj in enumerate(loaded):
        if obj is None:
            continue
        doc = Document(source, index, obj)
        check_object(doc)
        docs.append(doc)
    return docs


def check_object(doc: Document) -> None:
    obj = doc.obj
    if not isinstance(obj, dict):
        raise RenderError(f"{doc.where}: a document must be a mapping (an object), not {type(obj).__name__}")
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise RenderError(f"{doc.where}: field {field}: Required value")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise RenderError(f"{doc.where}: field metadata.name: Required value")
    if "namespace" in meta and not isinstance(meta["namespace"], str):
        raise RenderError(f"{doc.where}: field metadata.namespace: must be a string")


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def render_folder(root: Path, path: str = "") -> list[Document]:
    """Every object under `root/path`, files sorted; paths must stay inside `root`."""
    base = (root / path.strip("/")) if path.strip("/") not in ("", ".") else root
    if not _inside(root, base):
        raise RenderError(f"spec.path: {path!r} leaves the artifact")
    if not base.is_dir():
        raise RenderError(f"spec.path: {path!r} is not a folder of the artifact")
    files = sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if len(files) > MAX_FILES:
        raise RenderError(f"spec.path: more than {MAX_FILES} manifest files")
    docs: list[Document] = []
    for file in files:
        source = file.relative_to(root).as_posix()
        if not _inside(root, file):
            raise RenderError(f"{source}: leaves the artifact (symlink)")
        if file.stat().st_size > MAX_FILE_BYTES:
            raise RenderError(f"{source}: larger than the limit of {MAX_FILE_BYTES} bytes")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RenderError(f"{source}: not UTF-8 text") from None
        docs.extend(parse(text, source))
    return docs


def deep_merge(base: Any, overlay: Any) -> Any:
    """Overlay's values win; mappings merge key by key."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = deep_merge(base.get(key), value)
        return out
    return overlay


def chart_values(base: Any, layers: list[tuple[str, str]]) -> dict[str, Any]:
    """spec.chart.values with each valuesFrom document (YAML text, `where` for errors) merged over it."""
    values = base if isinstance(base, dict) else {}
    for where, text in layers:
        _check_bounds(text, where)
        try:
            layer = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise RenderError(f"{where}: invalid YAML: {_yaml_message(exc)}") from None
        if layer is None:
            continue
        if not isinstance(layer, dict):
            raise RenderError(f"{where}: values must be a mapping")
        values = deep_merge(values, layer)
    return values


def render_chart(root: Path, chart_path: str, values: dict[str, Any], renderer: ChartRenderer | None,
                 release: str, namespace: str) -> list[Document]:
    if renderer is None:
        raise RenderError("spec.chart: this process has no chart renderer")
    base = root / chart_path.strip("/")
    if not _inside(root, base) or not base.is_dir():
        raise RenderError(f"spec.chart.path: {chart_path!r} is not a folder of the artifact")
    try:
        rendered = renderer(base, values, release, namespace)
    except Exception as exc:  # noqa: BLE001 - the chart's error is the Sync's message
        raise RenderError(f"spec.chart.path {chart_path}: {exc}") from None
    docs = [Document(f"{chart_path.strip('/')}/{template}", index, obj) for template, index, obj in rendered]
    for doc in docs:
        check_object(doc)
    return docs
