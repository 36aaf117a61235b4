"""The verbs on objects: get, list, create, update, patch, delete, deletecollection, scale, binding.

Every write is a compare-and-swap on the etcd mod_revision (`resourceVersion`), so a lost
update is impossible; writes without a client precondition retry on conflict here, as
kube-apiserver's GuaranteedUpdate does. Reads come from the watch caches.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from reconcile.api import caches, objectmeta, registry, strategies, validation, watchcache
from reconcile.core import errors, meta, patches, selectors
from reconcile.store import etcd, keys

MAX_UPDATE_ATTEMPTS = 16
# Writes without a client precondition must not fail just because others write the same object
# (upstream's GuaranteedUpdate retries until it wins): many attempts, with jittered backoff.
MAX_GUARDED_ATTEMPTS = 200


@dataclass(slots=True)
class WriteResult:
    obj: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    deleted: bool = False  # the object is gone (not just marked for deletion)


@dataclass(slots=True)
class ListResult:
    entries: list[watchcache.Entry]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass(slots=True)
class Selection:
    """Which objects a list or watch wants: namespace, label and field selectors."""

    namespace: str | None = None
    labels: selectors.LabelSelector | None = None
    fields: selectors.FieldSelector | None = None

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.labels is not None and not self.labels.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        return self.fields is None or self.fields.matches(obj)

    @property
    def filters(self) -> bool:
        return self.labels is not None or self.fields is not None


def encode(obj: dict[str, Any]) -> bytes:
    """Stored form: the object without resourceVersion (the revision is the etcd mod_revision)."""
    metadata = obj.get("metadata") or {}
    if "resourceVersion" in metadata:
        obj = dict(obj, metadata={k: v for k, v in metadata.items() if k != "resourceVersion"})
    return orjson.dumps(obj)


def decode(kv: etcd.KeyValue) -> dict[str, Any]:
    obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


class Rest:
    """Object storage semantics for every resource served."""

    def __init__(self, store: etcd.EtcdStore, registry_: registry.Registry, cache_set: caches.CacheSet) -> None:
        self.store = store
        self.registry = registry_
        self.caches = cache_set
        # Called after a CRD is stored or removed, so its resources are served at once.
        self.on_crd_stored: Callable[[dict[str, Any]], Any] | None = None
        self.on_crd_removed: Callable[[dict[str, Any]], Any] | None = None

    # --- keys ---

    @staticmethod
    def key(resource: registry.Resource, namespace: str | None, name: str) -> str:
        return keys.object_key(resource.group, resource.plural, namespace if resource.namespaced else None, name)

    @staticmethod
    def prefix(resource: registry.Resource, namespace: str | None) -> str:
        if resource.namespaced and namespace:
            return keys.namespace_prefix(resource.group, resource.plural, namespace)
        return keys.resource_prefix(resource.group, resource.plural)

    # --- reads ---

    async def cache(self, resource: registry.Resource, *, resource_version: str | None = None) -> watchcache.WatchCache:
        """The resource's cache, brought as current as the resourceVersion semantics ask."""
        cache = await self.caches.ensure(resource)
        if resource_version in (None, ""):
            await cache.ensure_current()
        elif resource_version != "0":
            wanted = _parse_rv(resource_version)
            if not await cache.wait_for_revision(wanted):
                raise errors.Timeout(f"Too large resource version: {wanted}, current: {cache.revision}",
                                     details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                              "retryAfterSeconds": 1})
        return cache

    async def get(self, resource: registry.Resource, namespace: str | None, name: str, *,
                  resource_version: str | None = None) -> watchcache.Entry:
        key = self.key(resource, namespace, name)
        try:
            cache = await self.cache(resource, resource_version=resource_version)
            entry = cache.get(key)
        except watchcache.CacheBehind:
            kv, _ = await self.store.get(key)  # as consistent, just not from memory
            entry = _entry(kv) if kv is not None else None
        if entry is None:
            raise errors.NotFound.for_resource(resource.plural, name, resource.group)
        return entry

    async def list(self, resource: registry.Resource, selection: Selection, *, limit: int | None = None,
                   continue_token: str | None = None, resource_version: str | None = None) -> ListResult:
        prefix = self.prefix(resource, selection.namespace)
        if continue_token:
            return await self._list_continue(resource, selection, prefix, continue_token, limit)
        try:
            cache = await self.cache(resource, resource_version=resource_version)
            entries, revision = cache.list(prefix)
        except watchcache.CacheBehind:
            listed = await self.store.list(prefix)
            entries, revision = [_entry(kv) for kv in listed.items], listed.revision
        if selection.filters:
            entries = [e for e in entries if selection.matches(e.obj)]
        if limit and len(entries) > limit:
            page = entries[:limit]
            token = _continue_token(revision, page[-1].key)
            return ListResult(page, revision, token, len(entries) - limit)
        return ListResult(entries, revision)

    async def _list_continue(self, resource: registry.Resource, selection: Selection, prefix: str,
                             token: str, limit: int | None) -> ListResult:
        """Later pages read etcd at the first page's revision: one consistent snapshot."""
        revision, start_after = _parse_continue(token)
        found: list[watchcache.Entry] = []
        more = True
        after = start_after
        while more and (not limit or len(found) < limit):
            try:
                page = await self.store.list(prefix, revision=revision, limit=max(limit or 500, 50), start_after=after)
            except errors.Compacted:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                ) from None
            for kv in page.items:
                after = kv.key
                entry = _entry(kv)
                if selection.matches(entry.obj):
                    found.append(entry)
            more = page.more
        if limit and len(found) > limit:
            found, more, after = found[:limit], True, found[limit - 1].key
        return ListResult(found, revision, _continue_token(revision, after) if more else "")

    # --- create ---

    async def create(self, resource: registry.Resource, namespace: str | None, body: Any, *,
                     dry_run: bool = False, field_validation: str = "Strict") -> WriteResult:
        obj = self._checked_object(resource, body, namespace)
        metadata = obj["metadata"]
        generate = not metadata.get("name") and metadata.get("generateName")
        for _attempt in range(8 if generate else 1):
            if generate:
                metadata["name"] = objectmeta.generated_name(metadata["generateName"])
            candidate = copy.deepcopy(obj) if generate else obj  # obj is already our own copy; retries need it pristine
            if resource.has_status:
                candidate.pop("status", None)
            warnings = validation.prepare(resource, candidate, field_validation=field_validation)
            strategies.prepare_create(resource, candidate)
            objectmeta.assign_create_fields(candidate)
            if resource.namespaced:
                await self._require_namespace(candidate["metadata"]["namespace"])
            if dry_run:
                return WriteResult(candidate, warnings, created=True)
            key = self.key(resource, namespace, candidate["metadata"]["name"])
            try:
                revision = await self.store.create(key, encode(candidate))
            except errors.KeyExists:
                if generate:
                    continue
                raise errors.AlreadyExists.for_resource(resource.plural, candidate["metadata"]["name"], resource.group) from None
            except errors.ValueTooLarge:
                raise errors.RequestEntityTooLarge("Request entity too large: the object is larger than storage allows") from None
            candidate["metadata"]["resourceVersion"] = str(revision)
            if self.on_crd_stored and strategies.is_kind(resource, strategies.APIEXT, "customresourcedefinitions"):
                await self.on_crd_stored(candidate)
            return WriteResult(candidate, warnings, created=True)
        raise errors.AlreadyExists(f"could not find a free name for generateName {metadata['generateName']!r}")

    def _checked_object(self, resource: registry.Resource, body: Any, namespace: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.BadRequest(f"{resource.kind} in version \"{resource.version}\" cannot be handled as a "
                                    f"{resource.kind}: the body must be a JSON or YAML object")
        obj = body  # callers pass a body they own (freshly decoded, or their own copy)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind not in (None, "", resource.kind) or api_version not in (None, "", resource.api_version):
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})" if kind == resource.kind else
                f"{kind} in version \"{api_version}\" cannot be handled as a {resource.kind}: "
                f"expected kind {resource.kind} ({resource.api_version})"
            )
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = obj["metadata"] = {}
        if not isinstance(metadata, dict):
            raise errors.BadRequest("metadata must be an object")
        if resource.namespaced:
            given = metadata.get("namespace")
            if given and namespace and given != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
            target = namespace or given
            if not target:
                raise errors.BadRequest("a namespace is required for a namespaced resource")
            metadata["namespace"] = target
        else:
            metadata.pop("namespace", None)
        return obj

    async def _require_namespace(self, namespace: str) -> None:
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        cache = await self.caches.ensure(namespaces)
        entry = cache.get(self.key(namespaces, None, namespace))
        if entry is None:
            try:
                await cache.ensure_current()
                entry = cache.get(self.key(namespaces, None, namespace))
            except watchcache.CacheBehind:
                kv, _ = await self.store.get(self.key(namespaces, None, namespace))
                entry = _entry(kv) if kv is not None else None
        if entry is None:
            raise errors.NotFound.for_resource("namespaces", namespace)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": "namespaces",
                         "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                     "message": f"namespace {namespace} is being terminated"}]},
            )

    # --- update / patch ---

    async def update(self, resource: registry.Resource, namespace: str | None, name: str, body: Any, *,
                     subresource: str | None = None, dry_run: bool = False,
                     field_validation: str = "Strict") -> WriteResult:
        obj = self._checked_object(resource, body, namespace)
        given_name = obj["metadata"].get("name")
        if given_name and given_name != name:
            raise errors.BadRequest(f"the name of the object ({given_name}) does not match the name on the URL ({name})")
        obj["metadata"]["name"] = name
        precondition = obj["metadata"].get("resourceVersion") or None

        def replace(old: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(obj)

        return await self.guarded_update(resource, namespace, name, replace, subresource=subresource,
                                         precondition=precondition, dry_run=dry_run,
                                         field_validation=field_validation)

    async def patch(self, resource: registry.Resource, namespace: str | None, name: str, patch_type: str,
                    patch: Any, *, subresource: str | None = None, dry_run: bool = False,
                    field_validation: str = "Strict", field_manager: str | None = None,
                    force: bool = False) -> WriteResult:
        if patch_type == "strategic" and not resource.builtin:
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            )
        if patch_type == "apply" and not field_manager:
            raise errors.BadRequest("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                    "is required for apply patch")
        if patch_type == "json":
            if not isinstance(patch, list):
                raise errors.BadRequest("json patch must be a list of operations")
        elif not isinstance(patch, dict):
            raise errors.BadRequest("patch must be a JSON object")
        precondition = None
        if isinstance(patch, dict):
            precondition = ((patch.get("metadata") or {}).get("resourceVersion")) or None

        def apply(old: dict[str, Any]) -> dict[str, Any]:
            if patch_type == "merge":
                return patches.merge_patch(old, patch)
            if patch_type == "json":
                return patches.json_patch(old, patch)
            if patch_type == "strategic":
                return patches.strategic_merge_patch(old, patch, resource.schema)
            return patches.apply_patch(old, patch, resource.schema)

        create_if_missing = None
        if patch_type == "apply" and subresource is None:
            create_if_missing = patch
        return await self.guarded_update(resource, namespace, name, apply, subresource=subresource,
                                         precondition=precondition, dry_run=dry_run,
                                         field_validation=field_validation, create_if_missing=create_if_missing)

    async def guarded_update(self, resource: registry.Resource, namespace: str | None, name: str,
                             mutate: Callable[[dict[str, Any]], dict[str, Any]], *, subresource: str | None = None,
                             precondition: str | None = None, dry_run: bool = False,
                             field_validation: str = "Strict", create_if_missing: Any = None) -> WriteResult:
        """Read, mutate, compare-and-swap; retry on conflict unless the client gave a resourceVersion.

        The first try starts from the watch cache's copy, as kube-apiserver's GuaranteedUpdate does
        with its cached object: the compare-and-swap on its mod_revision proves it current, so the
        common write costs no etcd read. Whatever goes wrong on that copy (a lost swap, a failed
        precondition or validation, a no-op) is judged again on a fresh read from etcd.
        """
        key = self.key(resource, namespace, name)
        cache = None if dry_run else self.caches.peek(resource)
        entry = cache.get(key) if cache is not None else None
        if entry is not None:
            old = orjson.loads(entry.value)
            old.setdefault("metadata", {})["resourceVersion"] = str(entry.mod_revision)
            try:
                result = await self._update_once(resource, key, name, old, entry.mod_revision, mutate,
                                                 subresource=subresource, precondition=precondition,
                                                 dry_run=dry_run, field_validation=field_validation, trusted=False)
            except errors.ApiError:
                result = None  # perhaps only because the copy was stale: decide on etcd's version
            if result is not None:
                return result
        for _attempt in range(MAX_GUARDED_ATTEMPTS):
            kv, _ = await self.store.get(key)
            if kv is None:
                if create_if_missing is not None:
                    body = copy.deepcopy(create_if_missing)
                    body.setdefault("metadata", {})["name"] = name
                    return await self.create(resource, namespace, body, dry_run=dry_run,
                                             field_validation=field_validation)
                raise errors.NotFound.for_resource(resource.plural, name, resource.group)
            result = await self._update_once(resource, key, name, decode(kv), kv.mod_revision, mutate,
                                             subresource=subresource, precondition=precondition,
                                             dry_run=dry_run, field_validation=field_validation, trusted=True)
            if result is not None:
                return result
            await _conflict_backoff(_attempt)
        raise errors.Conflict.for_resource(resource.plural, name, resource.group,
                                           why="too many concurrent writers; please try again")

    async def _update_once(self, resource: registry.Resource, key: str, name: str, old: dict[str, Any],
                           mod_revision: int, mutate: Callable[[dict[str, Any]], dict[str, Any]], *,
                           subresource: str | None, precondition: str | None, dry_run: bool,
                           field_validation: str, trusted: bool) -> WriteResult | None:
        """One try of `guarded_update` on `old` (stored at `mod_revision`); None: try again on a fresh read.

        `trusted` says `old` came from etcd just now; an untrusted (cached) copy never answers a
        precondition failure or a no-op itself.
        """
        if precondition is not None and precondition != old["metadata"]["resourceVersion"]:
            if not trusted:
                return None
            raise errors.Conflict.for_resource(resource.plural, name, resource.group)
        new, warnings = self._next_state(resource, old, mutate(copy.deepcopy(old)), subresource, field_validation)
        if objectmeta.same_object(old, new):
            return WriteResult(old, warnings) if trusted else None
        if dry_run:
            return WriteResult(new, warnings)
        try:
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                revision, _ = await self.store.delete(key, expected_revision=mod_revision)
                new["metadata"]["resourceVersion"] = str(revision)
                await self._after_removal(resource, new)
                return WriteResult(new, warnings, deleted=True)
            revision = await self.store.update(key, encode(new), expected_revision=mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            if precondition is not None and trusted:
                raise errors.Conflict.for_resource(resource.plural, name, resource.group) from None
            return None
        except errors.ValueTooLarge:
            raise errors.RequestEntityTooLarge("Request entity too large: the object is larger than storage allows") from None
        new["metadata"]["resourceVersion"] = str(revision)
        if self.on_crd_stored and strategies.is_kind(resource, strategies.APIEXT, "customresourcedefinitions"):
            await self.on_crd_stored(new)
        return WriteResult(new, warnings)

    def _next_state(self, resource: registry.Resource, old: dict[str, Any], new: Any,
                    subresource: str | None, field_validation: str) -> tuple[dict[str, Any], list[str]]:
        """The object to store (and warnings) after a write to the main resource, /status or /binding."""
        if not isinstance(new, dict):
            raise errors.BadRequest("the result of the update is not an object")
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            new = result
        elif resource.has_status and subresource != "binding":
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        objectmeta.carry_server_fields(old, new)
        objectmeta.check_finalizers_while_deleting(old, new, resource.kind, resource.group)
        warnings = validation.prepare(resource, new, field_validation=field_validation)
        if subresource != "status":
            strategies.prepare_update(resource, old, new)
            objectmeta.bump_generation_if_needed(old, new)
        return new, warnings

    # --- delete ---

    async def delete(self, resource: registry.Resource, namespace: str | None, name: str, *,
                     options: dict[str, Any] | None = None, dry_run: bool = False) -> WriteResult:
        options = options or {}
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.BadRequest(f"unsupported propagationPolicy {policy!r}: use Background, Foreground or Orphan")
        preconditions = options.get("preconditions") or {}
        key = self.key(resource, namespace, name)
        for _attempt in range(MAX_UPDATE_ATTEMPTS):
            kv, _ = await self.store.get(key)
            if kv is None:
                raise errors.NotFound.for_resource(resource.plural, name, resource.group)
            old = decode(kv)
            self._check_preconditions(resource, old, preconditions)
            new = copy.deepcopy(old)
            metadata = new["metadata"]
            finalizers = list(metadata.get("finalizers") or [])
            extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy or "")
            if extra and extra not in finalizers and not metadata.get("deletionTimestamp"):
                finalizers.append(extra)
            grace = strategies.graceful_deletion_seconds(resource, old, options.get("gracePeriodSeconds"))
            pending = await self._namespace_has_content(resource, old)
            if finalizers or grace or pending:
                if metadata.get("deletionTimestamp"):
                    return WriteResult(old)  # already being deleted
                metadata["deletionTimestamp"] = meta.now_rfc3339()
                metadata["deletionGracePeriodSeconds"] = grace
                if finalizers:
                    metadata["finalizers"] = finalizers
                if strategies.is_kind(resource, strategies.CORE, "namespaces"):
                    new.setdefault("status", {})["phase"] = "Terminating"
                if dry_run:
                    return WriteResult(new)
                try:
                    revision = await self.store.update(key, encode(new), expected_revision=kv.mod_revision)
                except (errors.RevisionConflict, errors.KeyMissing):
                    continue
                metadata["resourceVersion"] = str(revision)
                return WriteResult(new)
            if dry_run:
                return WriteResult(old, deleted=True)
            if strategies.is_kind(resource, strategies.APIEXT, "customresourcedefinitions"):
                if name in registry.builtin_names():
                    raise errors.Forbidden(f'customresourcedefinitions.apiextensions.k8s.io "{name}" is forbidden: '
                                           "built-in resource definitions cannot be deleted")
                await self._delete_custom_objects(old)
            try:
                revision, _ = await self.store.delete(key, expected_revision=kv.mod_revision)
            except (errors.RevisionConflict, errors.KeyMissing):
                continue
            old["metadata"]["resourceVersion"] = str(revision)
            await self._after_removal(resource, old)
            return WriteResult(old, deleted=True)
        raise errors.Conflict.for_resource(resource.plural, name, resource.group,
                                           why="too many concurrent writers; please try again")

    def _check_preconditions(self, resource: registry.Resource, obj: dict[str, Any], preconditions: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        for field_name in ("uid", "resourceVersion"):
            wanted = preconditions.get(field_name)
            if wanted and wanted != metadata.get(field_name):
                raise errors.Conflict.for_resource(
                    resource.plural, metadata["name"], resource.group,
                    why=f"Precondition failed: {field_name.upper() if field_name == 'uid' else field_name} in precondition: "
                        f"{wanted}, {field_name.upper() if field_name == 'uid' else field_name} in object meta: {metadata.get(field_name)}",
                )

    async def _namespace_has_content(self, resource: registry.Resource, obj: dict[str, Any]) -> bool:
        """A namespace with objects in it goes Terminating; the namespace controller empties it."""
        if not strategies.is_kind(resource, strategies.CORE, "namespaces"):
            return False
        name = obj["metadata"]["name"]
        for other in self.registry.resources():
            if not other.namespaced:
                continue
            cache = await self.caches.ensure(other)
            if cache.list(self.prefix(other, name))[0]:
                return True
        return False

    async def _delete_custom_objects(self, crd: dict[str, Any]) -> None:
        """Deleting a CRD removes every object of its kind first."""
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        prefix = keys.resource_prefix(group, plural)
        while True:
            page = await self.store.list(prefix, limit=500)
            for kv in page.items:
                try:
                    await self.store.delete(kv.key, expected_revision=None)
                except errors.KeyMissing:
                    pass
            if not page.more:
                return

    async def _after_removal(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        if self.on_crd_removed and strategies.is_kind(resource, strategies.APIEXT, "customresourcedefinitions"):
            await self.on_crd_removed(obj)

    async def delete_collection(self, resource: registry.Resource, selection: Selection, *,
                                options: dict[str, Any] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
        listed = await self.list(resource, selection)
        removed: list[dict[str, Any]] = []
        for entry in listed.entries:
            metadata = entry.obj["metadata"]
            try:
                result = await self.delete(resource, metadata.get("namespace"), metadata["name"],
                                           options=options, dry_run=dry_run)
            except errors.NotFound:
                continue
            removed.append(result.obj)
        return removed

    # --- subresources ---

    async def get_scale(self, resource: registry.Resource, namespace: str | None, name: str) -> dict[str, Any]:
        if resource.scale is None:
            raise errors.NotFound("the server could not find the requested resource")
        entry = await self.get(resource, namespace, name)
        return strategies.to_scale(resource, entry.obj)

    async def write_scale(self, resource: registry.Resource, namespace: str | None, name: str,
                          change: Callable[[dict[str, Any]], dict[str, Any]], *, dry_run: bool = False) -> dict[str, Any]:
        """PUT or PATCH of /scale: the change is applied to the Scale view, then to spec.replicas."""
        if resource.scale is None:
            raise errors.NotFound("the server could not find the requested resource")
        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            scale = change(strategies.to_scale(resource, old))
            wanted = (scale.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.Conflict.for_resource(resource.plural, name, resource.group)
            return strategies.apply_scale(resource, old, scale)

        result = await self.guarded_update(resource, namespace, name, mutate, dry_run=dry_run)
        return strategies.to_scale(resource, result.obj)

    async def bind(self, resource: registry.Resource, namespace: str | None, name: str, binding: Any) -> WriteResult:
        if not strategies.is_kind(resource, strategies.CORE, "pods"):
            raise errors.NotFound("the server could not find the requested resource")
        if not isinstance(binding, dict):
            raise errors.BadRequest("binding must be an object")
        return await self.guarded_update(resource, namespace, name, lambda pod: strategies.bind_pod(pod, binding),
                                         subresource="binding")


def _entry(kv: etcd.KeyValue) -> watchcache.Entry:
    return watchcache.Entry.decode(kv.key, kv.value, kv.mod_revision, create_revision=kv.create_revision,
                                   version=kv.version)


async def _conflict_backoff(attempt: int) -> None:
    """Jittered, growing pause after losing a compare-and-swap, so contenders spread out."""
    if attempt >= 1:
        await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def _parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"invalid resource version: {value!r}") from None


def _continue_token(revision: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise errors.BadRequest("continue key is not valid: illegal base64 data") from None
