"""The GitRepository reconciler against a real API server, with repositories made in the test.

Each test drives `reconcile(key)` directly (the loop that calls it is the gitops process's) and
reads back what a user would: the object's status, and the artifact store's folders.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconcile import testing
from reconcile.client import informer as informer_mod
from reconcile.core import errors
from reconcile.core import webhookreceiver as receiver
from reconcile.engine import clock as clock_mod
from reconcile.engine import events
from reconcile.gitops import git, sources
from reconcile.gitops.artifacts import Artifact, ArtifactStore
from tests.gitops import gitrepos, sshd
from tests.gitops.gitrepos import LINK, Builder

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


@pytest.fixture
async def ns(ac: Any) -> str:
    name = f"gitsrc-{uuid.uuid4().hex[:8]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _repo_object(name: str, url: str, **spec: Any) -> dict:
    return {"apiVersion": sources.API_VERSION, "kind": sources.KIND, "metadata": {"name": name},
            "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}, **spec}}


async def _create(ac: Any, ns: str, obj: dict) -> dict:
    return await ac.create(sources.API_VERSION, sources.PLURAL, obj, namespace=ns)


async def _get(ac: Any, ns: str, name: str) -> dict:
    return await ac.get(sources.API_VERSION, sources.PLURAL, name, namespace=ns)


def _condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


async def _request(ac: Any, ns: str, name: str, value: str) -> None:
    await ac.patch(sources.API_VERSION, sources.PLURAL, name,
                   {"metadata": {"annotations": {receiver.REQUESTED_AT: value}}}, namespace=ns)


async def test_a_new_commit_becomes_a_new_artifact(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"app/cm.yaml": CM.format("one")})
    first = gitrepos.git(src, "rev-parse", "HEAD")
    await _create(ac, ns, _repo_object("app", f"file://{src}"))
    clock = clock_mod.FakeClock()
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", clock=clock, allow_local=True)
    result = await reconciler.reconcile((ns, "app"))
    assert result is not None and result.requeue_after == 3600
    obj = await _get(ac, ns, "app")
    ready = _condition(obj, "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Succeeded"
    assert ready["message"] == f"stored artifact for revision 'main@sha1:{first}'"
    assert _condition(obj, "Reconciling") is None and obj["status"]["observedGeneration"] == 1
    artifact = Artifact.from_status(obj["status"])
    assert artifact.revision == f"main@sha1:{first}" and artifact.digest.startswith("sha256:")
    tree = store.directory(artifact)
    assert (tree / "app" / "cm.yaml").read_text() == CM.format("one")

    # within the interval nothing happens; the same commit after it: a fetch, but no write
    rv = obj["metadata"]["resourceVersion"]
    assert (await reconciler.reconcile((ns, "app"))).requeue_after == 3600
    clock.advance(3601)
    gitrepos.git(src, "commit", "-q", "--allow-empty", "-m", "nothing")  # a new revision, the same tree
    await reconciler.reconcile((ns, "app"))
    after_empty = await _get(ac, ns, "app")
    assert Artifact.from_status(after_empty["status"]).digest == artifact.digest  # same tree, same digest
    clock.advance(3601)
    await reconciler.reconcile((ns, "app"))
    assert (await _get(ac, ns, "app"))["metadata"]["resourceVersion"] == after_empty["metadata"]["resourceVersion"]
    assert rv != after_empty["metadata"]["resourceVersion"]

    # a new commit, picked up at once on the requestedAt annotation
    second = gitrepos.commit_files(src, {"app/cm.yaml": CM.format("two")})
    await _request(ac, ns, "app", "2026-01-01T00:00:00Z")
    await reconciler.reconcile((ns, "app"))
    obj = await _get(ac, ns, "app")
    new = Artifact.from_status(obj["status"])
    assert new.revision == f"main@sha1:{second}" and new.digest != artifact.digest
    assert obj["status"]["lastHandledReconcileAt"] == "2026-01-01T00:00:00Z"
    assert (store.directory(new) / "app" / "cm.yaml").read_text() == CM.format("two")
    assert store.directory(artifact) is not None  # the previous tree stays for a Sync still reading it
    third = gitrepos.commit_files(src, {"app/cm.yaml": CM.format("three")})
    await _request(ac, ns, "app", "2026-01-01T00:00:01Z")
    await reconciler.reconcile((ns, "app"))
    latest = Artifact.from_status((await _get(ac, ns, "app"))["status"])
    assert latest.revision == f"main@sha1:{third}"
    assert store.directory(artifact) is None and store.directory(new) is not None  # two kept
    assert not list((store.root / ".staging").iterdir())

    # deleted: its trees and its cache go
    await ac.delete(sources.API_VERSION, sources.PLURAL, "app", namespace=ns)
    assert await reconciler.reconcile((ns, "app")) is None
    assert store.directory(latest) is None and not (tmp_path / "cache" / ns / "app").exists()


async def test_a_bad_ref_is_reported_and_the_last_artifact_kept(ac: Any, ns: str, store: ArtifactStore,
                                                                 tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": CM.format("a")})
    await _create(ac, ns, _repo_object("ref", f"file://{src}"))
    recorder = events.EventRecorder(ac, component="gitrepository-test")
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True, recorder=recorder)
    await reconciler.reconcile((ns, "ref"))
    good = Artifact.from_status((await _get(ac, ns, "ref"))["status"])
    await ac.patch(sources.API_VERSION, sources.PLURAL, "ref", {"spec": {"ref": {"branch": "nope"}}}, namespace=ns)
    assert (await reconciler.reconcile((ns, "ref"))).requeue_after == 3600
    obj = await _get(ac, ns, "ref")
    ready, failed = _condition(obj, "Ready"), _condition(obj, "FetchFailed")
    assert ready["status"] == "False" and ready["reason"] == "GitOperationFailed"
    assert 'couldn\'t find remote ref "refs/heads/nope"' in ready["message"] and failed["status"] == "True"
    assert obj["status"]["observedGeneration"] == 2
    assert Artifact.from_status(obj["status"]) == good and store.directory(good) is not None
    listed = (await ac.list("v1", "events", namespace=ns))["items"]
    reasons = {(e["reason"], e["type"]) for e in listed if e["involvedObject"]["name"] == "ref"}
    assert {("NewArtifact", "Normal"), ("GitOperationFailed", "Warning")} <= reasons
    # fixed: Ready again, FetchFailed gone
    await ac.patch(sources.API_VERSION, sources.PLURAL, "ref", {"spec": {"ref": {"branch": "main"}}}, namespace=ns)
    await reconciler.reconcile((ns, "ref"))
    obj = await _get(ac, ns, "ref")
    assert _condition(obj, "Ready")["status"] == "True" and _condition(obj, "FetchFailed") is None


async def test_a_malicious_repository_never_publishes(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path) -> None:
    b = Builder(tmp_path / "src")
    b.commit(b.files({"ok.yaml": CM.format("ok").encode(), "passwd": (LINK, b"../../../../etc/passwd")}))
    await _create(ac, ns, _repo_object("evil", f"file://{b.path}"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True)
    assert (await reconciler.reconcile((ns, "evil"))).requeue_after == 3600
    obj = await _get(ac, ns, "evil")
    stalled = _condition(obj, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "UnsafeTree"
    assert "'passwd': the symbolic link '../../../../etc/passwd' resolves outside" in stalled["message"]
    assert _condition(obj, "Ready")["status"] == "False" and "artifact" not in obj["status"]
    assert not (store.root / "gitrepository" / ns / "evil").exists()
    assert not list((store.root / ".staging").iterdir())


async def test_kubectl_shows_url_ready_and_status(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path,
                                                  kube_env: dict[str, str]) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    head = gitrepos.git(src, "rev-parse", "HEAD")
    await _create(ac, ns, _repo_object("shown", f"file://{src}"))
    await sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True).reconcile((ns, "shown"))
    out = subprocess.run(["kubectl", "get", "gitrepo", "-n", ns], env=kube_env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "URL", "AGE", "READY", "STATUS"]
    assert row.split()[:2] == ["shown", f"file://{src}"] and row.split()[3] == "True"
    assert f"stored artifact for revision 'main@sha1:{head}'" in row


async def test_a_folder_swapped_for_an_escaping_link_keeps_the_last_good_tree(ac: Any, ns: str, store: ArtifactStore,
                                                                               tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"conf/app.yaml": CM.format("app")})
    await _create(ac, ns, _repo_object("swap", f"file://{src}"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True)
    await reconciler.reconcile((ns, "swap"))
    good = Artifact.from_status((await _get(ac, ns, "swap"))["status"])
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "app.yaml").write_text(CM.format("stolen"))
    gitrepos.git(src, "rm", "-q", "-r", "conf")
    (src / "conf").symlink_to("../../outside")  # the same path, now a link out of the tree
    gitrepos.commit_files(src, {}, "swap")
    await _request(ac, ns, "swap", "now")
    await reconciler.reconcile((ns, "swap"))
    obj = await _get(ac, ns, "swap")
    assert _condition(obj, "Stalled")["reason"] == "UnsafeTree" and "'conf'" in _condition(obj, "Stalled")["message"]
    assert Artifact.from_status(obj["status"]) == good
    assert (store.directory(good) / "conf" / "app.yaml").read_text() == CM.format("app")
    assert len(list((store.root / "gitrepository" / ns / "swap").iterdir())) == 1


async def test_the_controller_loop_fetches_each_interval(ac: Any, ns: str, store: ArtifactStore,
                                                         tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": CM.format("one")})
    await _create(ac, ns, _repo_object("loop", f"file://{src}", interval="1s"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True)
    gitrepositories = informer_mod.Informer(ac, sources.API_VERSION, sources.PLURAL, namespace=ns)
    running = sources.controller(reconciler, gitrepositories)
    await gitrepositories.start()
    task = asyncio.create_task(running.run())
    try:
        async def artifact_of(revision: str) -> Artifact | None:
            artifact = Artifact.from_status((await _get(ac, ns, "loop")).get("status") or {})
            return artifact if artifact is not None and artifact.revision == revision else None

        first = gitrepos.git(src, "rev-parse", "HEAD")
        one = await testing.eventually(lambda: artifact_of(f"main@sha1:{first}"), what="the first artifact")
        assert one.revision == f"main@sha1:{first}"
        assert (store.directory(one) / "a.yaml").read_text() == CM.format("one")
        second = gitrepos.commit_files(src, {"a.yaml": CM.format("two")})
        two = await testing.eventually(lambda: artifact_of(f"main@sha1:{second}"), timeout=15,
                                       what="the new commit, within an interval")
        assert two.revision == f"main@sha1:{second}" and two.digest != one.digest
        assert (store.directory(two) / "a.yaml").read_text() == CM.format("two")
    finally:
        await running.stop()
        task.cancel()
        await gitrepositories.stop()


async def test_a_fetch_past_its_timeout_is_reported_and_never_doubled(ac: Any, ns: str, store: ArtifactStore,
                                                                         tmp_path: Path) -> None:
    """A git:// server on 127.0.0.1 that accepts and never answers (a tarpit)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    port = listener.getsockname()[1]
    await _create(ac, ns, _repo_object("slow", f"git://127.0.0.1:{port}/repo", timeout="1s"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache")
    try:
        assert (await reconciler.reconcile((ns, "slow"))).requeue_after == 3600
        ready = _condition(await _get(ac, ns, "slow"), "Ready")
        assert ready["reason"] == "GitOperationFailed"
        assert ready["message"] == f"git://127.0.0.1:{port}/repo: the fetch did not finish within the timeout of 1s"
        await _request(ac, ns, "slow", "again")
        await reconciler.reconcile((ns, "slow"))
        assert "the previous fetch, past its timeout, is still running" in _condition(
            await _get(ac, ns, "slow"), "Ready")["message"]
    finally:
        accepting.join(timeout=10)
        for connection in held:
            connection.close()  # the stuck fetch ends (the server hung up)
        listener.close()
    await testing.eventually(lambda: reconciler._running[(ns, "slow")].done(), what="the stuck fetch to end")
    assert not list((store.root / ".staging").iterdir()) if (store.root / ".staging").exists() else True


async def test_suspend_is_honoured(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    await _create(ac, ns, _repo_object("sus", f"file://{src}", suspend=True))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True)
    assert await reconciler.reconcile((ns, "sus")) is None
    assert "status" not in await _get(ac, ns, "sus") or not (await _get(ac, ns, "sus"))["status"]
    await ac.patch(sources.API_VERSION, sources.PLURAL, "sus", {"spec": {"suspend": False}}, namespace=ns)
    await reconciler.reconcile((ns, "sus"))
    assert _condition(await _get(ac, ns, "sus"), "Ready")["status"] == "True"


async def test_schema_refuses_bad_specs_naming_the_field(ac: Any, ns: str) -> None:
    for spec, field in (({"url": "file:///x", "interval": "soon"}, "spec.interval"),
                        ({"url": "ext::sh -c id", "interval": "1m"}, "spec.url"),
                        ({"url": "file:///x"}, "spec.interval"),
                        ({"url": "file:///x", "interval": "1m", "ref": {"commit": "abc"}}, "spec.ref.commit")):
        with pytest.raises(errors.ApiError) as caught:
            await _create(ac, ns, {"apiVersion": sources.API_VERSION, "kind": sources.KIND,
                                   "metadata": {"name": "bad"}, "spec": spec})
        assert caught.value.code == 422 and field in str(caught.value), (spec, str(caught.value))


async def test_credentials_never_reach_status(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path) -> None:
    await _create(ac, ns, _repo_object("creds", "https://alice:hunter2-secret@127.0.0.1:1/repo.git"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache")
    await reconciler.reconcile((ns, "creds"))
    obj = await _get(ac, ns, "creds")
    assert _condition(obj, "Ready")["reason"] == "GitOperationFailed"
    assert "hunter2" not in str(obj["status"]) and "https://127.0.0.1:1/repo.git" in str(obj["status"])


async def test_secret_ref_basic_auth_over_http(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path,
                                              http_repo: tuple[str, Path]) -> None:
    url, _src = http_repo
    await _create(ac, ns, _repo_object("auth", url, secretRef={"name": "git-creds"}))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache")
    await reconciler.reconcile((ns, "auth"))
    ready = _condition(await _get(ac, ns, "auth"), "Ready")
    assert ready["reason"] == "AuthenticationFailed" and 'secrets "git-creds" not found' in ready["message"]
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    await ac.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-creds"},
                                      "data": {"username": b64("alice"), "password": b64("wrong-secret-pw")}},
                    namespace=ns)
    await _request(ac, ns, "auth", "1")
    await reconciler.reconcile((ns, "auth"))
    obj = await _get(ac, ns, "auth")
    assert _condition(obj, "Ready")["reason"] == "GitOperationFailed" and "wrong-secret-pw" not in str(obj)
    await ac.patch("v1", "secrets", "git-creds", {"data": {"password": b64("pw")}}, namespace=ns)
    await _request(ac, ns, "auth", "2")
    await reconciler.reconcile((ns, "auth"))
    obj = await _get(ac, ns, "auth")
    assert _condition(obj, "Ready")["status"] == "True"
    assert (store.directory(Artifact.from_status(obj["status"])) / "app" / "cm.yaml").exists()


async def test_secret_ref_identity_and_known_hosts_over_ssh(ac: Any, ns: str, store: ArtifactStore, tmp_path: Path,
                                                            ssh_server: sshd.SSHServer) -> None:
    """Flux's SSH Secret (identity, known_hosts; identity.pub optional) against a real sshd on 127.0.0.1:
    each missing or wrong piece is a Ready=False message saying which, and no key ever reaches the object."""
    src = gitrepos.init(tmp_path / "src", {"app/cm.yaml": CM.format("ssh")})
    head = gitrepos.git(src, "rev-parse", "HEAD")
    url = ssh_server.url(src)
    await _create(ac, ns, _repo_object("viassh", url))
    recorder = events.EventRecorder(ac, component="gitrepository-test")
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", recorder=recorder)
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    _, other_host = sshd.keygen(tmp_path / "other-host")
    steps = [
        (None, "AuthenticationFailed", "an ssh:// URL needs a Secret with the keys identity and known_hosts"),
        ({"identity": b64(ssh_server.identity)}, "AuthenticationFailed", "needs the key known_hosts"),
        ({"identity": b64(ssh_server.identity), "known_hosts": b64(f"[127.0.0.1]:{ssh_server.port} {other_host}")},
         "GitOperationFailed", "does not match the Secret's known_hosts"),
        ({"identity": b64(sshd.keygen(tmp_path / "other-client")[0]), "known_hosts": b64(ssh_server.known_hosts)},
         "GitOperationFailed", "the server refused the Secret's identity"),
    ]
    for i, (data, reason, message) in enumerate(steps):
        if data is not None:
            await ac.patch(sources.API_VERSION, sources.PLURAL, "viassh", {"spec": {"secretRef": {"name": "deploy-key"}}},
                           namespace=ns)
            if i == 1:
                await ac.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                                  "metadata": {"name": "deploy-key"}, "data": data}, namespace=ns)
            else:
                await ac.patch("v1", "secrets", "deploy-key", {"data": data}, namespace=ns)
        await _request(ac, ns, "viassh", str(i))
        await reconciler.reconcile((ns, "viassh"))
        ready = _condition(await _get(ac, ns, "viassh"), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reason) and message in ready["message"], (i, ready)
        assert ready["message"].startswith(f"ssh://127.0.0.1:{ssh_server.port}") or reason == "AuthenticationFailed"
    await ac.patch("v1", "secrets", "deploy-key", {"data": {"identity": b64(ssh_server.identity),
                                                            "known_hosts": b64(ssh_server.known_hosts)}}, namespace=ns)
    await _request(ac, ns, "viassh", "ok")
    await reconciler.reconcile((ns, "viassh"))
    obj = await _get(ac, ns, "viassh")
    assert _condition(obj, "Ready")["status"] == "True"
    artifact = Artifact.from_status(obj["status"])
    assert artifact.revision == f"main@sha1:{head}"
    assert (store.directory(artifact) / "app" / "cm.yaml").read_text() == CM.format("ssh")
    listed = (await ac.list("v1", "events", namespace=ns))["items"]
    shown = str(obj) + str([e.get("message") for e in listed])
    key_lines = [line for line in ssh_server.identity.splitlines() if len(line) > 20]
    assert key_lines and not any(line in shown for line in key_lines)


async def test_a_passphrase_protected_identity_with_the_key_password_over_ssh(
        ac: Any, ns: str, store: ArtifactStore, tmp_path: Path, ssh_server: sshd.SSHServer) -> None:
    """Flux's SSH Secret with `password`, the identity's passphrase, against the real sshd: a missing
    or wrong password is Ready=False/AuthenticationFailed naming the key password (no ssh run, no
    value shown); the right one fetches. Neither the passphrase nor any key line reaches status or Events."""
    src = gitrepos.init(tmp_path / "src", {"app/cm.yaml": CM.format("locked")})
    head = gitrepos.git(src, "rev-parse", "HEAD")
    await _create(ac, ns, _repo_object("locked", ssh_server.url(src), secretRef={"name": "deploy-key"}))
    recorder = events.EventRecorder(ac, component="gitrepository-test")
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", recorder=recorder)
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    passphrase = "s3cret-deploy-passphrase"
    locked = sshd.encrypted(ssh_server.identity, tmp_path / "locked", passphrase)
    await ac.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "deploy-key"},
                                      "data": {"identity": b64(locked), "known_hosts": b64(ssh_server.known_hosts)}},
                    namespace=ns)
    steps = [(None, 'secret "deploy-key": the identity is encrypted (passphrase-protected): the Secret needs the '
                    'key password'),
             ("wrong-passphrase-xyz", 'secret "deploy-key": the key password does not decrypt the identity')]
    for i, (password, message) in enumerate(steps):
        if password is not None:
            await ac.patch("v1", "secrets", "deploy-key", {"data": {"password": b64(password)}}, namespace=ns)
        await _request(ac, ns, "locked", str(i))
        await reconciler.reconcile((ns, "locked"))
        ready = _condition(await _get(ac, ns, "locked"), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "AuthenticationFailed"), (i, ready)
        assert ready["message"].startswith(message)
    await ac.patch("v1", "secrets", "deploy-key", {"data": {"password": b64(passphrase)}}, namespace=ns)
    await _request(ac, ns, "locked", "ok")
    await reconciler.reconcile((ns, "locked"))
    obj = await _get(ac, ns, "locked")
    assert _condition(obj, "Ready")["status"] == "True", _condition(obj, "Ready")
    artifact = Artifact.from_status(obj["status"])
    assert artifact.revision == f"main@sha1:{head}"
    assert (store.directory(artifact) / "app" / "cm.yaml").read_text() == CM.format("locked")
    listed = (await ac.list("v1", "events", namespace=ns))["items"]
    shown = str(obj) + str([e.get("message") for e in listed])
    key_lines = [line for key in (locked, ssh_server.identity) for line in key.splitlines() if len(line) > 20]
    assert key_lines and not any(line in shown for line in key_lines)
    assert passphrase not in shown and "wrong-passphrase-xyz" not in shown


async def test_local_urls_are_refused_unless_the_operator_allows_them(ac: Any, ns: str, store: ArtifactStore,
                                                                       tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    await _create(ac, ns, _repo_object("local", f"file://{src}"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache")
    assert await reconciler.reconcile((ns, "local")) is None  # nothing to retry until the spec changes
    stalled = _condition(await _get(ac, ns, "local"), "Stalled")
    assert stalled["reason"] == "URLInvalid" and "local paths are disabled" in stalled["message"]
    assert not (tmp_path / "cache").exists()


async def test_a_signed_webhook_brings_the_new_commit_at_once_and_a_forged_one_nothing(
        ac: Any, ns: str, store: ArtifactStore, tmp_path: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": CM.format("one")})
    await _create(ac, ns, _repo_object("hooked", f"file://{src}"))
    reconciler = sources.GitRepositoryReconciler(ac, store, tmp_path / "cache", allow_local=True)
    await reconciler.reconcile((ns, "hooked"))
    second = gitrepos.commit_files(src, {"a.yaml": CM.format("two")})
    hook = receiver.Receiver(ns, "push", "generic-hmac", b"hook-token", targets=((ns, "hooked"),))
    body = b'{"ref": "refs/heads/main"}'

    async def deliver(signature: str) -> receiver.Decision:
        decision = receiver.handle("POST", {"X-Signature": signature}, body, hook)
        for namespace, name in decision.targets if decision.trigger else ():
            await ac.patch(sources.API_VERSION, sources.PLURAL, name, receiver.request_patch("2026-12-02T14:00:00Z"),
                           namespace=namespace)
        await reconciler.reconcile((ns, "hooked"))  # the loop runs either way (woken by anything)
        return decision

    forged = await deliver("sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest())
    assert forged.status == 401
    obj = await _get(ac, ns, "hooked")
    assert receiver.REQUESTED_AT not in (obj["metadata"].get("annotations") or {})
    assert Artifact.from_status(obj["status"]).revision != f"main@sha1:{second}"  # the interval (1h) not due
    signed = await deliver("sha256=" + hmac.new(b"hook-token", body, hashlib.sha256).hexdigest())
    assert signed.status == 200
    obj = await _get(ac, ns, "hooked")
    assert Artifact.from_status(obj["status"]).revision == f"main@sha1:{second}"
    assert obj["status"]["lastHandledReconcileAt"] == "2026-12-02T14:00:00Z"


def test_a_crash_left_staging_is_cleared_at_start(store: ArtifactStore, tmp_path: Path) -> None:
    half = store.staging_dir()
    (half / "partial.yaml").write_text("half a revi")
    sources.GitRepositoryReconciler(None, store, tmp_path / "cache")  # type: ignore[arg-type]
    assert not half.exists() and (store.root / ".staging").is_dir()


def test_durations() -> None:
    assert sources.parse_duration("1m30s", "f") == 90 and sources.parse_duration("500ms", "f") == 0.5
    assert sources.parse_duration("1h", "f") == 3600
    for bad in ("", "1", "1d", "soon", "0s", None):
        with pytest.raises(ValueError, match="f: "):
            sources.parse_duration(bad, "f")
    assert git.Ref.from_spec(None) == git.Ref()
