"""A refused body is freed when its request ends, not at the next full garbage collection.

Found by bench/api.py: every round of 20 hostile 2.7 MB bodies left ~50 MB more in the API server
(88 -> 209 -> 291 -> 376 -> 478 MB), because the exception that refused a body sat in a reference
cycle with the frames that held it (the worker's exception was kept by the future that `wait_for`
awaited, and its traceback holds that frame and the decoder's frames with the body). The server runs
full collections rarely (`gc.set_threshold(50_000, 20, 100)`), so the cycles, and the bodies,
stayed. Each case here decodes a body the decoder refuses and asserts that no garbage cycle holds it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from reconcile.api import decoding
from reconcile.core import errors


def garbage_after(run: Callable[[], Coroutine[Any, Any, None]]) -> list[object]:
    """Run the coroutine with the collector off, then return what a collection finds unreachable."""
    gc.collect()
    gc.disable()
    try:
        asyncio.run(run())
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def holders_of(body: bytes, garbage: list[object]) -> list[str]:
    return [type(o).__name__ for o in garbage if any(r is body for r in gc.get_referents(o))]


# (body, Content-Type, the error class): inline JSON, worker JSON, worker YAML (the deadline: below).
REFUSED = {
    "inline malformed JSON": (b'{"a": ' + b'"x",' * 1000, "application/json", errors.BadRequest),
    "large JSON over the node limit": (b"[" + b"0," * 1_400_000 + b"0]", "application/json",
                                       errors.RequestEntityTooLarge),
    "JSON-looking YAML over the node limit": (b"[" + b"0," * 1_400_000 + b"0]", "application/yaml",
                                              errors.RequestEntityTooLarge),
    "YAML over the node limit": (b"- 0\n" * 200_000, "application/yaml", errors.RequestEntityTooLarge),
    "malformed YAML": (b"a: [1, 2\n" + b"b: c\n" * 1000, "application/yaml", errors.BadRequest),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_body_is_in_no_garbage_cycle(case: str) -> None:
    body, content_type, refusal = REFUSED[case]

    async def refuse() -> None:
        decoder = decoding.BodyDecoder(workers=1)
        try:
            with pytest.raises(refusal):
                await decoder.decode(body, content_type)
        finally:
            await decoder.close()

    # What the test itself holds is not garbage; the body must be held by nothing that is.
    assert holders_of(body, garbage_after(refuse)) == [], f"{case}: cyclic garbage holds the refused body"


def test_a_body_past_the_deadline_is_in_no_garbage_cycle() -> None:
    body = b"- 0\n" * 200_000  # counted, then refused by libyaml's node limit: longer than 1 ms

    async def too_slow() -> None:
        decoder = decoding.BodyDecoder(workers=1, deadline=0.001)
        try:
            await decoder.decode(b"a: b\n", "application/yaml")  # the workers' start is not the deadline
            with pytest.raises(errors.BadRequest, match="took longer than"):
                await decoder.decode(body, "application/yaml")
        finally:
            await decoder.close()

    assert holders_of(body, garbage_after(too_slow)) == [], "cyclic garbage holds the body that ran past its deadline"
