"""The audit log backend: JSON lines written by a thread of their own, rotated by size.

Why a thread and a bounded queue: a request must never wait on the disk. `submit` only appends a
ready line to a batch; the batch goes to the writer thread at most every `FLUSH_SECONDS` (or
when it is large), through a `queue.Queue`, and the thread writes it in one go and flushes. Handing
over batches rather than lines matters: waking the thread for every event would make it contend
for the GIL with the event loop on every request. At most `queue_size` events wait for the
writer; beyond that they are dropped and counted, as upstream's batch backend does with a full
buffer, and a warning is logged (at most every few seconds, with the count so far).

Rotation follows upstream's (lumberjack's): once the file would pass `max_size_mb`, it is renamed
to `<name>-<UTC time>.<ext>` and a new one begun; `max_backups` old files are kept (0 keeps all).
Files are created 0600: audit events name users and objects, and at the Request levels carry bodies.
`-` writes to standard output instead (no rotation).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("reconcile.api.audit")

DROP_WARNING_SECONDS = 10.0
FLUSH_SECONDS = 0.02  # how long an event may wait on the loop side before the writer is handed its batch
FLUSH_EVENTS = 1000  # a batch this large goes at once


class LogBackend:
    """Queue in, file out. `written`, `dropped` and `errors` count events (read from any thread)."""

    def __init__(self, path: str, *, max_size_mb: int = 0, max_backups: int = 0, queue_size: int = 10_000) -> None:
        self.path = path
        self.max_bytes = max_size_mb * 1024 * 1024
        self.max_backups = max_backups
        self.queue_size = max(1, queue_size)
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue()
        self._pending: list[bytes] = []  # lines not yet handed to the writer (event loop side)
        self._flush_scheduled = False
        self._queued = 0  # events handed over and not yet written; guarded by `_lock`
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._file: BinaryIO | None = None
        self._size = 0
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self._warned_at = 0.0

    def start(self) -> None:
        """Open the file (here, so a path that cannot be written stops the server at start) and begin writing."""
        if self._thread is not None:
            return
        self._open()
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def check_writable(self) -> None:
        """Raise OSError now if the log cannot be opened, so a wrong path stops the server at start."""
        if self.path != "-":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))

    def submit(self, line: bytes) -> None:
        """Queue one event line (ending in a newline); never blocks. Called on the event loop (or, with
        no running loop, from anywhere: then the line is handed over at once)."""
        self._pending.append(line)
        if len(self._pending) >= FLUSH_EVENTS:
            self.flush()
            return
        if not self._flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_scheduled = True
            loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Hand the pending lines to the writer, dropping (and counting) what the buffer cannot take."""
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        with self._lock:
            room = self.queue_size - self._queued
            if room < len(batch):
                self._drop(len(batch) - max(room, 0))
                batch = batch[:max(room, 0)]
            self._queued += len(batch)
        if batch:
            self._queue.put_nowait(batch)

    def _drop(self, count: int) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._warned_at > DROP_WARNING_SECONDS:
            self._warned_at = now
            log.warning("audit log %s cannot keep up: %d event(s) dropped so far", self.path, self.dropped)

    def close(self, *, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread and close the file."""
        self.flush()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put_nowait(None)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("audit log %s: closed with events still queued", self.path)
        if self._file is not None and self._file is not sys.stdout.buffer:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    # --- the writer thread ---

    def _run(self) -> None:
        while True:
            batches = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batches) < 100:
                    batches.append(self._queue.get_nowait())
            lines = [line for batch in batches if batch is not None for line in batch]
            if lines:
                self._write(b"".join(lines), len(lines))
                with self._lock:
                    self._queued -= len(lines)
            if None in batches:
                return

    def _write(self, data: bytes, count: int) -> None:
        try:
            if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            self._size += len(data)
            self.written += count
        except (OSError, ValueError) as exc:
            self.errors += count
            log.error("audit log %s: %d event(s) not written: %s", self.path, count, exc)

    def _open(self) -> None:
        if self.path == "-":
            self._file = sys.stdout.buffer
            return
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        if self.path == "-":
            return
        assert self._file is not None
        self._file.close()
        target = Path(self.path)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        backup = target.with_name(f"{target.stem}-{stamp}{target.suffix}")
        serial = 1
        while backup.exists():
            backup = target.with_name(f"{target.stem}-{stamp}-{serial}{target.suffix}")
            serial += 1
        target.rename(backup)
        self._open()
        if self.max_backups:
            for old in self.backups()[:-self.max_backups]:
                with contextlib.suppress(OSError):
                    old.unlink()

    def backups(self) -> list[Path]:
        """The rotated files, oldest first (their names sort by time)."""
        target = Path(self.path)
        return sorted(p for p in target.parent.glob(f"{target.stem}-*{target.suffix}") if p != target)
