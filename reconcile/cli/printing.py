"""Output: server Tables rendered with rich, and objects as YAML, JSON or names.

The columns are exactly the server's (a Table from `as=Table`), so the CLI never
needs per-kind printing code; priority-1 columns appear only with `-o wide`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

_console: Console | None = None


def console() -> Console:
    """One rich console; wide and colourless when piped, so output is never wrapped or cut."""
    global _console
    if _console is None:
        tty = sys.stdout.isatty()
        _console = Console(highlight=False, soft_wrap=True, width=None if tty else 100_000)
    return _console


def cell_text(value: Any) -> str:
    """How kubectl prints a cell: `<none>` for null, lowercase booleans, lists joined by commas."""
    if value is None or value == "":
        return "<none>" if value is None else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def table_rows(table: dict[str, Any], *, wide: bool = False, with_namespace: bool = False,
               with_kind: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and rows from a meta.k8s.io/v1 Table, choosing columns by priority."""
    columns = table.get("columnDefinitions") or []
    keep = [i for i, c in enumerate(columns) if wide or int(c.get("priority") or 0) == 0]
    headers = [str(columns[i].get("name", "")).upper() for i in keep]
    rows: list[list[str]] = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        out = [cell_text(cells[i]) if i < len(cells) else "" for i in keep]
        if with_kind and out:
            out[0] = f"{with_kind}/{out[0]}"
        if with_namespace:
            meta = (row.get("object") or {}).get("metadata") or {}
            out.insert(0, meta.get("namespace") or "")
        rows.append(out)
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    return headers, rows


def objects_as_table(objects: list[dict[str, Any]], *, with_namespace: bool = False,
                     now: datetime | None = None) -> dict[str, Any]:
    """A NAME/AGE Table for a server that answered with plain objects (kubectl's fallback)."""
    now = now or datetime.now(UTC)
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        rows.append({"cells": [meta.get("name", ""), age(meta.get("creationTimestamp"), now=now)],
                     "object": {"metadata": meta}})
    return {
        "kind": "Table",
        "columnDefinitions": [{"name": "Name", "type": "string", "priority": 0},
                              {"name": "Age", "type": "string", "priority": 0}],
        "rows": rows,
    }


def age(timestamp: str | None, *, now: datetime | None = None) -> str:
    """kubectl's short duration: 45s, 5m, 3h, 2d (from an RFC 3339 timestamp)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def render_table(headers: list[str], rows: list[list[str]]) -> None:
    """kubectl's look: no borders, upper-case headers, columns three spaces apart."""
    table = Table(box=None, show_edge=False, pad_edge=False,
                  padding=(0, 3, 0, 0), header_style="bold", show_header=True)
    for header in headers:
        table.add_column(Text(header), no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    out = console()
    with out.capture() as captured:
        out.print(table)
    sys.stdout.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")
    sys.stdout.flush()


class StreamPrinter:
    """Rows printed one by one (watch): column widths fixed by the first batch, like tabwriter."""

    def __init__(self, headers: list[str], rows: list[list[str]]) -> None:
        self.widths = [len(h) for h in headers]
        for row in rows:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, row, strict=False)]
        self._line(headers, bold=True)
        for row in rows:
            self.row(row)

    def _line(self, cells: list[str], *, bold: bool = False) -> None:
        parts = [c.ljust(self.widths[i]) if i < len(self.widths) else c for i, c in enumerate(cells)]
        text = "   ".join(parts).rstrip()
        console().print(f"[bold]{_escape(text)}[/bold]" if bold else _escape(text))
        sys.stdout.flush()

    def row(self, cells: list[str]) -> None:
        self._line(cells)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def as_list(items: list[dict[str, Any]], *, resource_version: str = "") -> dict[str, Any]:
    """What `-o yaml|json` prints for several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": resource_version}}


def write(text: str) -> None:
    """Raw text to stdout (no rich markup processing)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
