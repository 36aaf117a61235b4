"""Command-line arguments that several commands read the same way (`get`, `delete`, `describe`).

Its own module so that `describe` can use it without importing `resources`, which registers the
`describe` command (that pair imported each other).
"""

from __future__ import annotations


def split_kind_name(kind: str, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """`deploy/web` is the same as `deploy web`."""
    if "/" in kind:
        kind, _, name = kind.partition("/")
        return kind, (name, *names)
    return kind, names
