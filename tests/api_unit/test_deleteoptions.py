"""DeleteOptions' typed decoding: each field of its Go type or a 400, nothing dropped on the way."""

from __future__ import annotations

import pytest

from reconcile.api import deleteoptions
from reconcile.core import errors


def test_the_unsafe_delete_option_is_kept_and_must_be_a_bool() -> None:
    """Regression: the typed decoding dropped it, so the unsafe delete of a corrupt object was a 500."""
    assert deleteoptions.normalized({deleteoptions.UNSAFE_DELETE: True}) == {deleteoptions.UNSAFE_DELETE: True}
    with pytest.raises(errors.BadRequest, match="DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential "
                                                "of type bool"):
        deleteoptions.normalized({deleteoptions.UNSAFE_DELETE: "yes"})


def test_typed_fields_and_the_query_over_the_body() -> None:
    options = deleteoptions.normalized({"gracePeriodSeconds": 5, "dryRun": ["All"], "preconditions": {"uid": "u"}},
                                       query_policy="Orphan", query_grace=0)
    assert options == {"gracePeriodSeconds": 0, "dryRun": ["All"], "preconditions": {"uid": "u"},
                       "propagationPolicy": "Orphan"}
    assert deleteoptions.is_dry_run(options)
    with pytest.raises(errors.BadRequest, match="of type int64"):
        deleteoptions.normalized({"gracePeriodSeconds": 2**63})
    with pytest.raises(errors.BadRequest, match='Unsupported value: "Some"'):
        deleteoptions.normalized({"dryRun": ["Some"]})


@pytest.mark.parametrize("field", ["apiVersion", "kind"])
@pytest.mark.parametrize("value", [{}, ["v1"], 5, True])
def test_a_type_meta_that_is_not_a_string_is_a_400(field: str, value: object) -> None:
    """Regression (the long fuzz run): `{"apiVersion": {}}` was looked up in a set, a 500 "unhashable type"."""
    with pytest.raises(errors.BadRequest, match=f"DeleteOptions.{field} of type string"):
        deleteoptions.normalized({field: value})
