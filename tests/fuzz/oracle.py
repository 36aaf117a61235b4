"""The properties of a write, judged from what the server answered and what it stores afterwards.

- a 2xx write that is not a dry run round-trips: a consistent GET returns exactly the object the
  write answered with (nothing altered on the way to etcd, nothing added by the read path), unless
  the write removed the last finalizer of an object being deleted, which then is gone;
- a dry run, and every failed write, leaves the stored object as it was, resourceVersion included
  (nothing half-written), and a failed create stores nothing.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.fuzz import targets, wire


def _fail(why: str, request: wire.Request, session: wire.Session, response: httpx.Response, **shown: Any) -> wire.PropertyFailure:
    extra = "".join(f"\n  {k}: {v!r}"[:4000] for k, v in shown.items())
    return wire.PropertyFailure(f"{why}\n  request: {request.reproduction(session.base_url)}\n  answer: "
                                f"{response.status_code} {response.text[:3000]}{extra}")


def check_object(target: targets.Target, body: Any, request: wire.Request, session: wire.Session,
                 response: httpx.Response) -> None:
    """A 2xx answer that should be the object: of the target's kind, in the session's namespace."""
    if body.get("kind") != target.kind or body.get("apiVersion") != target.api_version:
        raise _fail("a successful write answered with something else than the object", request, session, response)
    if (body.get("metadata") or {}).get("namespace") != session.namespace:
        raise _fail("the written object is not in the request's namespace", request, session, response)


def check_write(target: targets.Target, request: wire.Request, session: wire.Session, response: httpx.Response,
                body: Any, *, before: dict[str, Any] | None, after: dict[str, Any] | None, dry_run: bool) -> None:
    """The write properties for a main-resource or /status write of one named object."""
    if 200 <= response.status_code < 300:
        check_object(target, body, request, session, response)
        if dry_run:
            if after != before:
                raise _fail("a dry run changed the stored object", request, session, response, before=before, after=after)
        elif after is None and _finished_deletion(body):
            return  # the write took the last finalizer off an object being deleted: it is gone, as upstream
        elif after != body:
            raise _fail("the stored object is not the one the write answered with (no round trip)", request, session,
                        response, after=after)
    elif after != before:
        raise _fail("a failed write changed the stored object", request, session, response, before=before, after=after)


def _finished_deletion(obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    return bool(metadata.get("deletionTimestamp")) and not metadata.get("finalizers")


def check_unchanged_list(request: wire.Request, session: wire.Session, response: httpx.Response,
                         before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    if before != after:
        raise _fail("a failed create changed what the namespace holds", request, session, response,
                    before=[o["metadata"]["name"] for o in before], after=[o["metadata"]["name"] for o in after])


def judged_write(session: wire.Session, target: targets.Target, request: wire.Request, *, operation: str, name: str,
                 before: dict[str, Any] | None, dry_run: bool,
                 table: bool = False) -> tuple[httpx.Response, Any, dict[str, Any] | None]:
    """Send a write aimed at object `name`, read it back, and check the write properties; with
    `table`, a changed object is also read as a Table (its printer columns see the new fields)."""
    response, body = session.send(request, operation=operation)
    after = session.stored(target, name)
    check_write(target, request, session, response, body, before=before, after=after, dry_run=dry_run)
    if table and after is not None and after != before:
        session.table_of(target, name)
    return response, body, after
