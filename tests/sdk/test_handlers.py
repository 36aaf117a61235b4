"""Every change-handler kind against a real API server: create, update, field, resume, delete,
results in status, the `patch` kwarg, kwargs, filters, and the finalizer's life."""

from __future__ import annotations

from typing import Any

import reconcile as rc
from reconcile.client import aio
from reconcile.core import errors
from reconcile.engine.sdk import operator, state
from tests.sdk import helpers

AV, PLURAL = helpers.API_VERSION, helpers.PLURAL


async def _get(client: aio.AsyncClient, namespace: str, name: str, plural: str = PLURAL) -> dict[str, Any]:
    return await client.get(AV, plural, name, namespace=namespace)


async def test_create_update_delete_lifecycle(async_client: aio.AsyncClient, namespace: str) -> None:
    reg = rc.Registry()
    calls: list[tuple[Any, ...]] = []

    @rc.on.create(AV, PLURAL, registry=reg)
    def created(spec: dict, name: str, namespace: str, uid: str, labels: dict, retry: int, diff: Any,
                patch: rc.Patch, logger: Any, memo: rc.Memo, **_: Any) -> dict:
        calls.append(("create", name, spec["size"], retry, diff[0].operation))
        patch.status["phase"] = "Created"
        patch.metadata.setdefault("labels", {})["handled"] = "yes"
        logger.info("created %s", name)
        return {"message": f"hello {name}"}

    @rc.on.update(AV, PLURAL, registry=reg)
    async def updated(old: dict, new: dict, diff: Any, **_: Any) -> str:
        calls.append(("update", old["spec"]["size"], new["spec"]["size"], [tuple(d) for d in diff]))
        return "updated"

    @rc.on.delete(AV, PLURAL, registry=reg)
    def deleted(name: str, **_: Any) -> None:
        calls.append(("delete", name))

    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        await async_client.create(AV, PLURAL, helpers.widget("w1", spec={"size": 1}), namespace=namespace)

        async def created_ok() -> dict | None:
            obj = await _get(async_client, namespace, "w1")
            return obj if obj.get("status", {}).get("created") else None

        obj = await helpers.eventually(created_ok, what="create handled")
        assert obj["status"]["created"] == {"message": "hello w1"}
        assert obj["status"]["phase"] == "Created"
        assert obj["metadata"]["labels"]["handled"] == "yes"
        assert state.FINALIZER in obj["metadata"]["finalizers"]
        annotations = obj["metadata"]["annotations"]
        assert not [k for k in annotations if k.startswith(state.PROGRESS_PREFIX)]
        assert state.last_handled(obj) == {"spec": {"size": 1}, "metadata": {"labels": {"handled": "yes"}}}

        await async_client.patch(AV, PLURAL, "w1", {"spec": {"size": 3}}, namespace=namespace)

        async def updated_ok() -> bool:
            return (await _get(async_client, namespace, "w1")).get("status", {}).get("updated") == "updated"

        await helpers.eventually(updated_ok, what="update handled")
        # a status-only change is not an update
        await async_client.patch(AV, PLURAL, "w1", {"status": {"other": 1}}, namespace=namespace, subresource="status")
        await async_client.delete(AV, PLURAL, "w1", namespace=namespace)

        async def gone() -> bool:
            try:
                await _get(async_client, namespace, "w1")
            except errors.NotFound:
                return True
            return False

        await helpers.eventually(gone, what="object deleted after the delete handler")
    assert calls == [
        ("create", "w1", 1, 0, "add"),
        ("update", 1, 3, [("change", ("spec", "size"), 1, 3)]),
        ("delete", "w1"),
    ]


async def test_field_handler_and_filters(async_client: aio.AsyncClient, namespace: str) -> None:
    reg = rc.Registry()
    calls: list[tuple[Any, ...]] = []

    @rc.on.field(AV, PLURAL, field="spec.color", registry=reg)
    def color(old: Any, new: Any, diff: Any, **_: Any) -> None:
        calls.append(("color", old, new, [tuple(d) for d in diff]))

    @rc.on.create(AV, PLURAL, labels={"team": "a"}, registry=reg)
    def team_a(name: str, **_: Any) -> None:
        calls.append(("team-a", name))

    @rc.on.create(AV, PLURAL, labels={"skip": rc.ABSENT}, annotations={"note": rc.PRESENT}, registry=reg)
    def noted(name: str, **_: Any) -> None:
        calls.append(("noted", name))

    @rc.on.create(AV, PLURAL, labels={"tier": lambda v: v is not None and v.startswith("gold")},
                  when=lambda spec, **_: spec.get("size", 0) > 1, registry=reg)
    def gold_big(name: str, **_: Any) -> None:
        calls.append(("gold-big", name))

    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        objs = [
            helpers.widget("a", labels={"team": "a"}, spec={"size": 1}),
            helpers.widget("b", labels={"team": "b", "tier": "gold-1"}, spec={"size": 2, "color": "red"}),
            {**helpers.widget("c", labels={"skip": "1"}), "metadata": {"name": "c", "labels": {"skip": "1"},
                                                                       "annotations": {"note": "x"}}},
            {**helpers.widget("d"), "metadata": {"name": "d", "annotations": {"note": "x"}}},
        ]
        for obj in objs:
            await async_client.create(AV, PLURAL, obj, namespace=namespace)

        async def all_handled() -> bool:
            items = (await async_client.list(AV, PLURAL, namespace=namespace))["items"]
            return all(state.last_handled(o) is not None for o in items) and len(items) == 4

        await helpers.eventually(all_handled, what="all objects handled")
        await async_client.patch(AV, PLURAL, "b", {"spec": {"color": "blue"}}, namespace=namespace)
        await async_client.patch(AV, PLURAL, "a", {"spec": {"size": 5}}, namespace=namespace)  # not the field

        async def recolored() -> bool:
            return ("color", "red", "blue", [("change", (), "red", "blue")]) in calls

        await helpers.eventually(recolored, what="field handler on change")

        async def a_updated() -> bool:
            obj = await _get(async_client, namespace, "a")
            return state.last_handled(obj)["spec"]["size"] == 5

        await helpers.eventually(a_updated, what="last-handled moved on without a matching handler")
    assert sorted(c for c in calls if c[0] != "color") == [("gold-big", "b"), ("noted", "d"), ("team-a", "a")]
    assert [c for c in calls if c[0] == "color"] == [
        ("color", None, "red", [("add", (), None, "red")]),
        ("color", "red", "blue", [("change", (), "red", "blue")]),
    ]


async def test_resume_runs_once_per_operator_lifetime(async_client: aio.AsyncClient, namespace: str) -> None:
    reg = rc.Registry()
    calls: list[str] = []

    @rc.on.create(AV, PLURAL, registry=reg)
    def created(name: str, **_: Any) -> None:
        calls.append(f"create:{name}")

    @rc.on.resume(AV, PLURAL, registry=reg)
    def resumed(name: str, **_: Any) -> None:
        calls.append(f"resume:{name}")

    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        await async_client.create(AV, PLURAL, helpers.widget("r1"), namespace=namespace)
        await helpers.eventually(lambda: "create:r1" in calls)
    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        await helpers.eventually(lambda: "resume:r1" in calls)
        await async_client.patch(AV, PLURAL, "r1", {"metadata": {"labels": {"x": "1"}}}, namespace=namespace)

        async def handled() -> bool:
            obj = await _get(async_client, namespace, "r1")
            return (state.last_handled(obj) or {}).get("metadata") == {"labels": {"x": "1"}}

        await helpers.eventually(handled)
    assert calls == ["create:r1", "resume:r1"]


async def test_no_status_subresource_and_optional_delete(async_client: aio.AsyncClient, namespace: str) -> None:
    """Results land in the main object when the kind has no /status; optional delete adds no finalizer."""
    reg = rc.Registry()

    @rc.on.create(AV, "gadgets", registry=reg)
    def created(**_: Any) -> int:
        return 42

    @rc.on.delete(AV, "gadgets", optional=True, registry=reg)
    def deleted(**_: Any) -> None:
        pass

    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        await async_client.create(AV, "gadgets", helpers.widget("g1", kind="Gadget"), namespace=namespace)

        async def done() -> dict | None:
            obj = await _get(async_client, namespace, "g1", "gadgets")
            return obj if obj.get("status", {}).get("created") == 42 else None

        obj = await helpers.eventually(done)
        assert not obj["metadata"].get("finalizers")
        await async_client.delete(AV, "gadgets", "g1", namespace=namespace)


async def test_finalizer_only_when_needed_and_removed_when_handlers_go(
    async_client: aio.AsyncClient, namespace: str
) -> None:
    """An operator without delete handlers never holds objects; one that stops needing its
    finalizer removes it, so deletion never hangs on us."""
    with_delete = rc.Registry()

    @rc.on.delete(AV, PLURAL, registry=with_delete)
    def deleted(**_: Any) -> None:
        pass

    async with operator.running(async_client, registry=with_delete, namespaces=[namespace]):
        await async_client.create(AV, PLURAL, helpers.widget("f1"), namespace=namespace)

        async def has_finalizer() -> bool:
            obj = await _get(async_client, namespace, "f1")
            return state.FINALIZER in (obj["metadata"].get("finalizers") or [])

        await helpers.eventually(has_finalizer)

    without = rc.Registry()

    @rc.on.create(AV, PLURAL, registry=without)
    def created(**_: Any) -> None:
        pass

    async with operator.running(async_client, registry=without, namespaces=[namespace]):
        async def released() -> bool:
            return not await has_finalizer()

        await helpers.eventually(released, what="finalizer removed by an operator that does not need it")
        await async_client.delete(AV, PLURAL, "f1", namespace=namespace)

        async def gone() -> bool:
            try:
                await _get(async_client, namespace, "f1")
            except errors.NotFound:
                return True
            return False

        await helpers.eventually(gone)
        assert await gone()
