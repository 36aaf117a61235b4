"""One Sync's reconcile: render the artifact's path, dry-run every object, apply, prune, report.

`sync_once` is the level-triggered step the Sync controller runs per key, as Flux's
kustomize-controller runs one Kustomization. Its stages are public so a test can run some of them
and stop, as a process killed mid-apply would:

1. `load_artifact`: the source's `status.artifact` and its published tree (else ArtifactFailed).
2. `build`: render `spec.path` (or the chart) and make each document the object to apply
   (namespace, owner labels); a bad document is BuildFailed naming file and document.
3. `validate`: refuse objects another Sync or a chart release owns, and dry-run every object the
   server can judge now. A failure here applies nothing of the commit; the last good revision
   keeps running. Objects whose Namespace or CRD the same render creates are judged after stage 5
   (the server cannot judge them before), as Flux's staged apply does. The dry runs go
   CONCURRENCY at a time; the first failure in apply order is the one reported. A dry run whose
   answer is the live object unchanged (`plan.apply_is_noop`) marks its target: its apply would
   store nothing, so stage 5 does not send it.
4. `record_inventory` (before any apply): the old inventory plus everything about to be applied,
   so a process killed anywhere later still knows every object it may have created (with the
   Reconciling condition in the same write; the entries only when some are new).
5. `apply`: server-side apply (create or update, a fixed field manager), Namespaces and CRDs first
   (waiting until a new CRD is served), then by sync wave; with `wait`, each wave is healthy
   before the next starts. Within a wave, neighbours of one kind are applied concurrently (see
   `plan.same_kind_runs`); objects of different kinds keep the render's order.
6. `prune` deletes what left the render: only inventory entries whose live object still carries
   this Sync's owner labels, never one marked `gitops.reconcile.dev/prune: disabled`, in reverse
   order; then the inventory becomes exactly what was applied (so an object a failed prune left
   stays listed, and is pruned by a later run), written with Ready (before the wait, with `wait`).
7. `wait_healthy` (with `spec.wait`): kstatus health of every applied object within `spec.timeout`.

Every stage is idempotent (apply by name, delete of the absent is a no-op), so running the whole
again after a kill converges with no duplicates and no lost object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from reconcile.core import errors
from reconcile.gitops import artifacts, durations, plan, render

API_VERSION = "gitops.reconcile.dev/v1"
SYNCS = "syncs"
GIT_REPOSITORIES = "gitrepositories"
FIELD_MANAGER = "gitops-controller"  # one fixed manager, as Flux's "kustomize-controller"
DEFAULT_INTERVAL = 300.0  # Flux's recommended 5m when spec.interval is unset
POLL_SECONDS = 0.5  # how often health and CRD establishment are looked at (Flux: 2 s)
CRD_SERVED_TIMEOUT = 30.0
# requests of one stage in flight at once (dry runs; applies of one kind in one wave)
CONCURRENCY = 16
# this many targets of one kind in one namespace are read with one list rather than a GET each
LIST_AT = 16
# Namespaces never pruned even when a Sync adopted them (applied over the existing ones): deleting
# one would take the cluster's own objects with it.
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

# Ready=False reasons, Flux's names.
ARTIFACT_FAILED = "ArtifactFailed"
BUILD_FAILED = "BuildFailed"
RECONCILIATION_FAILED = "ReconciliationFailed"
HEALTH_CHECK_FAILED = "HealthCheckFailed"
PRUNE_FAILED = "PruneFailed"
DEPENDENCY_NOT_READY = "DependencyNotReady"
SUCCEEDED = "ReconciliationSucceeded"
PROGRESSING = "Progressing"


class SyncFailed(Exception):
    """One stage failed: `reason` and `message` go to the Ready condition; `stalled` when the
    revision itself is bad (retrying the same revision cannot help)."""

    def __init__(self, reason: str, message: str, *, stalled: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.stalled = stalled


@dataclasses.dataclass
class Outcome:
    """What one `sync_once` did."""

    revision: str | None
    ready: bool
    reason: str
    message: str
    applied: list[plan.Entry] = dataclasses.field(default_factory=list)
    pruned: list[plan.Entry] = dataclasses.field(default_factory=list)
    suspended: bool = False


@dataclasses.dataclass
class Target:
    """One rendered document as it is applied."""

    where: str  # "<file> (document N)"
    obj: dict[str, Any]
    resource: Any  # discovery.ApiResource, or None while its kind is a CRD of this render not yet served
    deferred: bool = False  # judged by dry run only after the first stage (its Namespace/CRD is new)
    recreate: bool = False  # `force` and the dry run said an immutable field changes: delete, then create
    unchanged: bool = False  # its dry run proved the apply a no-op (plan.apply_is_noop): not sent again

    @property
    def entry(self) -> plan.Entry:
        return plan.entry_of(self.obj)

    @property
    def ref(self) -> str:
        meta = self.obj["metadata"]
        return (f"{self.obj['kind']}/{meta['namespace']}/{meta['name']}" if meta.get("namespace")
                else f"{self.obj['kind']}/{meta['name']}")


@dataclasses.dataclass
class Settings:
    """A Sync's spec as the stages use it (defaults as Flux's)."""

    namespace: str
    name: str
    generation: int
    source: tuple[str, str]  # (namespace, name) of the GitRepository
    path: str
    prune: bool
    wait: bool
    suspend: bool
    target_namespace: str | None
    interval: float
    retry_interval: float
    timeout: float
    service_account: str | None
    force: bool = False

    @classmethod
    def of(cls, sync: dict[str, Any]) -> Settings:
        meta, spec = sync.get("metadata") or {}, sync.get("spec") or {}
        ref = spec.get("sourceRef") or {}
        interval = durations.parse_or(spec.get("interval"), DEFAULT_INTERVAL)
        return cls(
            namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
            generation=int(meta.get("generation") or 0),
            source=(str(ref.get("namespace") or meta.get("namespace") or ""), str(ref.get("name") or "")),
            path=str(spec.get("path") or ""), prune=spec.get("prune", True) is not False,
            wait=spec.get("wait") is True, suspend=spec.get("suspend") is True,
            target_namespace=spec.get("targetNamespace") or None, interval=interval,
            retry_interval=durations.parse_or(spec.get("retryInterval"), interval),
            timeout=durations.parse_or(spec.get("timeout"), interval),
            service_account=spec.get("serviceAccountName") or None, force=spec.get("force") is True,
        )

    @property
    def owner(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def now() -> str:
    """A condition timestamp: RFC 3339 in whole seconds, as Kubernetes writes lastTransitionTime."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(old: list[Any], new: list[tuple[str, str, str, str]], generation: int) -> list[dict[str, Any]]:
    """The conditions `new` ((type, status, reason, message)), keeping a condition's
    lastTransitionTime while its status stays the same (metav1.Condition semantics)."""
    before = {c.get("type"): c for c in old or [] if isinstance(c, dict)}
    out = []
    for kind, status, reason, message in new:
        previous = before.get(kind)
        since = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": since or now(), "observedGeneration": generation})
    return out


def ready_condition(sync: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (sync.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return None


def is_ready(sync: dict[str, Any]) -> bool:
    """Ready=True for the Sync's current generation (what a dependent waits for, as Flux's dependsOn)."""
    cond = ready_condition(sync)
    generation = int((sync.get("metadata") or {}).get("generation") or 0)
    observed = int((sync.get("status") or {}).get("observedGeneration") or 0)
    return bool(cond and cond.get("status") == "True" and observed >= generation)


async def write_status(client: Any, settings: Settings, status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the status subresource (lists such as conditions are replaced whole)."""
    return await client.patch(API_VERSION, SYNCS, settings.name, {"status": status}, namespace=settings.namespace,
                              subresource="status")


# --- stage 1: the artifact -------------------------------------------------------------------


async def load_artifact(client: Any, store: artifacts.ArtifactStore, settings: Settings, *,
                        cross_namespace_refs: bool = False) -> tuple[artifacts.Artifact, Path]:
    """The source's artifact. A source in another namespace is refused unless allowed (Flux's
    --no-cross-namespace-refs, on by default here): one tenant must not apply another's repository."""
    source_ns, source_name = settings.source
    where = f"GitRepository/{source_ns}/{source_name}"
    if source_ns != settings.namespace and not cross_namespace_refs:
        raise SyncFailed(ARTIFACT_FAILED, f"spec.sourceRef.namespace: cannot access {where}: "
                         "cross-namespace references are not allowed", stalled=True)
    try:
        source = await client.get(API_VERSION, GIT_REPOSITORIES, source_name, namespace=source_ns)
    except errors.NotFound:
        raise SyncFailed(ARTIFACT_FAILED, f"Source '{where}' not found") from None
    artifact = artifacts.Artifact.from_status(source.get("status") or {})
    if artifact is None:
        raise SyncFailed(ARTIFACT_FAILED, f"Source '{where}' is not ready, artifact not found")
    folder = store.directory(artifact)
    if folder is None:
        raise SyncFailed(ARTIFACT_FAILED, f"Source '{where}': artifact {artifact.revision} is not in the store")
    return artifact, folder


# --- stage 2: render and build the targets ---------------------------------------------------


def _new_kinds(docs: list[render.Document]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, of each CRD this render defines."""
    kinds = {}
    for doc in docs:
        if doc.obj.get("kind") == "CustomResourceDefinition":
            spec = doc.obj.get("spec") or {}
            names = spec.get("names") or {}
            if isinstance(spec.get("group"), str) and isinstance(names, dict) and isinstance(names.get("kind"), str):
                kinds[(spec["group"], names["kind"])] = spec.get("scope", "Namespaced") == "Namespaced"
    return kinds


async def build(apply_client: Any, folder: Path, settings: Settings, *,
                renderer: render.ChartRenderer | None = None, sync: dict[str, Any] | None = None) -> list[Target]:
    """The targets in apply order; BuildFailed (stalled) for a bad document."""
    try:
        docs = await _render(apply_client, folder, settings, (sync or {}).get("spec") or {}, renderer)
    except render.RenderError as exc:
        raise SyncFailed(BUILD_FAILED, str(exc), stalled=True) from None
    new_kinds = _new_kinds(docs)
    where = {id(doc.obj): doc.where for doc in docs}
    targets: list[Target] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for obj in plan.apply_order([doc.obj for doc in docs]):
        place = where[id(obj)]
        group, _version = plan.split_api_version(obj["apiVersion"])
        resource = None
        try:
            resource = await apply_client.resource_for(obj["apiVersion"], obj["kind"])
            namespaced = resource.namespaced
        except errors.NotFound:
            if (group, obj["kind"]) not in new_kinds:
                raise SyncFailed(BUILD_FAILED, f"{place}: no matches for kind \"{obj['kind']}\" in version "
                                 f"\"{obj['apiVersion']}\"", stalled=True) from None
            namespaced = new_kinds[(group, obj["kind"])]
        applied = plan.with_defaults(obj, target_namespace=settings.target_namespace, namespaced=namespaced,
                                     sync=settings.owner)
        target = Target(place, applied, resource, deferred=resource is None)
        if target.entry.key in seen:
            raise SyncFailed(BUILD_FAILED, f"{place}: {target.ref} is also defined in {seen[target.entry.key]}",
                             stalled=True)
        seen[target.entry.key] = place
        targets.append(target)
    return targets


async def _render(client: Any, folder: Path, settings: Settings, spec: dict[str, Any],
                  renderer: render.ChartRenderer | None) -> list[render.Document]:
    chart = spec.get("chart")
    if not chart:
        return render.render_folder(folder, settings.path)
    layers = []
    for ref in chart.get("valuesFrom") or []:
        kind, key, ref_name = ref.get("kind"), ref.get("valuesKey") or "values.yaml", ref.get("name", "")
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        try:
            obj = await client.get("v1", plural, ref_name, namespace=settings.namespace)
        except errors.ApiError as exc:
            raise render.RenderError(f"spec.chart.valuesFrom: {kind} {ref_name}: {exc.message}") from None
        data = dict(obj.get("data") or {})
        if kind == "Secret":
            import base64
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        if key not in data:
            raise render.RenderError(f"spec.chart.valuesFrom: {kind} {ref_name} has no key {key}")
        layers.append((f"{kind} {ref_name} key {key}", data[key]))
    values = render.chart_values(chart.get("values"), layers)
    return render.render_chart(folder, chart["path"], values, renderer, settings.name,
                               settings.target_namespace or settings.namespace)


# --- bounded concurrency ----------------------------------------------------------------------


async def _bounded(targets: list[Target], work: Callable[[Target], Awaitable[None]],
                   limit: int = CONCURRENCY) -> list[Exception | None]:
    """Run `work` for every target, at most `limit` at once; each one's exception (or None), in order.

    One request at a time leaves the API server idle while each answer travels back; a few in
    flight keep it busy (the client's own gate, aio.MAX_IN_FLIGHT, bounds the connections)."""
    gate = asyncio.Semaphore(limit)

    async def one(target: Target) -> Exception | None:
        async with gate:
            try:
                await work(target)
            except Exception as exc:  # collected: the caller reports the first in order
                return exc
            return None

    if len(targets) == 1:  # the common small case, without a task
        return [await one(targets[0])]
    return list(await asyncio.gather(*(one(t) for t in targets)))


def _raise_first(failures: list[Exception | None]) -> None:
    for failure in failures:
        if failure is not None:
            raise failure


# --- stage 3: conflicts and dry run ------------------------------------------------------------


async def _live(client: Any, target: Target) -> dict[str, Any] | None:
    meta = target.obj["metadata"]
    try:
        return await client.get(target.resource.api_version, target.resource.plural, meta["name"],
                                namespace=meta.get("namespace"))
    except errors.NotFound:
        return None


async def _namespaces_missing(client: Any, targets: list[Target]) -> set[str]:
    """Namespaces this render creates that do not exist yet (their objects cannot be dry-run yet)."""
    created = {t.obj["metadata"]["name"] for t in targets if t.obj["kind"] == "Namespace" and not t.entry.group}
    missing = set()
    for name in created:
        try:
            await client.get("v1", "namespaces", name)
        except errors.NotFound:
            missing.add(name)
    return missing


async def validate(apply_client: Any, targets: list[Target], settings: Settings, *, deferred: bool = False
                   ) -> None:
    """Conflicts and a server-side dry run of each target (those not deferred, or only the deferred)."""
    if not deferred:
        missing = await _namespaces_missing(apply_client, targets)
        for target in targets:
            if target.obj["metadata"].get("namespace") in missing:
                target.deferred = True
    judged = [t for t in targets if t.deferred == deferred]
    for target in judged:
        if target.resource is None:
            raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref}: its kind is not served")
    known = await _listed(apply_client, judged)
    # every dry run is judged (concurrently, harmless) and the first failure in apply order is
    # reported, so the message does not depend on which answer came back first
    _raise_first(await _bounded(judged, lambda target: _judge(apply_client, target, settings, known)))


def _key(target: Target) -> tuple[str, str, str | None, str]:
    meta = target.obj["metadata"]
    return (target.resource.api_version, target.resource.plural, meta.get("namespace"), meta["name"])


async def _listed(apply_client: Any, targets: list[Target]) -> dict[tuple[str, str, str | None, str], Any]:
    """The live objects (None: absent) of the targets, read with one list per kind and namespace
    holding at least LIST_AT of them instead of a GET each; a list refused (a ServiceAccount
    allowed to get but not to list) or failed leaves its targets to their GETs."""
    groups: dict[tuple[str, str, str | None], list[Target]] = {}
    for target in targets:
        groups.setdefault(_key(target)[:3], []).append(target)
    known: dict[tuple[str, str, str | None, str], Any] = {}
    for (api_version, plural, namespace), members in groups.items():
        if len(members) < LIST_AT:
            continue
        try:
            body = await apply_client.list_all(api_version, plural, namespace=namespace)
        except errors.ApiError:
            continue
        items = {(item.get("metadata") or {}).get("name"): item for item in body.get("items") or []}
        for target in members:
            known[_key(target)] = items.get(target.obj["metadata"]["name"])
    return known


async def _judge(apply_client: Any, target: Target, settings: Settings,
                 known: dict[tuple[str, str, str | None, str], Any]) -> None:
    """One target's ownership check and server-side dry run (SyncFailed when it may not be applied)."""
    try:
        key = _key(target)
        live = known[key] if key in known else await _live(apply_client, target)
        problem = plan.conflict(live, settings.owner)
        if problem:
            raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref} is {problem}; refused",
                             stalled=True)
        meta = target.obj["metadata"]
        answer = await apply_client.patch(target.resource.api_version, target.resource.plural, meta["name"],
                                          target.obj, namespace=meta.get("namespace"), patch_type="apply",
                                          field_manager=FIELD_MANAGER, force=True, dry_run=True)
        target.unchanged = plan.apply_is_noop(live, answer)
    except errors.Invalid as exc:
        if settings.force and "immutable" in exc.message:
            target.recreate = True  # Flux's force: an immutable change is a delete and create
            return
        raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref} dry-run failed: {exc.message}",
                         stalled=True) from None
    except errors.ApiError as exc:
        stalled = not isinstance(exc, (errors.Forbidden, errors.ServiceUnavailable, errors.Timeout,
                                       errors.TooManyRequests, errors.InternalError, errors.Conflict))
        raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref} dry-run failed: {exc.message}",
                         stalled=stalled) from None


# --- stage 4 and 6: the inventory ------------------------------------------------------------


async def record_inventory(client: Any, settings: Settings, entries: list[plan.Entry],
                           extra: dict[str, Any] | None = None) -> None:
    status = {"inventory": {"entries": [e.to_status() for e in dict.fromkeys(entries)]}, **(extra or {})}
    await write_status(client, settings, status)


# --- stage 5: apply --------------------------------------------------------------------------


async def _await_served(apply_client: Any, targets: list[Target], timeout: float) -> None:
    """Resolve the deferred targets' resources once their CRDs are served (within `timeout`)."""
    deadline = time.monotonic() + timeout
    for target in targets:
        while target.resource is None:
            try:
                target.resource = await apply_client.resource_for(target.obj["apiVersion"], target.obj["kind"])
            except errors.NotFound:
                if time.monotonic() > deadline:
                    raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref}: the CRD of kind "
                                     f"{target.obj['kind']} was not served within {timeout:g}s") from None
                await asyncio.sleep(POLL_SECONDS)  # waiting on the server's discovery, with a deadline


async def _recreate(apply_client: Any, target: Target, timeout: float = CRD_SERVED_TIMEOUT) -> None:
    """Delete the live object and wait (with a deadline) until it is gone, so the apply creates it."""
    meta = target.obj["metadata"]
    args = (target.resource.api_version, target.resource.plural, meta["name"])
    with contextlib.suppress(errors.NotFound):
        await apply_client.delete(*args, namespace=meta.get("namespace"), propagation_policy="Background")
    deadline = time.monotonic() + timeout
    while await _live(apply_client, target) is not None:
        if time.monotonic() > deadline:
            raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref} was not deleted within "
                             f"{timeout:g}s to be recreated (force)")
        await asyncio.sleep(POLL_SECONDS)  # waiting on its finalizers, with a deadline


async def apply_one(apply_client: Any, target: Target) -> None:
    """Server-side apply of one target; none when its dry run proved it a no-op (most objects of
    a typical commit, and every one of a self-heal interval without drift)."""
    meta = target.obj["metadata"]
    if target.unchanged and not target.recreate:
        return
    if target.recreate:
        await _recreate(apply_client, target)
    try:
        await apply_client.patch(target.resource.api_version, target.resource.plural, meta["name"], target.obj,
                                 namespace=meta.get("namespace"), patch_type="apply", field_manager=FIELD_MANAGER,
                                 force=True)
    except errors.ApiError as exc:
        raise SyncFailed(RECONCILIATION_FAILED, f"{target.where}: {target.ref} apply failed: {exc.message}") from None


async def apply(apply_client: Any, targets: list[Target], settings: Settings, *,
                deadline: float | None = None) -> None:
    """Namespaces and CRDs, then the deferred dry runs, then the rest wave by wave (health-gated
    with `wait`)."""
    deadline = deadline if deadline is not None else time.monotonic() + settings.timeout
    first = [t for t in targets if t.obj["kind"] in plan.FIRST_KINDS and t.resource is not None]
    rest = [t for t in targets if t not in first]
    for target in first:
        await apply_one(apply_client, target)
    if any(t.deferred for t in rest):
        await _await_served(apply_client, [t for t in rest if t.resource is None],
                            max(1.0, min(CRD_SERVED_TIMEOUT, deadline - time.monotonic())))
        await validate(apply_client, targets, settings, deferred=True)
    waves: dict[int, list[Target]] = {}
    for target in rest:
        waves.setdefault(plan.wave(target.obj), []).append(target)
    ordered = sorted(waves)
    for index, number in enumerate(ordered):
        for run in plan.same_kind_runs(waves[number], lambda target: target.obj):
            _raise_first(await _bounded(run, lambda target: apply_one(apply_client, target)))
        if settings.wait and index < len(ordered) - 1:
            await wait_healthy(apply_client, waves[number], deadline)


# --- stage 6: prune --------------------------------------------------------------------------


def _api_version(entry: plan.Entry) -> str:
    return f"{entry.group}/{entry.version}" if entry.group else entry.version


async def prune(apply_client: Any, old: list[plan.Entry], new: list[plan.Entry], settings: Settings
                ) -> list[plan.Entry]:
    """Delete the old entries no longer rendered whose live objects are still this Sync's."""
    live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    resources = {}
    for entry in plan.prune_set(old, new):
        if entry.kind == "Namespace" and not entry.group and entry.name in PROTECTED_NAMESPACES:
            continue
        try:
            resource = await apply_client.resource_for(_api_version(entry), entry.kind)
            obj = await apply_client.get(resource.api_version, resource.plural, entry.name,
                                         namespace=entry.namespace or None)
        except errors.NotFound:
            continue  # already gone, or its kind is no longer served
        except errors.ApiError as exc:
            raise SyncFailed(PRUNE_FAILED, f"{entry.ref()}: {exc.message}") from None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if (labels.get(plan.OWNER_NAMESPACE), labels.get(plan.OWNER_NAME)) != settings.owner:
            continue  # not (or no longer) ours: never deleted
        live[entry.key], resources[entry.key] = obj, resource
    pruned = []
    for entry in plan.prune_set(old, new, live):
        if entry.key not in live:
            continue
        resource = resources[entry.key]
        try:
            await apply_client.delete(resource.api_version, resource.plural, entry.name,
                                      namespace=entry.namespace or None, propagation_policy="Background",
                                      preconditions={"uid": live[entry.key]["metadata"]["uid"]})
            pruned.append(entry)
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # replaced by another object of that name since: not the one we made
        except errors.ApiError as exc:
            raise SyncFailed(PRUNE_FAILED, f"{entry.ref()}: {exc.message}") from None
    return pruned


# --- stage 7: health -------------------------------------------------------------------------


async def wait_healthy(apply_client: Any, targets: list[Target], deadline: float) -> None:
    """Until every target is Current (kstatus), or HealthCheckFailed at the deadline / on Failed."""
    pending = list(targets)
    while True:
        still = []
        for target in pending:
            live = await _live(apply_client, target)
            state, why = plan.health(live) if live is not None else ("InProgress", "not found")
            if state == "Failed":
                raise SyncFailed(HEALTH_CHECK_FAILED, f"{target.ref}: {why}")
            if state != "Current":
                still.append((target, why))
        if not still:
            return
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{t.ref}: {why}" for t, why in still[:5])
            raise SyncFailed(HEALTH_CHECK_FAILED, f"timeout waiting for: [{detail}]")
        pending = [t for t, _ in still]
        await asyncio.sleep(POLL_SECONDS)  # polling live objects with a deadline, as Flux's health checker


# --- the whole ---------------------------------------------------------------------------------


async def sync_once(client: Any, store: artifacts.ArtifactStore, sync: dict[str, Any], *,
                    apply_client: Any = None, renderer: render.ChartRenderer | None = None,
                    cross_namespace_refs: bool = False, clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Apply `sync`'s source revision once and write its status.

    `client` reads the source and writes the Sync's status (the controller's own identity);
    `apply_client` (default `client`) renders, dry-runs, applies and prunes: the impersonated
    `spec.serviceAccountName` when one is set.
    """
    settings = Settings.of(sync)
    applier = apply_client or client
    old_status = sync.get("status") or {}
    old_conditions = old_status.get("conditions") or []
    if settings.suspend:
        return Outcome(old_status.get("lastAppliedRevision"), False, "Suspended", "reconciliation is suspended",
                       suspended=True)
    revision: str | None = None
    old = plan.inventory_of(old_status)
    try:
        artifact, folder = await load_artifact(client, store, settings, cross_namespace_refs=cross_namespace_refs)
        revision = artifact.revision
        targets = await build(applier, folder, settings, renderer=renderer, sync=sync)
        await validate(applier, targets, settings)
        progressing = conditions(old_conditions, [
            ("Reconciling", "True", PROGRESSING, f"Applying revision: {revision}"),
            ("Ready", "Unknown", PROGRESSING, "Reconciliation in progress")], settings.generation)
        new = [t.entry for t in targets]
        attempted = {"lastAttemptedRevision": revision, "conditions": progressing}
        if set(new) <= set(old):  # the stored inventory already names every object: not written again
            await write_status(client, settings, attempted)
        else:
            await record_inventory(client, settings, [*old, *new], attempted)
        deadline = clock() + settings.timeout
        await apply(applier, targets, settings, deadline=deadline)
        pruned = await prune(applier, old, new, settings) if settings.prune else []
        if settings.wait:  # recorded before the wait (which may fail); else with the final status below
            await record_inventory(client, settings, new)  # after pruning: an object a prune failed on stays
            await wait_healthy(applier, targets, deadline)
    except SyncFailed as failure:
        return await _report_failure(client, settings, old_conditions, revision, failure)
    message = f"Applied revision: {revision}"
    status = {"observedGeneration": settings.generation, "lastAppliedRevision": revision,
              "lastAttemptedRevision": revision,
              "conditions": conditions(old_conditions, [("Ready", "True", SUCCEEDED, message)], settings.generation)}
    if not settings.wait:  # one write: the inventory as pruned, and Ready
        status["inventory"] = {"entries": [e.to_status() for e in dict.fromkeys(new)]}
    await write_status(client, settings, status)
    return Outcome(revision, True, SUCCEEDED, message, applied=new, pruned=pruned)


async def _report_failure(client: Any, settings: Settings, old_conditions: list[Any], revision: str | None,
                          failure: SyncFailed) -> Outcome:
    new = [("Ready", "False", failure.reason, failure.message)]
    if failure.stalled:
        new.append(("Stalled", "True", failure.reason, failure.message))
    status: dict[str, Any] = {"observedGeneration": settings.generation,
                              "conditions": conditions(old_conditions, new, settings.generation)}
    if revision:
        status["lastAttemptedRevision"] = revision
    await write_status(client, settings, status)
    return Outcome(revision, False, failure.reason, failure.message)
