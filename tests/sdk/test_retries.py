"""Errors and retries on virtual time (FakeClock): TemporaryError(delay=), PermanentError,
retries=, timeout=, backoff= for unexpected errors, and progress kept on the object."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import reconcile as rc
from reconcile.client import aio
from reconcile.engine import clock as clock_mod
from reconcile.engine.sdk import operator, state
from tests.sdk import helpers

AV, PLURAL = helpers.API_VERSION, helpers.PLURAL


def _progress(obj: dict, handler_id: str) -> dict | None:
    text = obj["metadata"].get("annotations", {}).get(state.progress_key(handler_id))
    return json.loads(text) if text else None


async def _obj(client: aio.AsyncClient, namespace: str, name: str) -> dict:
    return await client.get(AV, PLURAL, name, namespace=namespace)


async def _advance(clock: clock_mod.FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    await clock.run_until_idle()


async def test_temporary_error_waits_its_delay_on_virtual_time(async_client: aio.AsyncClient, namespace: str) -> None:
    clock = clock_mod.FakeClock(wall_start=datetime.now(UTC))
    reg = rc.Registry()
    attempts: list[int] = []

    @rc.on.create(AV, PLURAL, registry=reg)
    def flaky(retry: int, **_: Any) -> str:
        attempts.append(retry)
        if retry < 2:
            raise rc.TemporaryError("not yet", delay=30)
        return "done"

    async with operator.running(async_client, registry=reg, namespaces=[namespace], clock=clock):
        await async_client.create(AV, PLURAL, helpers.widget("t1"), namespace=namespace)

        async def first_recorded() -> dict | None:
            progress = _progress(await _obj(async_client, namespace, "t1"), "flaky")
            return progress if progress and progress.get("retries") == 1 else None

        progress = await helpers.eventually(first_recorded)
        assert progress["cause"] == "create" and progress["message"] == "not yet"
        await _advance(clock, 29)
        assert attempts == [0]
        await _advance(clock, 1)
        await helpers.eventually(lambda: attempts == [0, 1])

        async def second_recorded() -> bool:
            return (_progress(await _obj(async_client, namespace, "t1"), "flaky") or {}).get("retries") == 2

        await helpers.eventually(second_recorded)
        await _advance(clock, 30)

        async def finished() -> dict | None:
            obj = await _obj(async_client, namespace, "t1")
            return obj if obj.get("status", {}).get("flaky") == "done" else None

        obj = await helpers.eventually(finished)
        assert _progress(obj, "flaky") is None  # purged with the last-handled write
        assert state.last_handled(obj) is not None
    assert attempts == [0, 1, 2]


async def test_permanent_error_retries_and_timeout(async_client: aio.AsyncClient, namespace: str) -> None:
    clock = clock_mod.FakeClock(wall_start=datetime.now(UTC))
    reg = rc.Registry()
    calls: dict[str, int] = {"permanent": 0, "limited": 0, "slow": 0, "after": 0}

    @rc.on.create(AV, PLURAL, registry=reg)
    def permanent(**_: Any) -> None:
        calls["permanent"] += 1
        raise rc.PermanentError("no way")

    @rc.on.create(AV, PLURAL, retries=3, backoff=2, registry=reg)
    def limited(**_: Any) -> None:
        calls["limited"] += 1
        raise ValueError("boom")

    @rc.on.create(AV, PLURAL, timeout=10, registry=reg)
    def slow(**_: Any) -> None:
        calls["slow"] += 1
        raise rc.TemporaryError("later", delay=6)

    @rc.on.create(AV, PLURAL, registry=reg)
    def after(**_: Any) -> str:
        calls["after"] += 1
        return "ran"

    async with operator.running(async_client, registry=reg, namespaces=[namespace], clock=clock):
        await async_client.create(AV, PLURAL, helpers.widget("p1"), namespace=namespace)
        await helpers.eventually(lambda: calls["after"] == 1, what="later handlers run despite earlier failures")
        # backoff=2 doubles: 2 s, then 4 s; the third failure is the last (retries=3)
        for step in (2, 4, 6):
            await helpers.eventually(lambda: clock.sleepers > 0)
            await _advance(clock, step)

        async def finished() -> dict | None:
            obj = await _obj(async_client, namespace, "p1")
            return obj if state.last_handled(obj) is not None else None

        obj = await helpers.eventually(finished, what="the cause completes with failed handlers")
    assert calls == {"permanent": 1, "limited": 3, "slow": 2, "after": 1}
    assert obj["status"]["after"] == "ran"
    assert "permanent" not in obj["status"]
