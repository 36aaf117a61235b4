"""PersistentVolumes, PersistentVolumeClaims and StorageClasses: what upstream's validation
(pkg/apis/core/validation, pkg/apis/storage/validation) checks beyond the schema.

- A volume names exactly one source of ours (hostPath, local, csi), its capacity and access modes;
  a `local` volume needs nodeAffinity; the source, volumeMode and nodeAffinity never change.
- A claim asks for storage; after creation only its requests change (and the binder's volumeName
  and the retroactive default class, each only from empty); a request never shrinks.
- ReadWriteOncePod stands alone among the access modes.
- A StorageClass's provisioner, parameters, reclaimPolicy and volumeBindingMode are immutable.

New volumes start `Pending` and claims `Pending` (upstream's PrepareForCreate); the binder moves them on.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, volumes

FORBIDDEN = "FieldValueForbidden"
REQUIRED = "FieldValueRequired"
CLAIM_SPEC_IMMUTABLE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"


def _access_mode_causes(spec: dict[str, Any], field: str) -> list[base.Cause]:
    modes = spec.get("accessModes") or []
    if not modes:
        return [errors.cause(field, "Required value: at least 1 access mode is required", REQUIRED)]
    if volumes.RWOP in modes and len(modes) > 1:
        return [errors.cause(field, "Forbidden: may not use ReadWriteOncePod with other access modes", FORBIDDEN)]
    return []


def _quantity_causes(value: Any, field: str, *, required: bool = True) -> list[base.Cause]:
    if value is None:
        return [errors.cause(field, "Required value", REQUIRED)] if required else []
    parsed = volumes.quantity_value(value)
    if parsed is None:
        return [errors.cause(field, f'Invalid value: "{value}": quantities must match the regular expression '
                                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    if parsed <= 0:
        return [errors.cause(field, f'Invalid value: "{value}": must be greater than zero')]
    return []


class PersistentVolumeStrategy(base.BuiltinStrategy):
    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": volumes.PENDING}

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec") or {}
        causes: list[base.Cause] = []
        given = [name for name in volumes.SOURCES if spec.get(name)]
        if not given:
            causes.append(errors.cause("spec", "Required value: must specify a volume type", REQUIRED))
        elif len(given) > 1:
            causes.append(errors.cause(f"spec.{given[1]}", "Forbidden: may not specify more than 1 volume type",
                                       FORBIDDEN))
        capacity = spec.get("capacity") or {}
        causes += _quantity_causes(capacity.get("storage"), "spec.capacity")
        causes += [errors.cause(f"spec.capacity[{key}]", f'Unsupported value: "{key}": supported values: "storage"',
                                "FieldValueNotSupported") for key in capacity if key != "storage"]
        causes += _access_mode_causes(spec, "spec.accessModes")
        for name in ("hostPath", "local"):
            path = (spec.get(name) or {}).get("path")
            if path is not None and not posixpath.isabs(path):
                causes.append(errors.cause(f"spec.{name}.path", f'Invalid value: "{path}": must be an absolute path'))
            if path is not None and ".." in path.split("/"):
                causes.append(errors.cause(f"spec.{name}.path", f'Invalid value: "{path}": must not contain \'..\''))
        if spec.get("local") and not spec.get("nodeAffinity"):
            causes.append(errors.cause("spec.nodeAffinity", "Required value: Local volume requires node affinity",
                                       REQUIRED))
        csi = spec.get("csi") or {}
        if csi and csi.get("driver") != volumes.DOCKER_VOLUME_DRIVER:
            causes.append(errors.cause("spec.csi.driver", f'Unsupported value: "{csi.get("driver")}": supported '
                                       f'values: "{volumes.DOCKER_VOLUME_DRIVER}"', "FieldValueNotSupported"))
        if spec.get("volumeMode") == "Block":
            causes.append(errors.cause("spec.volumeMode", 'Unsupported value: "Block": supported values: "Filesystem"',
                                       "FieldValueNotSupported"))
        if spec.get("persistentVolumeReclaimPolicy") == "Recycle":
            causes.append(errors.cause("spec.persistentVolumeReclaimPolicy",
                                       'Unsupported value: "Recycle": supported values: "Delete", "Retain"',
                                       "FieldValueNotSupported"))
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if any(old_spec.get(name) != new_spec.get(name) for name in volumes.SOURCES):
            causes.append(errors.cause("spec.persistentvolumesource",
                                       "Forbidden: spec.persistentvolumesource is forbidden once set", FORBIDDEN))
        if volumes.volume_mode(old) != volumes.volume_mode(new):
            causes.append(errors.cause("spec.volumeMode", "Invalid value: field is immutable"))
        if old_spec.get("nodeAffinity") and old_spec.get("nodeAffinity") != new_spec.get("nodeAffinity"):
            causes.append(errors.cause("spec.nodeAffinity", "Invalid value: field is immutable"))
        return causes


class PersistentVolumeClaimStrategy(base.BuiltinStrategy):
    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": volumes.PENDING}

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec") or {}
        causes = _access_mode_causes(spec, "spec.accessModes")
        requests = (spec.get("resources") or {}).get("requests") or {}
        causes += _quantity_causes(requests.get("storage"), "spec.resources[storage]")
        if spec.get("volumeMode") == "Block":
            causes.append(errors.cause("spec.volumeMode", 'Unsupported value: "Block": supported values: "Filesystem"',
                                       "FieldValueNotSupported"))
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        old_spec, new_spec = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
        # the binder fills volumeName once; the default class is written into a claim that had none
        if not old_spec.get("volumeName"):
            old_spec["volumeName"] = new_spec.get("volumeName")
        if old_spec.get("storageClassName") is None and new_spec.get("storageClassName"):
            old_spec["storageClassName"] = new_spec["storageClassName"]
        bound = (old.get("status") or {}).get("phase") == volumes.BOUND  # only bound claims grow
        for spec in (old_spec, new_spec):
            if spec.get("volumeName") is None:
                spec.pop("volumeName", None)
            if bound:
                (spec.get("resources") or {}).pop("requests", None)
            if spec.get("resources") == {}:
                spec.pop("resources")
        if old_spec != new_spec:
            causes.append(errors.cause("spec", f"Forbidden: {CLAIM_SPEC_IMMUTABLE}", FORBIDDEN))
        before, after = volumes.requested(old), volumes.requested(new)
        if after < before:
            causes.append(errors.cause("spec.resources.requests.storage",
                                       "Forbidden: field can not be less than previous value", FORBIDDEN))
        return causes


CLASS_IMMUTABLE = (("parameters", "updates to parameters are forbidden."),
                   ("provisioner", "updates to provisioner are forbidden."),
                   ("reclaimPolicy", "updates to reclaimPolicy are forbidden."))


class StorageClassStrategy(base.BuiltinStrategy):
    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        provisioner = obj.get("provisioner") or ""
        if not provisioner:
            return [errors.cause("provisioner", "Required value", REQUIRED)]
        if len(provisioner) > 63:
            return [errors.cause("provisioner", f'Invalid value: "{provisioner}": name is too long (63 characters max)')]
        return []

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        for field, message in CLASS_IMMUTABLE:
            if (old.get(field) or None) != (new.get(field) or None):
                causes.append(errors.cause(field, f"Forbidden: {message}", FORBIDDEN))
        if old.get("volumeBindingMode") != new.get("volumeBindingMode"):
            causes.append(errors.cause("volumeBindingMode", "Invalid value: field is immutable"))
        return causes
