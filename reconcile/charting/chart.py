"""A chart read from a folder or a `.tgz` into memory: its metadata, defaults, schema, templates, files
and dependencies.

Everything is read once, up front, into a map of relative paths to bytes: rendering never touches
the filesystem, so a template cannot reach outside the chart (`files.get('../x')` finds nothing to
read). Symlinks and archive members that point outside the chart are refused at load time.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconcile.charting import versions

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_CHART_BYTES = 50 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TYPES = ("application", "library")


class ChartError(ValueError):
    """A chart that cannot be loaded; the message names the chart and the file."""


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str = ""
    repository: str = ""
    condition: str = ""
    alias: str = ""

    @property
    def key(self) -> str:
        """Where the dependency's values live in its parent's values."""
        return self.alias or self.name


@dataclass
class Chart:
    """One loaded chart; `dependencies` maps each Chart.yaml dependency to its loaded chart."""

    metadata: dict[str, Any]
    files: dict[str, bytes]  # every file by its path relative to the chart root (posix)
    values: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    dependencies: list[tuple[Dependency, Chart]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def app_version(self) -> str:
        return str(self.metadata.get("appVersion", ""))

    @property
    def type(self) -> str:
        return str(self.metadata.get("type") or "application")

    @property
    def kube_version(self) -> str:
        return str(self.metadata.get("kubeVersion") or "")

    @property
    def full_name(self) -> str:
        return f"{self.name}-{self.version}"

    def templates(self) -> dict[str, str]:
        """Template sources by their name under templates/ (what `{% import %}` uses)."""
        out = {}
        for path, data in self.files.items():
            if path.startswith("templates/") and path.endswith(".j2"):
                out[path.removeprefix("templates/")] = data.decode("utf-8")
        return out

    def crds(self) -> dict[str, str]:
        """crds/*.yaml|yml|json, never templated."""
        return {p: d.decode("utf-8") for p, d in sorted(self.files.items())
                if p.startswith("crds/") and p.rsplit(".", 1)[-1] in ("yaml", "yml", "json")}

    def other_files(self) -> dict[str, bytes]:
        """What `files` shows a template: everything but templates/, charts/ and the chart's own metadata."""
        hidden = ("Chart.yaml", "values.yaml", "values.schema.json")
        return {p: d for p, d in self.files.items()
                if not p.startswith(("templates/", "charts/")) and p not in hidden}


def load(path: str | Path) -> Chart:
    """A chart from a folder or a `.tgz`/`.tar.gz` archive (with one top folder, as `package` writes)."""
    path = Path(path)
    if path.is_dir():
        return _from_files(_read_folder(path), str(path), base=path)
    if path.is_file():
        return _from_files(_read_archive(path.read_bytes(), str(path)), str(path), base=None)
    raise ChartError(f"{path}: no such chart folder or archive")


def _read_folder(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    real_root = root.resolve()
    total = 0
    for item in sorted(root.rglob("*")):
        relative = item.relative_to(root).as_posix()
        if item.is_symlink():
            target = item.resolve()
            if not target.is_relative_to(real_root):
                raise ChartError(f"{root}: {relative} is a symlink pointing outside the chart ({target})")
        if not item.is_file() or any(part.startswith(".") for part in item.relative_to(root).parts):
            continue
        size = item.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ChartError(f"{root}: {relative} is {size} bytes, more than the limit of {MAX_FILE_BYTES}")
        total += size
        if total > MAX_CHART_BYTES:
            raise ChartError(f"{root}: the chart is larger than the limit of {MAX_CHART_BYTES} bytes")
        files[relative] = item.read_bytes()
    return files


def _read_archive(data: bytes, where: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = archive.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            if len(tops) != 1:
                raise ChartError(f"{where}: an archive must hold exactly one chart folder, found {sorted(tops)}")
            for member in members:
                name = posixpath.normpath(member.name)
                if name.startswith(("/", "..")) or "/../" in f"/{name}/":
                    raise ChartError(f"{where}: member {member.name!r} points outside the chart")
                if member.issym() or member.islnk():
                    raise ChartError(f"{where}: member {member.name!r} is a link (archives may hold files only)")
                if not member.isfile():
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise ChartError(f"{where}: {member.name} is larger than the limit of {MAX_FILE_BYTES} bytes")
                total += member.size
                if total > MAX_CHART_BYTES:
                    raise ChartError(f"{where}: the chart is larger than the limit of {MAX_CHART_BYTES} bytes")
                extracted = archive.extractfile(member)
                assert extracted is not None
                relative = name.split("/", 1)[1] if "/" in name else ""
                if relative:
                    files[relative] = extracted.read()
    except tarfile.TarError as exc:
        raise ChartError(f"{where}: not a chart archive: {exc}") from None
    return files


def _yaml(files: dict[str, bytes], name: str, where: str) -> Any:
    try:
        return yaml.safe_load(files[name].decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ChartError(f"{where}/{name}: {exc}") from None


def _from_files(files: dict[str, bytes], where: str, *, base: Path | None) -> Chart:
    if "Chart.yaml" not in files:
        raise ChartError(f"{where}: Chart.yaml file is missing")
    metadata = _yaml(files, "Chart.yaml", where)
    if not isinstance(metadata, dict):
        raise ChartError(f"{where}/Chart.yaml: must be a mapping")
    _validate_metadata(metadata, where)
    values = _yaml(files, "values.yaml", where) if "values.yaml" in files else {}
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ChartError(f"{where}/values.yaml: must be a mapping")
    schema = None
    if "values.schema.json" in files:
        try:
            schema = json.loads(files["values.schema.json"])
        except ValueError as exc:
            raise ChartError(f"{where}/values.schema.json: {exc}") from None
    chart = Chart(metadata=metadata, files=files, values=values, schema=schema)
    chart.dependencies = _dependencies(chart, where, base)
    return chart


def _validate_metadata(metadata: dict[str, Any], where: str) -> None:
    def bad(message: str) -> ChartError:
        return ChartError(f"{where}/Chart.yaml: {message}")

    if metadata.get("apiVersion") != "v2":
        raise bad('apiVersion: must be "v2"')
    name = metadata.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 53:
        raise bad(f"name: {name!r} must be a lowercase DNS-1123 label of at most 53 characters")
    version = metadata.get("version")
    if version is None or not versions.is_valid(str(version)):
        raise bad(f"version: {version!r} is not a SemVer 2 version")
    if metadata.get("type", "application") not in TYPES:
        raise bad(f"type: {metadata.get('type')!r} must be one of {', '.join(TYPES)}")
    if metadata.get("kubeVersion"):
        try:
            versions.check_constraint(str(metadata["kubeVersion"]))
        except versions.VersionError as exc:
            raise bad(f"kubeVersion: {exc}") from None
    deps = metadata.get("dependencies") or []
    if not isinstance(deps, list):
        raise bad("dependencies: must be a list")
    for i, dep in enumerate(deps):
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            raise bad(f"dependencies[{i}].name: required")
        if dep.get("version"):
            try:
                versions.check_constraint(str(dep["version"]))
            except versions.VersionError as exc:
                raise bad(f"dependencies[{i}].version: {exc}") from None


def _dependencies(chart: Chart, where: str, base: Path | None) -> list[tuple[Dependency, Chart]]:
    """Each declared dependency from charts/ (a folder or an archive), else from a relative `file://`
    repository beside a chart folder."""
    bundled = _bundled(chart.files, where)
    out = []
    for raw in chart.metadata.get("dependencies") or []:
        dep = Dependency(name=raw["name"], version=str(raw.get("version") or ""),
                         repository=str(raw.get("repository") or ""), condition=str(raw.get("condition") or ""),
                         alias=str(raw.get("alias") or ""))
        loaded = bundled.get(dep.name)
        if loaded is None and dep.repository.startswith("file://") and base is not None:
            relative = dep.repository.removeprefix("file://")
            if relative.startswith("/"):
                raise ChartError(f"{where}/Chart.yaml: dependency {dep.name}: repository must be a relative file:// path")
            loaded = load(base / relative)
        if loaded is None:
            raise ChartError(f"{where}: dependency {dep.name} is declared in Chart.yaml but not found in charts/")
        if loaded.name != dep.name:
            raise ChartError(f"{where}: dependency {dep.name} resolved to a chart named {loaded.name}")
        if dep.version and not versions.satisfies(loaded.version, dep.version):
            raise ChartError(f"{where}: dependency {dep.name} {loaded.version} does not satisfy {dep.version}")
        out.append((dep, loaded))
    return out


def _bundled(files: dict[str, bytes], where: str) -> dict[str, Chart]:
    """Charts under charts/: sub-folders (by their files) and `.tgz` archives."""
    found: dict[str, Chart] = {}
    folders: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        parts = path.split("/")
        if len(parts) < 2 or parts[0] != "charts":
            continue
        if len(parts) == 2 and parts[1].endswith((".tgz", ".tar.gz")):
            sub = _from_files(_read_archive(data, f"{where}/{path}"), f"{where}/{path}", base=None)
            found[sub.name] = sub
        elif len(parts) > 2:
            folders.setdefault(parts[1], {})["/".join(parts[2:])] = data
    for folder, sub_files in folders.items():
        sub = _from_files(sub_files, f"{where}/charts/{folder}", base=None)
        found[sub.name] = sub
    return found


def package(chart_dir: str | Path, destination: str | Path) -> Path:
    """Write NAME-VERSION.tgz of a chart folder (file:// dependencies copied into charts/)."""
    import gzip

    chart = load(chart_dir)
    out = Path(destination) / f"{chart.full_name}.tgz"
    files = dict(chart.files)
    for dep, sub in chart.dependencies:
        if not any(p.startswith(f"charts/{dep.name}/") or p.startswith(f"charts/{dep.name}-") for p in files):
            for path, data in sub.files.items():
                files[f"charts/{dep.name}/{path}"] = data
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(files):
            info = tarfile.TarInfo(f"{chart.name}/{path}")
            info.size = len(files[path])
            info.mode = 0o644
            info.mtime = 0  # reproducible: the same chart packs to the same bytes (and digest)
            archive.addfile(info, io.BytesIO(files[path]))
    out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return out
