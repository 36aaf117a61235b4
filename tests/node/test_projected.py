"""Projected volumes, without Docker: the atomic directory writer (upstream's AtomicWriter), the
content of each kind of source, and when the token of a pod is asked for again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.node import atomicdir, projected

POD = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1", "labels": {"b": "2", "a": 'q"x'}},
       "spec": {"serviceAccountName": "builder",
                "containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}]}}


def test_layout_is_upstreams_and_a_rewrite_swaps_every_file_at_once(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert atomicdir.write(target, {"token": (b"one", 0o644), "sub/ca.crt": (b"ca", 0o600)})
    first = os.readlink(target / "..data")
    assert first.startswith("..") and (target / first).is_dir()
    assert os.readlink(target / "token") == "..data/token" and os.readlink(target / "sub") == "..data/sub"
    assert (target / "token").read_bytes() == b"one" and (target / "sub" / "ca.crt").read_bytes() == b"ca"
    assert oct((target / "sub" / "ca.crt").stat().st_mode & 0o777) == oct(0o600)
    inode = target.stat().st_ino
    assert not atomicdir.write(target, {"token": (b"one", 0o644), "sub/ca.crt": (b"ca", 0o600)})  # unchanged
    assert atomicdir.write(target, {"token": (b"two", 0o644), "namespace": (b"team", 0o644)})
    second = os.readlink(target / "..data")
    assert second != first and not (target / first).exists()  # the old version is gone
    assert (target / "token").read_bytes() == b"two" and not (target / "sub").exists()
    assert sorted(p.name for p in target.iterdir()) == sorted(["..data", second, "token", "namespace"])
    assert target.stat().st_ino == inode  # the directory containers bind-mount stays


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "..data/x", "..hidden", "a" * 256,
                                 "x/" * 2100])
def test_paths_that_could_escape_or_clash_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(atomicdir.PathError):
        atomicdir.write(tmp_path / "vol", {bad: (b"x", 0o644)})
    assert not (tmp_path / "vol").exists() or not any((tmp_path / "vol").iterdir())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c/d", "c/e", "f"]), st.binary(max_size=8),
                                max_size=4), min_size=1, max_size=4))
def test_after_any_sequence_of_writes_the_directory_shows_the_last(tmp_path_factory: Any, versions: list) -> None:
    target = tmp_path_factory.mktemp("prop") / "vol"
    for files in versions:
        if any(k.startswith("c/") for k in files) and "c" in files:
            continue
        atomicdir.write(target, {k: (v, 0o644) for k, v in files.items()})
        shown = {p.relative_to(target).as_posix(): p.read_bytes() for p in _walk(target)}
        assert shown == dict(files.items())
        versions_left = [p for p in target.iterdir() if p.name.startswith("..") and not p.is_symlink()]
        assert len(versions_left) == 1


def _walk(target: Path) -> list[Path]:
    found = []
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_dir():
            found += [p for p in entry.rglob("*") if p.is_file()]
        else:
            found.append(entry)
    return [target / p.relative_to(target) for p in found]


def test_downward_api_files() -> None:
    files = projected.downward_files(POD, [
        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o600},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory"}},
    ], 0o644)
    assert files == {"namespace": (b"team", 0o644), "labels": (b'a="q\\"x"\nb="2"', 0o600), "mem": (b"64Mi", 0o644)}
    with pytest.raises(projected.SourceError):
        projected.downward_files(POD, [{"path": "x", "fieldRef": {"fieldPath": "spec.nope"}}], 0o644)


class _Server:
    """The TokenRequest API as the agent sees it: answers with a token of the given lifetime."""

    def __init__(self, clock: list[float], lifetime: int = 3600) -> None:
        self.clock, self.lifetime, self.asked = clock, lifetime, []

    async def __call__(self, namespace: str, name: str, body: dict) -> dict:
        import time

        self.asked.append((namespace, name, body))
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock[0] + self.lifetime))
        return {"status": {"token": f"tok-{len(self.asked)}", "expirationTimestamp": expires}}


async def test_tokens_are_bound_to_the_pod_and_refreshed_at_80_percent() -> None:
    now = [1_800_000_000.0]
    server = _Server(now)
    tokens = projected.Tokens(server, clock=lambda: now[0])
    source = {"path": "token", "expirationSeconds": 3607, "audience": "vault"}
    first = await tokens.get(POD, "kube-api-access-x", 0, source)
    namespace, account, body = server.asked[0]
    assert (namespace, account) == ("team", "builder")
    assert body["spec"] == {"expirationSeconds": 3607, "audiences": ["vault"],
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}}
    assert tokens.due("u-1") == pytest.approx(now[0] + 0.8 * 3600)
    now[0] += 0.79 * 3600
    assert await tokens.get(POD, "kube-api-access-x", 0, source) is first  # not yet
    now[0] += 0.02 * 3600
    assert (await tokens.get(POD, "kube-api-access-x", 0, source)).value == b"tok-2"
    tokens.forget("u-1")
    assert tokens.due("u-1") is None


async def test_long_lived_tokens_are_renewed_after_a_day_and_failures_are_source_errors() -> None:
    now = [1_800_000_000.0]
    tokens = projected.Tokens(_Server(now, lifetime=7 * 86400), clock=lambda: now[0])
    await tokens.get(POD, "v", 0, {"path": "token", "expirationSeconds": 7 * 86400})
    assert tokens.due("u-1") == pytest.approx(now[0] + 86400)

    async def refusing(namespace: str, name: str, body: dict) -> dict:
        raise RuntimeError("serviceaccounts \"builder\" not found")

    with pytest.raises(projected.SourceError, match="failed to fetch token for serviceaccount builder"):
        await projected.Tokens(refusing).get(POD, "v", 0, {"path": "token"})
    with pytest.raises(projected.SourceError, match="cannot request"):
        await projected.Tokens(None).get(POD, "v", 0, {"path": "token"})


async def test_volumes_rewrite_a_due_token_in_place(tmp_path: Path) -> None:
    """`Volumes.refresh` on a running pod: nothing until the token is due, then the new token appears
    through the same bind-mounted directory (the API is a stand-in here: `_Server`, `fetch`)."""
    from reconcile.node import volumes

    now = [1_800_000_000.0]
    tokens = projected.Tokens(_Server(now), clock=lambda: now[0])

    async def fetch(plural: str, namespace: str, name: str) -> dict | None:
        return {"data": {"ca.crt": "CA"}} if (plural, name) == ("configmaps", "kube-root-ca.crt") else None

    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "kube-api-access-abcde", "projected": {
        "defaultMode": 0o644, "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                                          {"configMap": {"name": "kube-root-ca.crt",
                                                         "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]}}
    vols = volumes.Volumes(tmp_path, fetch, tokens=tokens)
    paths = await vols.prepare(pod)
    target = Path(paths["kube-api-access-abcde"])
    inode = target.stat().st_ino
    assert (target / "token").read_text() == "tok-1" and (target / "ca.crt").read_text() == "CA"
    due = await vols.refresh(pod)
    assert due == pytest.approx(now[0] + 0.8 * 3600) and (target / "token").read_text() == "tok-1"
    now[0] = due + 1
    assert await vols.refresh(pod) > now[0]
    assert (target / "token").read_text() == "tok-2" and target.stat().st_ino == inode
    vols.remove("u-1")
    assert not target.exists() and tokens.due("u-1") is None
