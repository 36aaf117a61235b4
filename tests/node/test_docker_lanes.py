"""`DockerRuntime` keeps background sampling off the threads pod syncs use.

Found in `bench/runtime.py`: under load the engine takes about a second per `stats` call, and the
stats sampler's round (one call per running container, every 15 s) queued ahead of every pod
sync's create and start in one thread pool, holding them for five seconds. The engine here is a
real dockerd; only its slowness at `stats` is a test double.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import docker as docker_sdk
import pytest

from reconcile.node import docker as docker_mod
from tests import docker_support

RELEASE_TIMEOUT = 30.0


async def test_stats_calls_never_hold_the_pods_calls(docker_node: docker_support.DockerDaemon,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def stats_as_slow_as_a_loaded_engine(self: Any, container: str, **kwargs: Any) -> dict:
        entered.release()
        release.wait(RELEASE_TIMEOUT)
        return {"id": container}

    monkeypatch.setattr(docker_sdk.APIClient, "stats", stats_as_slow_as_a_loaded_engine)
    runtime = docker_mod.DockerRuntime(docker_node.host, max_workers=2)
    try:
        # more stats calls than the pods' pool has threads, as a round over a busy node has
        queued = [asyncio.ensure_future(runtime.stats(f"c{i}")) for i in range(8)]
        assert await asyncio.to_thread(entered.acquire, timeout=RELEASE_TIMEOUT)  # the engine holds one
        info = await asyncio.wait_for(runtime.info(), timeout=10)  # a pod's call answers meanwhile
        assert info.get("ServerVersion")
        assert not any(call.done() for call in queued)
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(*queued), timeout=RELEASE_TIMEOUT)
        assert answers == [{"id": f"c{i}"} for i in range(8)]
    finally:
        release.set()
        await runtime.close()
