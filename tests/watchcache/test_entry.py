"""A cache entry keeps what reads need and no more: served bytes for GETs and plain lists, the decoded
object only once something (a selector, a write, a watch filter) asks for it."""

from __future__ import annotations

import sys

import orjson

from reconcile.api import watchcache

STORED = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v" * 2000}})


def _entry() -> watchcache.Entry:
    return watchcache.Entry.decode("/registry/configmaps/default/a", STORED, 42, create_revision=7)


def test_serving_bytes_does_not_keep_the_decoded_object() -> None:
    entry = _entry()
    assert entry.decodable
    raw = entry.raw
    assert orjson.loads(raw)["metadata"]["resourceVersion"] == "42"
    held = sys.getsizeof(entry.value) + sys.getsizeof(raw)
    # What the entry holds is its two byte strings: no dict of ~the object's size hangs off it.
    assert entry._obj is None, "a GET or a plain list must not pin the decoded object"
    assert held < 3 * len(STORED)


def test_the_object_decoded_later_equals_the_served_bytes() -> None:
    entry = _entry()
    raw = entry.raw
    assert entry.obj == orjson.loads(raw)
    assert entry.obj is entry.obj  # kept once asked for: selectors and watches decode once


def test_an_unreadable_entry_is_not_decodable() -> None:
    entry = watchcache.Entry.decode("/registry/configmaps/default/b", b"not json", 3)
    assert not entry.decodable
