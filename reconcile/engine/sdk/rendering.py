"""`rc.render(template, **values)`: jinja2 templates (YAML, possibly multi-document) into object dicts.

Sandboxed with StrictUndefined (`reconcile.core.templating`, the environment the node agent and
charts use too): a template cannot reach Python internals, and a missing value is an error instead
of an empty string in a manifest. Errors are jinja2's (`templating.TemplateError` and its kinds).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import yaml

from reconcile.core import paths, templating
from reconcile.engine.sdk import registry as registry_mod


@functools.lru_cache(maxsize=32)
def environment(search_path: tuple[str, ...]) -> templating.Templates:
    """The templates of one search path (cached: each template is compiled once per path)."""
    return templating.Templates(templating.directories(search_path), strict=True, keep_trailing_newline=True,
                                filters=templating.MANIFEST_FILTERS)


def _caller_dir() -> Path | None:
    """The folder of the plugin module that called render (first frame outside this package)."""
    package = Path(__file__).resolve().parents[2]
    frame = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_file() and not path.resolve().is_relative_to(package):
            return path.resolve().parent
        frame = frame.f_back
    return None


def search_path(*, directory: str | Path | None = None) -> tuple[str, ...]:
    dirs: list[Path] = []
    if directory is not None:
        dirs.append(Path(directory))
    caller = _caller_dir()
    if caller is not None:
        dirs.extend([caller, caller / "templates"])
    for reg in (registry_mod.current(), registry_mod.default()):
        dirs.extend(reg.template_dirs)
    dirs.append(paths.data_dir("templates"))
    seen: dict[str, None] = {}
    for d in dirs:
        if d.is_dir():
            seen.setdefault(str(d.resolve()), None)
    return tuple(seen)


def render_text(template_name: str, /, *, directory: str | Path | None = None, **values: Any) -> str:
    return environment(search_path(directory=directory)).render(template_name, **values)


def render(template_name: str, /, *, directory: str | Path | None = None, **values: Any) -> list[dict[str, Any]]:
    """Render `template_name` and parse it as YAML documents; empty documents are dropped."""
    text = environment(search_path(directory=directory)).render(template_name, **values)
    return [doc for doc in yaml.safe_load_all(text) if doc]
