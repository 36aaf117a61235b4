"""Fuzzed get, list and watch of ConfigMaps, Deployments, Pods and Gadgets, over a fixed population.

The module creates a few objects of each resource with varied labels and never changes them, so
every answer can be judged exactly: a GET returns the stored object; every listed item is one of
the population, unchanged, in the namespace; a label or name selector the oracle understands
selects exactly what it should; a limit is honoured; a watch (always `timeoutSeconds=1`) ends by
itself and every event it sends is well formed (an ERROR carries a Status).

Reads never ask for a resourceVersion in the future but inside int64: upstream waits for it (3s
here) and answers 504 "Too large resource version", which client-go's reflector relies on; that one
5xx is upstream's contract, and fuzzing it would only spend the short form's time waiting.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import bodies, inputs, schemas, tally, targets, wire
from tests.fuzz.profile import FUZZ

IDS = [t.plural for t in targets.ALL]
POPULATION_LABELS = ({"app": "web", "tier": "front"}, {"app": "web", "tier": "back"}, {"app": "db"},
                     {"tier": "front", "x.example.com/team": "a"}, {})
ODD_NAMES = ("nope", "..", ".", "a b", "名前", "x" * 300, "%", "a%2Fb", "UPPER", "-", "fz0/status", "fz0/scale",
             "fz0/bogus", "\x00", "~")
EVENT_TYPES = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"}
_TERM = re.compile(r"^(!?)([A-Za-z0-9./_-]+)(?:(!=|=)([A-Za-z0-9._-]*)| in \(([A-Za-z0-9._-]*),zz\))?$")


@pytest.fixture(scope="module")
def population(session: wire.Session) -> dict[str, dict[str, dict[str, Any]]]:
    """plural -> name -> the stored object, for each target."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target in targets.ALL:
        stored = [session.create(target, target.base(f"pop{i}", labels=labels))
                  for i, labels in enumerate(POPULATION_LABELS)]
        out[target.plural] = {obj["metadata"]["name"]: obj for obj in stored}
    return out


@pytest.fixture(scope="module")
def revision(session: wire.Session, population: dict[str, Any]) -> int:
    """The store's revision once the population is written (nothing in this module writes after)."""
    listed = session.expect(wire.Request("GET", targets.CONFIGMAPS.collection(session.namespace)), 200)
    return int(listed["metadata"]["resourceVersion"])


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_get(session: wire.Session, population: dict[str, Any], target: targets.Target, data: st.DataObject) -> None:
    operation = f"get {target.plural}"
    tally.TALLY.example(operation)
    objects = population[target.plural]
    name = data.draw(st.sampled_from(sorted(objects))) if not schemas.one_in(data.draw, 4) else \
        data.draw(st.sampled_from(ODD_NAMES))
    stored = objects.get(name)
    params: tuple[tuple[str, str], ...] = ()
    if data.draw(st.booleans()):
        current = int(stored["metadata"]["resourceVersion"]) if stored else 1
        params = (("resourceVersion", inputs.read_resource_version(data.draw, current)),)
    if schemas.one_in(data.draw, 5):
        extras = [("includeObject", "Object"), ("includeObject", "x"), ("watch", "true"), ("labelSelector", "a in ("),
                  ("pretty", "true")]
        if name in (".", ".."):  # the client sends the collection's path (dot segments are removed), and a
            extras.remove(("watch", "true"))  # watch of the collection streams until the client goes
        params += (data.draw(st.sampled_from(extras)),)
    accept = bodies.accept(data.draw)
    path = target.item(session.namespace, name if "/" in name else wire.segment(name))
    request = wire.Request("GET", path, params, accept)
    response, body = session.send(request, operation=operation)
    if response.status_code == 200 and stored is not None and "/" not in name:
        if "as=Table" in accept.get("Accept", ""):
            assert body["kind"] == "Table" and len(body["rows"]) == 1, request.reproduction(session.base_url)
        else:
            assert body == stored, f"GET answered another object than the stored one\n  {request.reproduction(session.base_url)}"


def _selects(selector: str | None, labels: dict[str, str]) -> bool | None:
    """Whether the label selector selects `labels` (None: a selector this oracle does not read)."""
    if selector is None:
        return True
    for term in selector.split(","):
        match = _TERM.match(term)
        if not match:
            return None
        negated, key, op, value, in_value = match.groups()
        if negated:
            if op or in_value is not None:
                return None
            if key in labels:
                return False
        elif in_value is not None:
            if labels.get(key) not in (in_value, "zz"):
                return False
        elif op == "=":
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if key in labels and labels[key] == value:
                return False
        elif key not in labels:
            return False
    return True


def _check_items(session: wire.Session, request: wire.Request, target: targets.Target, items: list[Any],
                 objects: dict[str, Any]) -> None:
    where = request.reproduction(session.base_url)
    for item in items:
        name = (item.get("metadata") or {}).get("name")
        assert item.get("kind", target.kind) == target.kind, where
        assert objects.get(name) is not None, f"listed an object that is not in the namespace: {name}\n  {where}"
        expected = dict(objects[name])
        if "kind" not in item:  # list items may leave out their kind and apiVersion, as upstream's do
            expected.pop("kind", None)
            expected.pop("apiVersion", None)
        assert item == expected, f"a listed object differs from the stored one: {name}\n  {where}"


@pytest.mark.parametrize("target", targets.ALL, ids=IDS)
@FUZZ
@given(data=st.data())
def test_list(session: wire.Session, population: dict[str, Any], revision: int, target: targets.Target,
              data: st.DataObject) -> None:
    operation = f"list {target.plural}"
    tally.TALLY.example(operation)
    objects = population[target.plural]
    token = None
    if schemas.one_in(data.draw, 4):
        first = session.expect(wire.Request("GET", target.collection(session.namespace), (("limit", "2"),)), 200)
        token = first["metadata"].get("continue")
    params, watching = inputs.list_params(data.draw, current=revision,
                                            known=[o["metadata"].get("labels") or {} for o in objects.values()],
                                            names=sorted(objects), token=token)
    request = wire.Request("GET", target.collection(session.namespace), params, bodies.accept(data.draw))
    if watching:
        _judge_watch(session, request, target, objects, operation)
        return
    response, body = session.send(request, operation=operation)
    if response.status_code != 200:
        return
    where = request.reproduction(session.base_url)
    if body.get("kind") == "Table":
        assert isinstance(body.get("rows"), list), where
        return
    assert body.get("kind") == target.list_kind and isinstance(body.get("items"), list), where
    items = body["items"]
    _check_items(session, request, target, items, objects)
    query = dict(params)
    limit = query.get("limit", "")
    if limit.isdigit() and int(limit) > 0:
        assert len(items) <= int(limit), f"more items than the limit\n  {where}"
    if query.get("fieldSelector") or query.get("continue") or (limit.isdigit() and int(limit) > 0) or \
            query.get("resourceVersionMatch") == "Exact" or (limit and not limit.isdigit()):
        return
    chosen = {name for name, obj in objects.items()
              if _selects(query.get("labelSelector"), obj["metadata"].get("labels") or {})}
    if all(_selects(query.get("labelSelector"), o["metadata"].get("labels") or {}) is not None for o in objects.values()):
        got = {item["metadata"]["name"] for item in items}
        assert got == chosen, f"the list selected {sorted(got)}, not {sorted(chosen)}\n  {where}"


def _judge_watch(session: wire.Session, request: wire.Request, target: targets.Target, objects: dict[str, Any],
                 operation: str) -> None:
    code, events = session.watch(request, operation=operation)
    where = request.reproduction(session.base_url)
    table = "as=Table" in request.headers.get("Accept", "")
    for event in events:
        assert isinstance(event, dict) and event.get("type") in EVENT_TYPES, f"a malformed event {event!r}\n  {where}"
        obj = event.get("object")
        if event["type"] == "ERROR":
            wire.check_status(obj, obj.get("code") if isinstance(obj, dict) else None,
                              lambda why, shown=obj: wire.PropertyFailure(f"watch ERROR event: {why}: {shown!r}\n  {where}"))
            assert 400 <= obj["code"] < 500, f"a watch ERROR with a 5xx Status {obj!r}\n  {where}"
        elif table:
            assert isinstance(obj, dict) and obj.get("kind") == "Table", where
        elif event["type"] != "BOOKMARK":
            _check_items(session, request, target, [obj], objects)
