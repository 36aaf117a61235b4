"""The Sync controller against a real (secured) API server: new revisions through the
GitRepository watch, intervals, selfHeal, requestedAt, dependsOn, and no work when nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import aio
from reconcile.core import webhookreceiver
from reconcile.gitops import artifacts, controller, syncs
from tests import support
from tests.gitops import syncsupport as s


@pytest.fixture
def store(tmp_path: Path) -> artifacts.ArtifactStore:
    return artifacts.ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
async def running(api_server: str, store: artifacts.ArtifactStore) -> AsyncIterator[controller.SyncController]:
    client = aio.AsyncClient(support.connection(api_server).client_config())
    ctl = controller.SyncController(client, store, dependency_requeue=600.0)
    await ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()
        await client.close()


async def eventually(condition: Any, *, what: str, timeout: float = 30.0) -> Any:
    """Polls gently (the server under test shares two cores with the rest of the suite)."""
    return await support.eventually(condition, timeout=timeout, interval=0.1, what=what)


async def _data(ac: Any, ns: str, name: str) -> dict | None:
    try:
        return (await ac.get("v1", "configmaps", name, namespace=ns)).get("data")
    except Exception:  # noqa: BLE001 - not there yet
        return None


async def _ready(ac: Any, ns: str, name: str) -> bool:
    return syncs.is_ready(await s.get_sync(ac, ns, name))


async def test_a_new_revision_is_applied_through_the_source_watch_and_nothing_is_done_otherwise(
        ac: Any, store: artifacts.ArtifactStore, running: controller.SyncController) -> None:
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))
    await s.sync(ac, ns, "app", "repo", interval="10m", retryInterval="1s")
    await eventually(lambda: _ready(ac, ns, "app"), what="first revision applied")
    assert await _data(ac, ns, "a") == {"k": "1"}
    second = s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "2"})})
    await s.git_repository(ac, ns, "repo", second)

    async def applied() -> bool:
        sync = await s.get_sync(ac, ns, "app")
        return sync["status"].get("lastAppliedRevision") == second.revision and syncs.is_ready(sync)

    await eventually(applied, what="second revision applied (well within the 10m interval)")
    assert await _data(ac, ns, "a") == {"k": "2"}

    async def event_posted() -> bool:
        listed = await ac.list("v1", "events", namespace=ns, field_selector="involvedObject.name=app")
        return any(e["reason"] == "ReconciliationSucceeded" and e["message"] == f"Applied revision: {second.revision}"
                   for e in listed["items"])

    await eventually(event_posted, what="an Event for the new revision")
    runs = running.runs[(ns, "app")]
    assert runs >= 2  # (more only if a request failed under load and was retried after 1s)
    # a barrier: another Sync made and applied after; the first still ran only twice
    await s.git_repository(ac, ns, "repo2", s.publish(store, ns, "repo2", {"b.yaml": s.configmap("b", {"k": "1"})}))
    await s.sync(ac, ns, "other", "repo2", interval="10m")
    await eventually(lambda: _ready(ac, ns, "other"), what="barrier Sync applied")
    assert running.runs[(ns, "app")] == runs  # our own status writes never woke the key again
    # requestedAt forces a run, recorded as lastHandledRequestedAt
    await ac.patch(syncs.API_VERSION, "syncs", "app",
                   {"metadata": {"annotations": {webhookreceiver.REQUESTED_AT: "now-1"}}}, namespace=ns)

    async def handled() -> bool:
        return (await s.get_sync(ac, ns, "app"))["status"].get("lastHandledRequestedAt") == "now-1"

    await eventually(handled, what="requestedAt handled")
    assert running.runs[(ns, "app")] >= runs + 1


async def test_self_heal_reverts_a_hand_edit_each_interval_and_without_it_the_edit_stays(
        ac: Any, store: artifacts.ArtifactStore, running: controller.SyncController) -> None:
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "heal", s.publish(store, ns, "heal", {"a.yaml": s.configmap("healed", {"k": "1"})}))
    await s.git_repository(ac, ns, "keep", s.publish(store, ns, "keep", {"a.yaml": s.configmap("kept", {"k": "1"})}))
    await s.sync(ac, ns, "heal", "heal", interval="1s", selfHeal=True)
    await s.sync(ac, ns, "keep", "keep", interval="1s")
    for name in ("heal", "keep"):
        await eventually(lambda name=name: _ready(ac, ns, name), what=f"{name} applied")
    for name in ("healed", "kept"):
        await ac.patch("v1", "configmaps", name, {"data": {"k": "edited"}}, namespace=ns)
    before = running.runs[(ns, "heal")]

    async def reverted() -> bool:
        return await _data(ac, ns, "healed") == {"k": "1"} and running.runs[(ns, "heal")] >= before + 2

    await eventually(reverted, what="selfHeal reverted the edit, intervals passed")
    assert await _data(ac, ns, "kept") == {"k": "edited"}
    assert running.runs[(ns, "keep")] == 1


async def test_depends_on_waits_until_the_dependency_is_ready(
        ac: Any, store: artifacts.ArtifactStore, running: controller.SyncController) -> None:
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "base", None)  # no artifact yet: "base" cannot become Ready
    await s.git_repository(ac, ns, "apps", s.publish(store, ns, "apps", {"a.yaml": s.configmap("app", {"k": "1"})}))
    await s.sync(ac, ns, "base", "base", interval="10m")
    await s.sync(ac, ns, "apps", "apps", interval="10m", dependsOn=[{"name": "base"}])

    async def waiting() -> bool:
        cond = s.condition(await s.get_sync(ac, ns, "apps"), "Ready") or {}
        return cond.get("reason") == "DependencyNotReady" and cond.get("message") == f"dependency '{ns}/base' is not ready"

    await eventually(waiting, what="apps waits for base")
    assert await _data(ac, ns, "app") is None
    await s.git_repository(ac, ns, "base", s.publish(store, ns, "base", {"b.yaml": s.configmap("base", {"k": "1"})}))
    # base becomes Ready, which wakes apps at once (the dependency requeue here is 10 minutes)
    await eventually(lambda: _ready(ac, ns, "apps"), what="apps applied after base")
    assert await _data(ac, ns, "app") == {"k": "1"}


async def test_suspended_syncs_are_left_alone(
        ac: Any, store: artifacts.ArtifactStore, running: controller.SyncController) -> None:
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))
    await s.sync(ac, ns, "paused", "repo", interval="10m", suspend=True)
    await s.sync(ac, ns, "barrier", "repo", interval="10m", targetNamespace=await s.namespace(ac, "b"))
    await eventually(lambda: _ready(ac, ns, "barrier"), what="barrier applied")
    assert running.runs[(ns, "paused")] == 0 and await _data(ac, ns, "a") is None
    await s.update_spec(ac, ns, "paused", suspend=False)
    await eventually(lambda: _ready(ac, ns, "paused"), what="resumed")


async def test_a_deleted_sync_prunes_its_objects_unless_prune_is_false(
        ac: Any, store: artifacts.ArtifactStore, running: controller.SyncController) -> None:
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))
    await s.git_repository(ac, ns, "kept", s.publish(store, ns, "kept", {"b.yaml": s.configmap("b", {"k": "1"})}))
    await s.sync(ac, ns, "app", "repo", interval="10m")
    await s.sync(ac, ns, "keep", "kept", interval="10m", prune=False)
    for name in ("app", "keep"):
        await eventually(lambda name=name: _ready(ac, ns, name), what=f"{name} applied")
        assert controller.FINALIZER in (await s.get_sync(ac, ns, name))["metadata"]["finalizers"]
    for name in ("app", "keep"):
        await ac.delete(syncs.API_VERSION, "syncs", name, namespace=ns)

    async def gone(name: str) -> bool:
        try:
            await s.get_sync(ac, ns, name)
        except Exception:  # noqa: BLE001 - NotFound: the finalizer let go
            return True
        return False

    for name in ("app", "keep"):
        await eventually(lambda name=name: gone(name), what=f"{name} finalized")
    assert await _data(ac, ns, "a") is None  # pruned with its Sync
    assert await _data(ac, ns, "b") == {"k": "1"}  # prune: false keeps it
