"""subPath attacks on the real filesystem: `..`, absolute paths, symlinks to /etc (at any depth),
a symlink swapped in after the check; none reaches outside the volume. Mounting needs root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconcile.node import safepath


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "volume"
    (root / "data" / "inner").mkdir(parents=True)
    (root / "data" / "inner" / "file").write_text("mine")
    return root


@pytest.mark.parametrize("sub_path", ["../..", "/etc", "data/../../etc", "..", ""])
def test_escapes_refused_before_any_open(volume: Path, sub_path: str) -> None:
    with pytest.raises(safepath.SubPathError):
        safepath.open_beneath(str(volume), sub_path)


@pytest.mark.parametrize("link_at", ["escape", "data/escape"])
def test_symlink_to_etc_refused_at_any_depth(volume: Path, link_at: str) -> None:
    (volume / link_at).symlink_to("/etc")
    with pytest.raises(safepath.SubPathError, match="unexpected symlink"):
        safepath.open_beneath(str(volume), f"{link_at}/passwd" if link_at else "x")
    with pytest.raises(safepath.SubPathError, match="unexpected symlink"):
        safepath.open_beneath(str(volume), link_at)


def test_relative_symlink_inside_is_refused_too(volume: Path) -> None:
    (volume / "alias").symlink_to("data")  # harmless target, but a link: upstream refuses every symlink
    with pytest.raises(safepath.SubPathError, match="unexpected symlink"):
        safepath.open_beneath(str(volume), "alias/inner")


def test_missing_directories_are_created_with_the_root_mode(volume: Path) -> None:
    volume.chmod(0o751)
    fd = safepath.open_beneath(str(volume), "new/deeper")
    os.close(fd)
    assert (volume / "new" / "deeper").is_dir()
    assert (volume / "new").stat().st_mode & 0o777 == 0o751


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_swap_after_the_check_redirects_nothing(volume: Path, tmp_path: Path) -> None:
    """Open the subPath, then swap its directory for a symlink to /etc before mounting: the mount
    still shows the volume's directory (the fd holds the inode, not the path)."""
    fd = safepath.open_beneath(str(volume), "data/inner")
    try:
        os.rename(volume / "data" / "inner", volume / "data" / "moved")
        (volume / "data" / "inner").symlink_to("/etc")
        target = tmp_path / "pod" / "volume-subpaths" / "v" / "c" / "0"
        safepath.bind_fd(fd, target)
    finally:
        os.close(fd)
    try:
        assert (target / "file").read_text() == "mine"
        assert not (target / "passwd").exists()
    finally:
        assert safepath.unmount_all(tmp_path / "pod")
    assert not os.path.ismount(target)
    assert (volume / "data" / "moved" / "file").read_text() == "mine"  # teardown touched no data


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_prepare_binds_a_file(volume: Path, tmp_path: Path) -> None:
    target = tmp_path / "pod" / "t"
    assert safepath.prepare(str(volume), "data/inner/file", target) == str(target)
    try:
        assert target.read_text() == "mine"
    finally:
        assert safepath.unmount_all(tmp_path / "pod")
