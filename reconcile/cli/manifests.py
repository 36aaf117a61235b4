"""Read resource files (YAML streams, JSON, `kind: List`) and remember where each object starts.

Every document is split out and parsed on its own, so one broken document is reported with
its file and line while the others still load.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

EXTENSIONS = (".yaml", ".yml", ".json")
_SEPARATOR = re.compile(r"^---(?:[ \t]+(.*))?$")


class ManifestPathError(ValueError):
    """A path given with -f does not exist or holds no resource files."""


@dataclass(frozen=True)
class Document:
    """One object from a file, or the reason it could not be read."""

    source: str  # file path as given, or "STDIN"
    line: int  # 1-based line where the object starts
    obj: dict[str, Any] | None = None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def expand_paths(paths: list[str], *, recursive: bool = False) -> list[str]:
    """Files named by -f: a file as is, a folder's .yaml/.yml/.json files (sorted), `-` for stdin."""
    out: list[str] = []
    for raw in paths:
        if raw == "-":
            out.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in EXTENSIONS)
            out.extend(str(p) for p in files)
        elif path.is_file():
            out.append(raw)
        else:
            raise ManifestPathError(f'the path "{raw}" does not exist')
    return out


def load(paths: list[str], *, recursive: bool = False, stdin: TextIO | None = None) -> list[Document]:
    """All documents of all files, in order."""
    docs: list[Document] = []
    for name in expand_paths(paths, recursive=recursive):
        if name == "-":
            docs.extend(parse_text((stdin or sys.stdin).read(), source="STDIN"))
        else:
            docs.extend(parse_text(Path(name).read_text(), source=name))
    return docs


def parse_text(text: str, *, source: str) -> list[Document]:
    """Split a YAML stream (or one JSON document) into objects with their start lines."""
    stripped = text.lstrip()
    if source.lower().endswith(".json") or stripped.startswith(("{", "[")):
        json_docs = _parse_json(text, source)
        if json_docs is not None or source.lower().endswith(".json"):
            return json_docs or []
    docs: list[Document] = []
    for start, chunk in split_documents(text):
        docs.extend(_parse_yaml_document(chunk, start, source))
    return docs


def split_documents(text: str) -> list[tuple[int, str]]:
    """(first line number, text) per `---`-separated document; line numbers stay file-absolute."""
    chunks: list[tuple[int, list[str]]] = [(1, [])]
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SEPARATOR.match(line.rstrip())
        if match:
            rest = match.group(1)
            chunks.append((number, [rest]) if rest and not rest.startswith("#") else (number + 1, []))
        else:
            chunks[-1][1].append(line)
    return [(start, "\n".join(lines)) for start, lines in chunks if _has_content(lines)]


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") and line.strip() != "..." for line in lines)


def _first_content_line(start: int, text: str) -> int:
    for offset, line in enumerate(text.splitlines()):
        if line.strip() and not line.lstrip().startswith("#"):
            return start + offset
    return start


def _parse_yaml_document(text: str, start: int, source: str) -> list[Document]:
    line = _first_content_line(start, text)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = start + mark.line if mark is not None else line
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return [Document(source, where, error=f"error parsing YAML: {problem}")]
    except yaml.YAMLError as exc:
        return [Document(source, line, error=f"error parsing YAML: {exc}")]
    finally:
        loader.dispose()
    if data is None:
        return []
    item_lines = _list_item_lines(node, start)
    return _objects(data, line, source, item_lines)


def _list_item_lines(node: yaml.Node | None, start: int) -> list[int]:
    """Start lines of the entries under a top-level `items:` (for `kind: List`)."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "items" and isinstance(value, yaml.SequenceNode):
            return [start + item.start_mark.line for item in value.value]
    return []


def _parse_json(text: str, source: str) -> list[Document] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if not source.lower().endswith(".json"):
            return None  # maybe YAML flow style; let the YAML parser try
        return [Document(source, exc.lineno, error=f"error parsing JSON: {exc.msg}")]
    return _objects(data, _first_content_line(1, text), source, [])


def _objects(data: Any, line: int, source: str, item_lines: list[int]) -> list[Document]:
    """Check the shape and expand `kind: List` (and a bare JSON array) into its items."""
    if isinstance(data, list):
        return [d for item in data for d in _objects(item, line, source, [])]
    if not isinstance(data, dict):
        return [Document(source, line, error=f"expected an object, got {type(data).__name__}")]
    kind = data.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list)):
        items = data.get("items") or []
        out: list[Document] = []
        for index, item in enumerate(items):
            item_line = item_lines[index] if index < len(item_lines) else line
            out.extend(_objects(item, item_line, source, []))
        return out
    missing = [f for f in ("apiVersion", "kind") if not isinstance(data.get(f), str) or not data.get(f)]
    if missing:
        return [Document(source, line, error=f"Object '{missing[0]}' is missing in the document")]
    return [Document(source, line, obj=data)]


def apply_order(docs: list[Document]) -> list[Document]:
    """Namespaces first, then CRDs, then the rest in file order: later objects may need them."""

    def rank(doc: Document) -> int:
        if doc.obj is None:
            return 2
        if doc.obj.get("kind") == "Namespace" and doc.obj.get("apiVersion") == "v1":
            return 0
        if doc.obj.get("kind") == "CustomResourceDefinition":
            return 1
        return 2

    return sorted(docs, key=rank)
