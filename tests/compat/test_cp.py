"""`kubectl cp` both ways (tar through exec over WebSockets): a 10 MB file and a folder, by checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.compat.conftest import kubectl


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cp_a_10mb_file_both_ways(module_env, workload, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(10 * 1024 * 1024))
    result = kubectl(module_env, "cp", str(source), f"{workload}/web:/tmp/big.bin")
    assert result.returncode == 0, result.stderr
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "sha256sum", "/tmp/big.bin")
    assert result.stdout.split()[0].decode() == _sha(source)
    back = tmp_path / "back.bin"
    result = kubectl(module_env, "cp", f"{workload}/web:/tmp/big.bin", str(back))
    assert result.returncode == 0, result.stderr
    assert _sha(back) == _sha(source)


def test_cp_a_folder_both_ways(module_env, workload, tmp_path):
    folder = tmp_path / "tree"
    (folder / "sub" / "deeper").mkdir(parents=True)
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(70000), "sub/deeper/c": b"", "sub/deeper/d.txt": b"d" * 5}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "mkdir", "-p", "/tmp/dest")
    assert result.returncode == 0, result.stderr
    result = kubectl(module_env, "cp", str(folder), f"{workload}/web:/tmp/dest/tree")
    assert result.returncode == 0, result.stderr
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "sh", "-c", "cd /tmp/dest/tree && find . -type f | sort")
    assert result.stdout.decode().split() == sorted(f"./{n}" for n in files)
    back = tmp_path / "back"
    result = kubectl(module_env, "cp", f"{workload}/web:/tmp/dest/tree", str(back))
    assert result.returncode == 0, result.stderr
    for name, data in files.items():
        assert (back / name).read_bytes() == data, name


def test_cp_from_a_missing_path_says_so(module_env, workload, tmp_path):
    """As upstream kubectl 1.32: tar's complaint is printed (cp sends the exec's stderr to stdout),
    nothing is written, and kubectl still exits 0 (kubectl cp returns as soon as the archive's end
    arrives on stdout, before the exec's exit code); the exec underneath does report tar's failure.
    The complaint is printed only if it arrives before that end, which Docker does not promise
    (`reconcile.core.outputorder`; the wire order is checked 30 times over in test_exec_channels)."""
    result = kubectl(module_env, "cp", f"{workload}/web:/no/such/file", str(tmp_path / "x"), timeout=30)
    assert b"/no/such/file: No such file or directory" in result.stdout + result.stderr
    assert not (tmp_path / "x").exists()
    result = kubectl(module_env, "exec", "-n", workload, "web", "--", "tar", "cf", "-", "/no/such/file")
    assert result.returncode == 1 and b"command terminated with exit code 1" in result.stderr
