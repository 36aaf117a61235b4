"""Fuzzed DELETE of ConfigMaps, Deployments, Pods and Gadgets with random DeleteOptions (body and
query), on objects that may hold finalizers (deletion waits) or be pods bound to a node (graceful).

Properties: an error or a dry run leaves the object as it was; a 2xx delete either removed it (a
GET is 404) or marked it (the stored object is the one answered, with a deletionTimestamp).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import bodies, inputs, oracle, schemas, tally, targets, wire
from tests.fuzz.profile import FUZZ

IDS = [t.plural for t in targets.ALL]


def _subject(data: st.DataObject, target: targets.Target, name: str) -> dict[str, Any]:
    obj = target.base(name)
    if schemas.one_in(data.draw, 3):
        obj["metadata"]["finalizers"] = ["example.com/hold"]
    if target.kind == "Pod" and schemas.one_in(data.draw, 3):
        obj["spec"]["nodeName"] = "node-a"
    return obj


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_delete(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"delete {target.plural}"
    tally.TALLY.example(operation)
    name = session.fresh_name()
    before = session.create(target, _subject(data, target, name))
    options, params, dry_run = inputs.delete_options(data.draw, before)
    body = None if options is None else bodies.encode(data.draw, options, content_type="application/json")
    request = wire.Request("DELETE", target.item(session.namespace, name), params, bodies.accept(data.draw), body)
    response, answer = session.send(request, operation=operation)
    after = session.stored(target, name)
    where = request.reproduction(session.base_url)
    if response.status_code >= 300 or dry_run:
        assert after == before, f"a failed or dry-run delete changed the object\n  {where}\n  after: {after}"
    elif answer.get("kind") == "Status":
        assert answer.get("status") == "Success" and after is None, f"a delete said Success but left {after}\n  {where}"
    else:
        oracle.check_object(target, answer, request, session, response)
        if after is not None:
            assert after == answer and after["metadata"].get("deletionTimestamp"), \
                f"a delete that did not remove the object did not mark it as answered\n  {where}\n  after: {after}"
    session.remove(target, name, after)
