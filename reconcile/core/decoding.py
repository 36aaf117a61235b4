"""JSON and YAML to Python data, bounded and decoded as Kubernetes decodes them.

Bounded: a document may nest at most `Limits.max_depth` deep and hold at most `Limits.max_nodes`
nodes (map keys, values and list items, with YAML aliases counted as often as they expand), so no
body under the size cap can make a decoder or a later walk over the object (validation, patches,
encoding) take long. YAML is counted by libyaml in C before anything is built in Python.

As upstream: JSON is JSON only (no NaN, no Infinity, no trailing commas), with an option to refuse
duplicate keys (the API's `fieldValidation=Strict`). YAML maps get string keys as kubectl's YAML to
JSON conversion makes them (`on: x` is `"true": x` in YAML 1.1, `1: y` is `"1": y`), so two keys
can never silently become one Python key; timestamps stay the strings they were written as; an
alias gives each place it is used its own copy (a tree, as JSON would have made it). Numbers
outside int64 and non-finite floats are refused: JSON cannot carry them back out unaltered.

Pure: no I/O, so the API server (which runs large bodies in worker processes) and the CLI share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 100
    max_nodes: int = 100_000


DEFAULT_LIMITS = Limits()


class DecodeError(ValueError):
    """The body is not a document we accept; the message says why (and where, for YAML)."""


class TooLarge(DecodeError):
    """The document is well formed but over a limit."""


# --- JSON ----------------------------------------------------------------------------------------


def load_json(data: bytes | str, *, limits: Limits = DEFAULT_LIMITS, reject_duplicates: bool = False) -> Any:
    """Parse JSON (orjson: strict RFC 8259, valid UTF-8 only), then check the limits.

    `reject_duplicates` parses a second time with the standard library, whose hook sees every
    object's pairs before they collapse into a dict (orjson keeps the last silently).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    check_tree(value, limits)
    if reject_duplicates:
        _reject_duplicate_keys(data)
    return value


def _reject_duplicate_keys(data: bytes | str) -> None:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise DecodeError(f'strict decoding error: duplicate field "{key}"')
                seen.add(key)
        return out

    json.loads(data, object_pairs_hook=pairs)


# --- YAML ----------------------------------------------------------------------------------------


def load_yaml(data: bytes | str, *, limits: Limits = DEFAULT_LIMITS, reject_duplicates: bool = False) -> Any:
    """Parse one YAML document (None when the stream holds none; DecodeError for several)."""
    count_events(data, limits)
    loader = KubeYamlLoader(data, reject_duplicates=reject_duplicates)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise DecodeError(yaml_error_text(exc)) from None
    finally:
        loader.dispose()
    check_tree(value, limits)
    if (b"*" if isinstance(data, bytes) else "*") in data:  # an alias may have shared a subtree
        value = _unshared(value)
    return value


def _unshared(value: Any) -> Any:
    """`value` with no map or list in two places. A YAML alias (`*a`) puts the anchored object itself
    at every place it is used, and the API server changes an object in place after validating it
    (server-set metadata, defaults): with `data: *m` aliasing `metadata: &m`, a ConfigMap's data
    gained an integer `generation` (a 500), a Deployment's template metadata the object's uid.
    Recursion is bounded: `check_tree` has refused anything deeper than the limit (and cycles)."""
    if isinstance(value, dict):
        return {key: _unshared(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_unshared(child) for child in value]
    return value


def count_events(data: bytes | str, limits: Limits) -> int:
    """libyaml's event count of the whole stream, counted in C without building anything: a stream
    with more events than nodes allowed is refused before the slow Python construction starts."""
    parser_class = getattr(getattr(yaml, "_yaml", None), "CParser", None)
    if parser_class is None:
        return 0  # pure-Python PyYAML: the tree check after construction still bounds the result
    parser = parser_class(data)
    try:
        events = int(parser.raw_parse())
    except yaml.YAMLError as exc:
        raise DecodeError(yaml_error_text(exc)) from None
    finally:
        parser.dispose()
    if events > limits.max_nodes + 8:  # stream, document and root events beside the nodes
        raise TooLarge(f"yaml: the document has more than {limits.max_nodes} nodes")
    return events


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """`yaml: line N: problem`, worded like go-yaml's errors (line numbers from 1)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if mark is not None:
            return f"yaml: line {mark.line + 1}: {problem}"
        return f"yaml: {problem}"
    return f"yaml: {' '.join(str(exc).split())}"


class KubeYamlLoader(_Loader):  # type: ignore[misc, valid-type]
    """SafeLoader whose maps have string keys and whose timestamps stay strings (see the module)."""

    def __init__(self, stream: bytes | str, *, reject_duplicates: bool = False) -> None:
        super().__init__(stream)
        self.reject_duplicates = reject_duplicates

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, f"expected a mapping node, but found {node.id}",
                                                    node.start_mark)
        self.flatten_mapping(node)  # YAML merge keys (`<<: *base`)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_text(self.construct_object(key_node, deep=deep), key_node)
            if key in mapping and self.reject_duplicates:
                raise yaml.constructor.ConstructorError(None, None, f'duplicate field "{key}"', key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_map(self, node: yaml.MappingNode) -> Iterator[dict[str, Any]]:
        data: dict[str, Any] = {}
        yield data
        data.update(self.construct_mapping(node))

    def construct_timestamp_text(self, node: yaml.ScalarNode) -> str:
        return str(node.value)


KubeYamlLoader.add_constructor("tag:yaml.org,2002:map", KubeYamlLoader.construct_yaml_map)
KubeYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", KubeYamlLoader.construct_timestamp_text)


def key_text(key: Any, node: yaml.Node) -> str:
    """A YAML map key as the string a JSON object has (Go's formatting of bools, numbers, null)."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        if math.isnan(key) or math.isinf(key):
            raise yaml.constructor.ConstructorError(None, None, "a map key may not be NaN or infinite", node.start_mark)
        return repr(key) if not key.is_integer() else str(int(key))
    raise yaml.constructor.ConstructorError(None, None, "a map key must be a scalar", node.start_mark)


# --- limits --------------------------------------------------------------------------------------


def check_tree(root: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a tree deeper or bigger than `limits`, or holding values JSON cannot carry.

    Iterative and cheap per node; a container's size is counted before its items are looked at,
    so a flat list of a million scalars is refused at once. Shared (aliased) subtrees count each
    time they appear and a cycle runs into the depth limit.
    """
    nodes = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            nodes += 2 * len(value)
            children = value.values()
        elif isinstance(value, list):
            nodes += len(value)
            children = value
        else:
            _check_scalar(value)
            continue
        if nodes > limits.max_nodes:
            raise TooLarge(f"the document has more than {limits.max_nodes} nodes")
        if depth >= limits.max_depth and children:
            raise TooLarge(f"the document is nested more than {limits.max_depth} levels deep")
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
            elif not isinstance(child, str):
                _check_scalar(child)


_CONTAINERS = (dict, list)


def _check_scalar(value: Any) -> None:
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise DecodeError(f"the number {value} is out of the range of a 64-bit integer")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError("NaN and infinite numbers are not valid JSON values")
    elif isinstance(value, bytes):
        raise DecodeError("binary values (!!binary) are not supported; use base64 text")
    else:
        raise DecodeError(f"unsupported value of type {type(value).__name__}")
