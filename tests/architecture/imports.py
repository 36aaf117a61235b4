"""What each module of `reconcile` imports, read from its source (no module is executed).

Every import statement counts, including late ones inside functions: a late import still makes
one module depend on the other, it only hides the dependency from a reader. Relative imports are
resolved against the importing module.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reconcile"
ROOT = PACKAGE.parent


@dataclass(frozen=True)
class Import:
    """One name an import statement brings in."""

    name: str  # dotted: `reconcile.cli.common`, `reconcile.core.errors.NotFound`, `jinja2.sandbox`
    line: int
    late: bool  # inside a function (or class) body rather than at module level

    @property
    def top(self) -> str:
        return self.name.split(".")[0]


def module_paths() -> list[Path]:
    """Every module's file (the shipped data folders hold no code)."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def relative(path: Path) -> str:
    """`store/etcd.py`: how the contracts name a module."""
    return path.relative_to(PACKAGE).as_posix()


@functools.cache
def imports(path: Path) -> tuple[Import, ...]:
    """For `import a.b`: `a.b`. For `from a import b, c`: `a`, `a.b` and `a.c` (b may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, late: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, late) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([child.module] if child.module else [])])
                found.append(Import(base, child.lineno, late))
                found.extend(Import(f"{base}.{alias.name}", child.lineno, late) for alias in child.names)
            visit(child, late or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef))

    visit(tree, False)
    return tuple(found)


def third_party(path: Path) -> list[Import]:
    """The imports of distributions outside the standard library and this project (one per top name and line)."""
    seen: dict[tuple[str, int], Import] = {}
    for imported in imports(path):
        top = imported.top
        if top and top != "reconcile" and top not in sys.stdlib_module_names and top != "__future__":
            seen.setdefault((top, imported.line), imported)
    return list(seen.values())


@functools.cache
def internal_graph() -> dict[str, dict[str, Import]]:
    """module -> {module it imports: the first import statement that does}; only `reconcile` modules.

    `from reconcile.cli import common` is an edge to `reconcile.cli.common` (a module), while
    `from reconcile.core.errors import NotFound` is an edge to `reconcile.core.errors`.
    """
    paths = {module_name(p): p for p in module_paths()}
    graph: dict[str, dict[str, Import]] = {}
    for name, path in paths.items():
        edges: dict[str, Import] = {}
        statements: dict[int, list[Import]] = {}
        for imported in imports(path):
            statements.setdefault(imported.line, []).append(imported)
        for group in statements.values():
            # the most specific name of each statement that is a module (`a.b` over `a`)
            targets = {i.name for i in group if i.name in paths}
            for imported in group:
                if imported.name not in paths:
                    continue
                if any(other != imported.name and other.startswith(imported.name + ".") for other in targets):
                    continue  # `from a import b`: the edge is to a.b, not to the package a
                if imported.name != name:
                    edges.setdefault(imported.name, imported)
        graph[name] = edges
    return graph
