"""The import rules of ARCHITECTURE.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reconcile"

LAYERS = {
    "core": 0,
    "store": 1,
    "client": 1,
    "api": 2,
    "engine": 2,
    "controllers": 3,
    "scheduler": 3,
    "node": 3,
    "proxy": 3,
    "gitops": 3,
    "charting": 3,
    "cli": 4,
}
# Modules outside the layered subpackages: where they sit.
TOP_LEVEL = {"__init__": 2, "__main__": 5, "testing": 5}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reconcile":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    own_layer = LAYERS.get(own, TOP_LEVEL.get(own))
    assert own_layer is not None, f"{relative}: not placed in a layer; add it to LAYERS"
    for imported in _imports(path):
        target = _package_of(imported)
        if target is None or target == own or target not in LAYERS:
            continue
        target_layer = LAYERS[target]
        assert target_layer < own_layer or target == "core", f"{relative} imports {imported} (layer {target_layer} >= {own_layer})"
        if target == "store":
            assert own in ("api",), f"{relative} imports {imported}: only reconcile.api may import the store"
        if own_layer == 3:
            assert target_layer < 3, f"{relative} imports {imported}: layer-3 packages meet through the API"


def test_sdk_surface_is_small() -> None:
    """`reconcile/__init__.py` exports the plugin SDK and nothing from the server side."""
    for imported in _imports(PACKAGE / "__init__.py"):
        assert _package_of(imported) in (None, "engine", "core"), imported
