"""Watch semantics: initial events, resume from N, bookmarks, timeouts, selectors, 410, Table events."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api import helpers
from tests.api.helpers import MERGE, WatchReader, cm_path

BOOKMARK_INTERVAL = 0.5


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    """This module's server sends bookmarks every half second, so the test need not wait a minute."""
    return ("--bookmark-interval", str(BOOKMARK_INTERVAL))


def _rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_watch_from_unset_sends_synthetic_added_then_live(client: httpx.Client, api_server: str, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("a"))
    helpers.create(client, cm_path(ns), helpers.configmap("b"))
    with WatchReader(api_server, cm_path(ns), {}) as watch:
        initial = watch.wait_events(2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial] == [("ADDED", "a"), ("ADDED", "b")]
        helpers.create(client, cm_path(ns), helpers.configmap("c"))
        client.patch(cm_path(ns, "a"), json={"data": {"x": "1"}}, headers=MERGE)
        client.delete(cm_path(ns, "b"))
        events = watch.wait_events(5)
    assert watch.summary() == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert events[3]["object"]["data"] == {"x": "1"}
    live = [_rv(e["object"]) for e in events[2:]]
    assert live == sorted(live) and len(set(live)) == 3
    assert all(e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1" for e in events)


def test_watch_from_zero_is_like_unset(client: httpx.Client, api_server: str, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("a"))
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": "0"}) as watch:
        assert watch.wait_events(1)[0]["type"] == "ADDED"


def test_watch_from_n_is_strictly_after_n(client: httpx.Client, api_server: str, ns: str) -> None:
    a = helpers.create(client, cm_path(ns), helpers.configmap("a"))
    helpers.create(client, cm_path(ns), helpers.configmap("b"))
    client.patch(cm_path(ns, "a"), json={"data": {"v": "2"}}, headers=MERGE)
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": a["metadata"]["resourceVersion"]}) as watch:
        events = watch.wait_events(2)
        client.delete(cm_path(ns, "a"))
        watch.wait_events(3)
    assert watch.summary() == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "a")]
    revisions = [_rv(e["object"]) for e in events]
    assert all(r > _rv(a) for r in revisions) and revisions == sorted(revisions)


def test_bookmarks_on_idle_watch(client: httpx.Client, api_server: str, ns: str) -> None:
    listing = client.get(cm_path(ns)).json()
    params = {"resourceVersion": listing["metadata"]["resourceVersion"], "allowWatchBookmarks": "true"}
    with WatchReader(api_server, cm_path(ns), params) as watch:
        bookmark = watch.wait_for(lambda e: e["type"] == "BOOKMARK", timeout=5 * BOOKMARK_INTERVAL + 3)
    assert bookmark["object"]["kind"] == "ConfigMap" and bookmark["object"]["apiVersion"] == "v1"
    assert _rv(bookmark["object"]) >= int(listing["metadata"]["resourceVersion"])
    # Without allowWatchBookmarks a watch that outlives several intervals gets none.
    quiet = list(helpers.watch_lines(client, cm_path(ns), {"resourceVersion": listing["metadata"]["resourceVersion"],
                                                          "timeoutSeconds": "2"}))
    assert quiet == []


def test_timeout_seconds_closes_the_stream(client: httpx.Client, ns: str) -> None:
    started = time.monotonic()
    events = list(helpers.watch_lines(client, cm_path(ns), {"timeoutSeconds": "1"}, deadline=8))
    elapsed = time.monotonic() - started
    assert events == [] and 0.9 <= elapsed < 5


def test_label_selector_applies_to_watch(client: httpx.Client, api_server: str, ns: str) -> None:
    rv = client.get(cm_path(ns)).json()["metadata"]["resourceVersion"]
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": rv, "labelSelector": "app=web"}) as watch:
        helpers.create(client, cm_path(ns), helpers.configmap("other", labels={"app": "db"}))
        helpers.create(client, cm_path(ns), helpers.configmap("w", labels={"app": "web"}))
        client.patch(cm_path(ns, "w"), json={"data": {"k": "v"}}, headers=MERGE)
        client.patch(cm_path(ns, "w"), json={"metadata": {"labels": {"app": "db"}}}, headers=MERGE)
        client.patch(cm_path(ns, "other"), json={"metadata": {"labels": {"app": "web"}}}, headers=MERGE)
        client.delete(cm_path(ns, "other"))
        watch.wait_events(5)
    assert watch.summary() == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w"), ("ADDED", "other"),
                               ("DELETED", "other")]


def test_field_selector_applies_to_watch(client: httpx.Client, api_server: str, ns: str) -> None:
    rv = client.get(cm_path(ns)).json()["metadata"]["resourceVersion"]
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": rv, "fieldSelector": "metadata.name=target"}) as watch:
        helpers.create(client, cm_path(ns), helpers.configmap("noise"))
        helpers.create(client, cm_path(ns), helpers.configmap("target"))
        client.delete(cm_path(ns, "target"))
        watch.wait_events(2)
    assert watch.summary() == [("ADDED", "target"), ("DELETED", "target")]


def test_namespaced_and_cluster_wide_watch(client: httpx.Client, api_server: str, ns: str) -> None:
    other = helpers.make_namespace(client)
    rv = client.get("/api/v1/configmaps").json()["metadata"]["resourceVersion"]
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": rv}) as mine, \
            WatchReader(api_server, "/api/v1/configmaps", {"resourceVersion": rv}) as everything:
        helpers.create(client, cm_path(other), helpers.configmap("theirs"))
        helpers.create(client, cm_path(ns), helpers.configmap("mine"))
        mine.wait_events(1)
        everything.wait_events(2)
    assert mine.summary() == [("ADDED", "mine")]
    assert [e for e in everything.summary() if e[1] in ("theirs", "mine")] == [("ADDED", "theirs"), ("ADDED", "mine")]


def test_too_old_resource_version_is_in_stream_410(client: httpx.Client, ns: str) -> None:
    with client.stream("GET", cm_path(ns), params={"watch": "true", "resourceVersion": "1"}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.strip()]
    assert len(lines) == 1
    import json
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version: 1")
    assert client.get("/readyz").status_code == 200


def test_table_watch_events(client: httpx.Client, api_server: str, ns: str) -> None:
    helpers.create(client, helpers.pod_path(ns), helpers.pod("p1"))
    headers = {"Accept": helpers.TABLE_ACCEPT}
    with WatchReader(api_server, helpers.pod_path(ns), {}, headers=headers) as watch:
        first = watch.wait_events(1)[0]
        helpers.create(client, helpers.pod_path(ns), helpers.pod("p2"))
        second = watch.wait_events(2)[1]
    assert first["type"] == "ADDED" and second["type"] == "ADDED"
    assert first["object"]["kind"] == "Table" and first["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in first["object"]["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert not second["object"].get("columnDefinitions")
    assert first["object"]["rows"][0]["cells"][0] == "p1" and second["object"]["rows"][0]["cells"][0] == "p2"


def test_finalizer_deletion_as_seen_by_a_watch(client: httpx.Client, api_server: str, ns: str) -> None:
    body = helpers.configmap("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    created = helpers.create(client, cm_path(ns), body)
    with WatchReader(api_server, cm_path(ns), {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
        client.delete(cm_path(ns, "held"))
        marked = watch.wait_events(1)[0]
        client.patch(cm_path(ns, "held"), json={"metadata": {"finalizers": []}}, headers=MERGE)
        watch.wait_events(2)
    assert watch.summary() == [("MODIFIED", "held"), ("DELETED", "held")]
    assert marked["object"]["metadata"]["deletionTimestamp"]


STREAMING_LIST = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true"}


def _initial_events_end(event: dict) -> bool:
    annotations = event["object"]["metadata"].get("annotations") or {}
    return event["type"] == "BOOKMARK" and annotations.get("k8s.io/initial-events-end") == "true"


def test_a_streaming_list_ends_its_state_with_a_bookmark_to_resume_from(
        client: httpx.Client, api_server: str, ns: str) -> None:
    """sendInitialEvents=true (kopf's `initial_streaming`): the state, then a BOOKMARK annotated
    `k8s.io/initial-events-end` at the state's revision, newer than any object's (a client resuming
    from an object's own resourceVersion could be told 410), then live events."""
    helpers.create(client, cm_path(ns), helpers.configmap("a"))
    helpers.create(client, cm_path(ns), helpers.configmap("b"))
    later = helpers.create(client, cm_path(helpers.make_namespace(client)), helpers.configmap("elsewhere"))
    with WatchReader(api_server, cm_path(ns), STREAMING_LIST) as watch:
        end = watch.wait_for(_initial_events_end)
        helpers.create(client, cm_path(ns), helpers.configmap("c"))
        watch.wait_for(lambda e: e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "c")
    assert watch.status_code == 200
    until_end = watch.events[:watch.events.index(end)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in until_end if e["type"] != "BOOKMARK"] == [
        ("ADDED", "a"), ("ADDED", "b")]
    assert _rv(end["object"]) >= _rv(later) and (end["object"]["kind"], end["object"]["apiVersion"]) == ("ConfigMap", "v1")
    # resumed from the bookmark: what came after the state, and nothing of the state again
    resumed = list(helpers.watch_lines(client, cm_path(ns), {"resourceVersion": end["object"]["metadata"]["resourceVersion"],
                                                            "timeoutSeconds": "1"}))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in resumed] == [("ADDED", "c")]


def test_send_initial_events_false_starts_from_now_without_the_state(
        client: httpx.Client, api_server: str, ns: str) -> None:
    helpers.create(client, cm_path(ns), helpers.configmap("old"))
    params = dict(STREAMING_LIST, sendInitialEvents="false", allowWatchBookmarks="false")
    with WatchReader(api_server, cm_path(ns), params) as watch:
        helpers.create(client, cm_path(ns), helpers.configmap("new"))
        watch.wait_events(1)
    assert watch.summary() == [("ADDED", "new")]


@pytest.mark.parametrize("params", [{"sendInitialEvents": "true"},
                                    {"sendInitialEvents": "true", "resourceVersionMatch": "Exact"},
                                    {"resourceVersionMatch": "NotOlderThan"}])
def test_send_initial_events_and_resource_version_match_go_together(
        client: httpx.Client, ns: str, params: dict[str, str]) -> None:
    response = client.get(cm_path(ns), params=dict(params, watch="true", timeoutSeconds="1"))
    assert response.status_code == 400
    status = response.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "BadRequest", 400)
    assert status["message"].startswith("resourceVersionMatch: Forbidden: ")
