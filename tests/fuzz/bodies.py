"""Documents to request bodies and headers: mostly the JSON or YAML a client sends, sometimes broken
on the wire (duplicate keys, trailing commas, NaN, truncation, other encodings, raw bytes) or sent
with the wrong Content-Type, and with a random Accept.

JSON is written with the standard library, not orjson: it writes integers of any size and lets a
document carry what JSON parsers must refuse, which is the point here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.fuzz import schemas

CONTENT_TYPES = ("application/json", "application/yaml", "application/merge-patch+json",
                 "application/json-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                 "text/plain", "application/vnd.kubernetes.protobuf", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/json; charset=utf-16", "APPLICATION/JSON",
                 "application/cbor", "application/foo+json", "text/yaml", "", "garbage", "application/json;;;",
                 "\u00e9/\u00e9")
ACCEPTS = ("application/json", "application/yaml", "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=Table;v=v1;g=meta.k8s.io, application/json",
           "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io", "application/vnd.kubernetes.protobuf",
           "application/vnd.kubernetes.protobuf, */*", "text/html", "*/*", "application/*", "", "garbage;q=x",
           "application/json;q=0", "image/png")


@dataclass(frozen=True)
class Body:
    """What goes on the wire, and how it was made (shown when a property fails)."""

    content: bytes
    content_type: str | None
    how: str

    def headers(self) -> dict[str, str]:
        return {} if self.content_type is None else {"Content-Type": self.content_type}


def to_json(doc: Any, *, ascii_only: bool = True) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True).encode()


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the pure-Python dumper takes seconds on wide documents


def depth(doc: Any) -> int:
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict | list):
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def shares(doc: Any) -> bool:
    """Whether a map or list appears at two places of `doc` (YAML writes an anchor and an alias)."""
    seen: set[int] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) in seen:
                return True
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)
    return False


def to_yaml(doc: Any) -> bytes:
    """Block-style YAML; a large or deep document as JSON (which is YAML too), since even libyaml's
    dumper spends a second on a list of 60,000 items (and recurses in Python), and the server
    refuses such a body anyway."""
    text = to_json(doc)
    if len(text) > 100_000 or depth(doc) > 60:
        return text
    return yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=True).encode()


def with_duplicate(doc: Any, draw: st.DrawFn) -> bytes:
    """JSON text in which one object repeats a key (orjson would keep the second silently)."""
    holders: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node:
                holders.append(node)
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(doc)
    if not holders:
        return b'{"a": 1, "a": 2}'
    target = draw(st.sampled_from(holders))
    key = draw(st.sampled_from(sorted(target)))
    second = draw(schemas.pick([None, 1, "dup", {}, [], target[key]]))

    def dump(node: Any) -> str:
        if isinstance(node, dict):
            parts = [f"{json.dumps(k)}: {dump(v)}" for k, v in node.items()]
            if node is target:
                parts.append(f"{json.dumps(key)}: {json.dumps(second)}")
            return "{" + ", ".join(parts) + "}"
        if isinstance(node, list):
            return "[" + ", ".join(dump(v) for v in node) + "]"
        return json.dumps(node)

    return dump(doc).encode()


# YAML that JSON cannot say, appended to a document's YAML: aliases, tags, merge keys, several
# documents, non-finite numbers, non-string and complex keys, YAML 1.1 booleans and octals.
YAML_ODDITIES = ("extra: !!binary aGVsbG8=\n", "x: &a [1, 2]\ny: *a\n", "? [a, b]\n: c\n", "---\nother: 1\n",
                 "z: .inf\n", "n: .nan\n", "w: !!python/object/apply:os.system [ls]\n", "<<: {merged: 1}\n",
                 "on: yes\n1: one\nnull: ~\n", "octal: 0777\n", "t: 2001-12-14t21:59:43.10-05:00\n",
                 "big: 123456789012345678901234567890\n", "tab:\t1\n", "dup: 1\ndup: 2\n", "s: !!set {a, b}\n",
                 "anchored: &x {a: 1}\nmerged: {<<: *x, b: 2}\n", "- list item at the top\n", "%YAML 1.2\n---\n")


def _broken(doc: Any, draw: st.DrawFn) -> tuple[bytes, str]:
    text = to_json(doc)
    how = draw(st.sampled_from(["truncated", "trailing-comma", "nan", "bom", "utf16", "comment", "single-quotes",
                                "two-documents", "bad-utf8", "nul", "deep", "yaml", "yaml"]))
    if how == "yaml":
        return to_yaml(doc) + draw(st.sampled_from(YAML_ODDITIES)).encode(), "yaml-oddity"
    if how == "deep":  # deeper than this process could serialize: built as bytes
        levels = draw(st.sampled_from([101, 1000, 10_000]))
        return b'{"a":' * levels + text + b"}" * levels, how
    if how == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))], how
    if how == "trailing-comma":
        return (text[:-1] + b",}") if text.endswith(b"}") else text + b",", how
    if how == "nan":
        return text.replace(b"1", b"NaN", 1) if b"1" in text else b'{"a": NaN}', how
    if how == "bom":
        return b"\xef\xbb\xbf" + text, how
    if how == "utf16":
        return text.decode().encode("utf-16"), how
    if how == "comment":
        return b"// hi\n" + text, how
    if how == "single-quotes":
        return text.replace(b'"', b"'"), how
    if how == "two-documents":
        return text + b"\n" + text, how
    if how == "bad-utf8":
        return text.replace(b'"', b'"\xff\xfe', 1), how
    return text.replace(b'"', b'"\x00', 1), how


def encode(draw: st.DrawFn, doc: Any, *, content_type: str, yaml_ok: bool = True) -> Body:
    """The body for `doc`: mostly as asked, sometimes broken, retyped or replaced by raw bytes."""
    yaml_ok = yaml_ok and content_type in ("application/json", "application/apply-patch+yaml")  # no YAML patches
    roll = draw(st.integers(0, 99))  # small draws (hypothesis' favourites) are the well-formed bodies
    if yaml_ok and shares(doc) and roll < 76 and draw(st.booleans()):
        roll = 80  # a shared part (mutations' alias) means something only in YAML: say it there
    if roll < 76 or (roll < 88 and not yaml_ok):
        content, how = to_json(doc, ascii_only=draw(st.booleans())), "json"
    elif roll < 88:
        content, how = to_yaml(doc), "yaml"
        if content_type == "application/json":
            content_type = draw(st.sampled_from(["application/yaml", "application/x-yaml", "text/yaml", content_type]))
    elif roll < 93:
        content, how = with_duplicate(doc, draw), "duplicate-key"
    elif roll < 97:
        content, how = _broken(doc, draw)
        if how == "yaml-oddity" and yaml_ok:
            content_type = "application/yaml" if content_type == "application/json" else content_type
    else:
        content, how = draw(st.binary(max_size=64)), "bytes"
    sent: str | None = content_type
    if draw(st.integers(0, 19)) == 19:
        sent = draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES)))
        how += f", content-type {sent!r}"
    return Body(content, sent, how)


def accept(draw: st.DrawFn) -> dict[str, str]:
    if draw(st.integers(0, 5)) < 5:
        return {}
    return {"Accept": draw(st.sampled_from(ACCEPTS))}
