"""Fuzzed /status writes (Deployments, Pods, Gadgets) and /scale reads and writes (Deployments,
Gadgets).

Beyond the write properties (`oracle`): a status write changes nothing but the status; a scale
write changes nothing but the replicas, and the Scale it answers is the one a GET of /scale then
returns, with the object's replicas.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import bodies, inputs, mutations, oracle, schemas, tally, targets, wire
from tests.fuzz.profile import FUZZ

SCALE_SCHEMA: schemas.Schema = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string", "enum": ["autoscaling/v1"]},
        "kind": {"type": "string", "enum": ["Scale"]},
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32", "minimum": 0}}},
    },
}
SCALE_TARGET = targets.Target("scale", "Scale", "autoscaling", SCALE_SCHEMA, builtin=True)
STATUS_WRITES = ("put", "put", "merge", "json", "strategic", "apply")
SCALE_WRITES = ("get", "put", "put", "merge", "json", "strategic", "apply")
CONTENT_TYPES = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json", "apply": "application/apply-patch+yaml",
                 "put": "application/json"}


def _but(obj: dict[str, Any] | None, *paths: tuple[str, ...]) -> dict[str, Any] | None:
    if obj is None:
        return None
    return wire.without(obj, ("metadata", "resourceVersion"), *paths)


def _status_only(target: targets.Target) -> targets.Target:
    """The target with a schema of its status alone: what status writes draw from."""
    status = (target.schema.get("properties") or {}).get("status") or {}
    return targets.Target(target.plural, target.kind, target.group, {"type": "object", "properties": {"status": status}},
                          builtin=target.builtin)


@pytest.mark.parametrize("target", targets.WITH_STATUS, ids=[t.plural for t in targets.WITH_STATUS])
@FUZZ
@given(data=st.data())
def test_status(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"status {target.plural}"
    tally.TALLY.example(operation)
    name = session.fresh_name()
    before = session.subject(target, name, terminating=schemas.one_in(data.draw, 6))
    status_target = _status_only(target)
    how = data.draw(st.sampled_from(STATUS_WRITES))
    if how == "put":
        doc: Any = copy.deepcopy(before)
        inputs.overlay(data.draw, doc, status_target, fill=True)
        doc = inputs.maybe_mutate(data.draw, doc, status_target)
    elif how == "json":
        doc = inputs.json_patch(data.draw, status_target, before)
    else:
        doc = {"apiVersion": target.api_version, "kind": target.kind, "metadata": {"name": name}} if how == "apply" else {}
        inputs.overlay(data.draw, doc, status_target, fill=how == "apply")
        doc = inputs.maybe_mutate(data.draw, doc, status_target)
    body = bodies.encode(data.draw, doc, content_type=CONTENT_TYPES[how])
    params, dry_run = inputs.write_params(data.draw, field_manager=how == "apply")
    request = wire.Request("PUT" if how == "put" else "PATCH", target.item(session.namespace, name) + "/status", params,
                           bodies.accept(data.draw), body)
    response, answer, after = oracle.judged_write(session, target, request, operation=operation, name=name,
                                                  before=before, dry_run=dry_run, table=schemas.one_in(data.draw, 2))
    if response.status_code < 300:
        # the status, and who wrote it (managedFields: the write's entry, as upstream)
        owned = ("metadata", "managedFields")
        assert _but(after, ("status",), owned) == _but(before, ("status",), owned), \
            f"a status write changed more than the status\n  {request.reproduction(session.base_url)}\n  after: {after}"
    session.remove(target, name, after)


def _replicas(target: targets.Target, obj: dict[str, Any]) -> Any:
    return (obj.get("spec") or {}).get("replicas" if target.kind == "Deployment" else "size")


@pytest.mark.parametrize("target", targets.SCALED, ids=[t.plural for t in targets.SCALED])
@FUZZ
@given(data=st.data())
def test_scale(session: wire.Session, target: targets.Target, data: st.DataObject) -> None:
    operation = f"scale {target.plural}"
    tally.TALLY.example(operation)
    name = session.fresh_name()
    before = session.create(target, target.base(name))
    path = target.item(session.namespace, name) + "/scale"
    how = data.draw(st.sampled_from(SCALE_WRITES))
    if how == "get":
        request = wire.Request("GET", path, (), bodies.accept(data.draw))
        response, answer = session.send(request, operation=operation)
        if response.status_code == 200:
            assert answer["kind"] == "Scale" and answer["spec"]["replicas"] == _replicas(target, before), \
                request.reproduction(session.base_url)
        session.remove(target, name, before)
        return
    scale: Any = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                  "metadata": {"name": name, "namespace": session.namespace}, "spec": {}}
    if how == "json":
        scale = [{"op": data.draw(st.sampled_from(["replace", "add", "test", "remove"])),
                  "path": data.draw(st.sampled_from(["/spec/replicas", "/spec", "/status/replicas", "/metadata/name",
                                                     "/spec/replicas/x", ""])),
                  "value": data.draw(st.one_of(st.integers(0, 5), st.sampled_from(mutations.HOSTILE_INTS),
                                               schemas.ANY_JSON))}]
    else:
        inputs.overlay(data.draw, scale, SCALE_TARGET, fill=True)
        if data.draw(st.booleans()):
            scale["metadata"]["resourceVersion"] = inputs.resource_version(data.draw,
                                                                            before["metadata"]["resourceVersion"])
        scale = inputs.maybe_mutate(data.draw, scale, SCALE_TARGET)
    body = bodies.encode(data.draw, scale, content_type=CONTENT_TYPES[how])
    params, dry_run = inputs.write_params(data.draw, field_manager=how == "apply")
    request = wire.Request("PUT" if how == "put" else "PATCH", path, params, bodies.accept(data.draw), body)
    response, answer = session.send(request, operation=operation)
    after = session.stored(target, name)
    where = request.reproduction(session.base_url)
    if response.status_code >= 300 or dry_run:
        assert after == before, f"a failed or dry-run scale write changed the object\n  {where}\n  after: {after}"
    else:
        assert answer.get("kind") == "Scale", where
        assert after is not None and answer["spec"]["replicas"] == _replicas(target, after), \
            f"the Scale answered is not the object's replicas\n  {where}\n  after: {after}"
        replicas = ("spec", "replicas" if target.kind == "Deployment" else "size")
        owned = ("metadata", "managedFields")
        assert _but(after, replicas, ("metadata", "generation"), owned) == \
            _but(before, replicas, ("metadata", "generation"), owned), \
            f"a scale write changed more than the replicas\n  {where}\n  after: {after}"
        again = session.expect(wire.Request("GET", path), 200)
        assert again == answer, f"GET /scale differs from the Scale the write answered\n  {where}\n  again: {again}"
    session.remove(target, name, after)
