"""The operator plugin of the SDK benchmark (bench/controllers.py): two create handlers on `Thing`.

Objects labelled `bench.reconcile.dev/mode=noop` get a handler that does nothing (the SDK's own
bookkeeping is the whole cost); `mode=patch` objects get one that adds an annotation through the
handler's merge patch. Each object thus runs exactly one handler.

Run: python -m reconcile operator run bench/sdk_plugin.py -A --standalone --server URL
"""

from __future__ import annotations

from typing import Any

import reconcile as rc

GROUP, VERSION, PLURAL = "bench.reconcile.dev", "v1", "things"
MODE = "bench.reconcile.dev/mode"
PATCHED = "bench.reconcile.dev/patched"


@rc.on.create(GROUP, VERSION, PLURAL, labels={MODE: "noop"})
def noop(**_: Any) -> None:
    """Returns nothing: measures the runtime's per-object overhead alone."""


@rc.on.create(GROUP, VERSION, PLURAL, labels={MODE: "patch"})
def mark(patch: Any, name: str, **_: Any) -> None:
    """Writes an annotation through the handler's merge patch."""
    patch.metadata.setdefault("annotations", {})[PATCHED] = name
