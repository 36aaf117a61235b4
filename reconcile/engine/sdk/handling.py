"""Running one cause (create, update, resume or delete) of one object: which handlers are due,
calling them, and the single merge patch that records each outcome.

Progress is written per handler completion; the completion that finishes the cause also writes
the last-handled essence and drops the cause's progress records, in the same patch, so there
is no moment where a finished handler could look unfinished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import meta as meta_mod
from reconcile.core import patches
from reconcile.engine.sdk import errors as sdk_errors
from reconcile.engine.sdk import filters, invocation, state
from reconcile.engine.sdk import registry as registry_mod

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0

# (obj, main merge patch, status merge patch) -> the object as the server returned it
Writer = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class CauseOutcome:
    """Where a cause stands after one pass: the freshest object, and when to come back if unfinished."""

    body: dict[str, Any]
    done: bool
    requeue_after: float | None = None


@dataclass
class Invocation:
    """The shared context a pass hands to each handler call."""

    kwargs: dict[str, Any]  # memo, indexes, runtime handles: the same for every handler of the object
    executor: Any
    clock: Any
    logger_name: str
    extra: dict[str, Any] = field(default_factory=dict)


def field_values(handler: registry_mod.Handler, old: Any, new: Any) -> tuple[Any, Any]:
    if handler.field is None:
        return old, new
    return state.resolve(old, handler.field), state.resolve(new, handler.field)


def selected(
    handler: registry_mod.Handler, body: dict[str, Any], cause: str, old: Any, new: Any, kwargs: dict[str, Any]
) -> bool:
    """Filters: labels, annotations, the watched field having changed, then `when=`."""
    meta = body.get("metadata") or {}
    if not filters.matches(meta.get("labels"), handler.labels):
        return False
    if not filters.matches(meta.get("annotations"), handler.annotations):
        return False
    if handler.field is not None and cause in ("create", "update"):
        old_value, new_value = field_values(handler, old, new)
        if old_value == new_value:
            return False
    return invocation.matches_when(handler.when, kwargs)


def handlers_for(reg: registry_mod.Registry, resource: registry_mod.ResourceRef, cause: str) -> list[registry_mod.Handler]:
    kinds = {"create": ("create", "field"), "update": ("update", "field")}.get(cause, (cause,))
    return reg.for_resource(resource, *kinds)


def _retry_delay(handler: registry_mod.Handler, record: state.Progress, exc: BaseException) -> float:
    if isinstance(exc, sdk_errors.TemporaryError):
        return max(0.0, exc.delay)
    return min(handler.backoff * 2 ** max(0, record.retries - 1), MAX_BACKOFF)


async def invoke(
    handler: registry_mod.Handler,
    body: dict[str, Any],
    cause: str,
    record: state.Progress | None,
    *,
    old: Any,
    new: Any,
    ctx: Invocation,
) -> tuple[state.Progress, Any, invocation.Patch, float | None]:
    """Call one handler once: (its new progress record, its result, its patch, retry delay if any)."""
    now = ctx.clock.wall()
    record = record or state.Progress(cause=cause, started=meta_mod.format_time(now))
    started = meta_mod.parse_time(record.started) if record.started else now
    patch = invocation.Patch()
    elapsed = (now - started).total_seconds()
    if handler.timeout is not None and elapsed >= handler.timeout:
        record.failure, record.message = True, f"handler timed out after {elapsed:.0f}s"
        return record, None, patch, None
    if handler.retries is not None and record.retries >= handler.retries:
        record.failure, record.message = True, f"handler failed {record.retries} times"
        return record, None, patch, None
    old_value, new_value = field_values(handler, old, new)
    kwargs = {
        **invocation.object_kwargs(body),
        **ctx.kwargs,
        **invocation.runtime_kwargs(started=started, now=now, retry=record.retries),
        "old": old_value,
        "new": new_value,
        "diff": state.diff(old_value, new_value),
        "patch": patch,
        "cause": cause,
        "param": handler.param,
        "logger": invocation.object_logger(ctx.logger_name, body),
    }
    remaining = None if handler.timeout is None else handler.timeout - elapsed
    try:
        result = await invocation.call(handler.fn, kwargs, executor=ctx.executor, timeout=remaining)
    except asyncio.CancelledError:
        raise
    except sdk_errors.PermanentError as exc:
        record.failure, record.message = True, str(exc) or type(exc).__name__
        kwargs["logger"].error("handler %r failed permanently: %s", handler.id, record.message)
        return record, None, patch, None
    except TimeoutError:
        record.failure, record.message = True, f"handler timed out after {handler.timeout}s"
        kwargs["logger"].error("handler %r timed out", handler.id)
        return record, None, patch, None
    except Exception as exc:
        record.retries += 1
        delay = _retry_delay(handler, record, exc)
        record.message = str(exc) or type(exc).__name__
        if handler.retries is not None and record.retries >= handler.retries:
            record.failure = True
            kwargs["logger"].error("handler %r failed %d times, giving up: %s", handler.id, record.retries, exc)
            return record, None, patch, None
        record.delayed = now.timestamp() + delay
        if isinstance(exc, sdk_errors.TemporaryError):
            kwargs["logger"].warning("handler %r asked to retry in %ss: %s", handler.id, delay, exc)
        else:
            kwargs["logger"].exception("handler %r failed; retrying in %ss", handler.id, delay)
        return record, None, patch, delay
    record.success, record.delayed, record.message = True, None, None
    return record, result, patch, None


def _split(user_patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    main = {k: v for k, v in user_patch.items() if k != "status"}
    return main, dict(user_patch.get("status") or {})


def _finish_annotations(
    body: dict[str, Any], handlers: list[registry_mod.Handler], cause: str, handled: dict[str, Any] | None
) -> dict[str, Any]:
    """Annotations that close a cause: progress records of this cause dropped, essence recorded."""
    annotations: dict[str, Any] = {}
    for handler in handlers:
        if state.read_progress(body, handler.id, cause) is not None:
            annotations[state.progress_key(handler.id)] = None
    if handled is not None:
        annotations[state.LAST_HANDLED] = state.dump_essence(handled)
    return annotations


async def run_cause(
    body: dict[str, Any],
    cause: str,
    handlers: list[registry_mod.Handler],
    *,
    old: dict[str, Any] | None,
    ctx: Invocation,
    write: Writer,
    record_essence: bool,
) -> CauseOutcome:
    """Run the due handlers of `cause` in declaration order, writing each outcome as it comes."""
    new = state.essence(body)
    filter_kwargs = {**invocation.object_kwargs(body), **ctx.kwargs, "old": old, "new": new,
                     "diff": state.diff(old, new), "cause": cause}
    chosen = [h for h in handlers if selected(h, body, cause, old, new, {**filter_kwargs, "param": h.param})]
    records = {h.id: state.read_progress(body, h.id, cause) for h in chosen}
    patched = body  # the body with the handlers' own patches applied: its essence is what was handled
    delays: list[float] = []
    finished = False
    now = ctx.clock.wall().timestamp()
    for handler in chosen:
        record = records[handler.id]
        if record is not None and record.finished:
            continue
        if record is not None and record.delayed is not None and record.delayed > now:
            delays.append(record.delayed - now)
            continue
        record, result, user_patch, delay = await invoke(handler, body, cause, record, old=old, new=new, ctx=ctx)
        records[handler.id] = record
        main, status = _split(user_patch)
        patched = patches.merge_patch(patched, main) if main else patched
        if result is not None and cause != "delete":
            status[handler.id] = result
        all_done = all(r is not None and r.finished for r in records.values())
        if all_done and cause != "delete":
            handled = state.essence(patched) if record_essence else None
            annotations = _finish_annotations(body, handlers, cause, handled)
            finished = True
        else:
            annotations = {state.progress_key(handler.id): record.dump()}
        main = state.combine(main, {"metadata": {"annotations": annotations}})
        body = await write(body, main, status)
        if delay is not None:
            delays.append(delay)
    if all(r is not None and r.finished for r in records.values()):
        if not finished and cause != "delete":
            handled = state.essence(patched) if record_essence else None
            annotations = _finish_annotations(body, handlers, cause, handled)
            if annotations:
                body = await write(body, {"metadata": {"annotations": annotations}}, {})
        return CauseOutcome(body, True)
    return CauseOutcome(body, False, min(delays) if delays else 0.0)
