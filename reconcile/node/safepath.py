"""subPath without escapes: a path inside a volume, opened one component at a time and handed to
Docker as a bind mount of the opened file descriptor (upstream's PrepareSafeSubpath, in Python).

Why not resolve a string and bind it: a container of the pod can write into the volume, so any
component of `volume/a/b` may be swapped for a symlink to `/etc` between our check and Docker's
mount (TOCTOU). Instead:
1. the subPath is refused when absolute or holding `..` (before and after `subPathExpr` expansion);
2. the volume root is resolved once (an administrator's hostPath may be a symlink) and opened with
   O_PATH|O_NOFOLLOW|O_DIRECTORY;
3. each component is opened relative to its parent fd with O_PATH|O_NOFOLLOW (`openat`): a
   component that is a symlink is opened *as the link* and refused ("unexpected symlink found");
   missing directories are made with `mkdirat` relative to the parent fd, then opened the same way;
4. the final fd is bind-mounted (`mount --bind --no-canonicalize /proc/<pid>/fd/N target`) onto a
   target under the pod's directory. The kernel mounts the inode the fd holds, not a path: a swap
   after step 3 redirects nothing. Docker then binds the target, which nobody else can write.

Teardown unmounts every target under the pod's directory before anything is removed (a recursive
delete through a live bind mount would delete the volume's data).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path, PurePosixPath

MOUNT = "/bin/mount"
UMOUNT = "/bin/umount"


class SubPathError(Exception):
    """The subPath is invalid or escapes its volume; the message is for Events and logs."""


def check_relative(sub_path: str) -> list[str]:
    """The components of a subPath: relative, no `..` (upstream's API check)."""
    path = PurePosixPath(sub_path)
    if path.is_absolute():
        raise SubPathError(f"subPath {sub_path!r} must be a relative path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise SubPathError(f"subPath {sub_path!r} must not contain '..'")
    if not parts:
        raise SubPathError(f"subPath {sub_path!r} names no path inside the volume")
    return parts


def open_beneath(base: str, sub_path: str, *, create: bool = True) -> int:
    """An O_PATH fd of `base/sub_path` reached without following any symlink below `base`.
    Missing directories are created (with the volume root's mode, as upstream's SafeMakeDir)."""
    parts = check_relative(sub_path)
    root = os.path.realpath(base)
    fd = os.open(root, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY)
    try:
        root_mode = stat.S_IMODE(os.fstat(fd).st_mode)
        for index, part in enumerate(parts):
            made = False
            try:
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise SubPathError(f"subPath {sub_path!r} does not exist in the volume") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode=0o700, dir_fd=fd)  # racing creators: whoever wins, we open it below
                    made = True
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            info = os.fstat(child)
            if stat.S_ISLNK(info.st_mode):  # checked on the fd: what was opened, not what a path names now
                os.close(child)
                raise SubPathError(f"subPath {sub_path!r}: unexpected symlink found at "
                                   f"{'/'.join(parts[:index + 1])!r}")
            if made and stat.S_ISDIR(info.st_mode):
                # fchmod refuses O_PATH fds; a directory's magic link names the opened inode itself
                os.chmod(f"/proc/self/fd/{child}", root_mode)
            if index < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
                os.close(child)
                raise SubPathError(f"subPath {sub_path!r}: {'/'.join(parts[:index + 1])!r} is not a directory")
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def bind_fd(fd: int, target: Path) -> None:
    """Bind-mount what `fd` holds onto `target` (made as an empty directory or file to match)."""
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(target):
        unmount(target)
    if is_dir:
        target.mkdir(exist_ok=True)
    else:
        target.touch(exist_ok=True)
    result = subprocess.run([MOUNT, "--bind", "--no-canonicalize", f"/proc/{os.getpid()}/fd/{fd}", str(target)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise SubPathError(f"cannot bind the subPath: {result.stderr.strip()}")


def prepare(base: str, sub_path: str, target: Path) -> str:
    """`base/sub_path` mounted at `target` without escaping `base`; the path Docker should bind."""
    fd = open_beneath(base, sub_path)
    try:
        bind_fd(fd, target)
    finally:
        os.close(fd)
    return str(target)


def unmount(target: Path) -> None:
    subprocess.run([UMOUNT, "-l", str(target)], capture_output=True, timeout=30)


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below `directory` (from /proc/self/mountinfo), deepest first."""
    prefix = str(directory.resolve()) if directory.exists() else str(directory)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                point = fields[4].encode().decode("unicode_escape")
                if point == prefix or point.startswith(prefix + "/"):
                    found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all(directory: Path) -> bool:
    """Unmount everything below `directory`; True when nothing is mounted there any more."""
    for point in mounts_under(directory):
        unmount(point)
    return not mounts_under(directory)
