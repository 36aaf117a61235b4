"""Small helpers over object metadata shared by the API, controllers and the CLI."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_last_stamp: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps: `YYYY-MM-DDTHH:MM:SSZ`, second precision.

    The text changes once a second, and every write of the API server asks for it: format once per second.
    """
    global _last_stamp
    second = int(time.time())
    if second != _last_stamp[0]:
        _last_stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_stamp[1]


def format_time(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Any RFC 3339 timestamp (`Z`, `+00:00`, fractions up to nanoseconds) as an aware datetime."""
    value = text.strip().upper().replace(" ", "T", 1)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    date_part, _, rest = value.partition("T")
    if "." in rest:
        # Python keeps microseconds only; Go writes up to nanoseconds.
        clock, _, tail = rest.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        rest = f"{clock}.{tail[:digits][:6].ljust(6, '0')}{tail[digits:]}"
        value = f"{date_part}T{rest}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def epoch_seconds(value: Any) -> float | None:
    """A timestamp field as seconds since the epoch; None when it is missing or not RFC 3339
    (objects come from users and other writers, so a field may hold anything)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration: `45s`, `5m10s`, `3h`, `2d4h`, `1y20d`."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def human_age(timestamp: str | datetime | None, now: datetime | None = None) -> str:
    """The AGE column: `<unknown>` without a timestamp, else the human duration since it."""
    if not timestamp:
        return "<unknown>"
    moment = parse_time(timestamp) if isinstance(timestamp, str) else timestamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    return human_duration((current - moment).total_seconds())


def get_path(obj: Any, path: str, *, default: Any = None) -> Any:
    """The value at a dotted path (`spec.template.spec`, `.status.replicas`, `spec.containers.0.image`)."""
    current = obj
    for part in path.strip(".").split("."):
        if part == "":
            continue
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return default
            current = current[index]
        else:
            return default
    return current


def object_key(namespace: str | None, name: str) -> str:
    """`namespace/name`, or just `name` for cluster-scoped objects (client-go's cache key)."""
    return f"{namespace}/{name}" if namespace else name


def key_of(obj: Mapping[str, Any]) -> str:
    """object_key of an object's own metadata."""
    metadata = obj.get("metadata") or {}
    return object_key(metadata.get("namespace"), str(metadata.get("name", "")))


def controller_owner(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference marked `controller: true`, if any (what adopts and garbage-collects)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return dict(ref)
    return None
