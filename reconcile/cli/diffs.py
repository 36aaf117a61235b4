"""Unified diffs of objects, coloured as `kubectl diff` users expect (`chart diff upgrade`, `gitops diff`)."""

from __future__ import annotations

import difflib
from typing import Any

import click
import yaml


def colour(line: str, on: bool) -> str:
    if not on:
        return line
    if line.startswith("+") and not line.startswith("+++"):
        return click.style(line, fg="green")
    if line.startswith("-") and not line.startswith("---"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def echo_object_diff(ref: str, before: dict[str, Any] | None, after: dict[str, Any] | None, *,
                     after_label: str, coloured: bool) -> None:
    """`ref (live)` against `ref (<after_label>)` as YAML; a missing side is empty."""
    old = yaml.safe_dump(before, sort_keys=True).splitlines(keepends=True) if before else []
    new = yaml.safe_dump(after, sort_keys=True).splitlines(keepends=True) if after else []
    for line in difflib.unified_diff(old, new, fromfile=f"{ref} (live)", tofile=f"{ref} ({after_label})"):
        click.echo(colour(line.rstrip("\n"), coloured), color=coloured)  # click strips styles off a pipe
