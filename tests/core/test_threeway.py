"""The client-side apply patch: deletions, changes, and server defaults left alone."""

from __future__ import annotations

from reconcile.core import threeway


def test_unchanged_when_server_only_added_defaults() -> None:
    applied = {"spec": {"replicas": 2, "containers": [{"name": "c", "image": "x:1"}]}}
    live = {"spec": {"replicas": 2, "paused": False,
                     "containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]},
            "status": {"replicas": 2}}
    assert threeway.merge_patch(applied, applied, live) == {}


def test_changes_and_removals() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "gone": "x"}}
    modified = {"metadata": {"labels": {"a": "1"}}, "data": {"k": "v2"}}
    live = {"metadata": {"labels": {"a": "1", "b": "2", "other": "keep"}}, "data": {"k": "v", "gone": "x"}}
    assert threeway.merge_patch(original, modified, live) == {
        "metadata": {"labels": {"b": None}}, "data": {"k": "v2", "gone": None}}


def test_list_changed_by_user_is_sent_whole() -> None:
    original = {"spec": {"args": ["a", "b"]}}
    modified = {"spec": {"args": ["a"]}}
    live = {"spec": {"args": ["a", "b"]}}
    assert threeway.merge_patch(original, modified, live) == {"spec": {"args": ["a"]}}
    # a field removed inside a list item
    original = {"spec": {"containers": [{"name": "c", "args": ["x"]}]}}
    modified = {"spec": {"containers": [{"name": "c"}]}}
    live = {"spec": {"containers": [{"name": "c", "args": ["x"], "imagePullPolicy": "Always"}]}}
    assert threeway.merge_patch(original, modified, live) == {"spec": {"containers": [{"name": "c"}]}}


def test_no_annotation_means_no_deletions() -> None:
    assert threeway.merge_patch(None, {"data": {"a": "1"}}, {"data": {"a": "1", "b": "2"}}) == {}
    assert threeway.merge_patch(None, {"data": {"a": 1}}, {"data": {"a": True}}) == {"data": {"a": 1}}
