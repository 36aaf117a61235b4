"""Request bodies to objects without ever stalling the server: the pipeline's bounded body decoding.

The API server answers every client from one event loop, so a body that takes long to decode
would freeze everyone. Three rules keep decoding cheap and off the loop:
- limits (`core.decoding.Limits`: nesting depth and node count, YAML counted in C first) bound the
  work any body under the 3 MiB cap can cause, here and in every later walk over the object;
- small JSON bodies (nearly all traffic) are decoded inline, where orjson takes microseconds; large
  JSON bodies and every YAML body go to a pool of worker processes, so the loop keeps serving while
  they are parsed, and a deadline answers the client even if a worker is slow;
- the format is the declared one: a JSON Content-Type is parsed as JSON only (never retried as
  YAML), YAML as YAML, a body without a Content-Type by its first character, anything else is 415.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
from typing import Any

from reconcile.api import protobodies
from reconcile.core import decoding, errors

JSON_TYPES = frozenset({"application/json", "application/merge-patch+json", "application/json-patch+json",
                        "application/strategic-merge-patch+json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                        "application/apply-patch+yaml"})
PROTOBUF_TYPES = frozenset({"application/vnd.kubernetes.protobuf", "application/protobuf"})
INLINE_JSON_BYTES = 256 * 1024  # orjson plus the tree check stay under a few ms up to here
INLINE_PROTOBUF_BYTES = protobodies.INLINE_MAX_BYTES  # larger protobuf goes to the workers too
# YAML that is not JSON is capped lower than the 3 MiB of a request: libyaml needs ~50x orjson's
# time per byte, and kubectl, client-go and our client all send JSON (even for apply patches), so
# only hand-made requests send YAML, and none of them needs more than this.
MAX_YAML_BYTES = 1024 * 1024
WORKERS = 2
# A hostile body must be answered in under 2 s (issue 8), queueing for a worker included; the
# answer itself takes a moment on a loaded machine (at a 2.0 s deadline one came at 1.97 s).
DEADLINE_SECONDS = 1.75
WORKER_START_SECONDS = 60.0  # the workers' first start (a fresh interpreter each), apart from any deadline
MAX_QUEUED = 64  # large bodies being decoded or waiting; beyond, 429 (the pool is a shared resource)


def format_of(body: bytes, content_type: str) -> str:
    """'json' or 'yaml' for a body with this media type (415 for a type we do not read)."""
    if content_type in PROTOBUF_TYPES or body[:4] == b"k8s\x00":
        raise errors.UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml (protobuf is not supported by this server)")
    if content_type in JSON_TYPES or (content_type.startswith("application/") and content_type.endswith("+json")):
        return "json"
    if content_type in YAML_TYPES:
        return "yaml"
    if content_type == "":
        return "json" if body.lstrip()[:1] in (b"{", b"[") else "yaml"
    raise errors.UnsupportedMediaType(
        f'the body of the request was in an unknown format ("{content_type}") - accepted media types include: '
        "application/json, application/yaml, application/merge-patch+json, application/json-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml")


def looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def decode_now(body: bytes, fmt: str, *, strict: bool, limits: decoding.Limits = decoding.DEFAULT_LIMITS) -> Any:
    """Decode in this process (what a worker runs); raises `core.decoding.DecodeError`."""
    if fmt == "json":
        return decoding.load_json(body, limits=limits, reject_duplicates=strict)
    if looks_like_json(body):
        # JSON is YAML: orjson reads it in a fraction of libyaml's time (a flow list of a million
        # scalars is refused in milliseconds); real YAML flow style falls through to libyaml.
        try:
            return decoding.load_json(body, limits=limits, reject_duplicates=strict)
        except decoding.TooLarge:
            raise
        except decoding.DecodeError:
            pass
    if len(body) > MAX_YAML_BYTES:
        raise decoding.TooLarge(f"a YAML body may be at most {MAX_YAML_BYTES} bytes; send larger objects as JSON")
    return decoding.load_yaml(body, limits=limits, reject_duplicates=strict)


class BodyDecoder:
    """Decodes request bodies; owns the worker processes (started on the first large body)."""

    def __init__(self, *, workers: int = WORKERS, deadline: float = DEADLINE_SECONDS,
                 limits: decoding.Limits = decoding.DEFAULT_LIMITS) -> None:
        self.workers = workers
        self.deadline = deadline
        self.limits = limits
        # Invariant: when set, every worker of the pool has started (spawned, imported, answered once)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._starting: asyncio.Lock | None = None
        self._queued = 0

    async def decode(self, body: bytes, content_type: str, *, what: str = "object", strict: bool = False) -> Any:
        """The body as Python data; 400 (malformed, over a limit, too slow), 415 (format), 429 (pool full)."""
        if not body.strip():
            raise errors.BadRequest(f"the body of the request was empty; expected a {what}")
        fmt = format_of(body, content_type)
        if fmt == "yaml" and len(body) > MAX_YAML_BYTES and not looks_like_json(body):
            raise errors.RequestEntityTooLarge(f"Request entity too large: a YAML body may be at most "
                                               f"{MAX_YAML_BYTES} bytes; send larger objects as JSON")
        if fmt == "json" and len(body) <= INLINE_JSON_BYTES:
            value, refusal = decoded_or_refusal(body, fmt, strict, self.limits)
        else:
            value, refusal = await self._run(decoded_or_refusal, body, fmt, strict, self.limits)
        if refusal is not None:
            too_large, problem = refusal
            if too_large:
                raise errors.RequestEntityTooLarge(f"Request entity too large: {problem}")
            prefix = "error decoding " + ("patch" if what == "patch" else "the request body")
            raise errors.BadRequest(f"{prefix}: {problem}")
        if value is None:
            raise errors.BadRequest(f"the body of the request was empty; expected a {what}")
        return value

    async def decode_protobuf(self, body: bytes, api_version: str, kind: str) -> dict[str, Any]:
        """A protobuf body posted to the endpoint of this kind (which `protobodies` has a table for),
        as its JSON shape; 400 if malformed. Large ones are read by the workers, as large JSON is."""
        if len(body) <= INLINE_PROTOBUF_BYTES:
            return _read_protobuf(body, api_version, kind)
        found, problem = await self._run(_protobuf_in_worker, body, api_version, kind)
        if problem is not None:
            raise errors.BadRequest(problem)
        return found

    async def _run(self, work: Any, *args: Any) -> Any:
        """`work(*args)` in a worker: its value, or 400 past the deadline, 503 if a worker died.

        `work` answers a refusal as a value, never as an exception: an exception kept in a future
        sits in a reference cycle with the frames awaiting it (the body among their locals), which
        this server's rare full collections (see `server.serve`) free only much later: 20 refused
        2.7 MB bodies left ~50 MB behind each time."""
        if self._queued >= MAX_QUEUED:
            raise errors.TooManyRequests("too many large request bodies are being decoded; try again later",
                                         details={"retryAfterSeconds": 1})
        self._queued += 1
        try:
            pool = await self._started_pool()
            future = asyncio.get_running_loop().run_in_executor(pool, work, *args)
            done, _ = await asyncio.wait((future,), timeout=self.deadline)
        finally:
            self._queued -= 1
        if not done:
            future.cancel()
            raise errors.BadRequest(f"error decoding the request body: it took longer than {self.deadline:g}s "
                                    "(too large or too complex)")
        if isinstance(future.exception(), concurrent.futures.process.BrokenProcessPool):
            self._pool = None  # a worker died (killed, out of memory): the next body gets a new pool
            raise errors.ServiceUnavailable("the request body decoder restarted; try again")
        return future.result()

    async def _started_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        """The pool, its workers started first: a body's deadline is the time to decode it (and to
        wait for a free worker), never the interpreters' start, which on a busy machine alone took
        longer than the deadline and refused the first large body of a healthy client."""
        if self._pool is not None:
            return self._pool
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                # spawn: workers are fresh interpreters (never forks of this threaded, event-looped one)
                # and children of this process, so they can be tied to its life (see `_worker_start`).
                context = multiprocessing.get_context("spawn")
                pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context,
                                                              initializer=_worker_start, initargs=(os.getpid(),))
                loop = asyncio.get_running_loop()
                try:
                    await asyncio.wait_for(asyncio.gather(*(loop.run_in_executor(pool, _started)
                                                            for _ in range(self.workers))), WORKER_START_SECONDS)
                except (TimeoutError, concurrent.futures.process.BrokenProcessPool):
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise errors.ServiceUnavailable("the request body decoder is starting; try again",
                                                    details={"retryAfterSeconds": 1}) from None
                self._pool = pool
        return self._pool

    async def close(self) -> None:
        """Stop the workers and wait for them (off the loop): none may outlive the server."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _worker_start(server_pid: int) -> None:
    """Workers yield the CPU to the server (a flood of big bodies slows itself, not the API) and die
    with it, however it ends: a killed server leaves no decoder behind."""
    os.nice(10)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: Linux kills us when the server exits
    if os.getppid() != server_pid:  # it already ended before the line above took effect
        os._exit(0)
    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True, name="decoder-watchdog").start()


def _exit_with(server_pid: int) -> None:
    """Where PR_SET_PDEATHSIG is missing: look every second whether the server still runs."""
    while True:
        threading.Event().wait(1.0)
        if os.getppid() != server_pid:
            os._exit(0)


def _started() -> bool:
    """A no-op a worker answers once it runs (the pool's start is waited for apart from any body)."""
    return True


def decoded_or_refusal(body: bytes, fmt: str, strict: bool,
                       limits: decoding.Limits) -> tuple[Any, tuple[bool, str] | None]:
    """(value, None), or (None, (whether it is over a limit, why)) for a body `decode_now` refuses."""
    try:
        return decode_now(body, fmt, strict=strict, limits=limits), None
    except decoding.TooLarge as exc:
        return None, (True, str(exc))
    except decoding.DecodeError as exc:
        return None, (False, str(exc))


def _read_protobuf(body: bytes, api_version: str, kind: str) -> dict[str, Any]:
    read = protobodies.decoder_for(api_version, kind)
    assert read is not None, (api_version, kind)
    return read(body)


def _protobuf_in_worker(body: bytes, api_version: str, kind: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) or (None, the 400's message): an ApiError is not sent back across processes."""
    try:
        return _read_protobuf(body, api_version, kind), None
    except errors.BadRequest as exc:
        return None, exc.message
