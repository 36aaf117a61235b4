"""Informer supervision: a stopped informer makes the component unready, and is restarted with backoff.

An informer whose task ended (a fatal API error, a bug, a stray cancellation) still serves its
cache, frozen: controllers would act on a picture that no longer changes while the process
looks healthy. The supervisor watches a component's informers: one that stopped fails
`/readyz` at once (and `/healthz` once it has stayed stopped for `liveness_grace`, so a
supervisor such as `reconcile up` restarts a process that cannot heal itself); it is restarted
from its cache and resourceVersion after a capped exponential backoff per informer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconcile.client import informer as informer_mod
from reconcile.client import watching
from reconcile.engine import clock as clock_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between looks at the informers
LIVENESS_GRACE = 60.0  # an informer stopped this long (restarts failing) fails /healthz too


STABLE_AFTER = 60.0  # a restarted informer running this long has recovered: its backoff starts over


@dataclass
class _Trouble:
    """An informer's current run of failures: since when, and when it may be restarted next."""

    backoff: watching.Backoff
    since: float  # clock.now() when it was first seen stopped in this run of failures
    retry_at: float | None = None  # set while it is stopped
    restarted_at: float | None = None


class InformerSupervisor:
    """Runnable (`start`/`stop`) that restarts the stopped informers among `informers()`."""

    def __init__(
        self,
        informers: Callable[[], Iterable[informer_mod.Informer]],
        *,
        name: str = "informers",
        clock: clock_mod.Clock | None = None,
        metrics: metrics_mod.Metrics | None = None,
        check_interval: float = CHECK_INTERVAL,
        liveness_grace: float = LIVENESS_GRACE,
        backoff: Callable[[], watching.Backoff] | None = None,
    ) -> None:
        self.informers = informers  # called each time: a component may add or drop informers
        self.name = name
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.metrics = metrics
        self.check_interval = check_interval
        self.liveness_grace = liveness_grace
        self._backoff = backoff or (lambda: watching.Backoff(initial=0.5, cap=30.0))
        # Invariant: an informer is a key iff it was seen stopped and has not since run for
        # STABLE_AFTER seconds; so an informer that fails again right after each restart keeps
        # backing off longer, and one that recovered starts over from the shortest delay.
        self._trouble: dict[informer_mod.Informer, _Trouble] = {}
        self._task: asyncio.Task[None] | None = None

    # --- health: what /readyz and /healthz report ---------------------------------------------------

    def readiness(self) -> list[str]:
        """One line per stopped informer (looked at now, not at the last check); [] when all run."""
        return [self._describe(inf) for inf in self.informers() if inf.stopped]

    def liveness(self) -> list[str]:
        """The stopped informers that stayed stopped longer than `liveness_grace`."""
        now = self.clock.now()
        return [self._describe(inf) for inf, trouble in self._trouble.items()
                if inf.stopped and now - trouble.since >= self.liveness_grace]

    @staticmethod
    def _describe(inf: informer_mod.Informer) -> str:
        reason = f": {inf.error}" if inf.error is not None else ""
        return f"informer for {inf.plural} stopped{reason}"

    # --- running -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"supervisor:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._trouble.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the supervisor itself must outlive anything it supervises
                log.exception("supervisor %s: checking informers failed", self.name)
            await self.clock.sleep(self.check_interval)

    async def check(self) -> None:
        """One look: note newly stopped informers, restart those whose backoff has passed."""
        now = self.clock.now()
        current = list(self.informers())
        for inf in [i for i in self._trouble if i not in current]:
            del self._trouble[inf]  # dropped by the component
        for inf in current:
            trouble = self._trouble.get(inf)
            if not inf.stopped:
                if trouble is not None and trouble.restarted_at is not None and now - trouble.restarted_at >= STABLE_AFTER:
                    del self._trouble[inf]
                continue
            if trouble is None:
                trouble = self._trouble[inf] = _Trouble(backoff=self._backoff(), since=now)
            if trouble.retry_at is None:
                trouble.retry_at = now + trouble.backoff.next()
                log.warning("supervisor %s: %s; restarting it in %.1fs", self.name, self._describe(inf),
                            trouble.retry_at - now)
            if now < trouble.retry_at:
                continue
            trouble.retry_at, trouble.restarted_at = None, now
            if await inf.restart() and self.metrics is not None:
                self.metrics.informer_restarted(inf.plural)
