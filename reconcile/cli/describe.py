"""`reconcile describe KIND NAME`: the object as a readable tree, then its Events.

Generic on purpose (like kubectl's describer for custom resources): every kind is a
resource definition, so one printer serves them all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

from reconcile.cli import arguments, common, printing
from reconcile.core import errors

_SKIP_META = ("managedFields",)
# Maps whose keys are data (label keys, file names), shown as written rather than title-cased.
_RAW_KEY_MAPS = frozenset({"labels", "annotations", "matchLabels", "data", "binaryData", "stringData",
                           "nodeSelector", "selector", "capacity", "allocatable", "requests", "limits"})
_WIDTH = 14


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default=None)
@common.connection_options
@common.handle_errors
def describe(kind: str, names: tuple[str, ...], namespace: str | None) -> None:
    """Show the details of KIND NAME, including its Events."""
    session = common.Session()
    kind, names = arguments.split_kind_name(kind, names)
    if not names:
        common.fail("describe needs KIND NAME")
    res = common.resolve(session, kind)
    ns = (namespace or session.namespace) if res.namespaced else None
    for index, name in enumerate(names):
        obj = session.client.get(common.api_version_of(res), res.plural, name, namespace=ns)
        if index:
            click.echo("\n")
        click.echo(render(obj, events=events_for(session, obj)))


def events_for(session: common.Session, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Events whose involvedObject is this object (by name, namespace and uid)."""
    meta = obj.get("metadata") or {}
    selector = [f"involvedObject.name={meta.get('name', '')}"]
    ns = meta.get("namespace")
    if ns:
        selector.append(f"involvedObject.namespace={ns}")
    if meta.get("uid"):
        selector.append(f"involvedObject.uid={meta['uid']}")
    try:
        listing = session.client.list("v1", "events", namespace=ns or None, field_selector=",".join(selector))
    except errors.NotFound:
        return []
    items = listing.get("items") or []
    return sorted(items, key=_event_time)


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def render(obj: dict[str, Any], *, events: list[dict[str, Any]], now: datetime | None = None) -> str:
    """The whole description as text."""
    meta = obj.get("metadata") or {}
    lines = [
        _pair("Name:", meta.get("name", "")),
        *([_pair("Namespace:", meta["namespace"])] if meta.get("namespace") else []),
        *_mapping_lines("Labels:", meta.get("labels")),
        *_mapping_lines("Annotations:", {k: v for k, v in (meta.get("annotations") or {}).items()
                                          if k != "kubectl.kubernetes.io/last-applied-configuration"}),
        _pair("API Version:", obj.get("apiVersion", "")),
        _pair("Kind:", obj.get("kind", "")),
    ]
    rest_meta = {k: v for k, v in meta.items()
                 if k not in ("name", "namespace", "labels", "annotations", *_SKIP_META)}
    if rest_meta:
        lines.append("Metadata:")
        lines.extend(tree_lines(rest_meta, indent=1))
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        lines.extend(tree_lines({key: value}, indent=0))
    lines.extend(event_lines(events, now=now))
    return "\n".join(lines)


def _pair(label: str, value: Any) -> str:
    return f"{label:<{_WIDTH}}{printing.cell_text(value)}"


def _mapping_lines(label: str, mapping: dict[str, Any] | None) -> list[str]:
    if not mapping:
        return [_pair(label, "<none>")]
    items = sorted(mapping.items())
    first, *rest = [f"{k}={v}" for k, v in items]
    return [_pair(label, first), *(" " * _WIDTH + line for line in rest)]


def title(key: str) -> str:
    """`creationTimestamp` -> `Creation Timestamp`, as kubectl's generic describer shows keys."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return words[:1].upper() + words[1:]


def tree_lines(value: Any, *, indent: int, raw_keys: bool = False) -> list[str]:
    """Nested mappings and lists as an indented tree (two spaces per level)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            label = str(key) if raw_keys else title(str(key))
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{label}:")
                lines.extend(tree_lines(item, indent=indent + 1,
                                        raw_keys=isinstance(item, dict) and key in _RAW_KEY_MAPS))
            else:
                lines.append(f"{pad}{label}:  {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub = tree_lines(item, indent=indent + 1)
                lines.append(f"{pad}- " + sub[0].lstrip())
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _scalar(value: Any) -> str:
    if value == {} or value == []:
        return "<none>" if value == {} else "[]"
    return printing.cell_text(value)


def event_lines(events: list[dict[str, Any]], *, now: datetime | None = None) -> list[str]:
    """kubectl's Events section: Type, Reason, Age, From, Message (or `<none>`)."""
    if not events:
        return ["Events:       <none>"]
    now = now or datetime.now(UTC)
    headers = ["Type", "Reason", "Age", "From", "Message"]
    rows = []
    for event in events:
        count = event.get("count") or 1
        age = printing.age(_event_time(event) or None, now=now)
        if count > 1 and event.get("firstTimestamp"):
            age = f"{age} (x{count} over {printing.age(event['firstTimestamp'], now=now)})"
        source = event.get("source") or {}
        rows.append([str(event.get("type") or ""), str(event.get("reason") or ""), age,
                     str(source.get("component") or event.get("reportingComponent") or ""),
                     str(event.get("message") or "").strip()])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out = ["Events:"]
    for row in [headers, ["-" * len(h) for h in headers], *rows]:
        out.append("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return out
