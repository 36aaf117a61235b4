"""CronJob controller in-process against a real API server, on a FakeClock: minutes pass when the test
advances the clock, so a `* * * * *` schedule runs several times in seconds. No Job controller runs
here: the test stands in for it by marking Jobs Complete through /status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from reconcile.client import aio, api
from reconcile.controllers import context, cronjob, cronjobplan
from reconcile.controllers import informers as informers_mod
from reconcile.core import meta
from reconcile.engine import clock as clock_mod
from reconcile.engine import events as events_mod
from tests import support


def _cronjob(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"from": name}},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}],
                                               "restartPolicy": "OnFailure"}}}}, **spec}}


@pytest.fixture
async def started(api_server: str) -> AsyncIterator[dict[str, Any]]:
    """A client for `_start`; stops what `_start` started."""
    async with aio.AsyncClient(support.connection(api_server).client_config()) as ac:
        holder: dict[str, Any] = {"client": ac}
        try:
            yield holder
        finally:
            if "controller" in holder:
                await holder["controller"].controller.stop(timeout=5)
                holder["task"].cancel()
                await asyncio.gather(holder["task"], return_exceptions=True)
                await holder["informers"].stop()


async def _start(holder: dict[str, Any], created: dict[str, Any]) -> clock_mod.FakeClock:
    """Run the CronJob controller with its clock at `created`'s creationTimestamp (+1 s)."""
    ac = holder["client"]
    clock = clock_mod.FakeClock(wall_start=meta.parse_time(created["metadata"]["creationTimestamp"])
                                + timedelta(seconds=1))
    informers = informers_mod.SharedInformers(ac)
    ctx = context.ControllerContext(client=ac, informers=informers, clock=clock, workers=1,
                                    recorder=events_mod.EventRecorder(ac, component="cronjob-test", clock=clock))
    controller = cronjob.CronJobController(ctx)
    await informers.start()
    await informers.wait_synced(timeout=30)
    holder.update(controller=controller, informers=informers,
                  task=asyncio.get_running_loop().create_task(controller.controller.run()))
    return clock


def _jobs(client: api.Client, ns: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in client.list("batch/v1", "jobs", namespace=ns).get("items") or []
            if not j["metadata"].get("deletionTimestamp")}


def _complete(client: api.Client, ns: str, name: str) -> None:
    now = meta.now_rfc3339()
    client.patch("batch/v1", "jobs", name, {"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}},
        namespace=ns, subresource="status")


async def _eventually(clock: clock_mod.FakeClock, condition: Callable[[], Any], *, what: str,
                      timeout: float = 15.0) -> Any:
    """`support.eventually` that lets the fake clock keep pace with real time while it waits: work
    the controller retries after a failure (a Conflict on its status write while its informer lags,
    seen under load) waits on a backoff timer of this clock, which nothing else would fire. A wait
    starts just past a minute and lasts at most `timeout` seconds, so no further schedule time comes."""
    step = 0.05
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # not there yet
            last_error = exc
        else:
            if value:
                return value
        clock.advance(step)
        await clock.run_until_idle()
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: last error {last_error!r}")


async def _advance_to_next_minute(clock: clock_mod.FakeClock) -> None:
    wall = clock.wall()
    clock.advance(60 - wall.second - wall.microsecond / 1e6 + 1)
    await clock.run_until_idle()


async def test_a_minutely_cronjob_runs_each_minute_and_keeps_its_history(started, client: api.Client,
                                                                         ns: str) -> None:
    holder = started
    made = client.create("batch/v1", "cronjobs", _cronjob("tick", successfulJobsHistoryLimit=1), namespace=ns)
    clock = await _start(holder, made)
    await clock.run_until_idle()
    assert _jobs(client, ns) == {}  # no schedule time since creation yet
    await _advance_to_next_minute(clock)
    minute = clock.wall().replace(second=0, microsecond=0)
    first_name = cronjobplan.job_name("tick", minute)
    await _eventually(clock, lambda: first_name in _jobs(client, ns), what="the first job")
    first = _jobs(client, ns)[first_name]
    assert first["metadata"]["annotations"][cronjobplan.SCHEDULED_TIMESTAMP] == meta.format_time(minute)
    assert first["metadata"]["labels"] == {"from": "tick"}
    assert meta.controller_owner(first)["uid"] == made["metadata"]["uid"]
    assert first["spec"]["backoffLimit"] == 6  # defaulted as any new Job

    def status() -> dict[str, Any]:
        return client.get("batch/v1", "cronjobs", "tick", namespace=ns).get("status") or {}

    await _eventually(clock, lambda: [a["name"] for a in status().get("active", [])] == [first_name],
                             what="active lists the job")
    assert status()["lastScheduleTime"] == meta.format_time(minute)
    _complete(client, ns, first_name)
    await _eventually(clock, lambda: "active" not in status() and "lastSuccessfulTime" in status(),
                             what="the finished job leaves active")
    await _advance_to_next_minute(clock)
    second_name = cronjobplan.job_name("tick", clock.wall().replace(second=0, microsecond=0))
    await _eventually(clock, lambda: second_name in _jobs(client, ns), what="the second job")
    _complete(client, ns, second_name)
    # successfulJobsHistoryLimit 1: the first goes once the second has finished
    await _eventually(clock, lambda: set(_jobs(client, ns)) == {second_name}, what="history trimmed")


async def test_forbid_holds_a_time_back_while_a_job_runs(started, client: api.Client,
                                                                                 ns: str) -> None:
    holder = started
    client.create("batch/v1", "cronjobs", _cronjob("solo", concurrencyPolicy="Forbid"), namespace=ns)
    made = client.get("batch/v1", "cronjobs", "solo", namespace=ns)
    clock = await _start(holder, made)
    await _advance_to_next_minute(clock)
    await _eventually(clock, lambda: len(_jobs(client, ns)) == 1, what="the first job")
    await _eventually(clock, lambda: (client.get("batch/v1", "cronjobs", "solo", namespace=ns).get("status") or {})
                             .get("active"), what="active")
    await _advance_to_next_minute(clock)

    def skipped() -> bool:
        events = client.list("v1", "events", namespace=ns).get("items") or []
        return any(e["reason"] == "JobAlreadyActive" for e in events)

    await _eventually(clock, skipped, what="JobAlreadyActive")
    assert len(_jobs(client, ns)) == 1
    (only,) = _jobs(client, ns)
    skipped_minute = clock.wall().replace(second=0, microsecond=0)
    _complete(client, ns, only)
    # no startingDeadlineSeconds: the skipped time still runs, late, once the running job is done
    late = cronjobplan.job_name("solo", skipped_minute)
    await _eventually(clock, lambda: set(_jobs(client, ns)) == {only, late}, what="the late job")

    def status() -> dict[str, Any]:
        return client.get("batch/v1", "cronjobs", "solo", namespace=ns).get("status") or {}

    await _eventually(clock, lambda: [a["name"] for a in status().get("active", [])] == [late],
                             what="the late job listed active")
    assert status()["lastScheduleTime"] == meta.format_time(skipped_minute)
