"""The import rules of ARCHITECTURE.md, checked by walking every module's imports (late ones too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import imports

PACKAGE = imports.PACKAGE

LAYERS = {
    "core": 0,
    "store": 1,
    "client": 1,
    "etcdserver": 1,
    "pki": 1,
    "api": 2,
    "engine": 2,
    "controllers": 3,
    "scheduler": 3,
    "node": 3,
    "proxy": 3,
    "dns": 3,
    "gitops": 3,
    "charting": 3,
    "cli": 4,
}
# Modules outside the layered subpackages: where they sit.
TOP_LEVEL = {"__init__": 2, "__main__": 5, "testing": 5}
# Packages only some others may import: the store is the API server's alone; running a local
# etcd member (etcdserver) is for `reconcile up` and the test kit, never for a component.
ONLY_IMPORTED_BY = {"store": ("api",), "etcdserver": ("cli", "testing")}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reconcile":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("path", imports.module_paths(), ids=imports.relative)
def test_module_imports_only_lower_layers(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    own_layer = LAYERS.get(own, TOP_LEVEL.get(own))
    assert own_layer is not None, f"{relative}: not placed in a layer; add it to LAYERS"
    for imported in imports.imports(path):
        target = _package_of(imported.name)
        if target is None or target == own or target not in LAYERS:
            continue
        target_layer = LAYERS[target]
        where = f"{relative}:{imported.line} imports {imported.name}"
        assert target_layer < own_layer or target == "core", f"{where} (layer {target_layer} >= {own_layer})"
        if target in ONLY_IMPORTED_BY:
            assert own in ONLY_IMPORTED_BY[target], f"{where}: only {ONLY_IMPORTED_BY[target]} may import {target}"
        if own_layer == 3:
            assert target_layer < 3, f"{where}: layer-3 packages meet through the API"


def test_every_package_is_placed() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_sdk_surface_is_small() -> None:
    """`reconcile/__init__.py` exports the plugin SDK and nothing from the server side."""
    for imported in imports.imports(PACKAGE / "__init__.py"):
        assert _package_of(imported.name) in (None, "engine", "core"), imported


PUBLIC_MODULES = ("reconcile.testing", "reconcile.client")  # besides `reconcile` itself (the SDK)
EXAMPLES = PACKAGE.parent / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.py")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_examples_use_only_the_public_modules(path: Path) -> None:
    """What the tutorial shows a plugin author is what they may rely on: `reconcile` (the SDK),
    `reconcile.testing` and `reconcile.client`; everything else is internal."""
    for imported in imports.imports(path):
        name = imported.name
        if _package_of(name) is None or name == "reconcile":
            continue
        assert any(name == m or name.startswith(m + ".") for m in PUBLIC_MODULES), \
            f"{path.relative_to(EXAMPLES)}:{imported.line} imports {name}, which is internal"
