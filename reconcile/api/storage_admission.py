"""Storage admission plugins, as upstream's (plugin/pkg/admission/storage):

- `DefaultStorageClass`: a claim created without `spec.storageClassName` gets the default class
  (the newest one annotated `storageclass.kubernetes.io/is-default-class: "true"`); an explicit
  `""` opts out and keeps the claim to volumes without a class.
- `StorageObjectInUseProtection`: new claims get `kubernetes.io/pvc-protection`, new volumes
  `kubernetes.io/pv-protection`; the protection controllers remove them once nothing uses the object,
  so a claim in use by a pod or a bound volume lingers (deletionTimestamp set) until it is free.
- `PersistentVolumeClaimResize`: a bound claim may ask for more storage only when its class has
  `allowVolumeExpansion: true`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import admission, lookups, rest
from reconcile.core import volumes

ClassLister = Callable[[], Awaitable[list[dict[str, Any]]]]
ClassGetter = Callable[[str], Awaitable[dict[str, Any] | None]]


def _is(attributes: admission.Attributes, plural: str, operation: str) -> bool:
    return (attributes.operation == operation and attributes.resource.group == ""
            and attributes.resource.plural == plural and not attributes.subresource and attributes.obj is not None)


class DefaultStorageClass(admission.Plugin):
    name = "DefaultStorageClass"

    def __init__(self, classes: ClassLister) -> None:
        self._classes = classes

    async def mutate(self, attributes: admission.Attributes) -> None:
        if not _is(attributes, "persistentvolumeclaims", admission.CREATE):
            return
        spec = attributes.obj.setdefault("spec", {})  # type: ignore[union-attr]
        if spec.get("storageClassName") is not None:
            return
        found = volumes.default_class(await self._classes())
        if found is not None:
            spec["storageClassName"] = found["metadata"]["name"]


class StorageObjectInUseProtection(admission.Plugin):
    name = "StorageObjectInUseProtection"

    async def mutate(self, attributes: admission.Attributes) -> None:
        for plural, finalizer in (("persistentvolumeclaims", volumes.PVC_PROTECTION),
                                  ("persistentvolumes", volumes.PV_PROTECTION)):
            if _is(attributes, plural, admission.CREATE):
                metadata = attributes.obj.setdefault("metadata", {})  # type: ignore[union-attr]
                finalizers = metadata.setdefault("finalizers", [])
                if finalizer not in finalizers:
                    finalizers.append(finalizer)


class PersistentVolumeClaimResize(admission.Plugin):
    name = "PersistentVolumeClaimResize"

    def __init__(self, get_class: ClassGetter) -> None:
        self._get_class = get_class

    async def validate(self, attributes: admission.Attributes) -> None:
        if not _is(attributes, "persistentvolumeclaims", admission.UPDATE) or attributes.old is None:
            return
        if volumes.requested(attributes.obj or {}) <= volumes.requested(attributes.old):
            return  # not an expansion (a shrink is refused by validation)
        if (attributes.old.get("status") or {}).get("phase") != volumes.BOUND:
            return  # validation refuses changing an unbound claim's spec
        name = volumes.claim_class(attributes.old)
        storage_class = await self._get_class(name) if name else None
        if not storage_class or not storage_class.get("allowVolumeExpansion"):
            raise admission.forbidden(attributes, "only dynamically provisioned pvc can be resized and "
                                                  "the storageclass that provisions the pvc must support resize")


def plugins(api: rest.Rest) -> list[admission.Plugin]:
    """The three, in upstream's order (after PodSecurity, before ResourceQuota), reading classes
    from the API server's cache."""
    classes = lookups.NamespacedReader(api, "storage.k8s.io", "v1", "storageclasses", ttl=0)
    one_class = lookups.ObjectReader(api, "storage.k8s.io", "v1", "storageclasses")

    async def list_classes() -> list[dict[str, Any]]:
        return await classes.list("")

    async def get_class(name: str) -> dict[str, Any] | None:
        return await one_class.get(None, name)

    return [DefaultStorageClass(list_classes), StorageObjectInUseProtection(), PersistentVolumeClaimResize(get_class)]
