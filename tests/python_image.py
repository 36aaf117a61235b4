"""A container image with this host's Python and the packages a program needs, made from the host's
own files: there is no registry to pull a Python image from, and busybox (the other test images)
has no Python.

The image is one layer, imported (`docker import`) from a tar written here, which is faster than a
`docker build` of the same files (no context upload, no COPY step):
- the interpreter at its host path (so it finds its standard library and libpython as on the
  host), the standard library without what no program in a test needs (tests, tkinter, idle ...);
- every shared library the interpreter and the copied extension modules link (`ldd`), at its path;
- the top-level packages (and their dist-info) of every module that importing `modules` loads on
  the host and of the distributions those require, copied whole, so their lazy imports are there
  too, under /opt/python (PYTHONPATH);
  `reconcile` comes from the working tree the tests run from; the host's byte code comes along
  (compiling it all at every start would cost seconds);
- busybox, for `sh` and friends.

Its tag is `reconcile-python:<hash>` of the files' names, sizes and mtimes, so a session imports
it once per daemon and a changed package makes a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconcile.node import images
from tests import docker_support

SITE = "/opt/python"  # the packages' directory in the image
# what no program in a test imports: the host's own packages, the standard library's tests, GUI, installers
STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "distutils",
               "pydoc_data"}
HOST_ONLY = ("_distutils_hack", "__editable__")  # what the host's .pth files load: no program's import
BUSYBOX_APPLETS = ("sh", "cat", "ls", "env", "sleep", "wget", "test", "echo", "mkdir", "rm")

# Run on the host by the interpreter the tests use: the files of the modules that importing the
# given modules loads and of the distributions they require, and the module search path.
_PROBE = """
import importlib, importlib.metadata as md, json, os, sys
from packaging.requirements import Requirement
for name in sys.argv[1:]:
    importlib.import_module(name)
files = {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""}
# the distributions of what was imported, and what they require (imported lazily, later)
owners = md.packages_distributions()
todo = [d for m in list(sys.modules) if "." not in m for d in owners.get(m, [])]
seen, skip = set(), set(os.environ.get("PROBE_SKIP_REQUIRES", "").split(","))
while todo:
    name = todo.pop()
    key = name.lower().replace("_", "-")
    if key in seen:
        continue
    seen.add(key)
    if key in ("setuptools", "pip"):  # installers, loaded on the host by a .pth file only
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    files.update(str(f.locate()) for f in dist.files or [] if str(f).endswith((".py", ".so")))
    if key in skip:
        continue
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
print(json.dumps({"files": sorted(files), "path": sys.path}))
"""


@dataclass
class Layout:
    """Every file of the image: arcname (absolute path in the image) -> host path; symlinks apart."""

    files: dict[str, Path] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # arcname -> link target

    def add_tree(self, host: Path, arc: str) -> None:
        if host.is_file():
            self.files[arc] = host
            return
        for root, _dirs, names in os.walk(host):
            for name in names:
                # the host's byte code (valid: the tar keeps the sources' mtimes), not the -O variants
                if name.endswith(".pyc") and ".opt-" in name or name.startswith("_tkinter"):
                    continue
                path = Path(root) / name
                self.files[f"{arc}/{path.relative_to(host)}"] = path

    def digest(self) -> str:
        h = hashlib.sha256()
        for arc, path in sorted(self.files.items()):
            st = path.stat()
            h.update(f"{arc}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        for arc, target in sorted(self.links.items()):
            h.update(f"{arc}\0->{target}\n".encode())
        return h.hexdigest()[:16]


def _site_dirs(path: list[str]) -> list[Path]:
    """The host's package directories (site-packages, and the tree `reconcile` comes from)."""
    std = {Path(sysconfig.get_paths()["stdlib"]).resolve(), Path(sysconfig.get_paths()["platstdlib"]).resolve()}
    dirs = []
    for entry in path:
        p = Path(entry or os.getcwd()).resolve()
        if p.is_dir() and p not in std and not str(p).startswith(str(Path(sys.base_prefix).resolve() / "lib") + "/python"):
            dirs.append(p)
    return dirs


def _top_level(file: Path, sites: list[Path]) -> tuple[Path, Path] | None:
    """(site dir, top-level package dir or module file) holding `file`, or None if it is stdlib."""
    resolved = file.resolve()
    # the deepest first: a checkout on the path may hold the venv's site-packages (.venv/lib/...),
    # and a package there belongs to site-packages, not to a top-level `.venv` of the checkout
    for site in sorted(sites, key=lambda path: len(path.parts), reverse=True):
        try:
            rel = resolved.relative_to(site)
        except ValueError:
            continue
        return site, site / rel.parts[0]
    return None


def _dist_infos(site: Path, top: Path) -> list[Path]:
    """The dist-info folders in `site` that own `top` (by their RECORD), for importlib.metadata."""
    found = []
    name = top.name.split(".")[0]
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        if record.is_file() and re.search(rf"^{re.escape(name)}[/.]", record.read_text(errors="replace"), re.M):
            found.append(info)
    return found


def _libraries(binaries: list[Path]) -> set[Path]:
    """Every shared library `binaries` link, as `ldd` resolves them (the loader included)."""
    found: set[Path] = set()
    for chunk in range(0, len(binaries), 200):
        done = subprocess.run(["ldd", *map(str, binaries[chunk:chunk + 200])], capture_output=True, text=True)
        for line in done.stdout.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                found.add(Path(match.group(1)))
    return found


def layout(modules: tuple[str, ...], *, python: str = sys.executable, cwd: Path | None = None,
           skip_requires: tuple[str, ...] = ("reconcile",)) -> Layout:
    """What the image holds for a program that imports `modules`. The requirements of the
    distributions imported come too (their lazy imports), except those of `skip_requires` (ours
    requires every component's libraries; what the program imports of them is found by importing)."""
    env = dict(os.environ, PROBE_SKIP_REQUIRES=",".join(skip_requires))
    probe = subprocess.run([python, "-c", _PROBE, *modules], capture_output=True, text=True, cwd=cwd, check=True,
                           env=env)
    report = json.loads(probe.stdout)
    out = Layout()
    interpreter = Path(os.path.realpath(python))
    out.files[str(interpreter)] = interpreter
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    for entry in sorted(stdlib.iterdir()):  # whole: its modules import each other lazily (queue, ...)
        if entry.name not in STDLIB_SKIP and not entry.name.startswith("config-"):
            out.add_tree(entry, f"{stdlib}/{entry.name}")
    sites = _site_dirs(report["path"])
    tops: dict[Path, Path] = {}
    for name in report["files"]:
        found = _top_level(Path(name), sites)
        if found is not None and not found[1].name.startswith(HOST_ONLY):
            tops[found[1]] = found[0]
    for top, site in sorted(tops.items()):
        out.add_tree(top, f"{SITE}/{top.name}")
        for info in _dist_infos(site, top):
            out.add_tree(info, f"{SITE}/{info.name}")
    binaries = [interpreter, *(p for p in out.files.values() if p.suffix == ".so" or ".so." in p.name)]
    for lib in sorted(_libraries(binaries)):
        real = Path(os.path.realpath(lib))
        out.files[str(real)] = real
        if str(lib) != str(real):
            out.links[str(lib)] = str(real)
    busybox = images.busybox_binary()
    out.files["/bin/busybox"] = busybox
    for applet in BUSYBOX_APPLETS:
        out.links[f"/bin/{applet}"] = "/bin/busybox"
    out.links["/usr/local/bin/python3"] = str(interpreter)
    out.links["/usr/local/bin/python"] = str(interpreter)
    return out


def write_tar(plan: Layout, target: io.BufferedIOBase) -> None:
    """The image's root file system as one tar stream (directories made as they are needed)."""
    made: set[str] = set()
    with tarfile.open(fileobj=target, mode="w|") as tar:
        def parents(arc: str) -> None:
            parts = arc.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
        for d in ("tmp",):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
            made.add(d)
        for arc, path in sorted(plan.files.items()):
            parents(arc)
            info = tar.gettarinfo(str(path), arcname=arc.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
        for arc, target_path in sorted(plan.links.items()):
            parents(arc)
            info = tarfile.TarInfo(arc.lstrip("/"))
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target_path, 0o777
            tar.addfile(info)


def ensure(daemon: docker_support.DockerDaemon, modules: tuple[str, ...], *, cwd: Path | None = None) -> str:
    """The image's tag on `daemon`, imported now unless it is there already."""
    plan = layout(modules, cwd=cwd)
    tag = f"reconcile-python:{plan.digest()}"
    if daemon.docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    with tempfile.TemporaryFile() as tar:
        write_tar(plan, tar)
        tar.seek(0)
        env = dict(os.environ, DOCKER_HOST=daemon.host)
        env.pop("DOCKER_CONTEXT", None)
        changes = ["ENV PATH=/usr/local/bin:/bin", f"ENV PYTHONPATH={SITE}", "ENV HOME=/tmp",
                   "ENV PYTHONUNBUFFERED=1"]
        args = ["docker", "import", *(x for c in changes for x in ("--change", c)), "-", tag]
        subprocess.run(args, stdin=tar, capture_output=True, check=True, env=env, timeout=300)
    return tag
