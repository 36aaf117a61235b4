"""The audit log backend: JSON lines written by a thread of their own, rotated by size.

Why a thread and a bounded queue: a request must never wait on the disk. `submit` only puts a
ready line into a `queue.Queue` (it never blocks); the writer thread takes whatever is queued,
writes it in one go and flushes. When the queue is full the event is dropped and counted, as
upstream's batch backend does with a full buffer, and a warning is logged (at most every few
seconds, with the count so far).

Rotation follows upstream's (lumberjack's): once the file would pass `max_size_mb`, it is renamed
to `<name>-<UTC time>.<ext>` and a new one begun; `max_backups` old files are kept (0 keeps all).
Files are created 0600: audit events name users and objects, and at the Request levels carry bodies.
`-` writes to standard output instead (no rotation).
"""

from __future__ import annotations

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


class LogBackend:
    """Queue in, file out. `written`, `dropped` and `errors` count events (read from any thread)."""

    def __init__(self, path: str, *, max_size_mb: int = 0, max_backups: int = 0, queue_size: int = 10_000) -> None:
        self.path = path
        self.max_bytes = max_size_mb * 1024 * 1024
        self.max_backups = max_backups
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max(1, queue_size))
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
        """Queue one event line (ending in a newline); never blocks."""
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at > DROP_WARNING_SECONDS:
                self._warned_at = now
                log.warning("audit log %s cannot keep up: %d event(s) dropped so far", self.path, self.dropped)

    def close(self, *, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread and close the file."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("audit log %s: closed with events still queued", self.path)
        thread.join(timeout)
        if self._file is not None and self._file is not sys.stdout.buffer:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    # --- the writer thread ---

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
            stop = None in batch
            lines = [line for line in batch if line is not None]
            if lines:
                self._write(b"".join(lines), len(lines))
            if stop:
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
