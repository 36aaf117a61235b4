"""A kopf operator as its users write one, on kopf's public API only; tests/compat/test_kopf.py runs
it unmodified with `python -m kopf run` against the secured API server and checks through the API
what each handler did.

Gadgets (compat.example.com/v1, with a status subresource):
- create: an Event, and the returned value, which kopf stores in status.created;
- update: status.updated names the old and new spec.message (patch.status);
- a change of spec.size: status.size holds the old and the new size (a field handler);
- a timer: status.ticks counts up every half second;
- a daemon: an Event when it starts, and it stops when the Gadget is deleted;
- resume (a Gadget kopf finds when it starts, handled before): status.resumed;
- delete: an Event, after which kopf removes its finalizer and the Gadget goes away.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "compat.example.com", "v1", "gadgets"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf's settings, two of them from the environment (the test chooses)."""
    settings.posting.level = logging.INFO  # kopf's own handler events, beside the ones posted below
    # each watch ends after this long and is resumed from the last resourceVersion seen
    settings.watching.server_timeout = int(os.environ.get("GADGETS_WATCH_SECONDS", "30"))
    # the first list as a watch (sendInitialEvents=true, resourceVersionMatch=NotOlderThan) rather than a GET
    settings.watching.initial_streaming = os.environ.get("GADGETS_INITIAL_STREAMING") == "1"
    settings.watching.chunk_size = 1  # lists come in pages of one: limit and continue
    settings.watching.connect_timeout = 10
    settings.peering.priority = 10


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="GadgetCreated", message=f"made for {spec.get('message')}")
    return {"message": spec.get("message")}


@kopf.on.update(GROUP, VERSION, PLURAL)
def updated(old: kopf.BodyEssence, new: kopf.BodyEssence, patch: kopf.Patch, **_: Any) -> None:
    patch.status["updated"] = {"from": old.get("spec", {}).get("message"),
                               "to": new.get("spec", {}).get("message")}


@kopf.on.field(GROUP, VERSION, PLURAL, field="spec.size")
def resized(old: Any, new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["size"] = {"old": old, "new": new}


@kopf.on.resume(GROUP, VERSION, PLURAL)
def resumed(patch: kopf.Patch, **_: Any) -> None:
    patch.status["resumed"] = True


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(body: kopf.Body, **_: Any) -> None:
    kopf.info(body, reason="GadgetDeleted", message="cleaned up")


@kopf.timer(GROUP, VERSION, PLURAL, interval=0.5)
def tick(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    patch.status["ticks"] = int(status.get("ticks", 0)) + 1


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10)
async def watchman(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    kopf.info(body, reason="DaemonStarted", message="watching")
    await stopped.wait()
