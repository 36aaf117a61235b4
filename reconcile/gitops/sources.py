"""The GitRepository reconciler: fetch, check, publish, report, come back after spec.interval.

One call of `GitRepositoryReconciler.reconcile(key)` does what Flux's source-controller does for
one GitRepository: read the object (and its secretRef), fetch the ref, check the tree out safely
into a staging folder of the artifact store, publish it (atomically, by rename) and write
`status.artifact` and the conditions, then ask to be called again after the interval. It is an
engine reconciler (`Key -> Result`); whoever runs the gitops process gives it a Controller, an
informer on gitrepositories and a loop.

Cheap when nothing changed: within one interval of the last fetch (same generation, no new
`gitops.reconcile.dev/requestedAt`), a call (e.g. woken by its own status write) does nothing;
after the interval it fetches, and when the commit and the ignore rules are those of the current
artifact, it writes nothing. A failed fetch or an unsafe tree keeps the last artifact in status
(the Syncs keep running it) and says why in the conditions; credentials never reach a message.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from reconcile.client import aio
from reconcile.client import informer as informer_mod
from reconcile.core import errors, webhookreceiver
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller as controller_mod
from reconcile.engine import events as events_mod
from reconcile.engine import metrics as metrics_mod
from reconcile.gitops import git, ssh
from reconcile.gitops.artifacts import Artifact, ArtifactStore

log = logging.getLogger(__name__)

GROUP = "gitops.reconcile.dev"
API_VERSION = f"{GROUP}/v1"
KIND = "GitRepository"
PLURAL = "gitrepositories"
DEFAULT_TIMEOUT = 60.0  # Flux's spec.timeout default
KEEP_ARTIFACTS = 2  # the current tree and the one before (a Sync may still be reading it)

# condition types and reasons as Flux's source-controller writes them
READY, RECONCILING, STALLED, FETCH_FAILED, ARTIFACT_IN_STORAGE = (
    "Ready", "Reconciling", "Stalled", "FetchFailed", "ArtifactInStorage")
SUCCEEDED, PROGRESSING, GIT_FAILED, AUTH_FAILED, INVALID_URL, UNSAFE_TREE = (
    "Succeeded", "Progressing", "GitOperationFailed", "AuthenticationFailed", "URLInvalid", "UnsafeTree")

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Any, field: str) -> float:
    """Seconds of a Go duration (`1m30s`, `500ms`, `1h`), or ValueError naming `field`."""
    if not isinstance(text, str) or not text or _DURATION.sub("", text):
        raise ValueError(f"{field}: invalid duration {text!r} (e.g. 30s, 5m, 1h)")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    if seconds <= 0:
        raise ValueError(f"{field}: must be greater than zero")
    return seconds


def set_condition(conditions: list[dict], type_: str, status: str, reason: str, message: str, *,
                  generation: int, now: str) -> list[dict]:
    """`conditions` with `type_` set; its lastTransitionTime moves only when the status changes."""
    out = [c for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get(
        "lastTransitionTime") else now
    out.append({"type": type_, "status": status, "observedGeneration": generation,
                "lastTransitionTime": since, "reason": reason, "message": message})
    return sorted(out, key=lambda c: (c["type"] != READY, c["type"]))


def remove_condition(conditions: list[dict], type_: str) -> list[dict]:
    return [c for c in conditions if c.get("type") != type_]


@dataclasses.dataclass
class _Seen:
    """What the last fetch of one GitRepository was for, and when (monotonic)."""

    at: float
    generation: int
    requested: str | None


class GitRepositoryReconciler:
    """Reconciles GitRepositories into published artifacts; run `reconcile` from a Controller."""

    def __init__(self, client: aio.AsyncClient, store: ArtifactStore, cache_root: str | Path, *,
                 limits: git.Limits = git.Limits(), clock: clock_mod.Clock | None = None,
                 recorder: events_mod.EventRecorder | None = None, allow_local: bool = False) -> None:
        self.client = client
        self.store = store
        self.cache_root = Path(cache_root)
        self.limits = limits
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.recorder = recorder
        self.allow_local = allow_local  # file:// and local paths: for tests and single-user setups only
        self._seen: dict[controller_mod.Key, _Seen] = {}
        self._running: dict[controller_mod.Key, asyncio.Future] = {}  # fetch threads, by GitRepository
        # this reconciler is the store's only writer: what a crash left half-written in staging goes now
        staging = self.store.root / ".staging"
        for leftover in staging.iterdir() if staging.is_dir() else ():
            shutil.rmtree(leftover, ignore_errors=True)

    # --- the reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        namespace, name = key
        try:
            obj = await self.client.get(API_VERSION, PLURAL, name, namespace=namespace)
        except errors.NotFound:
            self.forget(key)
            return None
        spec = obj.get("spec") or {}
        metadata = obj.get("metadata") or {}
        status = obj.get("status") or {}
        if spec.get("suspend") is True:
            return None  # as Flux: a suspended source is left exactly as it is
        generation = int(metadata.get("generation") or 0)
        requested = (metadata.get("annotations") or {}).get(webhookreceiver.REQUESTED_AT)
        try:
            interval = parse_duration(spec.get("interval"), "spec.interval")
            timeout = parse_duration(spec["timeout"], "spec.timeout") if spec.get("timeout") else DEFAULT_TIMEOUT
            ref = git.Ref.from_spec(spec.get("ref"))
            location = git.parse_url(spec.get("url"))[0]
            if location.startswith("/") and not self.allow_local:
                raise git.InvalidURL("spec.url: file:// URLs and local paths are disabled on this controller")
        except (ValueError, git.GitError) as exc:
            await self._write(obj, failure=(STALLED, INVALID_URL if isinstance(exc, git.InvalidURL) else
                                            "InvalidSpec", str(exc)))
            return None  # nothing to retry until the spec changes
        seen = self._seen.get(key)
        if seen and seen.generation == generation and seen.requested == requested:
            left = seen.at + interval - self.clock.now()
            if left > 0:
                return controller_mod.Result(requeue_after=left)
        self._seen[key] = _Seen(self.clock.now(), generation, requested)
        if status.get("observedGeneration") != generation and not _has(status, RECONCILING):
            obj = await self._progressing(obj) or obj
        try:
            credentials = await self._credentials(namespace, spec.get("secretRef"), location)
        except _AuthError as exc:
            await self._write(obj, failure=(FETCH_FAILED, AUTH_FAILED, str(exc)), requested=requested)
            return controller_mod.Result(requeue_after=interval)
        current = Artifact.from_status(status)
        try:
            result = await self._fetch_and_publish(obj, ref, credentials, timeout, current)
        except git.UnsafeTree as exc:
            await self._write(obj, failure=(STALLED, UNSAFE_TREE, str(exc)), requested=requested)
            await self._event(obj, UNSAFE_TREE, str(exc), "Warning")
            return controller_mod.Result(requeue_after=interval)  # a new commit may fix it
        except git.GitError as exc:
            await self._write(obj, failure=(FETCH_FAILED, GIT_FAILED, str(exc)), requested=requested)
            await self._event(obj, GIT_FAILED, str(exc), "Warning")
            return controller_mod.Result(requeue_after=interval)
        artifact, changed = result
        if changed or not _ready_for(status, artifact, generation) or status.get(
                "lastHandledReconcileAt") != requested:
            await self._write(obj, artifact=artifact, requested=requested)
            if changed:
                await self._event(obj, "NewArtifact", f"stored artifact for commit '{artifact.revision}'", "Normal")
        return controller_mod.Result(requeue_after=interval)

    def forget(self, key: controller_mod.Key) -> None:
        """A deleted GitRepository: its artifacts and its cache go."""
        self._seen.pop(key, None)
        self._running.pop(key, None)
        self.store.garbage_collect(KIND, key[0], key[1], keep=set())
        shutil.rmtree(self._cache_for(key), ignore_errors=True)

    # --- fetching ---------------------------------------------------------------------------------

    def _cache_for(self, key: controller_mod.Key) -> Path:
        """One cache per GitRepository: objects fetched with one namespace's credentials stay its own."""
        return self.cache_root / key[0] / key[1]

    async def _fetch_and_publish(self, obj: dict, ref: git.Ref, credentials: git.Credentials | None,
                                 timeout: float, current: Artifact | None) -> tuple[Artifact, bool]:
        metadata, spec = obj["metadata"], obj.get("spec") or {}
        key = (metadata["namespace"], metadata["name"])
        ignore = spec.get("ignore") if isinstance(spec.get("ignore"), str) else None
        staging: list[Path] = []
        abandoned = threading.Event()
        generation = int(metadata.get("generation") or 0)
        # the generation the current artifact was built for (a spec.ignore change bumps the generation)
        built_at = next((c.get("observedGeneration") for c in (obj.get("status") or {}).get("conditions") or []
                         if c.get("type") == ARTIFACT_IN_STORAGE), None)

        def work() -> tuple[Artifact, bool]:
            fetched = git.fetch(spec["url"], ref, self._cache_for(key), credentials=credentials,
                                limits=self.limits, timeout=timeout, allow_local=self.allow_local)
            if (current is not None and current.revision == fetched.revision
                    and self.store.directory(current) is not None and built_at == generation):
                return current, False
            folder = self.store.staging_dir()
            staging.append(folder)
            digest = git.checkout(fetched, folder, ignore=ignore, limits=self.limits)
            if abandoned.is_set():  # timed out meanwhile: the caller reported a failure, so publish nothing
                raise git.GitError("abandoned after the timeout")
            artifact = self.store.publish(folder, kind=KIND, namespace=key[0], name=key[1],
                                          revision=fetched.revision, digest=digest)
            keep = {artifact.digest} | ({current.digest} if current else set())  # KEEP_ARTIFACTS: 2
            self.store.garbage_collect(KIND, key[0], key[1], keep=keep)
            return artifact, current is None or current.digest != artifact.digest or \
                current.revision != artifact.revision

        previous = self._running.get(key)
        if previous is not None and not previous.done():
            # a fetch that outlived its timeout still runs (a thread cannot be stopped): never a second
            raise git.GitError(f"{git.redact(spec['url'])}: the previous fetch, past its timeout, is still running")
        task = asyncio.ensure_future(asyncio.to_thread(work))
        self._running[key] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            # the thread cannot be stopped; it publishes nothing now, and its staging goes when it ends
            abandoned.set()

            def ended(done: asyncio.Future) -> None:
                if not done.cancelled():
                    done.exception()  # retrieved: no "exception was never retrieved" report from a finalizer
                for folder in staging:
                    if folder.exists() and folder.parent.name == ".staging":
                        shutil.rmtree(folder, ignore_errors=True)

            task.add_done_callback(ended)
            raise git.GitError(f"{git.redact(spec['url'])}: the fetch did not finish within the timeout of "
                               f"{timeout:g}s") from None
        finally:
            for folder in staging if task.done() else ():
                if folder.exists() and folder.parent.name == ".staging":
                    shutil.rmtree(folder, ignore_errors=True)

    async def _credentials(self, namespace: str, secret_ref: Any, location: str) -> git.Credentials | None:
        """The Secret's keys as Flux reads them: username/password or bearerToken over HTTP(S); identity
        and known_hosts (both required: no trust on first use) over ssh://, with password when the
        identity is passphrase-protected (identity.pub is not needed). Over ssh:// the identity comes
        back decrypted, without the password."""
        over_ssh = location.startswith("ssh://")
        if not secret_ref:
            if over_ssh:
                raise _AuthError("spec.secretRef: an ssh:// URL needs a Secret with the keys identity and known_hosts")
            return None
        name = secret_ref.get("name") if isinstance(secret_ref, dict) else None
        if not isinstance(name, str) or not name:
            raise _AuthError("spec.secretRef.name: Required value")
        try:
            secret = await self.client.get("v1", "secrets", name, namespace=namespace)
        except errors.NotFound:
            raise _AuthError(f"secrets \"{name}\" not found") from None
        data = secret.get("data") or {}

        def value(field: str) -> str | None:
            raw = data.get(field)
            if not raw:
                return None
            try:
                return base64.b64decode(raw).decode()
            except (ValueError, UnicodeDecodeError):
                raise _AuthError(f"secret \"{name}\": key {field} is not valid base64 UTF-8") from None

        credentials = git.Credentials(value("username"), value("password"), value("bearerToken"),
                                      identity=value("identity"), known_hosts=value("known_hosts"))
        if over_ssh:
            if not credentials.identity:
                raise _AuthError(f"secret \"{name}\": an ssh:// URL needs the key identity (a private key)")
            if not credentials.known_hosts:
                raise _AuthError(f"secret \"{name}\": an ssh:// URL needs the key known_hosts (the server's host "
                                 "keys: they are never trusted on first use)")
            try:  # decrypted here, once per fetch: a wrong or missing password is an authentication failure
                identity = ssh.decrypt_identity(credentials.identity, credentials.password)
            except ssh.IdentityError as exc:
                raise _AuthError(f"secret \"{name}\": {exc}") from None
            return dataclasses.replace(credentials, identity=identity, password=None)
        if not (credentials.username and credentials.password) and not credentials.bearer_token:
            raise _AuthError(f"secret \"{name}\": needs the keys username and password, or bearerToken")
        return credentials

    # --- status -----------------------------------------------------------------------------------

    def _now(self) -> str:
        return self.clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _progressing(self, obj: dict) -> dict | None:
        status = obj.get("status") or {}
        generation = int(obj["metadata"].get("generation") or 0)
        conditions = set_condition(status.get("conditions") or [], RECONCILING, "True", PROGRESSING,
                                   f"reconciling new object generation ({generation})", generation=generation,
                                   now=self._now())
        if not _has(status, READY):
            conditions = set_condition(conditions, READY, "Unknown", PROGRESSING, "reconciliation in progress",
                                       generation=generation, now=self._now())
        return await self._patch(obj, {"conditions": conditions})

    async def _write(self, obj: dict, *, artifact: Artifact | None = None,
                     failure: tuple[str, str, str] | None = None, requested: str | None = None) -> None:
        status = obj.get("status") or {}
        generation = int(obj["metadata"].get("generation") or 0)
        now = self._now()
        conditions = status.get("conditions") or []
        patch: dict[str, Any] = {"observedGeneration": generation}
        if requested is not None:
            patch["lastHandledReconcileAt"] = requested
        if failure is None and artifact is not None:
            message = f"stored artifact for revision '{artifact.revision}'"
            for type_ in (RECONCILING, STALLED, FETCH_FAILED):
                conditions = remove_condition(conditions, type_)
            conditions = set_condition(conditions, ARTIFACT_IN_STORAGE, "True", SUCCEEDED, message,
                                       generation=generation, now=now)
            conditions = set_condition(conditions, READY, "True", SUCCEEDED, message, generation=generation,
                                       now=now)
            old = (status.get("artifact") or {})
            patch["artifact"] = {**artifact.to_status(), "lastUpdateTime": now if (
                old.get("digest"), old.get("revision")) != (artifact.digest, artifact.revision) else
                old.get("lastUpdateTime") or now}
        elif failure is not None:
            type_, reason, message = failure
            conditions = remove_condition(conditions, RECONCILING)
            conditions = remove_condition(conditions, STALLED if type_ == FETCH_FAILED else FETCH_FAILED)
            conditions = set_condition(conditions, type_, "True", reason, message, generation=generation, now=now)
            conditions = set_condition(conditions, READY, "False", reason, message, generation=generation, now=now)
        patch["conditions"] = conditions
        await self._patch(obj, patch)

    async def _patch(self, obj: dict, status: dict) -> dict | None:
        metadata = obj["metadata"]
        try:
            return await self.client.patch(API_VERSION, PLURAL, metadata["name"], {"status": status},
                                           namespace=metadata["namespace"], subresource="status")
        except errors.NotFound:
            return None

    async def _event(self, obj: dict, reason: str, message: str, type_: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, reason=reason, message=message, type=type_)


def controller(reconciler: GitRepositoryReconciler, informer: informer_mod.Informer, *, workers: int = 2,
               metrics: metrics_mod.Metrics | None = None) -> controller_mod.Controller:
    """The engine Controller that runs `reconciler` for every GitRepository `informer` (on
    gitrepositories) sees; the gitops process starts the informer and `run()`s this."""
    running = controller_mod.Controller("gitrepository-controller", reconciler.reconcile, workers=workers,
                                        clock=reconciler.clock, metrics=metrics,
                                        lookup=lambda key: informer.store.get(key[0], key[1]))
    running.watch(informer)
    return running


class _AuthError(Exception):
    """spec.secretRef names no usable Secret."""


def _has(status: dict, type_: str) -> bool:
    return any(c.get("type") == type_ for c in status.get("conditions") or [])


def _ready_for(status: dict, artifact: Artifact, generation: int) -> bool:
    """Whether the status already says Ready for this artifact at this generation (then: no write)."""
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == READY), None)
    return (Artifact.from_status(status) == artifact and status.get("observedGeneration") == generation
            and ready is not None and ready.get("status") == "True"
            and not any(c.get("type") in (RECONCILING, STALLED, FETCH_FAILED) for c in status["conditions"]))

