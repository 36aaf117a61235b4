"""No import cycles between modules of `reconcile` (import-linter's acyclic contract, as kopf keeps).

Two modules that import each other are one module in two files: neither can be read, tested or
moved alone, and which one finishes importing first depends on who imported first. Late imports
inside functions count, since they only hide such a pair.
"""

from __future__ import annotations

from tests.architecture import imports


def _cycles(graph: dict[str, dict[str, imports.Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, {}):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return found


def _describe(component: list[str], graph: dict[str, dict[str, imports.Import]]) -> str:
    members = set(component)
    lines = [" <-> ".join(component)]
    for module in component:
        for target, statement in sorted(graph[module].items()):
            if target in members:
                where = "inside a function" if statement.late else "at module level"
                lines.append(f"    {module} imports {target} (line {statement.line}, {where})")
    return "\n".join(lines)


def test_the_detector_finds_a_cycle() -> None:
    """The check itself can fail: a made-up graph with one cycle and one chain."""
    edge = imports.Import("x", 1, False)
    graph = {"a": {"b": edge}, "b": {"c": edge}, "c": {"a": edge}, "d": {"a": edge}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph = imports.internal_graph()
    assert len(graph) > 100, "the import graph looks empty: is the package path right?"
    cycles = _cycles(graph)
    assert not cycles, "import cycles between modules (break each by moving what both need into a module " \
        "of its own):\n" + "\n".join(_describe(c, graph) for c in cycles)
