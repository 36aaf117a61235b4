"""Values: merge order, Helm's --set paths (lists, escapes, types), null deletes, dependencies' values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.charting import chart, values
from tests.charts.chartkit import write_chart


def test_deep_merge_maps_merge_lists_replace_null_deletes() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1, 2, 3], "gone": "x"}
    assert values.deep_merge(base, {"a": {"c": 3, "d": 4}, "l": [9], "gone": None}) == {
        "a": {"b": 1, "c": 3, "d": 4}, "l": [9]}
    assert base == {"a": {"b": 1, "c": 2}, "l": [1, 2, 3], "gone": "x"}  # inputs untouched


@pytest.mark.parametrize(("expression", "expected"), [
    ("a=1", {"a": 1}),
    ("a.b=c,d=true", {"a": {"b": "c"}, "d": True}),
    ("a.b[0].c=1", {"a": {"b": [{"c": 1}]}}),
    ("a[1]=x", {"a": [None, "x"]}),
    ("a[0][1]=x", {"a": [[None, "x"]]}),
    (r"a\.b=1", {"a.b": 1}),
    (r"a=x\,y", {"a": "x,y"}),
    ("a={x,y,3}", {"a": ["x", "y", 3]}),
    ("a=null", {"a": None}),
    ("a=", {"a": ""}),
    ("a=01", {"a": "01"}),
    (r"nodeSelector.kubernetes\.io/role=master", {"nodeSelector": {"kubernetes.io/role": "master"}}),
    ("name=a=b", {"name": "a=b"}),
])
def test_set_paths(expression: str, expected: dict) -> None:
    assert values.parse_set(expression) == expected


def test_set_string_and_set_json() -> None:
    assert values.parse_set("a=1,b=true", kind="set-string") == {"a": "1", "b": "true"}
    assert values.parse_set('a={"b":[1,2],"c":null}', kind="set-json") == {"a": {"b": [1, 2], "c": None}}
    with pytest.raises(values.ValuesError, match="--set-json"):
        values.parse_set("a={bad", kind="set-json")


@pytest.mark.parametrize("bad", ["novalue", "=1", "a..b=1", "a[999999]=1"])
def test_bad_set_is_a_clear_error(bad: str) -> None:
    with pytest.raises(values.ValuesError, match="--set"):
        values.parse_set(bad)


def test_merge_order_files_then_sets(tmp_path: Path) -> None:
    folder = write_chart(tmp_path, values={"a": 0, "b": 0, "c": 0, "d": 0, "keep": {"x": 1, "y": 2}})
    user = values.user_values(
        [("one.yaml", "a: 1\nb: 1\nkeep: {y: null}\n"), ("two.yaml", "b: 2\nc: 2\n")],
        [("set", "c=3"), ("set-string", "d=4")])
    merged, _ = values.coalesce(chart.load(folder), user)
    assert merged == {"a": 1, "b": 2, "c": 3, "d": "4", "keep": {"x": 1}}


def test_values_file_must_be_a_mapping() -> None:
    with pytest.raises(values.ValuesError, match="bad.yaml: values must be a mapping"):
        values.user_values([("bad.yaml", "- 1\n")], [])
    with pytest.raises(values.ValuesError, match="bad.yaml"):
        values.user_values([("bad.yaml", "a: [\n")], [])


def test_dependency_values_under_name_or_alias_and_condition(tmp_path: Path) -> None:
    write_chart(tmp_path, "store", values={"port": 1, "size": "s"})
    parent = write_chart(tmp_path, "app", values={"db": {"port": 2}, "cache": {"enabled": False}, "global": {"g": 1}},
                         dependencies=[{"name": "store", "alias": "db", "repository": "file://../store"},
                                       {"name": "store", "alias": "cache", "repository": "file://../store",
                                        "condition": "cache.enabled"}])
    merged, enabled = values.coalesce(chart.load(parent), {"db": {"size": "m"}})
    assert [dep.key for dep, _, _ in enabled] == ["db"]
    assert merged["db"] == {"port": 2, "size": "m", "global": {"g": 1}}
    merged, enabled = values.coalesce(chart.load(parent), {"cache": {"enabled": True}})
    assert [dep.key for dep, _, _ in enabled] == ["db", "cache"]


keys = st.text(alphabet="abcxyz", min_size=1, max_size=4)
trees = st.recursive(st.integers() | st.text(max_size=3) | st.booleans(),
                     lambda inner: st.dictionaries(keys, inner, max_size=3) | st.lists(inner, max_size=3),
                     max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, trees, max_size=4), st.dictionaries(keys, trees, max_size=4))
def test_merge_overlay_wins_and_is_idempotent(base: dict, top: dict) -> None:
    merged = values.deep_merge(base, top)
    for key, value in top.items():
        if not isinstance(value, dict) or not isinstance(base.get(key), dict):
            assert merged[key] == value
    assert values.deep_merge(merged, top) == merged
