"""emptyDir sizing and measurement (reconcile/node/emptydir.py), without a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.node import emptydir


def pod(*limits: str | None, volumes: list[dict] | None = None) -> dict:
    containers = [{"name": f"c{i}", **({"resources": {"limits": {"memory": m}}} if m else {})}
                  for i, m in enumerate(limits)]
    return {"metadata": {"uid": "u"}, "spec": {"containers": containers, "volumes": volumes or []}}


def memory(size_limit: str | None = None) -> dict:
    return {"name": "m", "emptyDir": {"medium": "Memory", **({"sizeLimit": size_limit} if size_limit else {})}}


@pytest.mark.parametrize(("limits", "size_limit", "expected"), [
    (("64Mi",), None, 64 << 20),                  # the pod's memory limit
    (("64Mi", "32Mi"), None, 96 << 20),           # summed over containers
    (("64Mi", None), None, None),                 # one container unlimited: the kernel's default
    (("64Mi",), "1Mi", 1 << 20),                  # the smaller of the two
    (("1Mi",), "64Mi", 1 << 20),
    ((None,), "2Mi", 2 << 20),
    ((None,), None, None),
])
def test_memory_size_is_the_smaller_of_size_limit_and_the_pods_memory_limit(limits, size_limit, expected) -> None:
    assert emptydir.memory_size(pod(*limits), memory(size_limit)) == expected


def test_only_disk_backed_volumes_with_a_size_limit_are_measured() -> None:
    spec = pod(volumes=[{"name": "a", "emptyDir": {"sizeLimit": "1Ki"}}, {"name": "b", "emptyDir": {}},
                        memory("1Mi"), {"name": "c", "hostPath": {"path": "/x"}},
                        {"name": "d", "emptyDir": {"sizeLimit": "not a quantity"}}])
    assert emptydir.limited(spec) == [("a", 1024)]


def test_usage_counts_allocated_blocks_and_never_follows_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * 200_000)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "link").symlink_to(outside)
    (volume / "small").write_bytes(b"x" * 10)
    assert not emptydir.usage_over(volume, 100_000)
    (volume / "nested").mkdir()
    (volume / "nested" / "big").write_bytes(b"y" * 200_000)
    assert emptydir.usage_over(volume, 100_000)
    spec = pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "100k"}}])
    assert emptydir.exceeded(spec, lambda name: volume) == \
        'Usage of EmptyDir volume "v" exceeds the limit "100k". '
    assert emptydir.exceeded(spec, lambda name: outside / "missing") is None


def test_huge_pages_are_refused_naming_the_volume(tmp_path: Path) -> None:
    volume = {"name": "hp", "emptyDir": {"medium": "HugePages-2Mi"}}
    with pytest.raises(emptydir.EmptyDirError, match='volume hp: emptyDir medium "HugePages-2Mi"'):
        emptydir.prepare(tmp_path / "hp", pod(), volume)
