"""reconcile: a Kubernetes-style control plane and operator framework.

This module is the plugin SDK's public surface (`import reconcile as rc`; `@rc.on.create(...)`);
it stays small on purpose. The public modules are `reconcile` (this), `reconcile.testing` (the test
kit for plugin authors) and `reconcile.client` (the API client); every other package is internal and
may change without notice. The names are loaded on first use, so importing any part of the
project (the API server, the CLI) does not pull in the operator engine.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SDK = "reconcile.engine.sdk"
# public name -> (module, attribute or None for the module itself)
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "on": (f"{_SDK}.on", None),
    "timer": (f"{_SDK}.on", "timer"),
    "daemon": (f"{_SDK}.on", "daemon"),
    "index": (f"{_SDK}.on", "index"),
    "TemporaryError": (f"{_SDK}.errors", "TemporaryError"),
    "PermanentError": (f"{_SDK}.errors", "PermanentError"),
    "PRESENT": (f"{_SDK}.filters", "PRESENT"),
    "ABSENT": (f"{_SDK}.filters", "ABSENT"),
    "adopt": (f"{_SDK}.hierarchy", "adopt"),
    "event": (f"{_SDK}.posting", "event"),
    "info": (f"{_SDK}.posting", "info"),
    "warn": (f"{_SDK}.posting", "warn"),
    "render": (f"{_SDK}.rendering", "render"),
    "Registry": (f"{_SDK}.registry", "Registry"),
    "Patch": (f"{_SDK}.invocation", "Patch"),
    "Memo": (f"{_SDK}.invocation", "Memo"),
    # What handlers are handed and raise: the async API client (the `client` keyword), its
    # conflict-retry helper, and the API's errors (`rc.errors.NotFound`, `rc.errors.Conflict`, ...).
    "AsyncClient": ("reconcile.client.aio", "AsyncClient"),
    "retry_on_conflict": ("reconcile.client.aio", "retry_on_conflict"),
    "errors": ("reconcile.core.errors", None),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'reconcile' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
