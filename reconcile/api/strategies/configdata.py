"""Secrets and ConfigMaps: keys that can become file names, a size cap, `immutable`, and Secrets'
write-only `stringData`.

`stringData` is a convenience for writers: upstream merges it into `data` (base64, its keys
winning) on every create and update and never stores it, so readers and pods only ever see `data`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, names

MAX_SIZE = 1024 * 1024  # upstream's MaxSecretSize, also the cap of a ConfigMap's data


def key_causes(data: Any, field: str) -> list[base.Cause]:
    causes: list[base.Cause] = []
    for key in data or {}:
        causes += [errors.cause(f"{field}[{key}]", f'Invalid value: "{key}": {problem}')
                   for problem in names.config_key_errors(key)]
    return causes


def immutable_causes(old: dict[str, Any], new: dict[str, Any], fields: tuple[str, ...]) -> list[base.Cause]:
    """An object once marked `immutable: true` keeps its content and the mark."""
    if not old.get("immutable"):
        return []
    causes = [errors.cause(field, "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden")
              for field in fields if old.get(field) != new.get(field)]
    if not new.get("immutable"):
        causes.append(errors.cause("immutable", "Forbidden: field is immutable when `immutable` is set",
                                   "FieldValueForbidden"))
    return causes


class SecretStrategy(base.BuiltinStrategy):
    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        """Runs after the schema check, so `stringData` is a map of strings here."""
        string_data = obj.pop("stringData", None)
        if not string_data:
            return
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode("ascii")

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        data = obj.get("data") or {}
        causes = key_causes(data, "data")
        size = 0
        for key, value in data.items():
            try:
                size += len(binascii.a2b_base64(value.encode("ascii"), strict_mode=True))
            except (binascii.Error, UnicodeEncodeError, ValueError):
                causes.append(errors.cause(f"data[{key}]", "Invalid value: \"<value omitted>\": illegal base64 data"))
        if size > MAX_SIZE:
            causes.append(errors.cause("data", f"Too long: may not be more than {MAX_SIZE} bytes", "FieldValueTooLong"))
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        if old.get("type", "Opaque") != new.get("type", "Opaque"):
            causes.append(errors.cause("type", "Invalid value: field is immutable"))
        return causes + immutable_causes(old, new, ("data",))


class ConfigMapStrategy(base.BuiltinStrategy):
    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        causes = key_causes(data, "data") + key_causes(binary, "binaryData")
        causes += [errors.cause(f"data[{key}]", f'Invalid value: "{key}": duplicate of key present in binaryData')
                   for key in data if key in binary]
        size = sum(len(k) + len(v.encode()) for k, v in data.items())
        for key, value in binary.items():
            try:
                size += len(key) + len(binascii.a2b_base64(value.encode("ascii"), strict_mode=True))
            except (binascii.Error, UnicodeEncodeError, ValueError):
                causes.append(errors.cause(f"binaryData[{key}]", "Invalid value: illegal base64 data"))
        if size > MAX_SIZE:
            causes.append(errors.cause("", f"Too long: may not be more than {MAX_SIZE} bytes", "FieldValueTooLong"))
        return causes

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        return self.validate(resource, new) + immutable_causes(old, new, ("data", "binaryData"))
