"""Key and certificate files: private to the user, written atomically.

Keys are 0600 and every directory of the PKI 0700, set on each run (not only at creation), so a
copy made with a careless umask or `cp -r` is closed again by the next `reconcile up`. Writes go
to a temporary file in the same directory that is renamed over the old one, so a reader (a
component starting, a concurrent `up`) sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644  # public material; still inside a 0700 directory


def ensure_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)


def read(path: Path) -> bytes | None:
    """The file's bytes, or None when it is missing or unreadable (then it is issued again)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def write(path: Path, data: bytes, *, mode: int) -> None:
    """Atomically replace `path` with `data`; the file never exists with a wider mode than `mode`."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def restrict(path: Path, mode: int) -> None:
    """Set `mode` on an existing file (a no-op when it is missing)."""
    try:
        path.chmod(mode)
    except FileNotFoundError:
        pass
