"""Upstream's AtomicWriter (pkg/volume/util/atomic_writer.go): a volume directory whose files change
all at once, so a container never reads half a file nor a mix of old and new files.

Layout of a directory it owns:

    ..2026_12_02_03_30_00.1234567/   this version's files (0755 directory, each file its own mode)
    ..data -> ..2026_12_02_...       the current version: one symlink, swapped with rename(2)
    token -> ..data/token            each visible top-level name, a relative symlink through ..data

A write puts the new version in a fresh timestamped directory, points `..data_tmp` at it and
renames that over `..data` (atomic), makes the visible links for new names, removes the names that
went and then the old version. Nothing is written when the content is unchanged. Paths are checked
as upstream's: relative, no `..` element, no element starting with `..`, at most 4096 characters
and 255 per element. The directory itself is kept (containers bind-mount it: its inode must stay).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath

DATA = "..data"
DATA_TMP = "..data_tmp"
MAX_PATH = 4096
MAX_ELEMENT = 255

Files = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


class PathError(ValueError):
    """A path a volume item may not have."""


def check_path(relative: str) -> PurePosixPath:
    """Upstream's validatePath."""
    if not relative:
        raise PathError("invalid path: must not be empty")
    if len(relative) > MAX_PATH:
        raise PathError(f"invalid path {relative[:64]!r}...: must be less than or equal to {MAX_PATH} characters")
    path = PurePosixPath(relative)
    if path.is_absolute():
        raise PathError(f"invalid path {relative!r}: must be relative path")
    for element in path.parts:
        if len(element) > MAX_ELEMENT:
            raise PathError(f"invalid path {relative!r}: element is longer than {MAX_ELEMENT} characters")
        if element == "..":
            raise PathError(f"invalid path {relative!r}: must not contain '..'")
    if path.parts[0].startswith(".."):
        raise PathError(f"invalid path {relative!r}: must not start with '..'")
    return path


def _current(target: Path) -> Path | None:
    link = target / DATA
    if not link.is_symlink():
        return None
    found = target / os.readlink(link)
    return found if found.is_dir() else None


def _same(version: Path, files: Files) -> bool:
    """The version directory holds exactly `files` (content and mode)."""
    present = {p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file()}
    if present != set(files):
        return False
    for relative, (content, mode) in files.items():
        path = version / relative
        if (path.stat().st_mode & 0o7777) != mode or path.read_bytes() != content:
            return False
    return True


def write(target: Path, files: Files) -> bool:
    """Make `target` show exactly `files`; True when something was written."""
    checked = {relative: check_path(relative) for relative in files}
    target.mkdir(parents=True, exist_ok=True)
    old = _current(target)
    visible = {path.parts[0] for path in checked.values()}
    links_ok = all((target / name).is_symlink() for name in visible)
    if old is not None and links_ok and _same(old, files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    version = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    version.chmod(0o755)
    for relative, (content, mode) in files.items():
        path = version.joinpath(*checked[relative].parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(version).parents:
            if str(parent) != ".":
                (version / parent).chmod(0o755)
        path.write_bytes(content)
        os.chmod(path, mode)
    staging = target / DATA_TMP
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    os.symlink(version.name, staging)
    os.rename(staging, target / DATA)  # the switch: readers see the old version or the new, whole
    for name in visible:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                _remove(link)
            os.symlink(f"{DATA}/{name}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in visible:
            _remove(entry)
    if old is not None and old != version:
        shutil.rmtree(old, ignore_errors=True)
    for entry in target.iterdir():  # versions left by a writer that died midway
        if entry.name.startswith("..") and entry.is_dir() and not entry.is_symlink() and entry != version:
            shutil.rmtree(entry, ignore_errors=True)
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
