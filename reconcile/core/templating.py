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
import time
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


# --- bounded rendering (charts: templates from authors we do not trust) -------------------------


class LimitExceeded(TemplateError):
    """A template ran past its time budget or produced more output than allowed."""


def named(templates: Mapping[str, str]) -> Loader:
    """Like `texts`, but each template's code carries its name as its file name, so a runtime error's
    traceback (and `location`) names the template and line instead of `<template>`."""
    sources = dict(templates)

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        if name not in sources:
            return None
        return sources[name], name, lambda: True

    return jinja2.FunctionLoader(load)


def is_undefined(value: Any) -> bool:
    """A value the template referenced but nobody gave (for filters such as `required`)."""
    return isinstance(value, jinja2.Undefined)


def location(exc: BaseException, names: Iterable[str]) -> tuple[str, int] | None:
    """(template name, line) where `exc` was raised inside one of `names` (the innermost such frame)."""
    if isinstance(exc, TemplateSyntaxError) and exc.name:
        return exc.name, exc.lineno
    known = set(names)
    found: tuple[str, int] | None = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in known:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


class _BoundedEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """The sandbox plus a deadline and a size bound, checked where a template spends time or memory:
    every attribute and item access, call, `*`/`**`, loop step over `range`, and output chunk."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *, max_seconds: float, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self.deadline = float("inf")
        self.globals["range"] = self._range

    def start(self) -> None:
        self.deadline = time.monotonic() + self.max_seconds

    def check(self, value: Any = None) -> Any:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {self.max_seconds:g}s (a loop that never ends?)")
        if isinstance(value, str | bytes | list | tuple | dict) and len(value) > self.max_chars:
            raise LimitExceeded(f"a value of {len(value)} items is larger than the limit of {self.max_chars}")
        return value

    def _range(self, *args: int) -> Iterable[int]:
        numbers = jinja2.sandbox.safe_range(*args)
        for n in numbers:
            self.check()
            yield n

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.check(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self.check(super().getitem(obj, argument))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - jinja2's signature
        __self.check()
        return __self.check(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.check()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > self.max_chars:
                    raise LimitExceeded(f"repeating {len(seq)} items {times} times is larger than the limit "
                                        f"of {self.max_chars}")
        if operator == "**" and isinstance(right, int) and isinstance(left, int) and abs(right) > 1000:
            raise LimitExceeded(f"an exponent of {right} is larger than the limit of 1000")
        return self.check(super().call_binop(context, operator, left, right))


class BoundedTemplates:
    """Sandboxed, strict templates whose every render stops after `max_seconds` or `max_chars` of
    output (`LimitExceeded`); `globals` are the objects each template sees besides its values."""

    def __init__(self, loader: Loader, *, max_seconds: float = 10.0, max_chars: int = 10_000_000,
                 filters: Mapping[str, Callable[..., Any]] | None = None,
                 globals: Mapping[str, Any] | None = None) -> None:
        self._env = _BoundedEnvironment(
            max_seconds=max_seconds, max_chars=max_chars, loader=loader, undefined=jinja2.StrictUndefined,
            autoescape=False, keep_trailing_newline=True)
        self._env.filters.update(filters or {})
        self._env.globals.update(globals or {})
        self._depth = 0

    def render(self, name: str, /, **values: Any) -> str:
        return self._generate(self._env.get_template(name), values)

    def render_string(self, source: str, /, **values: Any) -> str:
        """`tpl`: a value rendered as a template, in the same sandbox and under the same budget."""
        return self._generate(self._env.from_string(source), values)

    def _generate(self, template: Any, values: Mapping[str, Any]) -> str:
        if self._depth == 0:
            self._env.start()
        self._depth += 1
        try:
            chunks: list[str] = []
            size = 0
            for chunk in template.generate(**values):
                size += len(chunk)
                if size > self._env.max_chars:
                    raise LimitExceeded(f"the output is larger than the limit of {self._env.max_chars} characters")
                self._env.check()
                chunks.append(chunk)
            return "".join(chunks)
        finally:
            self._depth -= 1
