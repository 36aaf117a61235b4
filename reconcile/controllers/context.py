"""What every built-in controller is built from: one client, shared informers, an event recorder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.controllers import batching
from reconcile.controllers import informers as informers_mod
from reconcile.engine import badobjects
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller as controller_mod
from reconcile.engine import events as events_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)


@dataclass
class ControllerContext:
    """Shared by the controllers of one controller-manager term of leadership."""

    client: aio.AsyncClient  # the (leader-fenced) client every write goes through
    informers: informers_mod.SharedInformers  # reads come from here, never from the API server
    recorder: events_mod.EventRecorder  # Events for what controllers did
    clock: clock_mod.Clock  # requeue and expectation timing
    metrics: metrics_mod.Metrics | None = None  # per-controller queue and reconcile metrics
    workers: int = 4  # workers per controller (a key never runs on two at once)
    reporter: badobjects.Reporter | None = None  # objects the controllers cannot decode or process
    burst_replicas: int = batching.BURST_REPLICAS  # at most this many pods created or deleted per ReplicaSet sync

    def controller(self, name: str, reconcile: controller_mod.Reconciler, *,
                   lookup: Callable[[controller_mod.Key], dict[str, Any] | None] | None = None,
                   ) -> controller_mod.Controller:
        """An engine controller with this context's workers, clock, metrics and bad-object reporting."""
        return controller_mod.Controller(name, reconcile, workers=self.workers, clock=self.clock,
                                         metrics=self.metrics, reporter=self.reporter, lookup=lookup)

    async def event(self, obj: dict[str, Any], *, reason: str, message: str, type: str = "Normal") -> None:
        """Record an Event; a failure to record never fails the reconcile that did the work."""
        try:
            await self.recorder.record(obj, reason=reason, message=message, type=type)
        except Exception as exc:  # noqa: BLE001 - events are best effort, as upstream's recorder
            log.debug("event %s for %s not recorded: %s", reason, (obj.get("metadata") or {}).get("name"), exc)
