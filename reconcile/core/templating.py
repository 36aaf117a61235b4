"""The one jinja2 seam: sandboxed template environments for the node agent's container templates,
the SDK's `rc.render`, and charts.

Templates may come from places we do not trust (a chart, a Git repository, an operator's
override), so they always render in jinja2's `SandboxedEnvironment`: no reaching Python internals
through attributes. `strict=True` (the default) makes a missing value an error
(`StrictUndefined`) instead of an empty string in a manifest or a `docker run` argument.

It sits in `core` so that every layer that renders (engine's SDK, node, charting) can share it; so
it does no I/O of its own. Templates reach it only through the loader its caller injects:
`directories(...)` when the caller wants files looked up in folders it chose (read by jinja2 when
the caller renders, never on import or construction; names cannot climb out with `..`), or
`texts(...)` for templates the caller already holds as strings (a chart read from a repository).

jinja2's error classes are named here (`TemplateError` and its kinds), so callers catch them
without importing jinja2; they are jinja2's own classes, which plugins catching them already expect.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import jinja2
import jinja2.sandbox
import yaml

Loader: TypeAlias = jinja2.BaseLoader

TemplateError = jinja2.TemplateError  # the base of every error below
TemplateNotFound = jinja2.TemplateNotFound
TemplateSyntaxError = jinja2.TemplateSyntaxError
UndefinedError = jinja2.UndefinedError  # a value the template uses was not given (strict)
SecurityError = jinja2.sandbox.SecurityError  # the template tried what the sandbox forbids


def directories(paths: Iterable[str | Path]) -> Loader:
    """Templates found by name in `paths`, the first folder that has it wins."""
    return jinja2.FileSystemLoader([str(path) for path in paths])


def texts(templates: Mapping[str, str]) -> Loader:
    """Templates served from strings the caller holds, by name."""
    return jinja2.DictLoader(dict(templates))


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")


def _b64encode(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def _to_json_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# Filters for templates that produce Kubernetes manifests (rc.render, charts).
MANIFEST_FILTERS: Mapping[str, Callable[..., Any]] = {
    "toyaml": _to_yaml,
    "tojson_compact": _to_json_compact,
    "b64encode": _b64encode,
}


class Templates:
    """One sandboxed environment over one loader; jinja2 compiles each template once and caches it."""

    def __init__(self, loader: Loader, *, strict: bool = True, keep_trailing_newline: bool = False,
                 filters: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._env = jinja2.sandbox.SandboxedEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
            autoescape=False,  # the output is JSON or YAML, not HTML
            keep_trailing_newline=keep_trailing_newline,
        )
        self._env.filters.update(filters or {})

    def render(self, name: str, /, **values: Any) -> str:
        """The text of template `name` with `values`; raises `TemplateError` (or a kind of it)."""
        return self._env.get_template(name).render(**values)
