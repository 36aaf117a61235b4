"""Random ObjectMeta: valid values (so objects are stored and later requests meet them) and broken
ones (wrong types, bad syntax, sizes over the limits) for each standard field.

Names and generateName are the flows' business (the URL names the object too); everything else a
client can send in `metadata` is here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz import schemas

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?"
LABEL_KEYS = st.one_of(st.from_regex(rf"\A{_NAME}\Z"), st.from_regex(rf"\A[a-z]{{1,6}}\.example\.com/{_NAME}\Z"))
LABEL_VALUES = st.one_of(st.just(""), st.from_regex(rf"\A{_NAME}\Z"))
BAD_KEYS = st.sampled_from(["", "-a", "a-", "a b", "/", "a/", "/a", "UPPER.example.com/x", "a" * 64, "x/" + "a" * 64,
                            "a" * 254 + "/b", "ключ", "a/b/c", "$x", "a\nb"])
BAD_VALUES = st.one_of(st.sampled_from(["-a", "a b", "a" * 64, "ключ", "a\nb", "\x00"]),
                       schemas.pick([1, True, None, 1.5, [], {}, ["a"]]))
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4)
FINALIZERS = st.sampled_from(["example.com/hold", "fuzz.reconcile.dev/keep", "kubernetes", "orphan"])
UIDS = st.uuids().map(str)


def labels(draw: st.DrawFn) -> Any:
    """A label (or annotation) map; now and then with a bad key, a bad value, or of a wrong type."""
    out: Any = draw(LABELS)
    roll = draw(st.integers(0, 9))
    if roll == 0:
        out[draw(BAD_KEYS)] = "v"
    elif roll == 1:
        out[draw(LABEL_KEYS)] = draw(BAD_VALUES)
    elif roll == 2:
        out = draw(schemas.pick([[], ["a=b"], "a=b", 5, None, {"a": {"b": "c"}}]))
    elif roll == 3:
        out = {f"k{i}": "v" for i in range(draw(st.sampled_from([100, 5000])))}
    return out


def annotations(draw: st.DrawFn) -> Any:
    if schemas.one_in(draw, 10):  # over the 256 KiB total
        return {"big": "x" * draw(st.sampled_from([200_000, 270_000]))}
    return labels(draw)


def owner_reference(draw: st.DrawFn) -> Any:
    reference: dict[str, Any] = {"apiVersion": draw(st.sampled_from(["v1", "apps/v1", "fuzz.reconcile.dev/v1"])),
                                 "kind": draw(st.sampled_from(["ReplicaSet", "ConfigMap", "Gadget"])),
                                 "name": draw(schemas.NICE_NAMES), "uid": draw(UIDS)}
    for flag in ("controller", "blockOwnerDeletion"):
        if draw(st.booleans()):
            reference[flag] = draw(st.booleans())
    roll = draw(st.integers(0, 7))
    if roll == 0:
        del reference[draw(st.sampled_from(sorted(reference)))]
    elif roll == 1:
        reference[draw(schemas.pick(sorted(reference)))] = draw(schemas.pick([5, None, [], {}, "", "a/b/c"]))
    elif roll == 2:
        return draw(schemas.pick(["str", 5, None, [], ["x"]]))
    return reference


def finalizers(draw: st.DrawFn) -> Any:
    out: Any = draw(st.lists(FINALIZERS, max_size=3))
    roll = draw(st.integers(0, 7))
    if roll == 0:
        out.append(draw(schemas.pick(["a b", "", "UPPER/x", "a/b/c", 5, None, {}])))
    elif roll == 1:
        out = draw(schemas.pick(["example.com/hold", 5, {}, {"a": "b"}]))
    return out


def timestamp(draw: st.DrawFn) -> Any:
    return draw(st.one_of(schemas.TIMESTAMPS, st.sampled_from(["", "yesterday", "2024-13-45T99:99:99Z",
                                                               "2024-01-01T00:00:00", "99999-01-01T00:00:00Z",
                                                               "2024-01-01T00:00:00.123456789+05:30", 5, None])))


def managed_fields(draw: st.DrawFn) -> Any:
    entry: Any = {"manager": draw(schemas.NICE_NAMES), "operation": draw(st.sampled_from(["Apply", "Update", "Nope"])),
                  "apiVersion": "v1", "time": timestamp(draw), "fieldsType": "FieldsV1",
                  "fieldsV1": {"f:metadata": {}}}
    if schemas.one_in(draw, 4):
        entry = draw(st.sampled_from(["x", 5, None]))
    return [entry]


def _integer(draw: st.DrawFn) -> Any:
    return draw(st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 1.5, "1", None, True]))


FIELDS = {
    "labels": labels,
    "annotations": annotations,
    "ownerReferences": lambda draw: [owner_reference(draw) for _ in range(draw(st.integers(0, 3)))],
    "finalizers": finalizers,
    "namespace": lambda draw: draw(schemas.pick(["default", "kube-system", "nope", "", "UPPER", 5, None, ["a"]])),
    "uid": lambda draw: draw(st.one_of(UIDS, st.sampled_from(["", "x", 5, None]))),
    "resourceVersion": lambda draw: draw(st.sampled_from(["", "1", "0", "-1", "abc", "99999999999999999999", 5, None])),
    "creationTimestamp": timestamp,
    "deletionTimestamp": timestamp,
    "deletionGracePeriodSeconds": _integer,
    "generation": _integer,
    "selfLink": lambda draw: draw(st.sampled_from(["/api/v1/x", "", 5])),
    "managedFields": managed_fields,
    "generateName": lambda draw: draw(st.sampled_from(["fz-", "", "UPPER-", "a" * 300, 5, None, "x."])),
    "name": lambda draw: draw(schemas.pick(["", "UPPER", "a_b", "a" * 254, "-x", "x.", 7, None, {}])),
    "unknownField": lambda draw: draw(schemas.ANY_JSON),
}


def mutate(draw: st.DrawFn, metadata: dict[str, Any]) -> None:
    """Set one or two standard metadata fields (in place) to a drawn value, valid or not."""
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=2, unique=True)):
        metadata[field] = FIELDS[field](draw)


def valid_labels(draw: st.DrawFn) -> dict[str, str]:
    return draw(LABELS)
