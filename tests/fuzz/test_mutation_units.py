"""The fuzz suite's own mutations: a shared part (a YAML alias) never makes a document cyclic."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import mutations


def _doc() -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A"}]}]}}, "list": [[1], {}]}}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), count=st.integers(1, 5))
def test_aliases_never_make_a_cycle(data: st.DataObject, count: int) -> None:
    """Regression (the long fuzz run): a second alias put a part inside another place of itself, and
    the encoders failed with "Circular reference detected" and RecursionError."""
    doc = _doc()
    for _ in range(count):
        mutations._alias(data.draw, doc, {})
    json.dumps(doc)  # raises ValueError on a cycle
