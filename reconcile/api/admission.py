"""Admission: the plugins every write passes after it was authorized and before it is validated and stored.

`rest` builds one `Attributes` per write attempt and runs the chain: every plugin's `mutate` first
(they may change `attributes.obj`), then every plugin's `validate` (which may only refuse, with an
ApiError). Plugins are built into the server and trusted to leave objects valid; schema and strategy
validation run after them.

Besides refusing, a plugin may leave `warnings` (sent to the client as `Warning: 299` headers) and
`audit_annotations` (upstream puts them on the request's audit event; the chain hands them to its
`on_audit` hook, which logs them until the audit log is there). The built-in plugins live in their
own modules: `limitranger`, `podsecurity_admission`, `quota`; `server` puts them in upstream's order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconcile.api import authn, registry
from reconcile.core import errors

log = logging.getLogger(__name__)

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"


@dataclass(slots=True)
class Attributes:
    operation: str
    resource: registry.Resource
    subresource: str | None
    namespace: str | None
    name: str
    obj: dict[str, Any] | None  # the object as it would be stored (None for DELETE)
    old: dict[str, Any] | None  # the stored object (None for CREATE)
    user: authn.UserInfo
    dry_run: bool
    warnings: list[str] = field(default_factory=list)  # plugins append; the client gets them as headers
    audit_annotations: dict[str, str] = field(default_factory=dict)  # for the request's audit event

    def object_name(self) -> str:
        """The name errors use: the object's name, else its generateName (upstream's NewForbidden)."""
        if self.name:
            return self.name
        metadata = (self.obj or self.old or {}).get("metadata") or {}
        return str(metadata.get("name") or metadata.get("generateName") or "")


def forbidden(attributes: Attributes, message: str) -> errors.Forbidden:
    """Upstream's admission.NewForbidden: `pods "web" is forbidden: <message>` (403, reason Forbidden)."""
    resource = attributes.resource
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    name = attributes.object_name()
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    prefix = f'{qualified} "{name}"' if name else qualified
    return errors.Forbidden(f"{prefix} is forbidden: {message}", details=details)


def log_audit_annotations(attributes: Attributes) -> None:
    """The default audit hook until the audit log exists: a log line per annotated request, at INFO
    when a plugin reports a violation or an error (`.../audit-violations`, `.../error`), else DEBUG
    (PodSecurity annotates every pod with the policy it enforced)."""
    target = "/".join(p for p in (attributes.namespace, attributes.name) if p)
    notable = any(key.endswith(("/audit-violations", "/error")) for key in attributes.audit_annotations)
    log.log(logging.INFO if notable else logging.DEBUG, "audit annotations for %s %s %s by %s: %s",
            attributes.operation, attributes.resource.plural, target, attributes.user.name,
            attributes.audit_annotations)


class Plugin:
    """An admission plugin; override one or both stages."""

    name = "plugin"

    async def mutate(self, attributes: Attributes) -> None:
        """Change `attributes.obj` in place (defaults, injected fields)."""

    async def validate(self, attributes: Attributes) -> None:
        """Raise an ApiError to refuse the write."""


class Chain:
    def __init__(self, plugins: list[Plugin], *,
                 on_audit: Callable[[Attributes], None] = log_audit_annotations) -> None:
        self.plugins = list(plugins)
        self.on_audit = on_audit  # called with the attributes when plugins left audit annotations

    async def admit(self, attributes: Attributes) -> None:
        try:
            for plugin in self.plugins:
                await plugin.mutate(attributes)
            for plugin in self.plugins:
                await plugin.validate(attributes)
        finally:  # a refused request is audited too, with what the plugins said about it
            if attributes.audit_annotations:
                self.on_audit(attributes)


def load_configuration(path: str | Path) -> dict[str, dict[str, Any]]:
    """An `AdmissionConfiguration` file (`--admission-control-config-file`): plugin name -> its
    configuration document, given inline (`configuration:`) or in a file of its own (`path:`,
    relative to this one). A file that cannot be read or parsed is an error at start, never ignored."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionConfiguration":
        raise ValueError(f"{path}: expected an apiserver.config.k8s.io AdmissionConfiguration")
    found: dict[str, dict[str, Any]] = {}
    for entry in doc.get("plugins") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{path}: every plugin entry needs a name")
        if entry.get("configuration") is not None:
            config = entry["configuration"]
        elif entry.get("path"):
            config = _read_yaml(path.parent / str(entry["path"]))
        else:
            continue
        if not isinstance(config, dict):
            raise ValueError(f"{path}: the configuration of plugin {entry['name']} must be an object")
        found[entry["name"]] = config
    return found


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from None


class NamespaceLifecycle(Plugin):
    """Upstream's NamespaceLifecycle: nothing is created in a namespace that does not exist or is
    being terminated."""

    name = "NamespaceLifecycle"

    def __init__(self, lookup: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._lookup = lookup  # namespace name -> the Namespace object, or None

    async def validate(self, attributes: Attributes) -> None:
        if attributes.operation != CREATE or not attributes.resource.namespaced or attributes.subresource:
            return
        namespace = attributes.namespace or ""
        found = await self._lookup(namespace)
        if found is None:
            raise errors.NotFound.for_resource("namespaces", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": "namespaces",
                         "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                     "message": f"namespace {namespace} is being terminated"}]},
            )
