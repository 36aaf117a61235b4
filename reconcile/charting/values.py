"""Values: deep merge (maps merge, lists and scalars replace, `null` deletes), Helm's `--set` path
syntax, and coalescing a chart's values with its dependencies'.

Order, lowest first: a dependency's own defaults < what its parent's values.yaml says for it <
each `-f` file in order < `--set` / `--set-string` / `--set-json` in order (as Helm).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from reconcile.charting import chart as chart_mod


class ValuesError(ValueError):
    """A values file or a --set expression that does not parse."""


def deep_merge(base: Any, overlay: Any) -> Any:
    """`overlay` over `base`: maps merge key by key, `None` removes the key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return _copy(overlay)
    out = {k: _copy(v) for k, v in base.items()}
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _strip_nulls(value)
    return out


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def read_file(text: str, where: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValuesError(f"{where}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValuesError(f"{where}: values must be a mapping")
    return loaded


# --- --set ---------------------------------------------------------------------------------------

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")
MAX_LIST_INDEX = 65536  # Helm's bound: `--set a[999999999]=x` must not allocate a huge list


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` outside `{...}` and not escaped with a backslash (escapes kept)."""
    parts, current, depth, i = [], [], 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        if c == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _typed(raw: str) -> Any:
    """--set's guesses: null, true/false, integers; everything else is a string (as Helm's strvals)."""
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", raw):
        return int(raw)
    return _unescape(raw)


def parse_set(expression: str, *, kind: str = "set") -> dict[str, Any]:
    """`a.b[0].c=1,d=x\\,y,e={p,q},f\\.g=2` into a values tree; kind is set, set-string or set-json."""
    out: dict[str, Any] = {}
    assignments = [expression] if kind == "set-json" else _split(expression, ",")
    for assignment in assignments:
        if not assignment:
            continue
        key, eq, raw = _partition_unescaped(assignment)
        if not eq or not key:
            raise ValuesError(f'--{kind} "{expression}": key "{assignment}" has no value (want KEY=VALUE)')
        if kind == "set-json":
            try:
                value: Any = json.loads(raw)
            except ValueError as exc:
                raise ValuesError(f'--set-json "{expression}": {exc}') from None
        elif raw.startswith("{") and raw.endswith("}"):
            items = [i for i in _split(raw[1:-1], ",") if i != ""]
            value = [_unescape(i) if kind == "set-string" else _typed(i) for i in items]
        else:
            value = _unescape(raw) if kind == "set-string" else _typed(raw)
        _assign(out, _path(key, expression, kind), value, expression, kind)
    return out


def _partition_unescaped(text: str) -> tuple[str, str, str]:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "=":
            return text[:i], "=", text[i + 1:]
        i += 1
    return text, "", ""


def _path(key: str, expression: str, kind: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in _split(key, "."):
        indexes: list[int] = []
        while (m := _INDEX.match(part)) is not None:
            index = int(m.group(2))
            if index > MAX_LIST_INDEX:
                raise ValuesError(f'--{kind} "{expression}": index {index} is larger than the maximum {MAX_LIST_INDEX}')
            indexes.insert(0, index)
            part = m.group(1)
        if not part:
            raise ValuesError(f'--{kind} "{expression}": empty key in "{key}"')
        steps.append(_unescape(part))
        steps.extend(indexes)
    return steps


def _assign(tree: Any, path: list[str | int], value: Any, expression: str, kind: str) -> None:
    node = tree
    for step, following in zip(path, path[1:], strict=False):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(None)
            if not isinstance(node[step], type(empty)):
                node[step] = empty
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise ValuesError(f'--{kind} "{expression}": {step} is not a map')
            if not isinstance(node.get(step), type(empty)):
                node[step] = empty
            node = node[step]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def user_values(files: list[tuple[str, str]], sets: list[tuple[str, str]]) -> dict[str, Any]:
    """The user's overrides: each (-f name, text) in order, then each (kind, --set expression) in order.
    A null is kept here (it deletes the chart's default when coalesced)."""
    out: dict[str, Any] = {}
    for where, text in files:
        out = overlay(out, read_file(text, where))
    for kind, expression in sets:
        out = overlay(out, parse_set(expression, kind=kind))
    return out


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Like deep_merge, but nulls stay in the result so they still delete chart defaults later."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = overlay(out[key], value)
        else:
            out[key] = _copy(value)
    return out


def lookup_path(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def coalesce(chart: chart_mod.Chart, user: dict[str, Any], *, parent_global: dict[str, Any] | None = None
             ) -> tuple[dict[str, Any], list[tuple[chart_mod.Dependency, chart_mod.Chart, dict[str, Any]]]]:
    """The chart's effective values and, for each enabled dependency, (dependency, chart, its values)
    (nested dependencies are coalesced when that chart renders, from the values given here)."""
    merged = deep_merge(chart.values, user)
    if parent_global:
        merged["global"] = deep_merge(merged.get("global") or {}, parent_global)
    enabled = []
    for dep, sub in chart.dependencies:
        if dep.condition:
            switch = None
            for condition in dep.condition.split(","):
                switch = lookup_path(merged, condition.strip())
                if isinstance(switch, bool):
                    break
            if switch is False:
                continue
        given = merged.get(dep.key)
        sub_user = given if isinstance(given, dict) else {}
        sub_values, _ = coalesce(sub, sub_user, parent_global=merged.get("global") or None)
        merged[dep.key] = sub_values
        enabled.append((dep, sub, sub_values))
    return merged, enabled
