"""install, upgrade, rollback, uninstall and test of a release, against the API server as the user.

Every operation renders (or reads the stored manifest), resolves each document against discovery,
checks ownership and validates every object with a server-side dry run before it changes
anything; only then does it claim the next revision (a create, which one of two racing clients
wins), run hooks, apply, optionally wait, and record the outcome. Upgrades and rollbacks apply a
three-way merge patch (previous manifest, live object, new manifest: `core.threeway`), so hand
edits to fields the chart never set survive and fields the chart dropped are removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconcile.charting import chart as chart_mod
from reconcile.charting import objects, readiness, releases, render
from reconcile.charting.objects import Target
from reconcile.core import errors, threeway

FIELD_MANAGER = "reconcile-chart"
POLL_SECONDS = 0.25
VALIDATE_CONCURRENCY = 8  # dry runs / writes of one kind in flight at once (the sync client is thread-safe)
_UNREAD: Any = object()

Report = Callable[[str], None]
WaitReport = Callable[[list[tuple[str, bool, str]]], None]


class ChartOperationError(Exception):
    """An operation failed; the message says what and where (template file and document)."""


class ValidationFailed(ChartOperationError):
    """The server (dry run) or ownership rules rejected rendered objects; nothing was applied."""


class HookFailed(ChartOperationError):
    pass


class WaitTimeout(ChartOperationError):
    pass


@dataclass
class Options:
    wait: bool = False
    timeout: float = 300.0
    atomic: bool = False
    history_max: int = releases.DEFAULT_HISTORY_MAX
    no_hooks: bool = False
    create_namespace: bool = False
    description: str = ""


class Operations:
    """Chart operations through one API client (the CLI's session client)."""

    def __init__(self, client: Any, *, report: Report | None = None, on_wait: WaitReport | None = None) -> None:
        self.client = client
        self.store = releases.Store(client)
        self.report = report or (lambda line: None)
        self.on_wait = on_wait or (lambda statuses: None)
        self.writes = 0  # creates, patches and deletes of release objects (not records): the bench reads it
        self._lock = threading.Lock()

    # --- what templates see -------------------------------------------------------------------

    def capabilities(self) -> render.Capabilities:
        api_versions = sorted({r.api_version for r in self.client.discover()})
        try:
            version = self.client.request("GET", "/version").json().get("gitVersion") or render.DEFAULT_KUBE_VERSION
        except (errors.ApiError, ValueError):
            version = render.DEFAULT_KUBE_VERSION
        return render.Capabilities(tuple(api_versions), str(version).split("+")[0])

    def lookup(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        """`lookup(...)` in a template: the live object (or a list when no name); {} when absent."""
        try:
            res = self.client.resource_for(api_version, kind)
            ns = namespace or None if res.namespaced else None
            if name:
                return self.client.get(api_version, res.plural, name, namespace=ns)
            return self.client.list_all(api_version, res.plural, namespace=ns)
        except errors.NotFound:
            return {}

    def render(self, chart: chart_mod.Chart, user_values: dict[str, Any], name: str, namespace: str, *,
               revision: int, is_install: bool) -> render.Rendered:
        return render.render(chart, user_values, render.ReleaseInfo(name, namespace, revision, is_install),
                             capabilities=self.capabilities(), lookup=self.lookup)

    # --- operations ---------------------------------------------------------------------------

    def install(self, name: str, namespace: str, chart: chart_mod.Chart, user_values: dict[str, Any],
                options: Options | None = None, *, dry_run: bool = False) -> releases.Release:
        options = options or Options()
        history = self.store.history(name, namespace)
        if history and history[-1].phase != "uninstalled":
            raise ChartOperationError(f"cannot re-use a name that is still in use: release \"{name}\" exists "
                                      f"in namespace {namespace} (revision {history[-1].revision}, {history[-1].phase})")
        revision = history[-1].revision + 1 if history else 1
        if options.create_namespace and not dry_run:
            self._ensure_namespace(namespace)
        rendered = self.render(chart, user_values, name, namespace, revision=revision, is_install=True)
        if not dry_run:
            self._install_crds(rendered.crds)
        targets = self._resolve(rendered.documents, name, namespace)
        hooks = self._resolve(rendered.hooks, name, namespace)
        live = self._validate(targets, {}, name, namespace)
        record = releases.Release(name=name, namespace=namespace, revision=revision, chart=_chart_ref(chart),
                                  values=user_values, manifest=rendered.manifest(),
                                  hooks=render.to_manifest(rendered.hooks), notes=rendered.notes,
                                  phase="pending-install", description=options.description or "Install complete")
        if dry_run:
            record.phase, record.description = "pending-install", "Dry run complete"
            return record
        record.first_deployed = record.last_deployed = releases.now()
        record.description = "Initial install underway"
        self.store.create(record)
        try:
            if self._run_hooks(hooks, "pre-install", options, name, namespace):
                live = {}  # a hook may have changed what exists
            self._apply_all(targets, {}, name, namespace, live)
            self._wait(targets, options)
            self._run_hooks(hooks, "post-install", options, name, namespace)
        except (ChartOperationError, errors.ApiError) as exc:
            self._fail(record, exc)
            if options.atomic:
                self.report(f"release {name} failed: {_message(exc)}; uninstalling it (--atomic)")
                self._delete_targets(targets, name, namespace)
                self.store.delete(record)
                raise ChartOperationError(f'release {name} failed, and has been uninstalled due to atomic being '
                                          f'set: {_message(exc)}') from None
            raise
        record.phase, record.description = "deployed", options.description or "Install complete"
        self.store.update(record)
        self.store.prune(name, namespace, options.history_max)
        return record

    def upgrade(self, name: str, namespace: str, chart: chart_mod.Chart, user_values: dict[str, Any],
                options: Options | None = None, *, install: bool = False, reuse_values: bool = False,
                reset_values: bool = False, dry_run: bool = False) -> releases.Release:
        options = options or Options()
        history = self.store.history(name, namespace)
        if not history or history[-1].phase == "uninstalled":
            if install:
                return self.install(name, namespace, chart, user_values, options, dry_run=dry_run)
            raise ChartOperationError(f'"{name}" has no deployed releases')
        latest = history[-1]
        if latest.phase in releases.PENDING:
            raise releases.OperationInProgress(
                f"another operation (install/upgrade/rollback) is in progress: release \"{name}\" revision "
                f"{latest.revision} is {latest.phase}")
        current = _last_deployed(history) or latest
        if reuse_values or (not user_values and not reset_values):
            from reconcile.charting import values as values_mod

            user_values = values_mod.overlay(current.values, user_values)
        rendered = self.render(chart, user_values, name, namespace, revision=latest.revision + 1, is_install=False)
        record = releases.Release(name=name, namespace=namespace, revision=latest.revision + 1,
                                  chart=_chart_ref(chart), values=user_values, manifest=rendered.manifest(),
                                  hooks=render.to_manifest(rendered.hooks), notes=rendered.notes,
                                  phase="pending-upgrade", first_deployed=current.first_deployed,
                                  description="Preparing upgrade")
        if dry_run:
            self._validate(self._resolve(rendered.documents, name, namespace),
                           self._previous(current, name, namespace), name, namespace)
            record.description = "Dry run complete"
            return record
        self._install_crds(rendered.crds)
        return self._transition(record, current, rendered.documents, rendered.hooks, "upgrade", options)

    def rollback(self, name: str, namespace: str, revision: int | None = None,
                 options: Options | None = None) -> releases.Release:
        options = options or Options()
        history = self.store.history(name, namespace)
        if not history:
            raise ChartOperationError(f'release: not found: "{name}"')
        latest = history[-1]
        current = _last_deployed(history) or latest
        target_revision = revision if revision else current.revision - 1
        if target_revision < 1:
            raise ChartOperationError(f'release "{name}" has no revision before {current.revision} to roll back to')
        target = self.store.get(name, namespace, target_revision)
        record = releases.Release(name=name, namespace=namespace, revision=latest.revision + 1, chart=target.chart,
                                  values=target.values, manifest=target.manifest, hooks=target.hooks,
                                  notes=target.notes, phase="pending-rollback", first_deployed=current.first_deployed,
                                  description=f"Rollback to {target_revision}")
        docs = render.from_manifest(target.manifest)
        hooks = render.from_manifest(target.hooks)
        return self._transition(record, current, docs, hooks, "rollback", options)

    def _transition(self, record: releases.Release, current: releases.Release, docs: list[render.Document],
                    hook_docs: list[render.Document], verb: str, options: Options) -> releases.Release:
        """Upgrade or rollback from `current` to the objects `docs`, recorded as `record`."""
        name, namespace = record.name, record.namespace
        targets = self._resolve(docs, name, namespace)
        hooks = self._resolve(hook_docs, name, namespace)
        previous = self._previous(current, name, namespace)
        live = self._validate(targets, previous, name, namespace)
        record.last_deployed = releases.now()
        self.store.create(record)  # the race for this revision's name decides concurrent upgrades
        try:
            if self._run_hooks(hooks, f"pre-{verb}", options, name, namespace):
                live = {}  # a hook may have changed what exists
            self._apply_all(targets, previous, name, namespace, live)
            keep = {t.key for t in targets}
            self._delete_targets([t for k, t in previous.items() if k not in keep], name, namespace)
            self._wait(targets, options)
            self._run_hooks(hooks, f"post-{verb}", options, name, namespace)
        except (ChartOperationError, errors.ApiError) as exc:
            self._fail(record, exc)
            if options.atomic and verb == "upgrade":
                self.report(f"upgrade of {name} failed: {_message(exc)}; rolling back to {current.revision} (--atomic)")
                try:
                    self.rollback(name, namespace, current.revision, Options(
                        wait=options.wait, timeout=options.timeout, history_max=options.history_max))
                except (ChartOperationError, errors.ApiError) as again:
                    raise ChartOperationError(f"an error occurred while rolling back the release: {_message(again)}; "
                                              f"original upgrade error: {_message(exc)}") from None
                raise ChartOperationError(f'release {name} failed, and has been rolled back due to atomic being '
                                          f'set: {_message(exc)}') from None
            raise
        fresh = self.store.get(name, namespace, current.revision)
        if fresh.phase == "deployed":
            fresh.phase, fresh.description = "superseded", "Superseded"
            self.store.update(fresh)
        record.phase = "deployed"
        record.description = options.description or (
            "Upgrade complete" if verb == "upgrade" else record.description)
        self.store.update(record)
        self.store.prune(name, namespace, options.history_max)
        return record

    def uninstall(self, name: str, namespace: str, *, keep_history: bool = False,
                  options: Options | None = None) -> list[str]:
        """Delete what the release owns (not CRDs, not `keep` objects); returns the lines of what was kept."""
        options = options or Options()
        history = self.store.history(name, namespace)
        if not history:
            raise ChartOperationError(f'uninstall: Release not loaded: {name}: release: not found')
        latest = history[-1]
        if latest.phase == "uninstalled":
            if keep_history:
                raise ChartOperationError(f'release "{name}" is already uninstalled (history kept)')
            for record in history:
                self.store.delete(record)
            return []
        targets = self._resolve(render.from_manifest(latest.manifest), name, namespace, missing_ok=True)
        hooks = self._resolve(render.from_manifest(latest.hooks), name, namespace, missing_ok=True)
        latest.phase, latest.description = "uninstalling", "Deletion in progress"
        self.store.update(latest)
        self._run_hooks(hooks, "pre-delete", options, name, namespace)
        kept = self._delete_targets(targets, name, namespace)
        self._run_hooks(hooks, "post-delete", options, name, namespace)
        if keep_history:
            latest.phase, latest.description = "uninstalled", "Uninstallation complete"
            self.store.update(latest)
        else:
            for record in history:
                self.store.delete(record)
        return kept

    def run_tests(self, name: str, namespace: str, timeout: float = 300.0) -> list[str]:
        """Run the release's `test` hooks; returns one line per hook."""
        latest = self.store.latest(name, namespace)
        if latest is None:
            raise ChartOperationError(f'release: not found: "{name}"')
        hooks = self._resolve(render.from_manifest(latest.hooks), name, namespace)
        return self._run_hooks(hooks, "test", Options(timeout=timeout), name, namespace)

    def diff(self, name: str, namespace: str, chart: chart_mod.Chart, user_values: dict[str, Any], *,
             reuse_values: bool = False) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        """(object, live now, after the upgrade) for every object an upgrade would change (dry run)."""
        history = self.store.history(name, namespace)
        current = _last_deployed(history)
        if current is None:
            raise ChartOperationError(f'"{name}" has no deployed releases')
        if reuse_values or not user_values:
            from reconcile.charting import values as values_mod

            user_values = values_mod.overlay(current.values, user_values)
        rendered = self.render(chart, user_values, name, namespace, revision=history[-1].revision + 1,
                               is_install=False)
        targets = self._resolve(rendered.documents, name, namespace)
        previous = self._previous(current, name, namespace)
        changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
        for target in targets:
            live = self._get(target)
            after = self._apply_one(target, previous.get(target.key), name, namespace, dry_run=True, live=live)
            if live is None or _comparable(live) != _comparable(after):
                changes.append((target.ref, _comparable(live) if live else None, _comparable(after)))
        keep = {t.key for t in targets}
        for key, target in previous.items():
            if key not in keep and not _kept(target, None):
                live = self._get(target)
                if live is not None:
                    changes.append((target.ref, _comparable(live), None))
        return changes

    # --- pieces ------------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str) -> None:
        try:
            self.client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": namespace}})
        except errors.AlreadyExists:
            pass

    def _install_crds(self, crds: list[render.Document]) -> None:
        """crds/: created when absent (never updated or deleted, as Helm), then waited for in discovery."""
        created = False
        for doc in crds:
            name = (doc.obj.get("metadata") or {}).get("name")
            try:
                self.client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", doc.obj)
                created = True
                self.report(f"customresourcedefinition/{name} created")
            except errors.AlreadyExists:
                continue
            except errors.ApiError as exc:
                raise ValidationFailed(f"{doc.where}: {_message(exc)}") from None
        if created:
            wanted = {(d.obj["spec"]["group"], d.obj["spec"]["names"]["kind"]) for d in crds
                      if isinstance(d.obj.get("spec"), dict)}
            deadline = time.monotonic() + 30
            while True:
                served = {(r.group, r.kind) for r in self.client.discover(refresh=True)}
                if wanted <= served or time.monotonic() > deadline:
                    return
                time.sleep(POLL_SECONDS)  # the server registers a new CRD asynchronously; polled with a deadline

    def _resolve(self, docs: list[render.Document], release: str, namespace: str, *,
                 missing_ok: bool = False) -> list[Target]:
        targets = []
        for doc in docs:
            try:
                res = self.client.resource_for(doc.obj["apiVersion"], doc.obj["kind"])
            except errors.NotFound:
                if missing_ok:
                    continue
                raise ValidationFailed(f'{doc.where}: resource mapping not found for name: '
                                       f'"{(doc.obj.get("metadata") or {}).get("name")}": no matches for kind '
                                       f'"{doc.obj["kind"]}" in version "{doc.obj["apiVersion"]}"') from None
            obj = objects.owned(doc.obj, release, namespace, resource_namespaced=res.namespaced)
            targets.append(Target(doc, res, obj["metadata"].get("namespace"), obj))
        seen: dict[tuple[str, str, str, str], Target] = {}
        for target in targets:
            if target.key in seen:
                raise ValidationFailed(f"{target.doc.where}: {target.ref} is rendered twice (also by "
                                       f"{seen[target.key].doc.where})")
            seen[target.key] = target
        return sorted(targets, key=lambda t: (objects.kind_rank(t.obj["kind"]), t.doc.template, t.doc.index))

    def _previous(self, record: releases.Release, release: str, namespace: str) -> dict[tuple, Target]:
        return {t.key: t for t in self._resolve(render.from_manifest(record.manifest), release, namespace,
                                                missing_ok=True)}

    def _get(self, target: Target) -> dict[str, Any] | None:
        try:
            return self.client.get(target.api_version, target.resource.plural, target.name, namespace=target.namespace)
        except errors.NotFound:
            return None

    def _validate(self, targets: list[Target], previous: dict[tuple, Target], release: str,
                  namespace: str) -> dict[tuple, dict[str, Any] | None]:
        """Ownership and a server-side dry run of every object (concurrently: they are independent), all
        problems reported together; returns the live objects read, for the apply that follows."""
        from concurrent.futures import ThreadPoolExecutor

        def check(target: Target) -> tuple[dict[str, Any] | None, str | None]:
            live = None
            try:
                live = self._get(target)
                self._apply_one(target, previous.get(target.key), release, namespace, dry_run=True, live=live)
            except ValidationFailed as exc:
                return live, str(exc)
            except errors.ApiError as exc:
                return live, f"{target.doc.where}: {target.ref}: {_message(exc)}"
            return live, None

        with ThreadPoolExecutor(max_workers=VALIDATE_CONCURRENCY) as pool:
            results = list(pool.map(check, targets))
        problems = [problem for _, problem in results if problem]
        if problems:
            raise ValidationFailed("the rendered objects were rejected, nothing was applied:\n"
                                   + "\n".join(f"- {p}" for p in problems))
        return {t.key: live for t, (live, _) in zip(targets, results, strict=True)}

    def _apply_one(self, target: Target, original: Target | None, release: str, namespace: str, *,
                   dry_run: bool, live: Any = _UNREAD) -> dict[str, Any]:
        live = self._get(target) if live is _UNREAD else live
        api_version, plural = target.api_version, target.resource.plural
        if live is None:
            created = self.client.create(api_version, plural, target.obj, namespace=target.namespace,
                                         dry_run=dry_run, field_manager=FIELD_MANAGER)
            if not dry_run:
                self._wrote(f"{target.ref} created")
            return created
        problem = objects.ownership_problem(live, release, namespace)
        if problem:
            raise ValidationFailed(
                f'{target.doc.where}: {target.obj["kind"]} "{target.name}"'
                f'{f" in namespace {target.namespace!r}" if target.namespace else ""} exists and cannot be imported '
                f"into the current release: invalid ownership metadata; {problem}")
        patch = threeway.merge_patch(original.obj if original else None, target.obj, live)
        if not patch:
            return live
        patched = self.client.patch(api_version, plural, target.name, patch, namespace=target.namespace,
                                    patch_type="merge", field_manager=FIELD_MANAGER, dry_run=dry_run)
        if not dry_run:
            self._wrote(f"{target.ref} configured")
        return patched

    def _wrote(self, line: str) -> None:
        with self._lock:
            self.writes += 1
            self.report(line)

    def _apply_all(self, targets: list[Target], previous: dict[tuple, Target], release: str, namespace: str,
                   live: dict[tuple, dict[str, Any] | None] | None = None) -> None:
        """Apply kind by kind in install order (a kind's objects concurrently: they do not depend on each
        other); `live` is what validation read (re-read where a hook ran since)."""
        from concurrent.futures import ThreadPoolExecutor
        from itertools import groupby

        live = live or {}

        def apply(target: Target) -> None:
            try:
                self._apply_one(target, previous.get(target.key), release, namespace, dry_run=False,
                                live=live.get(target.key, _UNREAD))
            except errors.ApiError as exc:
                raise ChartOperationError(f"{target.doc.where}: {target.ref}: {_message(exc)}") from None

        with ThreadPoolExecutor(max_workers=VALIDATE_CONCURRENCY) as pool:
            for _, group in groupby(targets, key=lambda t: objects.kind_rank(t.obj["kind"])):
                list(pool.map(apply, list(group)))  # the first failure propagates; the next kind waits

    def _delete_targets(self, targets: list[Target], release: str, namespace: str) -> list[str]:
        """Delete in reverse install order; objects marked keep (in the manifest or live) and objects
        that no longer belong to the release stay. Returns a line per kept object."""
        kept = []
        for target in sorted(targets, key=lambda t: -objects.kind_rank(t.obj["kind"])):
            live = self._get(target)
            if live is None:
                continue
            if _kept(target, live):
                kept.append(f"{target.ref} kept due to the resource policy")
                continue
            if objects.ownership_problem(live, release, namespace):
                kept.append(f"{target.ref} kept: it no longer belongs to release {release}")
                continue
            try:
                self.client.delete(target.api_version, target.resource.plural, target.name,
                                   namespace=target.namespace, propagation_policy="Background")
                self.writes += 1
                self.report(f"{target.ref} deleted")
            except errors.NotFound:
                pass
        return kept

    def _wait(self, targets: list[Target], options: Options) -> None:
        if not (options.wait or options.atomic):
            return
        deadline = time.monotonic() + options.timeout
        while True:
            statuses = []
            for target in targets:
                live = self._get(target)
                ok, why = (False, "not found") if live is None else readiness.ready(live)
                statuses.append((target.ref, ok, why))
            self.on_wait(statuses)
            waiting = [s for s in statuses if not s[1]]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise WaitTimeout("timed out waiting for the condition: "
                                  + "; ".join(f"{ref}: {why}" for ref, _, why in waiting))
            time.sleep(POLL_SECONDS)  # polling the objects' status until the deadline

    def _run_hooks(self, hooks: list[Target], event: str, options: Options, release: str, namespace: str) -> list[str]:
        if options.no_hooks:
            return []
        chosen = [h for h in hooks if event in h.doc.hook_events]
        chosen.sort(key=lambda h: (objects.hook_weight(h.doc), objects.kind_rank(h.obj["kind"]), h.name))
        lines = []
        for hook in chosen:
            policies = objects.hook_delete_policies(hook.doc)
            existing = self._get(hook)
            if existing is not None:
                if "before-hook-creation" not in policies:
                    raise HookFailed(f"{event} hook {hook.ref} already exists (no before-hook-creation policy)")
                self._delete_and_wait(hook, options.timeout)
            self.report(f"running {event} hook {hook.ref}")
            try:
                self.client.create(hook.api_version, hook.resource.plural, hook.obj, namespace=hook.namespace,
                                   field_manager=FIELD_MANAGER)
            except errors.ApiError as exc:
                raise HookFailed(f"{event} hook {hook.ref} ({hook.doc.where}) could not be created: "
                                 f"{_message(exc)}") from None
            outcome = self._hook_outcome(hook, options.timeout)
            if (outcome == "succeeded" and "hook-succeeded" in policies) or \
                    (outcome != "succeeded" and "hook-failed" in policies):
                self._delete_and_wait(hook, options.timeout)
            if outcome != "succeeded":
                raise HookFailed(f"{event} hook {hook.ref} failed: {outcome}")
            lines.append(f"{hook.ref} ({event}): Succeeded")
        return lines

    def _hook_outcome(self, hook: Target, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            live = self._get(hook)
            if live is None:
                return "deleted while running"
            outcome = readiness.hook_outcome(live)
            if outcome is not None:
                return outcome if outcome == "succeeded" else f"{hook.obj['kind']} phase Failed"
            if time.monotonic() >= deadline:
                return f"timed out after {timeout:g}s waiting for it to complete"
            time.sleep(POLL_SECONDS)  # polling the hook's phase until the deadline

    def _delete_and_wait(self, target: Target, timeout: float) -> None:
        try:
            self.client.delete(target.api_version, target.resource.plural, target.name, namespace=target.namespace,
                               propagation_policy="Background")
        except errors.NotFound:
            return
        deadline = time.monotonic() + timeout
        while self._get(target) is not None and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)  # a graceful delete: polled until gone or the deadline

    def _fail(self, record: releases.Release, exc: BaseException) -> None:
        try:
            latest = self.store.get(record.name, record.namespace, record.revision)
            latest.phase, latest.description = "failed", f"Release \"{record.name}\" failed: {_message(exc)}"
            self.store.update(latest)
            record.phase, record.description = latest.phase, latest.description
        except errors.ApiError:
            pass


def _chart_ref(chart: chart_mod.Chart) -> dict[str, str]:
    return {"name": chart.name, "version": chart.version, "appVersion": chart.app_version}


def _last_deployed(history: list[releases.Release]) -> releases.Release | None:
    deployed = [r for r in history if r.phase == "deployed"]
    return deployed[-1] if deployed else None


def _kept(target: Target, live: dict[str, Any] | None) -> bool:
    policy = target.annotation(objects.KEEP) or ((live or {}).get("metadata", {}).get("annotations") or {}).get(
        objects.KEEP)
    return str(policy).lower() in ("true", "keep", "1", "yes")


def _message(exc: BaseException) -> str:
    if isinstance(exc, errors.Invalid) and exc.causes:
        return f"{exc.message}: " + "; ".join(f"{c.get('field')}: {c.get('message')}" for c in exc.causes) \
            if not all(c.get("field", "") in exc.message for c in exc.causes) else exc.message
    return getattr(exc, "message", None) or str(exc)


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out
