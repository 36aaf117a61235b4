"""The body decoder's worker pool: its start is not a body's deadline."""

from __future__ import annotations

import asyncio
import time

import orjson

from reconcile.api import decoding


def test_the_first_large_body_is_not_charged_for_the_workers_start() -> None:
    """A fresh interpreter per worker takes longer to start than this deadline (and on a busy
    machine longer than the real 2 s one); the first body that needs a worker still decodes."""
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                         "data": {f"k{i}": "v" * 100 for i in range(3000)}})
    assert len(body) > decoding.INLINE_JSON_BYTES  # so it goes to a worker

    async def first_decode() -> tuple[object, float]:
        decoder = decoding.BodyDecoder(workers=1, deadline=0.1)
        started = time.monotonic()
        try:
            value = await decoder.decode(body, "application/json")
            return value, time.monotonic() - started
        finally:
            await decoder.close()

    value, took = asyncio.run(first_decode())
    assert value["metadata"]["name"] == "big" and len(value["data"]) == 3000
    assert took > 0.1, f"the worker's start alone took longer than the deadline (else this proves nothing): {took:.2f}s"
