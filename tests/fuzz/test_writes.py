"""Fuzzed create (POST) and replace (PUT) of ConfigMaps, Deployments, Pods and Gadgets.

A create's body is the target's known-good object with schema-drawn fields set and, half the time,
mutations; a replace's body is the stored object so changed, with its resourceVersion current,
stale or broken. Properties: those of every answer (`wire`), and of every write (`oracle`); a failed
create leaves the namespace's objects as they were.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import bodies, inputs, oracle, schemas, tally, targets, wire
from tests.fuzz.profile import FUZZ

IDS = [t.plural for t in targets.ALL]
MISSING_NAMESPACES = ("fz-missing", "UPPER", "a%20b", "kube-system-nope")


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_create(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"create {target.plural}"
    tally.TALLY.example(operation)
    name = None if schemas.one_in(data.draw, 8) else session.fresh_name()
    doc = inputs.whole_object(data.draw, target, target.base(name or "generated"), name)
    body = bodies.encode(data.draw, doc, content_type="application/json")
    params, dry_run = inputs.write_params(data.draw)
    namespace = session.namespace
    if schemas.one_in(data.draw, 20):
        namespace = data.draw(st.sampled_from(MISSING_NAMESPACES))
    request = wire.Request("POST", target.collection(namespace), params, bodies.accept(data.draw), body)
    listed = session.listed(target)
    response, answer = session.send(request, operation=operation)
    if response.status_code < 300:
        assert response.status_code == 201, request.reproduction(session.base_url)
        oracle.check_object(target, answer, request, session, response)
        created = answer["metadata"]["name"]
        stored = session.stored(target, created)
        oracle.check_write(target, request, session, response, answer, before=None, after=stored, dry_run=dry_run)
        if stored is not None and schemas.one_in(data.draw, 3):
            session.table_of(target, created)
        session.remove(target, created, stored)
    else:
        oracle.check_unchanged_list(request, session, response, listed, session.listed(target))


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_replace(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"replace {target.plural}"
    tally.TALLY.example(operation)
    name = session.fresh_name()
    before = session.subject(target, name, terminating=schemas.one_in(data.draw, 6))
    doc = inputs.whole_object(data.draw, target, before, name)
    if schemas.one_in(data.draw, 4) and isinstance(doc.get("metadata"), dict):
        doc["metadata"]["resourceVersion"] = inputs.resource_version(data.draw, before["metadata"]["resourceVersion"])
    aimed = session.fresh_name() if schemas.one_in(data.draw, 20) else name  # now and then a missing object
    body = bodies.encode(data.draw, doc, content_type="application/json")
    params, dry_run = inputs.write_params(data.draw)
    request = wire.Request("PUT", target.item(session.namespace, aimed), params, bodies.accept(data.draw), body)
    _, _, after = oracle.judged_write(session, target, request, operation=operation, name=aimed,
                                      before=before if aimed == name else None, dry_run=dry_run,
                                      table=schemas.one_in(data.draw, 3))
    session.remove(target, aimed, after)
    if aimed != name:
        assert session.stored(target, name) == before, "a write to another name changed this object"
        session.remove(target, name, before)
