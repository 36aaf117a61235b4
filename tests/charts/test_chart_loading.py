"""Loading charts: Chart.yaml rules, SemVer and constraints, dependencies, archives, hostile archives/symlinks."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from reconcile.charting import chart, versions
from tests.charts.chartkit import CONFIGMAP, write_chart


def test_folder_loads_with_metadata(tmp_path: Path) -> None:
    folder = write_chart(tmp_path, values={"a": 1}, templates={"cm.yaml.j2": CONFIGMAP}, appVersion="2.0",
                         kubeVersion=">=1.25.0-0", description="d")
    loaded = chart.load(folder)
    assert (loaded.name, loaded.version, loaded.app_version, loaded.type) == ("demo", "0.1.0", "2.0", "application")
    assert loaded.values == {"a": 1}
    assert list(loaded.templates()) == ["cm.yaml.j2"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("version", "1.0", "not a SemVer 2 version"),
    ("version", "latest", "not a SemVer 2 version"),
    ("name", "Bad_Name", "DNS-1123"),
    ("type", "plugin", "must be one of application, library"),
    ("kubeVersion", ">=banana", "kubeVersion"),
    ("apiVersion", "v1", 'apiVersion: must be "v2"'),
])
def test_bad_chart_yaml_names_the_field(tmp_path: Path, field: str, value: str, message: str) -> None:
    folder = write_chart(tmp_path, **{field: value})
    with pytest.raises(chart.ChartError, match=message) as caught:
        chart.load(folder)
    assert "Chart.yaml" in str(caught.value)


def test_missing_chart_yaml(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(chart.ChartError, match="Chart.yaml file is missing"):
        chart.load(tmp_path / "empty")


@pytest.mark.parametrize(("version", "constraint", "ok"), [
    ("1.5.0", ">=1.2.0 <2.0.0", True),
    ("2.0.0", ">=1.2.0, <2.0.0", False),
    ("1.9.3", "^1.2", True),
    ("1.3.0", "~1.2.3", False),
    ("1.2.7", "1.2.x", True),
    ("v1.32.0", ">=1.25.0-0", True),
    ("v1.32.0-rc.1", ">=1.25.0-0", True),
    ("1.20.0", ">=1.25.0-0", False),
    ("3.0.0", "^1.0 || ^3.0", True),
])
def test_constraints(version: str, constraint: str, ok: bool) -> None:
    assert versions.satisfies(version, constraint) is ok


def test_dependencies_from_charts_folder_file_repository_and_archive(tmp_path: Path) -> None:
    store = write_chart(tmp_path, "store", version="1.2.0")
    parent = write_chart(tmp_path, "app", dependencies=[{"name": "store", "version": "^1.0.0",
                                                        "repository": "file://../store"}])
    loaded = chart.load(parent)
    assert [(d.name, c.version) for d, c in loaded.dependencies] == [("store", "1.2.0")]
    archive = chart.package(parent, tmp_path)  # file:// dependencies are copied into charts/
    assert archive.name == "app-0.1.0.tgz"
    unpacked = chart.load(archive)
    assert [(d.name, c.version) for d, c in unpacked.dependencies] == [("store", "1.2.0")]
    assert archive.read_bytes() == chart.package(parent, tmp_path).read_bytes()  # reproducible
    del store


def test_dependency_version_mismatch_and_missing(tmp_path: Path) -> None:
    write_chart(tmp_path, "store", version="2.0.0")
    parent = write_chart(tmp_path, "app", dependencies=[{"name": "store", "version": "^1.0.0",
                                                        "repository": "file://../store"}])
    with pytest.raises(chart.ChartError, match=r"store 2.0.0 does not satisfy \^1.0.0"):
        chart.load(parent)
    lonely = write_chart(tmp_path, "lonely", dependencies=[{"name": "nothere"}])
    with pytest.raises(chart.ChartError, match="dependency nothere is declared in Chart.yaml but not found"):
        chart.load(lonely)
    absolute = write_chart(tmp_path, "abs", dependencies=[{"name": "store", "repository": "file:///etc"}])
    with pytest.raises(chart.ChartError, match="relative file:// path"):
        chart.load(absolute)


def test_symlink_out_of_the_chart_is_refused(tmp_path: Path) -> None:
    folder = write_chart(tmp_path)
    os.symlink("/etc/passwd", folder / "passwd")
    with pytest.raises(chart.ChartError, match="symlink pointing outside the chart"):
        chart.load(folder)


def _archive(members: list[tarfile.TarInfo], data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _file(name: str, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(("members", "message"), [
    ([_file("demo/Chart.yaml"), _file("demo/../../evil")], "points outside the chart"),
    ([_file("demo/Chart.yaml"), _file("/abs/evil")], "exactly one chart folder|points outside"),
])
def test_hostile_archives(tmp_path: Path, members: list[tarfile.TarInfo], message: str) -> None:
    path = tmp_path / "evil.tgz"
    path.write_bytes(_archive(members))
    with pytest.raises(chart.ChartError, match=message):
        chart.load(path)


def test_archive_with_a_symlink_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("demo/passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    path = tmp_path / "evil.tgz"
    path.write_bytes(_archive([_file("demo/Chart.yaml"), link]))
    with pytest.raises(chart.ChartError, match="is a link"):
        chart.load(path)


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tgz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(chart.ChartError, match="not a chart archive"):
        chart.load(path)
