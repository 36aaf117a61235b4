"""Fuzzed PATCH of ConfigMaps, Deployments, Pods and Gadgets: JSON merge, JSON patch (RFC 6902),
strategic merge (built-ins only; the Gadget must refuse it with 415) and server-side apply.

Patches are drawn against the stored object (the fields it has, the lists with merge keys its
schema declares), so most reach the merge code and validation after it; apply also aims at missing
names (apply creates). Properties as for every write (`oracle`).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import bodies, inputs, oracle, schemas, tally, targets, wire
from tests.fuzz.profile import FUZZ

IDS = [t.plural for t in targets.ALL]
PATCHES = {
    "merge": ("application/merge-patch+json", inputs.merge_patch),
    "json": ("application/json-patch+json", inputs.json_patch),
    "strategic": ("application/strategic-merge-patch+json", inputs.strategic_patch),
}


def _patch(session: wire.Session, target: targets.Target, data: st.DataObject, kind: str) -> None:
    operation = f"patch-{kind} {target.plural}"
    tally.TALLY.example(operation)
    content_type, build = PATCHES[kind]
    name = session.fresh_name()
    before = session.subject(target, name, terminating=schemas.one_in(data.draw, 6))
    patch = build(data.draw, target, before)
    body = bodies.encode(data.draw, patch, content_type=content_type)
    params, dry_run = inputs.write_params(data.draw)
    request = wire.Request("PATCH", target.item(session.namespace, name), params, bodies.accept(data.draw), body)
    response, _, after = oracle.judged_write(session, target, request, operation=operation, name=name, before=before,
                                             dry_run=dry_run, table=schemas.one_in(data.draw, 3))
    if kind == "strategic" and not target.builtin:
        assert response.status_code >= 400, "a custom resource accepted a strategic merge patch"
    session.remove(target, name, after)


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_merge_patch(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    _patch(session, target, data, "merge")


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_json_patch(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    _patch(session, target, data, "json")


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_strategic_merge_patch(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    _patch(session, target, data, "strategic")


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_apply_patch(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"apply {target.plural}"
    tally.TALLY.example(operation)
    name = session.fresh_name()
    exists = not schemas.one_in(data.draw, 4)  # apply also creates
    before = session.subject(target, name, terminating=schemas.one_in(data.draw, 6)) if exists else None
    config = inputs.apply_config(data.draw, target, name)
    body = bodies.encode(data.draw, config, content_type="application/apply-patch+yaml")
    params, dry_run = inputs.write_params(data.draw, field_manager=not schemas.one_in(data.draw, 10))
    if schemas.one_in(data.draw, 3):
        params += (("force", data.draw(st.sampled_from(["true", "false", "x"]))),)
    request = wire.Request("PATCH", target.item(session.namespace, name), params, bodies.accept(data.draw), body)
    _, _, after = oracle.judged_write(session, target, request, operation=operation, name=name, before=before,
                                      dry_run=dry_run, table=schemas.one_in(data.draw, 3))
    session.remove(target, name, after)
