"""Builders of `containers.Instance` values as `containers.from_inspect` reads them from Docker,
for the planner and backoff tests (pure code: no Docker engine involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reconcile.core import meta
from reconcile.node import containers

UID = "u-1"
WALL = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # the wall clock at planning time
NOW = 5000.0  # the monotonic clock at planning time


def spec(name: str = "app", image: str = "img:1", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def stamp(moment: datetime) -> str:
    """A Docker timestamp (nanoseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f123Z")


ZERO = "0001-01-01T00:00:00Z"


def instance(name: str = "app", attempt: int = 0, state: str = "running", *, exit_code: int = 0,
             of: dict[str, Any] | None = None, uid: str = UID, ran: float = 5.0, finished_ago: float = 1.0,
             error: str = "", spec_hash: str | None = None) -> containers.Instance:
    """One attempt as `containers.from_inspect` would read it; `of` is the spec it was created from."""
    if spec_hash is None:
        spec_hash = "" if name == containers.INFRA else containers.spec_hash(of or spec(name))
    started_raw = finished_raw = ZERO
    if state == "running":
        started_raw = stamp(WALL - timedelta(seconds=ran))
    elif state in ("exited", "dead"):
        finished = WALL - timedelta(seconds=finished_ago)
        started_raw, finished_raw = stamp(finished - timedelta(seconds=ran)), stamp(finished)
    return containers.Instance(
        id=f"{uid}-{name}-{attempt}", pod_uid=uid, namespace="ns", pod_name="p", name=name, restarts=attempt,
        status=state, exit_code=exit_code, oom_killed=False, error=error,
        started_at=None if started_raw == ZERO else meta.format_time(meta.parse_time(started_raw)),
        finished_at=None if finished_raw == ZERO else meta.format_time(meta.parse_time(finished_raw)),
        started_raw=started_raw, finished_raw=finished_raw, image_id="sha256:1", spec_hash=spec_hash,
        ip_addresses={"net": "10.0.0.2"} if name == containers.INFRA else {})
