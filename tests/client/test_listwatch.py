"""The sans-I/O list and watch core, driven by scripted outcomes and by a simulated server (no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.client import listwatch, watching
from reconcile.client import options as options_mod
from reconcile.core import errors

TARGET = listwatch.Target("v1", "configmaps", "n")


def obj(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n", "resourceVersion": str(rv)}}


def page(names: list[str], rv: int, token: str = "") -> dict[str, Any]:
    return {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv), "continue": token},
            "items": [obj(n, rv) for n in names]}


def run_list(flow: listwatch.ListFlow, answers: list[Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Answer each Call with the next scripted body (an exception is thrown into the flow)."""
    sent: list[dict[str, str]] = []
    reply: Any = None
    failure: BaseException | None = None
    script = iter(answers)
    while True:
        try:
            action = flow.throw(failure) if failure is not None else flow.send(reply)
        except StopIteration as done:
            return done.value, sent
        assert isinstance(action, listwatch.Call)
        sent.append(dict(action.spec.params))
        answer = next(script)
        reply, failure = (None, answer) if isinstance(answer, BaseException) else (answer, None)


def test_list_follows_continue_tokens_and_merges_pages() -> None:
    options = options_mod.ListOptions(label_selector="app=web")
    body, sent = run_list(listwatch.list_pages(TARGET, options, page_size=2),
                          [page(["a", "b"], 5, "t1"), page(["c", "d"], 5, "t2"), page(["e"], 5)])
    assert [o["metadata"]["name"] for o in body["items"]] == ["a", "b", "c", "d", "e"]
    assert body["metadata"] == {"resourceVersion": "5", "continue": ""}
    assert sent == [{"labelSelector": "app=web", "limit": "2"},
                    {"labelSelector": "app=web", "limit": "2", "continue": "t1"},
                    {"labelSelector": "app=web", "limit": "2", "continue": "t2"}]


def test_list_with_an_expired_token_falls_back_to_one_full_list() -> None:
    body, sent = run_list(listwatch.list_pages(TARGET, page_size=2),
                          [page(["a", "b"], 5, "t1"), errors.Gone("compacted"), page(["a", "c", "d"], 9)])
    assert [o["metadata"]["name"] for o in body["items"]] == ["a", "c", "d"]  # nothing from the stale page
    assert body["metadata"]["resourceVersion"] == "9"
    assert sent[-1] == {}  # no limit, no token: everything at once


def test_list_errors_other_than_an_expired_token_propagate() -> None:
    with pytest.raises(errors.Gone):  # the first page itself: the caller's resourceVersion is too old
        run_list(listwatch.list_pages(TARGET), [errors.Gone("too old")])
    with pytest.raises(errors.ServiceUnavailable):
        run_list(listwatch.list_pages(TARGET, page_size=1), [page(["a"], 3, "t"), errors.ServiceUnavailable("x")])


def test_list_answer_that_is_not_an_object_is_an_error_not_a_crash() -> None:
    with pytest.raises(errors.InternalError):
        run_list(listwatch.list_pages(TARGET), [["not", "a", "list", "body"]])


class Script:
    """Drives a watch flow step by step: the test answers each action and reads what was emitted."""

    def __init__(self, flow: listwatch.WatchFlow) -> None:
        self.flow = flow
        self.action: listwatch.Action = next(flow)

    def answer(self, reply: Any = None) -> listwatch.Action:
        if isinstance(reply, BaseException):
            self.action = self.flow.throw(reply)
        else:
            self.action = self.flow.send(reply)
        return self.action

    def emitted(self) -> list[dict[str, Any]]:
        """Collect consecutive Emit actions (answering each), stopping at the next other action."""
        out = []
        while isinstance(self.action, listwatch.Emit):
            out.append(self.action.event)
            self.answer()
        return out


def resilient(cursor: watching.WatchCursor | None = None, **kwargs: Any) -> tuple[Script, watching.WatchCursor,
                                                                                  watching.Backoff]:
    cursor = cursor or watching.WatchCursor()
    backoff = watching.Backoff(initial=1.0, cap=8.0)
    options = kwargs.pop("options", options_mod.ListOptions(label_selector="app=web"))
    return Script(listwatch.resilient_watch(TARGET, options, cursor=cursor, backoff=backoff, **kwargs)), cursor, backoff


def test_resilient_watch_lists_then_watches_from_the_list_rv() -> None:
    script, cursor, _ = resilient()
    assert isinstance(script.action, listwatch.Call)
    assert script.action.spec.params == {"labelSelector": "app=web", "limit": "500"}
    script.answer(page(["a"], 7))
    events = script.emitted()
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["kind"] == "ConfigMap"  # filled from the list
    assert watching.is_initial_events_end(events[1])
    opened = script.action
    assert isinstance(opened, listwatch.OpenWatch)
    assert opened.spec.params == {"labelSelector": "app=web", "watch": "true", "resourceVersion": "7",
                                  "allowWatchBookmarks": "true"}
    assert opened.spec.read_timeout == listwatch.WATCH_IDLE_TIMEOUT
    assert isinstance(script.answer(), listwatch.NextEvent)
    script.answer({"type": "ADDED", "object": obj("b", 8)})
    assert [e["object"]["metadata"]["name"] for e in script.emitted()] == ["b"]
    assert cursor.resource_version == "8"


def test_resilient_watch_resumes_after_a_stream_ends_without_sleeping_when_it_progressed() -> None:
    script, cursor, backoff = resilient(watching.WatchCursor.starting_at("10"))
    assert isinstance(script.action, listwatch.OpenWatch)  # a position: no list
    script.answer()
    script.answer({"type": "MODIFIED", "object": obj("a", 11)})
    assert len(script.emitted()) == 1
    script.answer(None)  # the server ended the stream
    assert isinstance(script.action, listwatch.OpenWatch)
    assert script.action.spec.params["resourceVersion"] == "11"
    assert backoff.attempt == 0


def test_resilient_watch_drops_replays_and_backs_off_when_nothing_came() -> None:
    script, cursor, backoff = resilient(watching.WatchCursor.starting_at("10"))
    script.answer()
    script.answer({"type": "MODIFIED", "object": obj("a", 9)})  # before our position: already delivered
    assert script.emitted() == [] and cursor.dropped == 1
    script.answer(errors.ServiceUnavailable("connection reset"))
    assert isinstance(script.action, listwatch.Sleep) and 0.5 <= script.action.seconds <= 1.0
    script.answer()
    assert isinstance(script.action, listwatch.OpenWatch)
    script.answer(errors.InternalError("500"))  # opening failed too: a longer wait
    assert isinstance(script.action, listwatch.Sleep) and 1.0 <= script.action.seconds <= 2.0
    assert backoff.attempt == 2


def test_resilient_watch_relists_on_410_and_emits_the_difference() -> None:
    ghost = obj("ghost", 3)
    cursor = watching.WatchCursor(resource_version="3", known={("n", "ghost"): ghost}, needs_list=False)
    script, _, _ = resilient(cursor)
    script.answer()  # opened
    script.answer(errors.Gone("too old"))
    assert cursor.needs_list
    assert isinstance(script.action, listwatch.Sleep)  # nothing was delivered on that stream
    script.answer()
    assert isinstance(script.action, listwatch.Call)
    script.answer(page(["a"], 20))
    summary = [(e["type"], e["object"]["metadata"].get("name")) for e in script.emitted()]
    assert summary == [("DELETED", "ghost"), ("ADDED", "a"), ("BOOKMARK", None)]
    assert script.action.spec.params["resourceVersion"] == "20"  # type: ignore[union-attr]


def test_resilient_watch_lets_fatal_errors_through() -> None:
    script, _, _ = resilient(watching.WatchCursor.starting_at("10"))
    with pytest.raises(errors.Forbidden):
        script.answer(errors.Forbidden("no"))


def test_resilient_watch_sends_selection_but_never_paging_on_the_watch() -> None:
    options = options_mod.ListOptions(field_selector="spec.nodeName=n1", limit=3, continue_="stale",
                                      resource_version_match="Exact", timeout_seconds=30)
    script, _, _ = resilient(options=options)
    assert script.action.spec.params == {"fieldSelector": "spec.nodeName=n1", "limit": "500"}  # type: ignore[union-attr]
    script.answer(page([], 4))
    script.emitted()
    assert script.action.spec.params == {  # type: ignore[union-attr]
        "fieldSelector": "spec.nodeName=n1", "watch": "true", "resourceVersion": "4", "allowWatchBookmarks": "true",
        "timeoutSeconds": "30"}


def test_list_options_of_lays_keywords_over_options() -> None:
    base = options_mod.ListOptions(label_selector="a", limit=5)
    assert options_mod.ListOptions.of(base, label_selector=None, field_selector="f") == dataclasses.replace(
        base, field_selector="f")
    assert options_mod.ListOptions.of(None) == options_mod.ListOptions()
    with pytest.raises(TypeError):
        options_mod.ListOptions.of(None, labelselector="typo")


# --- a simulated server: whatever happens on the wire, the consumer converges ------------------


@dataclasses.dataclass
class Server:
    """An in-memory API: a history of writes, compaction, paged lists, watch streams that end early."""

    objects: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    history: list[tuple[int, str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    rv: int = 1
    compacted: int = 0  # watches from before this revision, and continue tokens of snapshots before it, are 410
    snapshots: dict[int, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def write(self, name: str, delete: bool) -> None:
        if delete:
            gone = self.objects.pop(name, None)
            if gone is not None:
                self.rv += 1
                self.history.append((self.rv, "DELETED", {**gone, "metadata": {**gone["metadata"],
                                                                            "resourceVersion": str(self.rv)}}))
            return
        self.rv += 1
        kind = "MODIFIED" if name in self.objects else "ADDED"
        self.objects[name] = obj(name, self.rv)
        self.history.append((self.rv, kind, self.objects[name]))

    def list(self, params: dict[str, str]) -> dict[str, Any]:
        limit = int(params.get("limit") or 0)
        token = params.get("continue")
        if token:
            snap_rv, offset = (int(part) for part in token.split(":"))
            if snap_rv < self.compacted:
                raise errors.Gone("continue token expired")
            items = self.snapshots[snap_rv]
        else:
            snap_rv, offset = self.rv, 0
            items = self.snapshots.setdefault(self.rv, sorted(self.objects.values(),
                                                              key=lambda o: o["metadata"]["name"]))
        chunk = items[offset: offset + limit] if limit else items[offset:]
        more = bool(limit) and offset + limit < len(items)
        return {"kind": "ConfigMapList", "apiVersion": "v1", "items": list(chunk),
                "metadata": {"resourceVersion": str(snap_rv), "continue": f"{snap_rv}:{offset + limit}" if more else ""}}

    def watch(self, params: dict[str, str], budget: int) -> Iterator[dict[str, Any]]:
        since = int(params["resourceVersion"])
        if since < self.compacted:
            raise errors.Gone("too old resource version")
        sent = 0
        for rv, kind, item in self.history:
            if rv > since:
                if sent == budget:
                    raise errors.ServiceUnavailable("connection dropped")
                sent += 1
                yield {"type": kind, "object": item}
        yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(self.rv)}}}


def drive(flow: listwatch.WatchFlow, server: Server, steps: list[tuple[str, Any]],
          picture: dict[str, dict[str, Any]], cursor: watching.WatchCursor) -> None:
    """Run the flow against the server; between actions, apply the scripted server-side steps."""
    pending = list(steps)
    stream: Iterator[dict[str, Any]] | None = None
    reply: Any = None
    failure: BaseException | None = None
    for _ in range(10_000):
        if pending:
            step, arg = pending.pop(0)
            if step == "write":
                server.write(*arg)
            elif step == "compact":
                server.compacted = server.rv
        elif versions(picture) == versions(server.objects) and cursor.resource_version == str(server.rv):
            return
        action = flow.throw(failure) if failure is not None else flow.send(reply)
        reply, failure = None, None
        try:
            if isinstance(action, listwatch.Emit):
                event = action.event
                name = (event["object"].get("metadata") or {}).get("name")
                if event["type"] == "DELETED":
                    picture.pop(name, None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    picture[name] = event["object"]
            elif isinstance(action, listwatch.Call):
                reply = server.list(action.spec.params)
            elif isinstance(action, listwatch.OpenWatch):
                budget = arg_budget(pending)
                stream = server.watch(action.spec.params, budget)
            elif isinstance(action, listwatch.NextEvent):
                reply = next(stream, None) if stream is not None else None
                if reply is None:
                    stream = None
        except errors.ApiError as exc:
            failure, stream = exc, None
    raise AssertionError(f"did not converge: cursor at {cursor.resource_version}, server at {server.rv}")


def versions(objects: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: o["metadata"]["resourceVersion"] for name, o in objects.items()}


def arg_budget(pending: list[tuple[str, Any]]) -> int:
    """How many events the next stream delivers before it drops (scripted, else unbounded)."""
    for index, (step, arg) in enumerate(pending):
        if step == "drop":
            del pending[index]
            return int(arg)
    return 1_000_000


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.tuples(st.sampled_from("abcde"), st.booleans())),
        st.tuples(st.just("compact"), st.none()),
        st.tuples(st.just("drop"), st.integers(min_value=0, max_value=3)),
        st.tuples(st.just("idle"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(initial=st.lists(st.sampled_from("abcde"), unique=True), steps=STEPS, page_size=st.integers(1, 3))
def test_consumer_converges_on_the_server_whatever_the_wire_does(initial: list[str], steps: list[tuple[str, Any]],
                                                                 page_size: int) -> None:
    server = Server()
    for name in initial:
        server.write(name, False)
    cursor = watching.WatchCursor()
    backoff = watching.Backoff(initial=0.0, cap=0.0)
    picture: dict[str, dict[str, Any]] = {}
    flow = listwatch.resilient_watch(TARGET, cursor=cursor, backoff=backoff, page_size=page_size)
    drive(flow, server, steps, picture, cursor)
    assert versions(picture) == versions(server.objects)  # every object at its newest version; nothing deleted
    assert {key[1] for key in cursor.known} == set(server.objects)


def test_backoff_stays_capped_after_any_number_of_failures() -> None:
    """A server unreachable for hours must not overflow the delay (that would end the watch)."""
    backoff = watching.Backoff(initial=0.1, cap=30.0)
    backoff.attempt = 100_000
    assert 15.0 <= backoff.next() <= 30.0
