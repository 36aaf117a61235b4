"""Objects a component cannot decode or process: logged once per resourceVersion, counted, an Event.

One bad object is its own problem, never the component's. Informers skip objects that do not
decode (`client/decoding.py`); controllers skip a key whose reconcile fails on the object's
shape (`OBJECT_ERRORS`: what wrong types raise) until the object changes. Both come here, so
the operator sees each bad object version once in the log, in a Prometheus counter
(`informer_invalid_objects_total`, `controller_skipped_objects_total`) and as a Warning Event
on the object itself when it has the identity an Event needs, however many events or
reconciles it caused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from reconcile.client import decoding, watching
from reconcile.client import informer as informer_mod
from reconcile.engine import events as events_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)

# What reading a wrong-typed object raises (`int("x")`, `"str".get`, `obj["missing"]`, `[][0]`).
# A reconcile that raises one of these fails on the object's shape: retrying the same version
# fails the same way, so the key is skipped until the object (or what it reads) changes.
OBJECT_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, KeyError, AttributeError, IndexError)

REASON_INVALID = "InvalidObject"  # an informer skipped the object: it does not decode
REASON_SKIPPED = "FailedSync"  # a controller skipped the object: processing it failed
MEMORY = 10_000  # (controller, key) fingerprints kept; the oldest are forgotten first
MAX_PROBLEMS = 5  # problems quoted in a log line or an Event message


class Reporter:
    """The bad-object reporting of one component (controller-manager, scheduler, an operator)."""

    def __init__(self, *, component: str, metrics: metrics_mod.Metrics | None = None,
                 recorder: events_mod.EventRecorder | None = None) -> None:
        self.component = component
        self.metrics = metrics
        self.recorder = recorder
        # Invariant: (controller, key) -> fingerprint (resourceVersion, else the error) of the
        # last skip reported for that key; removed once the key reconciles again.
        self._skipped: OrderedDict[tuple[str, Hashable], str] = OrderedDict()
        self._posting: set[asyncio.Task[None]] = set()  # Events in flight (referenced until done)

    # --- informers ---------------------------------------------------------------------------------

    def watch(self, informer: informer_mod.Informer) -> None:
        """Report every object version `informer` skips (the informer calls once per version)."""
        resource = informer.plural

        def invalid(obj: dict[str, Any], problems: list[str]) -> None:
            self.invalid(resource, obj, problems)

        informer.add_invalid_handler(invalid)

    def invalid(self, resource: str, obj: dict[str, Any], problems: list[str]) -> None:
        if self.metrics is not None:
            self.metrics.invalid_object(resource)
        message = f"{self.component} ignores this object, it does not decode: {'; '.join(problems[:MAX_PROBLEMS])}"
        self._event(obj, REASON_INVALID, message)

    # --- controllers -------------------------------------------------------------------------------

    def skipped(self, controller: str, key: Hashable, obj: dict[str, Any] | None, error: BaseException) -> bool:
        """A reconcile of `key` failed on its object: report it unless this version was reported already."""
        rv = watching.resource_version_of(obj) if obj is not None else None
        fingerprint = rv or f"{type(error).__name__}: {error}"
        entry = (controller, key)
        if self._skipped.get(entry) == fingerprint:
            log.debug("controller %s: %s still fails (%s); skipped", controller, key, error)
            return False
        self._skipped[entry] = fingerprint
        self._skipped.move_to_end(entry)
        while len(self._skipped) > MEMORY:
            self._skipped.popitem(last=False)
        what = decoding.describe(obj) if obj is not None else str(key)
        log.warning("controller %s: cannot process %s; skipped until it changes: %s: %s", controller, what,
                    type(error).__name__, error, exc_info=error)
        if self.metrics is not None:
            self.metrics.skipped_object(controller)
        if obj is not None:
            self._event(obj, REASON_SKIPPED,
                        f"{controller} cannot process this object and skips it until it changes: "
                        f"{type(error).__name__}: {error}")
        return True

    def recovered(self, controller: str, key: Hashable) -> None:
        """`key` reconciled: a later failure is news again."""
        self._skipped.pop((controller, key), None)

    # --- events ------------------------------------------------------------------------------------

    def _event(self, obj: dict[str, Any], reason: str, message: str) -> None:
        """A Warning Event on `obj`, if it has what an Event's involvedObject needs; never waited for."""
        if self.recorder is None or not _addressable(obj):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.recorder.record(obj, reason=reason, message=message[:1024], type="Warning"))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def drain(self, *, timeout: float = 5.0) -> None:
        """Wait (capped) for the Events still being posted."""
        if self._posting:
            await asyncio.wait(list(self._posting), timeout=timeout)


def _addressable(obj: Any) -> bool:
    """Name, namespace, uid, kind and apiVersion as strings: what an Event's involvedObject holds."""
    if watching.identity(obj) is None:
        return False
    metadata = obj["metadata"]
    return all(isinstance(value, str) for value in (metadata.get("uid", ""), obj.get("kind", ""),
                                                    obj.get("apiVersion", "")))
