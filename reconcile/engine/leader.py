"""Leader election on coordination.k8s.io/v1 Lease objects, as client-go's leaderelection.

Every write to the Lease is a compare-and-swap on metadata.resourceVersion (a 409 means
another candidate won the race). Expiry is judged by the observer's own monotonic clock:
a candidate remembers when it last saw the lease record change and only takes over once
`leaseDurationSeconds` passed since then; remote timestamps are written, never trusted.

Fencing: the leader counts itself leader only while `now < last successful renew +
renew_deadline` (the renew measured from when its request was *sent*, before anyone could
observe it). renew_deadline < lease_duration, so a leader that cannot renew, or was paused
and resumed, stops (and `FencedClient` refuses its writes) before any rival can acquire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from reconcile.client import aio
from reconcile.core import errors
from reconcile.engine import clock as clock_mod

log = logging.getLogger(__name__)

LEASE_API = "coordination.k8s.io/v1"
LEASES = "leases"


class LeaderElectionLost(Exception):
    """The manager lost its lease and stopped its controllers (the process should exit, as in client-go)."""


@dataclass
class LeaderConfig:
    lease_duration: float = 15.0  # rivals wait this long after last seeing the record change
    renew_deadline: float = 10.0  # the leader gives up this long after its last good renew
    retry_period: float = 2.0  # between attempts to acquire or renew
    release_on_cancel: bool = True  # a cancelled leader hands the lease over at once (holder "")

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("leader election needs lease_duration > renew_deadline > retry_period > 0")


def micro_time(moment: datetime) -> str:
    """MicroTime as Kubernetes writes it: `2026-11-26T19:56:34.766034Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Fence(Protocol):
    def is_leader(self) -> bool: ...


class LeaderElector:
    """One candidate for one Lease; `run` campaigns, leads, and returns when leadership is lost."""

    def __init__(
        self,
        client: aio.AsyncClient,
        *,
        name: str,
        namespace: str = "kube-system",
        identity: str,
        config: LeaderConfig | None = None,
        clock: clock_mod.Clock | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.config = config or LeaderConfig()
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        # Invariant: the clock time at which the last successful acquire/renew request was
        # sent (None when not leading). Rivals start counting expiry only after they see that
        # write, so the lease is ours at least until _renewed_at + lease_duration.
        self._renewed_at: float | None = None
        # Invariant: _observed_at is our clock time when _observed_spec (the lease spec last
        # read or written) last changed; expiry = _observed_at + leaseDurationSeconds.
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None  # the last Lease object read or written
        self.transitions_seen = 0

    # --- fencing ---------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True only while now < last successful renew + renew_deadline."""
        return self._renewed_at is not None and self.clock.now() < self._renewed_at + self.config.renew_deadline

    @property
    def holder(self) -> str:
        """The holder of the lease as last observed ("" if none)."""
        return (self._observed_spec or {}).get("holderIdentity") or ""

    # --- the loop ----------------------------------------------------------------------------

    async def run(
        self,
        *,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[], Awaitable[None]],
    ) -> None:
        """Campaign until leading, run `on_started` (as a task), renew; on a missed renew deadline
        or cancellation, cancel `on_started` if still running and await `on_stopped`."""
        await self._acquire()
        log.info("%s: became leader of lease %s/%s", self.identity, self.namespace, self.name)
        started = asyncio.get_running_loop().create_task(self._guard(on_started, "on_started"))
        cancelled = False
        try:
            await self._renew_until_lost()
            log.warning("%s: lost lease %s/%s (could not renew in time)", self.identity, self.namespace, self.name)
        except asyncio.CancelledError:
            cancelled = True
        if not started.done():
            started.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started
        await self._guard(on_stopped, "on_stopped")
        if cancelled and self.config.release_on_cancel and self.is_leader():
            await self._release()
        self._renewed_at = None
        if cancelled:
            raise asyncio.CancelledError

    async def _guard(self, callback: Callable[[], Awaitable[None]], what: str) -> None:
        try:
            await callback()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: leader election %s callback failed", self.identity, what)

    async def _acquire(self) -> None:
        while not await self._try_acquire_or_renew():
            await self.clock.sleep(self.config.retry_period * random.uniform(1.0, 1.2))

    async def _renew_until_lost(self) -> None:
        """Renew every retry_period; return once the renew deadline passed without success."""
        while True:
            await self.clock.sleep(self.config.retry_period)
            while True:
                assert self._renewed_at is not None
                remaining = self._renewed_at + self.config.renew_deadline - self.clock.now()
                if remaining <= 0:
                    return
                try:
                    ok = await asyncio.wait_for(self._try_acquire_or_renew(), timeout=remaining)
                except TimeoutError:
                    ok = False
                if ok:
                    break
                if self.holder not in ("", self.identity):
                    self._renewed_at = None  # someone else holds it: we are fenced already
                    return
                remaining = self._renewed_at + self.config.renew_deadline - self.clock.now()
                if remaining <= 0:
                    return
                await self.clock.sleep(min(self.config.retry_period, remaining))

    # --- one attempt ---------------------------------------------------------------------------

    def _observe(self, lease: dict[str, Any], now: float) -> dict[str, Any]:
        spec = dict(lease.get("spec") or {})
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = now
        self._lease = lease
        return spec

    def _duration_seconds(self) -> int:
        return max(1, math.ceil(self.config.lease_duration))

    async def _try_acquire_or_renew(self) -> bool:
        """One CAS attempt; True iff we hold the lease now (acquired or renewed)."""
        sent_at = self.clock.now()
        stamp = micro_time(self.clock.wall())
        try:
            lease = await self.client.get(LEASE_API, LEASES, self.name, namespace=self.namespace)
        except errors.NotFound:
            return await self._create(sent_at, stamp)
        except errors.ApiError as exc:
            log.warning("%s: cannot read lease %s/%s: %s", self.identity, self.namespace, self.name, exc)
            return False
        spec = self._observe(lease, self.clock.now())
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self._duration_seconds()
        if holder and holder != self.identity and self._observed_at + duration > self.clock.now():
            return False  # held by someone else, and not expired by our own clock
        new_spec = dict(spec)
        if holder != self.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        new_spec.setdefault("acquireTime", stamp)
        new_spec.setdefault("leaseTransitions", 0)
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=self._duration_seconds(), renewTime=stamp)
        try:
            updated = await self.client.replace(
                LEASE_API, LEASES, {**lease, "spec": new_spec}, namespace=self.namespace
            )
        except errors.Conflict:
            return False  # someone else wrote first; look again next round
        except errors.ApiError as exc:
            log.warning("%s: cannot update lease %s/%s: %s", self.identity, self.namespace, self.name, exc)
            return False
        self._observe(updated, self.clock.now())
        self._renewed_at = sent_at
        self.transitions_seen = int(new_spec["leaseTransitions"])
        return True

    async def _create(self, sent_at: float, stamp: str) -> bool:
        body = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._duration_seconds(),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self.client.create(LEASE_API, LEASES, body, namespace=self.namespace)
        except (errors.AlreadyExists, errors.Conflict):
            return False
        except errors.ApiError as exc:
            log.warning("%s: cannot create lease %s/%s: %s", self.identity, self.namespace, self.name, exc)
            return False
        self._observe(created, self.clock.now())
        self._renewed_at = sent_at
        return True

    async def _release(self) -> None:
        """Hand the lease over (holder "", 1 s) so a rival need not wait for expiry."""
        if self._lease is None:
            return
        stamp = micro_time(self.clock.wall())
        spec = {
            **(self._lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
        }
        try:
            await self.client.replace(LEASE_API, LEASES, {**self._lease, "spec": spec}, namespace=self.namespace)
        except errors.ApiError as exc:  # a conflict means someone else already moved on
            log.info("%s: lease release skipped: %s", self.identity, exc)


class FencedClient:
    """An AsyncClient whose writes are refused unless `fence.is_leader()`: a stale leader writes nothing.

    Reads (get, list, watch, discovery) pass through untouched.
    """

    def __init__(self, inner: aio.AsyncClient, elector: Fence) -> None:
        self.inner = inner
        self.elector = elector

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check(self) -> None:
        if not self.elector.is_leader():
            raise errors.Forbidden("not the leader")

    async def create(self, *args: Any, **kwargs: Any) -> dict:
        self._check()
        return await self.inner.create(*args, **kwargs)

    async def replace(self, *args: Any, **kwargs: Any) -> dict:
        self._check()
        return await self.inner.replace(*args, **kwargs)

    async def patch(self, *args: Any, **kwargs: Any) -> dict:
        self._check()
        return await self.inner.patch(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> dict:
        self._check()
        return await self.inner.delete(*args, **kwargs)

    async def delete_collection(self, *args: Any, **kwargs: Any) -> dict:
        self._check()
        return await self.inner.delete_collection(*args, **kwargs)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            self._check()
        return await self.inner.request(method, path, **kwargs)
