"""The agent's resync removes the directories of pods that are gone, and never one of a pod that
starts while the resync asks Docker for its containers (a race that cost a pod its resolv.conf)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconcile.node import volumes


async def _no_fetch(plural: str, namespace: str, name: str) -> dict:
    raise AssertionError("no object is fetched")


def _dirs(vols: volumes.Volumes, *uids: str) -> None:
    for uid in uids:
        vols.pod_dir(uid).mkdir(parents=True)


def test_gone_pods_lose_their_directories_and_the_rest_keep_them(tmp_path: Path) -> None:
    vols = volumes.Volumes(tmp_path, _no_fetch)
    _dirs(vols, "gone", "live", "has-containers")

    async def holding() -> set[str]:
        return {"has-containers"}

    removed = asyncio.run(vols.remove_orphans(holding, lambda: {"live"}))
    assert removed == ["gone"]
    assert sorted(vols.known_uids()) == ["has-containers", "live"]


def test_a_pod_that_starts_while_docker_answers_keeps_its_directory(tmp_path: Path) -> None:
    """During the engine's answer (seconds under load), a new pod arrives in the informer's cache
    and its sync makes its directory: neither snapshot taken before the answer may judge it."""
    vols = volumes.Volumes(tmp_path, _no_fetch)
    _dirs(vols, "gone")
    live: set[str] = set()

    async def holding() -> set[str]:
        live.add("new")  # the informer delivers the pod ...
        _dirs(vols, "new")  # ... and its sync writes its resolv.conf before any container exists
        (vols.pod_dir("new") / "resolv.conf").write_text("nameserver 10.0.0.10\n")
        return set()

    removed = asyncio.run(vols.remove_orphans(holding, lambda: set(live)))
    assert removed == ["gone"]
    assert (vols.pod_dir("new") / "resolv.conf").read_text() == "nameserver 10.0.0.10\n"


def test_a_directory_made_during_the_answer_is_not_judged_even_before_its_pod_is_seen(tmp_path: Path) -> None:
    vols = volumes.Volumes(tmp_path, _no_fetch)

    async def holding() -> set[str]:
        _dirs(vols, "unseen")
        return set()

    assert asyncio.run(vols.remove_orphans(holding, set)) == []
    assert vols.known_uids() == ["unseen"]
