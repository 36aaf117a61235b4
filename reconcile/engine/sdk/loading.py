"""Finding a plugin: a file (`handlers.py`), a module (`pkg.handlers`), or an installed entry point
in the group `reconcile.operators`; its decorators fill a fresh registry.

A module is executed afresh (not taken from `sys.modules`), so loading the same plugin twice
(two operators in one test session) gives two complete registries.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

from reconcile.engine.sdk import registry as registry_mod

ENTRY_POINT_GROUP = "reconcile.operators"


class PluginNotFound(LookupError):
    """Neither a file, nor an importable module, nor an entry point of that name."""


def _exec_file(path: Path) -> ModuleType:
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the plugin can import its sibling modules
    name = f"reconcile_plugin_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginNotFound(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _exec_module(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise PluginNotFound(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load(target: str | Path) -> registry_mod.Registry:
    """Import the plugin into a new registry and return it."""
    reg = registry_mod.Registry()
    with registry_mod.collecting(reg):
        path = Path(target)
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise PluginNotFound(f"no such file: {path}")
            module = _exec_file(path)
        else:
            target = str(target)
            eps = entry_points()
            if target in eps:
                module_name, _, attr = eps[target].value.partition(":")
                module = _exec_module(module_name.strip())
                found = getattr(module, attr.strip(), None) if attr else None
                if isinstance(found, registry_mod.Registry):
                    reg = found
            else:
                try:
                    module = _exec_module(target)
                except (ModuleNotFoundError, PluginNotFound):
                    raise PluginNotFound(
                        f"{target!r} is not a file, an importable module, or an entry point in {ENTRY_POINT_GROUP}"
                    ) from None
    if module.__file__:
        folder = Path(module.__file__).resolve().parent
        reg.template_dirs.extend([folder, folder / "templates"])
    return reg
