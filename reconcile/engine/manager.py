"""The manager: runs informers and controllers, elects a leader, serves health and metrics.

Runnables that `needs_leader` (controllers) run only while this process leads; the rest
(informers, caches) run always, so a standby is warm. Shutdown stops leader-only runnables
first (they finish in-flight work), then the rest, all within one cap (30 s by default, as
controller-runtime). Losing the lease stops the controllers and makes `run` raise
`leader.LeaderElectionLost`: like client-go, a deposed leader exits and is restarted fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconcile.client import aio
from reconcile.engine import clock as clock_mod
from reconcile.engine import leader as leader_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 30.0


class HealthCheck(Protocol):
    """Something whose trouble the health endpoints report (e.g. `supervision.InformerSupervisor`).

    `readiness()`: problems that make the process unfit to serve now (`/readyz` 503);
    `liveness()`: problems it cannot heal by itself (`/healthz` 503: restart the process).
    Each returns one line per problem, [] when all is well.
    """

    def readiness(self) -> list[str]: ...

    def liveness(self) -> list[str]: ...


class Runnable(Protocol):
    """`start()` (returns once started) + `stop()`; or `run()` (returns when stopped) + `stop()`."""

    async def stop(self) -> None: ...


@dataclass
class _Entry:
    runnable: Any
    needs_leader: bool
    task: asyncio.Task[Any] | None = None  # the run() task of a run()-style runnable
    started: bool = field(default=False)


class Manager:
    """Owns the runnables of one process (a controller-manager, an operator)."""

    def __init__(
        self,
        client: aio.AsyncClient,
        *,
        name: str,
        leader_election: bool = True,
        identity: str | None = None,
        health_port: int | None = None,
        metrics: metrics_mod.Metrics | None = None,
        clock: clock_mod.Clock | None = None,
        leader_config: leader_mod.LeaderConfig | None = None,
        lease_namespace: str = "kube-system",
        health_host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.raw_client = client
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.metrics = metrics or metrics_mod.Metrics()
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self.leader_election = leader_election
        self.elector = leader_mod.LeaderElector(
            client,
            name=name,
            namespace=lease_namespace,
            identity=self.identity,
            config=leader_config,
            clock=self.clock,
        )
        # Writes of controllers go through the fence; without leader election we always lead.
        self.client: Any = leader_mod.FencedClient(client, self.elector) if leader_election else client
        self.health_host = health_host
        self.health_port = health_port  # the bound port once running (0 picks a free one)
        self._entries: list[_Entry] = []
        # Invariant: set by stop() (also before run() started: run then shuts down at once).
        self._stop_requested = asyncio.Event()
        self._deadline: float | None = None  # clock.now() by which shutdown must be over
        self._running = False  # between the start of run() and the end of its shutdown
        self._done = asyncio.Event()
        self._server: asyncio.Server | None = None
        # Invariant: True between the start of the always-on runnables and the shutdown.
        self.ready = False
        self.leading = False
        self._checks: list[HealthCheck] = []

    def add(self, runnable: Any, *, needs_leader: bool = True) -> None:
        self._entries.append(_Entry(runnable, needs_leader))

    def add_health_check(self, check: HealthCheck) -> None:
        """Have `/readyz` and `/healthz` include what `check` reports."""
        self._checks.append(check)

    def readiness_problems(self) -> list[str]:
        """Why `/readyz` fails now ([] when ready)."""
        found = [] if self.ready else ["not started, or shutting down"]
        return found + self._collect("readiness")

    def liveness_problems(self) -> list[str]:
        """Why `/healthz` fails now ([] when healthy)."""
        return self._collect("liveness")

    def _collect(self, kind: str) -> list[str]:
        found: list[str] = []
        for check in self._checks:
            try:
                found.extend(getattr(check, kind)())
            except Exception as exc:  # noqa: BLE001 - a check that fails is a problem to report, not a crash
                found.append(f"{kind} check {check!r} failed: {exc}")
        return found

    def is_leader(self) -> bool:
        return self.elector.is_leader() if self.leader_election else self.leading

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until stop() (or cancellation); raises LeaderElectionLost if the lease was lost."""
        self._running = True
        self._done.clear()
        lost = False
        try:
            if self.health_port is not None:
                await self._serve_health()
            for entry in self._entries:
                if not entry.needs_leader:
                    await self._start(entry)
            self.ready = True
            if self.leader_election:
                lost = await self._run_elected()
            else:
                await self._start_leading()
                await self._stop_requested.wait()
        finally:
            self.ready = False
            await self._shutdown()  # also after cancellation: controllers finish in-flight work
            self._running = False
            self._done.set()
        if lost:
            raise leader_mod.LeaderElectionLost(f"{self.identity} lost lease {self.name}")

    async def _run_elected(self) -> bool:
        """Lead until asked to stop (False) or until the lease is lost (True)."""
        elector = asyncio.get_running_loop().create_task(
            self.elector.run(on_started=self._start_leading, on_stopped=self._stop_leading)
        )
        stop_wait = asyncio.get_running_loop().create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({elector, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            if not elector.done():
                elector.cancel()  # on_stopped stops the controllers, then the lease is released
            with contextlib.suppress(asyncio.CancelledError):
                await elector
        return not self._stop_requested.is_set()

    async def stop(self, *, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Graceful: stop the controllers (finishing in-flight work), then the rest, within `timeout`."""
        self._deadline = self.clock.now() + timeout
        self._stop_requested.set()
        if self._running:
            await self._done.wait()

    def _remaining(self) -> float:
        if self._deadline is None:
            self._deadline = self.clock.now() + SHUTDOWN_TIMEOUT
        return max(0.0, self._deadline - self.clock.now())

    async def _start_leading(self) -> None:
        self.leading = True
        for entry in self._entries:
            if entry.needs_leader:
                await self._start(entry)

    async def _stop_leading(self) -> None:
        self.leading = False
        await self._stop_all([e for e in self._entries if e.needs_leader])

    async def _shutdown(self) -> None:
        await self._stop_all([e for e in self._entries if e.needs_leader])
        await self._stop_all([e for e in self._entries if not e.needs_leader])
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None

    # --- runnables -----------------------------------------------------------------------------

    async def _start(self, entry: _Entry) -> None:
        runnable = entry.runnable
        if hasattr(runnable, "start"):
            await runnable.start()
        else:
            entry.task = asyncio.get_running_loop().create_task(runnable.run(), name=f"runnable:{runnable!r}")
        entry.started = True

    async def _stop_all(self, entries: list[_Entry]) -> None:
        started = [e for e in entries if e.started]
        if started:
            await asyncio.gather(*(self._stop(e) for e in started))

    async def _stop(self, entry: _Entry) -> None:
        entry.started = False
        runnable = entry.runnable
        budget = self._remaining()
        try:
            if "timeout" in inspect.signature(runnable.stop).parameters:
                await asyncio.wait_for(runnable.stop(timeout=budget), timeout=budget + 1.0)
            else:
                await asyncio.wait_for(runnable.stop(), timeout=budget)
        except TimeoutError:
            log.warning("manager %s: %r did not stop in time", self.name, runnable)
        except Exception:
            log.exception("manager %s: stopping %r failed", self.name, runnable)
        task, entry.task = entry.task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=self._remaining())
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- health and metrics over HTTP (stdlib: a few fixed answers need no framework) ----------

    async def _serve_health(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.health_host, self.health_port or 0)
        self.health_port = self._server.sockets[0].getsockname()[1]

    def _answer(self, path: str) -> tuple[str, bytes, str]:
        if path in ("/healthz", "/livez"):
            problems = self.liveness_problems()
            if not problems:
                return "200 OK", b"ok", "text/plain; charset=utf-8"
            return "503 Service Unavailable", _lines("unhealthy", problems), "text/plain; charset=utf-8"
        if path == "/readyz":
            problems = self.readiness_problems()
            if not problems:
                return "200 OK", b"ok", "text/plain; charset=utf-8"
            return "503 Service Unavailable", _lines("not ready", problems), "text/plain; charset=utf-8"
        if path == "/metrics":
            return "200 OK", self.metrics.render(), metrics_mod.CONTENT_TYPE
        return "404 Not Found", b"not found", "text/plain; charset=utf-8"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=10)
            while (await asyncio.wait_for(reader.readline(), timeout=10)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here depends on them
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            status, body, content_type = self._answer(path)
            if parts and parts[0] == "HEAD":
                payload = b""
            else:
                payload = body
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _lines(head: str, problems: list[str]) -> bytes:
    return "\n".join([head, *(f"- {p}" for p in problems)]).encode()
