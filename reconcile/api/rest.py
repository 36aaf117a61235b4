"""The verbs on objects: get, list, create, update, patch, delete, deletecollection, scale, binding.

Every write is a compare-and-swap on the etcd mod_revision (`resourceVersion`), so a lost
update is impossible; writes without a client precondition retry on conflict here, as
kube-apiserver's GuaranteedUpdate does. Reads come from the watch caches.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from reconcile.api import (
    admission,
    authn,
    caches,
    deleteoptions,
    fieldmanager,
    listing,
    objectmeta,
    registry,
    scale,
    validation,
    watchcache,
)
from reconcile.api import strategies as strategies_mod
from reconcile.api.strategies import base as strategy_base
from reconcile.core import applymerge, errors, meta, patches, selectors
from reconcile.store import etcd, keys

MAX_UPDATE_ATTEMPTS = 16
# DeleteOptions field (upstream 1.32, KEP-3926): delete an object whose stored bytes cannot be decoded.
UNSAFE_DELETE_OPTION = deleteoptions.UNSAFE_DELETE
# Writes without a client precondition must not fail just because others write the same object
# (upstream's GuaranteedUpdate retries until it wins): many attempts, with jittered backoff.
MAX_GUARDED_ATTEMPTS = 200


# Subresources that write the status alone (`approval`: certificatesigningrequests, see handlers).
STATUS_LIKE = frozenset({"status", "approval"})


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

    def describe(self) -> str:
        """A canonical text of the selectors (continue tokens are bound to it)."""
        return f"{self.labels if self.labels is not None else ''}\0{self.fields if self.fields is not None else ''}"


def encode(obj: dict[str, Any]) -> bytes:
    """Stored form: the object without resourceVersion (the revision is the etcd mod_revision)."""
    metadata = obj.get("metadata") or {}
    if "resourceVersion" in metadata:
        obj = dict(obj, metadata={k: v for k, v in metadata.items() if k != "resourceVersion"})
    return orjson.dumps(obj)


def decode(kv: etcd.KeyValue) -> dict[str, Any]:
    """A stored object; `errors.InternalError` when the stored bytes are not one (written around the API) or
    the store could not read them back (encryption at rest: a missing or wrong key)."""
    if kv.unreadable:
        raise errors.InternalError(f"the stored object {kv.key} cannot be read: {kv.unreadable}")
    try:
        obj = orjson.loads(kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
        raise errors.InternalError(f"the stored object {kv.key} cannot be decoded: {exc}") from None
    return obj


class Rest:
    """Object storage semantics for every resource served."""

    def __init__(self, store: etcd.EtcdStore, registry_: registry.Registry, cache_set: caches.CacheSet, *,
                 strategies: strategies_mod.StrategySet | None = None,
                 admission_chain: admission.Chain | None = None) -> None:
        self.store = store
        self.registry = registry_
        self.caches = cache_set
        self.strategies = strategies or strategies_mod.StrategySet({})
        self.admission = admission_chain or admission.Chain([])

    def strategy(self, resource: registry.Resource) -> strategy_base.Strategy:
        return self.strategies.for_resource(resource)

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
            wanted = int(listing.parse_resource_version(resource_version) or 0)
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

    async def list(self, resource: registry.Resource, selection: Selection,
                   options: listing.ListOptions | None = None) -> ListResult:
        options = options or listing.ListOptions()
        prefix = self.prefix(resource, selection.namespace)
        if options.continue_token:
            revision, after = listing.decode_continue(options.continue_token, prefix=prefix,
                                                      selection=selection.describe())
            return await self._list_from_etcd(resource, selection, prefix, revision, after, options.limit)
        exact = options.exact_revision
        if exact is not None:
            return await self._list_from_etcd(resource, selection, prefix, exact, None, options.limit)
        try:
            cache = await self.cache(resource, resource_version=options.resource_version)
            entries, revision = cache.list(prefix)
        except watchcache.CacheBehind:
            listed = await self.store.list(prefix)
            entries, revision = [_entry(kv) for kv in listed.items], listed.revision
        if selection.filters:
            entries = [e for e in entries if e.decodable and selection.matches(e.obj)]
        else:
            entries = [e for e in entries if e.decodable]
        limit = options.limit
        if limit and len(entries) > limit:
            page = entries[:limit]
            token = listing.encode_continue(revision, page[-1].key, prefix=prefix, selection=selection.describe())
            return ListResult(page, revision, token, len(entries) - limit)
        return ListResult(entries, revision)

    async def _list_from_etcd(self, resource: registry.Resource, selection: Selection, prefix: str,
                              revision: int, start_after: str | None, limit: int | None) -> ListResult:
        """A page read from etcd at exactly `revision` (later pages of a list: one consistent snapshot;
        `resourceVersionMatch=Exact`). 410 when etcd has compacted that revision away."""
        found: list[watchcache.Entry] = []
        more = True
        after = start_after
        while more and (not limit or len(found) < limit):
            try:
                page = await self.store.list(prefix, revision=revision, limit=max(limit or 500, 50), start_after=after)
            except errors.Compacted:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter." if start_after is not None else
                    f"The resourceVersion for the provided list is too old: {revision}"
                ) from None
            except errors.FutureRevision:
                raise errors.Timeout(f"Too large resource version: {revision}",
                                     details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                          "message": "Too large resource version"}],
                                              "retryAfterSeconds": 1}) from None
            for kv in page.items:
                after = kv.key
                entry = _entry(kv)
                if entry.decodable and selection.matches(entry.obj):
                    found.append(entry)
            more = page.more
        if limit and len(found) > limit:
            found, more, after = found[:limit], True, found[limit - 1].key
        token = ""
        if more and after is not None:
            token = listing.encode_continue(revision, after, prefix=prefix, selection=selection.describe())
        return ListResult(found, revision, token)

    # --- create ---

    async def create(self, resource: registry.Resource, namespace: str | None, body: Any, *,
                     dry_run: bool = False, field_validation: str = "Strict",
                     user: authn.UserInfo = authn.SERVER, field_manager: str | None = None,
                     applied: dict[str, Any] | None = None) -> WriteResult:
        """Create `body`; `field_manager` gets an Update entry for its fields (an Apply entry for the
        fields of `applied` when an apply creates the object)."""
        obj = self._checked_object(resource, body, namespace)
        metadata = obj["metadata"]
        if metadata.get("resourceVersion"):
            raise errors.BadRequest("resourceVersion should not be set on objects to be created")
        generate = not metadata.get("name") and metadata.get("generateName")
        strategy = self.strategy(resource)
        for _attempt in range(8 if generate else 1):
            if generate:
                metadata["name"] = objectmeta.generated_name(metadata["generateName"])
            candidate = copy.deepcopy(obj) if generate else obj  # obj is already our own copy; retries need it pristine
            if resource.has_status:
                candidate.pop("status", None)
            warnings = validation.prepare(resource, candidate, field_validation=field_validation)
            strategy.normalize(resource, candidate)
            strategy.prepare_for_create(resource, candidate)
            supplied = candidate["metadata"].get("managedFields")
            objectmeta.assign_create_fields(candidate)
            strategy.fill_from_identity(resource, candidate)
            admitted = admission.Attributes(
                admission.CREATE, resource, None, candidate["metadata"].get("namespace"),
                candidate["metadata"]["name"], candidate, None, user, dry_run)
            await self.admission.admit(admitted)
            warnings = warnings + admitted.warnings
            fieldmanager.on_create(resource, candidate, supplied, field_manager, applied=applied)
            causes = strategy.validate(resource, candidate)
            if causes:
                raise strategy_base.invalid(resource, candidate, causes)
            reservation = await strategy.reserve(resource, None, candidate)
            if dry_run:  # what a create would be given (a Service's cluster IP, node ports), then let go
                await reservation.revert()
                return WriteResult(candidate, warnings, created=True)
            key = self.key(resource, namespace, candidate["metadata"]["name"])
            try:
                revision = await self.store.create(key, encode(candidate))
            except errors.KeyExists:
                await reservation.revert()
                if generate:
                    continue
                raise errors.AlreadyExists.for_resource(resource.plural, candidate["metadata"]["name"], resource.group) from None
            except errors.ValueTooLarge:
                await reservation.revert()
                raise errors.RequestEntityTooLarge("Request entity too large: the object is larger than storage allows") from None
            except BaseException:
                await reservation.revert()
                raise
            await reservation.commit()
            candidate["metadata"]["resourceVersion"] = str(revision)
            await strategy.after_write(candidate)
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
            raise validation.decode_error(resource, "metadata must be an object")
        for field_name in ("name", "generateName", "namespace", "resourceVersion"):
            value = metadata.get(field_name)
            if value is not None and not isinstance(value, str):
                raise validation.decode_error(resource, f"json: cannot unmarshal {validation.json_type(value)} into "
                                                        f"Go struct field ObjectMeta.metadata.{field_name} of type string")
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

    async def namespace(self, name: str) -> dict[str, Any] | None:
        """The Namespace `name` as of now (the cache, proven current if it does not know it yet), or None."""
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        cache = await self.caches.ensure(namespaces)
        key = self.key(namespaces, None, name)
        entry = cache.get(key)
        if entry is None:
            try:
                await cache.ensure_current()
                entry = cache.get(key)
            except watchcache.CacheBehind:
                kv, _ = await self.store.get(key)
                entry = _entry(kv) if kv is not None else None
        return entry.obj if entry is not None else None

    # --- update / patch ---

    async def update(self, resource: registry.Resource, namespace: str | None, name: str, body: Any, *,
                     subresource: str | None = None, dry_run: bool = False,
                     field_validation: str = "Strict", user: authn.UserInfo = authn.SERVER,
                     field_manager: str | None = None) -> WriteResult:
        obj = self._checked_object(resource, body, namespace)
        given_name = obj["metadata"].get("name")
        if given_name and given_name != name:
            raise errors.BadRequest(f"the name of the object ({given_name}) does not match the name on the URL ({name})")
        obj["metadata"]["name"] = name
        precondition = obj["metadata"].get("resourceVersion") or None
        if precondition is not None:
            listing.parse_resource_version(precondition, what="metadata.resourceVersion")

        def replace(old: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(obj)

        return await self.guarded_update(resource, namespace, name, replace, subresource=subresource,
                                         precondition=precondition, dry_run=dry_run,
                                         field_validation=field_validation, user=user,
                                         field_manager=field_manager)

    async def patch(self, resource: registry.Resource, namespace: str | None, name: str, patch_type: str,
                    patch: Any, *, subresource: str | None = None, dry_run: bool = False,
                    field_validation: str = "Strict", field_manager: str | None = None,
                    force: bool | None = None, user: authn.UserInfo = authn.SERVER) -> WriteResult:
        if patch_type == "strategic" and not resource.builtin:
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            )
        applying = patch_type == "apply"
        fieldmanager.validate_options("PatchOptions", field_manager, apply=applying, force=force, patch=True)
        if patch_type == "json":
            if not isinstance(patch, list):
                raise errors.BadRequest("json patch must be a list of operations")
        elif not isinstance(patch, dict):
            raise errors.BadRequest("patch must be a JSON object")
        precondition = None
        if isinstance(patch, dict):
            patch_meta = patch.get("metadata")
            precondition = (patch_meta.get("resourceVersion") if isinstance(patch_meta, dict) else None) or None
            if precondition is not None and not isinstance(precondition, str):
                raise errors.BadRequest("metadata.resourceVersion must be a string")

        if applying:
            fieldmanager.check_applied(resource, patch)

        def apply(old: dict[str, Any]) -> dict[str, Any]:
            if patch_type == "merge":
                return patches.merge_patch(old, patch)
            if patch_type == "json":
                return patches.json_patch(old, patch)
            if patch_type == "strategic":
                return patches.strategic_merge_patch(old, patch, resource.schema)
            assert field_manager is not None
            return fieldmanager.apply(resource, old, patch, field_manager, force=bool(force), subresource=subresource)

        create_if_missing = None
        if applying and subresource is None:
            create_if_missing = patch
        return await self.guarded_update(resource, namespace, name, apply, subresource=subresource,
                                         precondition=precondition, dry_run=dry_run,
                                         field_validation=field_validation, create_if_missing=create_if_missing,
                                         user=user, field_manager=field_manager,
                                         operation=applymerge.APPLY if applying else applymerge.UPDATE)

    async def guarded_update(self, resource: registry.Resource, namespace: str | None, name: str,
                             mutate: Callable[[dict[str, Any]], dict[str, Any]], *, subresource: str | None = None,
                             precondition: str | None = None, dry_run: bool = False,
                             field_validation: str = "Strict", create_if_missing: Any = None,
                             user: authn.UserInfo = authn.SERVER, field_manager: str | None = None,
                             operation: str = applymerge.UPDATE, managed_subresource: str | None = None) -> WriteResult:
        """Read, mutate, compare-and-swap; retry on conflict unless the client gave a resourceVersion.

        The first try starts from the watch cache's copy, as kube-apiserver's GuaranteedUpdate does
        with its cached object: the compare-and-swap on its mod_revision proves it current, so the
        common write costs no etcd read. Whatever goes wrong on that copy (a lost swap, a failed
        precondition or validation, a no-op) is judged again on a fresh read from etcd.

        `field_manager` is who writes (its managedFields entry; None: an internal write that leaves
        them as they are); `operation` Apply means `mutate` set them itself; `managed_subresource`
        names the entry's subresource when it is not `subresource` (a write through /scale).
        """
        key = self.key(resource, namespace, name)
        cache = None if dry_run else self.caches.peek(resource)
        entry = cache.get(key) if cache is not None else None
        attempt = _UpdateAttempt(resource, key, name, mutate, subresource=subresource, precondition=precondition,
                                 dry_run=dry_run, field_validation=field_validation, user=user,
                                 field_manager=field_manager, operation=operation,
                                 managed_subresource=managed_subresource or subresource)
        if entry is not None and entry.decodable:
            old = orjson.loads(entry.value)
            old.setdefault("metadata", {})["resourceVersion"] = str(entry.mod_revision)
            try:
                result = await self._update_once(attempt, old, entry.mod_revision, trusted=False)
            except errors.ApiError:
                result = None  # perhaps only because the copy was stale: decide on etcd's version
            if result is not None:
                return result
        for _attempt in range(MAX_GUARDED_ATTEMPTS):
            kv, _ = await self.store.get(key)
            if kv is None:
                if create_if_missing is not None:
                    return await self.create(resource, namespace, _named(resource, create_if_missing, name),
                                             dry_run=dry_run, field_validation=field_validation, user=user,
                                             field_manager=field_manager, applied=create_if_missing)
                raise errors.NotFound.for_resource(resource.plural, name, resource.group)
            result = await self._update_once(attempt, decode(kv), kv.mod_revision, trusted=True, stale=kv.stale)
            if result is not None:
                return result
            await _conflict_backoff(_attempt)
        raise errors.Conflict.for_resource(resource.plural, name, resource.group,
                                           why="too many concurrent writers; please try again")

    async def _update_once(self, attempt: _UpdateAttempt, old: dict[str, Any], mod_revision: int, *,
                           trusted: bool, stale: bool = False) -> WriteResult | None:
        """One try of `guarded_update` on `old` (stored at `mod_revision`); None: try again on a fresh read.

        `trusted` says `old` came from etcd just now; an untrusted (cached) copy never answers a
        precondition failure or a no-op itself. `stale` says etcd holds it under an older encryption
        key: then even an update that changes nothing is written (re-encrypted), as upstream's
        GuaranteedUpdate does, which is what `reconcile secrets rotate` relies on.
        """
        resource, name = attempt.resource, attempt.name
        if attempt.precondition is not None and attempt.precondition != old["metadata"]["resourceVersion"]:
            if not trusted:
                return None
            raise errors.Conflict.for_resource(resource.plural, name, resource.group)
        new, warnings = await self._next_state(attempt, old, attempt.mutate(copy.deepcopy(old)))
        if objectmeta.same_object(old, new) and not stale:
            return WriteResult(old, warnings) if trusted else None
        strategy = self.strategy(resource)
        if attempt.dry_run:  # as a create's: what the update would be given, then let go
            if not new["metadata"].get("deletionTimestamp"):
                await (await strategy.reserve(resource, old, new)).revert()
            return WriteResult(new, warnings)
        try:
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                await strategy.before_delete(new)
                revision, _ = await self.store.delete(attempt.key, expected_revision=mod_revision)
                new["metadata"]["resourceVersion"] = str(revision)
                await strategy.after_removal(new)
                return WriteResult(new, warnings, deleted=True)
            reservation = await strategy.reserve(resource, old, new)
        except (errors.RevisionConflict, errors.KeyMissing):
            if attempt.precondition is not None and trusted:
                raise errors.Conflict.for_resource(resource.plural, name, resource.group) from None
            return None
        try:
            revision = await self.store.update(attempt.key, encode(new), expected_revision=mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            await reservation.revert()
            if attempt.precondition is not None and trusted:
                raise errors.Conflict.for_resource(resource.plural, name, resource.group) from None
            return None
        except errors.ValueTooLarge:
            await reservation.revert()
            raise errors.RequestEntityTooLarge("Request entity too large: the object is larger than storage allows") from None
        except BaseException:
            await reservation.revert()
            raise
        await reservation.commit()
        new["metadata"]["resourceVersion"] = str(revision)
        await strategy.after_write(new)
        return WriteResult(new, warnings)

    async def _next_state(self, attempt: _UpdateAttempt, old: dict[str, Any],
                          new: Any) -> tuple[dict[str, Any], list[str]]:
        """The object to store (and warnings) after a write to the main resource, /status or /binding."""
        resource, subresource = attempt.resource, attempt.subresource
        if not isinstance(new, dict):
            raise errors.BadRequest("the result of the update is not an object")
        if not isinstance(new.get("metadata", {}), dict):
            raise validation.decode_error(resource, "metadata must be an object")
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        supplied = new.get("metadata", {}).get("managedFields", fieldmanager.ABSENT)
        if subresource in STATUS_LIKE:  # only the status changes (a CSR's /approval too: its conditions)
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
        warnings = validation.prepare(resource, new, field_validation=attempt.field_validation)
        strategy = self.strategy(resource)
        strategy.normalize(resource, new)
        if subresource not in STATUS_LIKE:
            strategy.prepare_for_update(resource, old, new)
            objectmeta.bump_generation_if_needed(old, new)
        admitted = admission.Attributes(
            admission.UPDATE, resource, subresource, old["metadata"].get("namespace"), attempt.name, new, old,
            attempt.user, attempt.dry_run)
        await self.admission.admit(admitted)
        if attempt.operation == applymerge.APPLY and attempt.field_manager is not None:
            new["metadata"]["managedFields"] = supplied  # the apply's own
        else:
            fieldmanager.on_update(resource, old, new, supplied, attempt.field_manager, attempt.managed_subresource)
        causes = strategy.validate_update(resource, old, new)
        if subresource is None:
            causes += strategy.validate_main_update(resource, old, new)
        if causes:
            raise strategy_base.invalid(resource, new, causes)
        return new, warnings + admitted.warnings

    # --- delete ---

    async def delete(self, resource: registry.Resource, namespace: str | None, name: str, *,
                     options: dict[str, Any] | None = None, dry_run: bool = False,
                     user: authn.UserInfo = authn.SERVER) -> WriteResult:
        options = options or {}
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.BadRequest(f"unsupported propagationPolicy {policy!r}: use Background, Foreground or Orphan")
        preconditions = options.get("preconditions") or {}
        if not isinstance(preconditions, dict):
            raise errors.BadRequest("DeleteOptions.preconditions must be an object")
        requested_grace = options.get("gracePeriodSeconds")
        if requested_grace is not None and (not isinstance(requested_grace, int) or isinstance(requested_grace, bool)):
            raise errors.BadRequest("DeleteOptions.gracePeriodSeconds must be an integer")
        strategy = self.strategy(resource)
        key = self.key(resource, namespace, name)
        for _attempt in range(MAX_UPDATE_ATTEMPTS):
            kv, _ = await self.store.get(key)
            if kv is None:
                raise errors.NotFound.for_resource(resource.plural, name, resource.group)
            try:
                old = decode(kv)
            except errors.InternalError:
                if not options.get(UNSAFE_DELETE_OPTION):
                    raise
                return await self._delete_corrupt(resource, key, kv, dry_run=dry_run)
            self._check_preconditions(resource, old, preconditions)
            await self.admission.admit(admission.Attributes(
                admission.DELETE, resource, None, old["metadata"].get("namespace"), name, None, old, user, dry_run))
            new = copy.deepcopy(old)
            metadata = new["metadata"]
            finalizers = list(metadata.get("finalizers") or [])
            extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy or "")
            if extra and extra not in finalizers and not metadata.get("deletionTimestamp"):
                finalizers.append(extra)
            grace = strategy.deletion_grace_seconds(old, requested_grace)
            pending = await strategy.deletion_pending(old)
            if finalizers or grace or pending:
                if metadata.get("deletionTimestamp"):
                    return WriteResult(old)  # already being deleted
                metadata["deletionTimestamp"] = meta.now_rfc3339()
                metadata["deletionGracePeriodSeconds"] = grace
                if finalizers:
                    metadata["finalizers"] = finalizers
                strategy.mark_deleting(new)
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
            await strategy.before_delete(old)
            try:
                revision, _ = await self.store.delete(key, expected_revision=kv.mod_revision)
            except (errors.RevisionConflict, errors.KeyMissing):
                continue
            old["metadata"]["resourceVersion"] = str(revision)
            await strategy.after_removal(old)
            return WriteResult(old, deleted=True)
        raise errors.Conflict.for_resource(resource.plural, name, resource.group,
                                           why="too many concurrent writers; please try again")

    async def _delete_corrupt(self, resource: registry.Resource, key: str, kv: etcd.KeyValue, *,
                              dry_run: bool) -> WriteResult:
        """Upstream's unsafe delete of an object that cannot be decoded: no finalizers, no admission,
        no strategy; the key simply goes."""
        name = key.rsplit("/", 1)[-1]
        gone = {"apiVersion": resource.api_version, "kind": resource.kind,
                "metadata": {"name": name, "resourceVersion": str(kv.mod_revision)}}
        if dry_run:
            return WriteResult(gone, deleted=True)
        try:
            revision, _ = await self.store.delete(key, expected_revision=kv.mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            raise errors.Conflict.for_resource(resource.plural, name, resource.group) from None
        gone["metadata"]["resourceVersion"] = str(revision)
        return WriteResult(gone, deleted=True)

    def _check_preconditions(self, resource: registry.Resource, obj: dict[str, Any], preconditions: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        for field_name in ("uid", "resourceVersion"):
            wanted = preconditions.get(field_name)
            if wanted and wanted != metadata.get(field_name):
                shown = field_name.upper() if field_name == "uid" else field_name
                raise errors.Conflict.for_resource(
                    resource.plural, metadata["name"], resource.group,
                    why=f"Precondition failed: {shown} in precondition: {wanted}, {shown} in object meta: "
                        f"{metadata.get(field_name)}",
                )

    async def namespace_has_content(self, name: str) -> bool:
        """Whether any namespaced object lives in namespace `name` (the namespace strategy asks)."""
        for other in self.registry.resources():
            if not other.namespaced:
                continue
            cache = await self.caches.ensure(other)
            if cache.list(self.prefix(other, name))[0]:
                return True
        return False

    async def remove_all(self, group: str, plural: str) -> None:
        """Remove every object of one resource, straight from storage (a CRD's objects go with it)."""
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

    async def delete_collection(self, resource: registry.Resource, selection: Selection, *,
                                options: dict[str, Any] | None = None, dry_run: bool = False,
                                user: authn.UserInfo = authn.SERVER) -> list[dict[str, Any]]:
        listed = await self.list(resource, selection)
        removed: list[dict[str, Any]] = []
        for entry in listed.entries:
            metadata = entry.obj["metadata"]
            try:
                result = await self.delete(resource, metadata.get("namespace"), metadata["name"],
                                           options=options, dry_run=dry_run, user=user)
            except errors.NotFound:
                continue
            removed.append(result.obj)
        return removed

    # --- subresources ---

    async def get_scale(self, resource: registry.Resource, namespace: str | None, name: str) -> dict[str, Any]:
        if resource.scale is None:
            raise errors.no_such_resource()
        entry = await self.get(resource, namespace, name)
        return scale.to_scale(resource, entry.obj)

    async def write_scale(self, resource: registry.Resource, namespace: str | None, name: str,
                          change: Callable[[dict[str, Any]], Any], *, dry_run: bool = False,
                          user: authn.UserInfo = authn.SERVER, field_manager: str | None = None) -> dict[str, Any]:
        """PUT or PATCH of /scale: the change is applied to the Scale view, then to spec.replicas."""
        if resource.scale is None:
            raise errors.no_such_resource()

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            wanted_scale = change(scale.to_scale(resource, old))
            wanted = scale.resource_version(wanted_scale)
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.Conflict.for_resource(resource.plural, name, resource.group)
            return scale.apply_scale(resource, old, wanted_scale)

        result = await self.guarded_update(resource, namespace, name, mutate, dry_run=dry_run, user=user,
                                           field_manager=field_manager, managed_subresource="scale")
        return scale.to_scale(resource, result.obj)

    async def bind(self, resource: registry.Resource, namespace: str | None, name: str, binding: Any, *,
                   user: authn.UserInfo = authn.SERVER) -> WriteResult:
        bind = getattr(self.strategy(resource), "bind", None)
        if bind is None:
            raise errors.no_such_resource()
        return await self.guarded_update(resource, namespace, name, lambda pod: bind(pod, binding),
                                         subresource="binding", user=user)


@dataclass(frozen=True, slots=True)
class _UpdateAttempt:
    """What every try of one `guarded_update` shares."""

    resource: registry.Resource
    key: str
    name: str
    mutate: Callable[[dict[str, Any]], dict[str, Any]]
    subresource: str | None
    precondition: str | None
    dry_run: bool
    field_validation: str
    user: authn.UserInfo
    field_manager: str | None = None
    operation: str = applymerge.UPDATE
    managed_subresource: str | None = None


def _named(resource: registry.Resource, body: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of an applied configuration to create object `name` from: its metadata an object (or
    absent), its name the URL's (400 otherwise, as an update says)."""
    body = copy.deepcopy(body)
    metadata = body.get("metadata")
    if metadata is None:
        metadata = body["metadata"] = {}
    if not isinstance(metadata, dict):
        raise validation.decode_error(resource, "metadata must be an object")
    given = metadata.get("name")
    if given not in (None, "", name):
        raise errors.BadRequest(f"the name of the object ({given}) does not match the name on the URL ({name})")
    metadata["name"] = name
    return body


def _entry(kv: etcd.KeyValue) -> watchcache.Entry:
    return watchcache.Entry.decode(kv.key, kv.value, kv.mod_revision, create_revision=kv.create_revision,
                                   version=kv.version, unreadable=kv.unreadable)


async def _conflict_backoff(attempt: int) -> None:
    """Jittered, growing pause after losing a compare-and-swap, so contenders spread out."""
    if attempt >= 1:
        await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
