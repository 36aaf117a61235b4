"""The binder's pure decision (`core.volumes.find_matching_volume`): upstream's order of checks, and
properties over random pools of volumes and claims."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.core import volumes

MODES = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"]


def pv(name: str, size: str, modes: list[str], *, cls: str = "", phase: str = "Available",
       labels: dict[str, str] | None = None, claim_ref: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": modes, "storageClassName": cls,
                            "hostPath": {"path": "/x"}}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def pvc(name: str, size: str, modes: list[str], *, cls: str = "", selector: dict | None = None,
        uid: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": modes, "resources": {"requests": {"storage": size}},
                            "storageClassName": cls}
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}"}, "spec": spec}


def test_fewest_modes_bucket_beats_smaller_size() -> None:
    pool = [pv("small-rwx", "10Gi", ["ReadWriteOnce", "ReadWriteMany"]), pv("big-rwo", "50Gi", ["ReadWriteOnce"])]
    assert volumes.find_matching_volume(pvc("c", "5Gi", ["ReadWriteOnce"]), pool)["metadata"]["name"] == "big-rwo"


def test_smallest_in_bucket_and_size_class_selector() -> None:
    pool = [pv("a", "10Gi", ["ReadWriteOnce"]), pv("b", "2Gi", ["ReadWriteOnce"]),
            pv("c", "1Gi", ["ReadWriteOnce"]), pv("fast", "2Gi", ["ReadWriteOnce"], cls="fast"),
            pv("labelled", "3Gi", ["ReadWriteOnce"], labels={"tier": "gold"})]
    assert volumes.find_matching_volume(pvc("c", "1500Mi", ["ReadWriteOnce"]), pool)["metadata"]["name"] == "b"
    assert volumes.find_matching_volume(pvc("c", "1Gi", ["ReadWriteOnce"], cls="fast"), pool)["metadata"]["name"] == "fast"
    gold = pvc("c", "1Gi", ["ReadWriteOnce"], selector={"matchLabels": {"tier": "gold"}})
    assert volumes.find_matching_volume(gold, pool)["metadata"]["name"] == "labelled"
    assert volumes.find_matching_volume(pvc("c", "11Gi", ["ReadWriteOnce"]), pool) is None


def test_prebound_ignores_class_and_selector_not_size() -> None:
    claim = pvc("x", "1Gi", ["ReadWriteOnce"], cls="")
    ref = {"name": "x", "namespace": "ns"}
    pool = [pv("other-class", "1Gi", ["ReadWriteOnce"], cls="gold", phase="Pending", claim_ref=ref),
            pv("free", "1Gi", ["ReadWriteOnce"])]
    assert volumes.find_matching_volume(claim, pool)["metadata"]["name"] == "other-class"
    small = [pv("tiny", "1Mi", ["ReadWriteOnce"], cls="gold", claim_ref=ref)]
    assert volumes.find_matching_volume(claim, small) is None
    foreign = [pv("theirs", "1Gi", ["ReadWriteOnce"], claim_ref={"name": "x", "namespace": "ns", "uid": "other"})]
    assert volumes.find_matching_volume(claim, foreign) is None


def test_wait_for_first_consumer_returns_only_prebound() -> None:
    claim = pvc("x", "1Gi", ["ReadWriteOnce"])
    assert volumes.find_matching_volume(claim, [pv("free", "1Gi", ["ReadWriteOnce"])], delay_binding=True) is None


def test_default_class_newest_wins() -> None:
    def sc(name: str, created: str, default: bool) -> dict:
        annotations = {volumes.DEFAULT_CLASS: "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}}
    classes = [sc("old", "2024-01-01T00:00:00Z", True), sc("new", "2025-01-01T00:00:00Z", True),
               sc("newest-not-default", "2026-01-01T00:00:00Z", False)]
    assert volumes.default_class(classes)["metadata"]["name"] == "new"
    assert volumes.default_class([classes[2]]) is None


sizes = st.sampled_from(["1Gi", "2Gi", "5Gi", "10Gi", "500Mi"])
mode_sets = st.lists(st.sampled_from(MODES), min_size=1, max_size=3, unique=True)
classes = st.sampled_from(["", "fast"])


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    n_pv = draw(st.integers(0, 12))
    pool = [pv(f"pv{i}", draw(sizes), draw(mode_sets), cls=draw(classes),
               phase=draw(st.sampled_from(["Available", "Available", "Bound", "Released"])),
               labels={"zone": draw(st.sampled_from(["a", "b"]))}) for i in range(n_pv)]
    n_claims = draw(st.integers(1, 12))
    claims = [pvc(f"c{i}", draw(sizes), draw(mode_sets), cls=draw(classes),
                  selector=draw(st.sampled_from([None, {"matchLabels": {"zone": "a"}}]))) for i in range(n_claims)]
    return pool, claims


def _eligible(volume: dict, claim: dict) -> bool:
    return (volumes.capacity(volume) >= volumes.requested(claim)
            and volumes.access_modes(claim) <= volumes.access_modes(volume)
            and volumes.volume_class(volume) == volumes.claim_class(claim)
            and volume["status"]["phase"] == "Available" and not volume["spec"].get("claimRef")
            and volumes.selector_matches(claim["spec"].get("selector"), volume["metadata"]["labels"]))


@settings(max_examples=300, deadline=None)
@given(pools())
def test_choice_satisfies_the_claim_and_is_minimal(data: tuple[list[dict], list[dict]]) -> None:
    pool, claims = data
    for claim in claims:
        chosen = volumes.find_matching_volume(claim, pool)
        candidates = [v for v in pool if _eligible(v, claim)]
        if chosen is None:
            assert candidates == []
            continue
        assert _eligible(chosen, claim)
        fewest = min(len(volumes.access_modes(v)) for v in candidates)
        assert len(volumes.access_modes(chosen)) == fewest  # the fewest-modes bucket wins
        same_bucket = [v for v in candidates if volumes.access_modes(v) == volumes.access_modes(chosen)]
        assert volumes.capacity(chosen) == min(volumes.capacity(v) for v in same_bucket)


@settings(max_examples=300, deadline=None)
@given(pools())
def test_sequential_binding_is_one_to_one(data: tuple[list[dict], list[dict]]) -> None:
    """Binding the claims one after another, as the binder does (the chosen volume's claimRef and
    phase written before the next claim looks), never gives one volume to two claims, and a claim
    looking again after a crash gets the volume it already holds."""
    pool, claims = data
    bound: dict[str, str] = {}
    for claim in claims:
        chosen = volumes.find_matching_volume(claim, pool)
        if chosen is None:
            continue
        assert chosen["metadata"]["name"] not in bound.values()
        chosen["spec"]["claimRef"] = {"name": claim["metadata"]["name"], "namespace": "ns",
                                      "uid": claim["metadata"]["uid"]}  # step 1 ...
        bound[claim["metadata"]["name"]] = chosen["metadata"]["name"]
        again = volumes.find_matching_volume(claim, pool)  # ... crash before step 2: the same volume
        assert again is chosen
        chosen["status"]["phase"] = "Bound"
    assert len(set(bound.values())) == len(bound)
