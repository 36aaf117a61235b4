"""Metadata helpers: timestamps, kubectl's ages, dotted paths, keys and controller refs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from reconcile.core import meta, names


def test_timestamps() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.now_rfc3339())
    want = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert meta.parse_time("2024-01-02T03:04:05Z") == want
    assert meta.parse_time("2024-01-02T03:04:05+00:00") == want
    assert meta.parse_time("2024-01-02T05:04:05+02:00") == want
    assert meta.parse_time("2024-01-02T03:04:05.123456789Z") == want.replace(microsecond=123456)
    assert meta.parse_time("2024-01-02T03:04:05.5Z") == want.replace(microsecond=500000)
    assert meta.format_time(meta.parse_time("2024-01-02T03:04:05.9Z")) == "2024-01-02T03:04:05Z"
    with pytest.raises(ValueError):
        meta.parse_time("yesterday")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (5 * 60 + 10, "5m10s"),
        (15 * 60, "15m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (20 * 3600, "20h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 4 * 3600, "2d4h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
        (3 * 365 * 86400 + 20 * 86400, "3y20d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert meta.human_duration(seconds) == text


def test_human_age() -> None:
    now = datetime(2024, 1, 1, 1, 0, 0, tzinfo=UTC)
    assert meta.human_age("2024-01-01T00:55:00Z", now) == "5m"
    assert meta.human_age(now - timedelta(days=2), now) == "2d"
    assert meta.human_age(None, now) == "<unknown>"
    assert meta.human_age("", now) == "<unknown>"


def test_paths_keys_and_owners() -> None:
    obj = {
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "ownerReferences": [
                {"kind": "Other", "name": "x", "uid": "1"},
                {"kind": "ReplicaSet", "name": "web", "uid": "2", "controller": True},
            ],
        },
        "spec": {"containers": [{"image": "nginx"}], "replicas": 0},
    }
    assert meta.get_path(obj, "spec.replicas") == 0
    assert meta.get_path(obj, ".spec.containers.0.image") == "nginx"
    assert meta.get_path(obj, "spec.containers.5.image") is None
    assert meta.get_path(obj, "spec.nope.x", default="-") == "-"
    assert meta.object_key("default", "web") == "default/web"
    assert meta.object_key(None, "node-1") == "node-1"
    assert meta.key_of(obj) == "default/web-1"
    assert meta.controller_owner(obj) == {"kind": "ReplicaSet", "name": "web", "uid": "2", "controller": True}
    assert meta.controller_owner({"metadata": {}}) is None


def test_names() -> None:
    assert names.qualified_name_errors("example.com/app") == []
    assert names.qualified_name_errors("App_1.x") == []
    assert names.qualified_name_errors("/x") == ["prefix part must be non-empty"]
    assert names.qualified_name_errors("x/") == ["name part must be non-empty"]
    assert names.qualified_name_errors("a" * 64) == ["name part must be no more than 63 characters"]
    assert names.label_value_errors("") == []
    assert names.label_value_errors("ok\n") != []
    assert names.dns1123_subdomain_errors("web.example") == []
    assert names.dns1123_subdomain_errors("Web") != []
    assert names.dns1123_label_errors("a.b") != []
    assert names.dns1035_label_errors("web-1") == []
    assert names.dns1035_label_errors("1web") != []
    assert names.qualified_name_errors("/") == ["prefix part must be non-empty", "name part must be non-empty"]


def test_name_checks_are_memoized_but_hand_out_fresh_lists() -> None:
    first = names.qualified_name_errors("bad key!")
    first.append("changed by a caller")
    assert names.qualified_name_errors("bad key!") == first[:-1]
    assert names.qualified_name_errors("bad key!") is not names.qualified_name_errors("bad key!")


def test_epoch_seconds_of_a_field_that_may_hold_anything() -> None:
    assert meta.epoch_seconds("1970-01-01T00:01:40Z") == 100.0
    assert meta.epoch_seconds("2026-12-04T03:00:00.123456789+00:00") == pytest.approx(
        datetime(2026, 12, 4, 3, tzinfo=UTC).timestamp() + 0.123456)
    for junk in (None, "", "yesterday", 1700000000, ["2026-12-04T03:00:00Z"], {}):
        assert meta.epoch_seconds(junk) is None
