"""Locating an exec'd process inside its container from the host's /proc (`node/procfs.py`).

A /proc tree written under tmp_path stands in for the engine host's, so every answer (found,
another container's, another namespace's /proc, gone) is checked; the parsers also read this
process's own /proc entries.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconcile.node import procfs

CONTAINER = "19b1d03e31d8f283d2565409700c3545478ce859e23b2518e9a508af712c1863"


def _process(proc: Path, pid: int, *, nspid: str, pgrp: int, cgroup: str, comm: str = "sh") -> None:
    base = proc / str(pid)
    base.mkdir(parents=True)
    (base / "status").write_text(f"Name:\t{comm}\nPid:\t{pid}\nNSpid:\t{nspid}\nPPid:\t1\n")
    (base / "stat").write_text(f"{pid} ({comm}) S 4242 {pgrp} {pgrp} 0 -1 4194560 0 0\n")
    (base / "cgroup").write_text(cgroup)


def test_an_exec_leading_its_group_is_killed_as_a_group(tmp_path):
    _process(tmp_path, 32049, nspid="32049\t8", pgrp=32049, cgroup=f"0::/docker/{CONTAINER}\n")
    target = procfs.locate(32049, CONTAINER, proc=tmp_path)
    assert target == procfs.Target(pid=8, group=True)
    assert target.kill_command() == ["kill", "-KILL", "-8"]


def test_a_process_not_leading_a_group_is_killed_alone(tmp_path):
    _process(tmp_path, 500, nspid="500\t12", pgrp=499, cgroup=f"1:name=systemd:/docker/{CONTAINER}\n")
    assert procfs.locate(500, CONTAINER, proc=tmp_path).kill_command() == ["kill", "-KILL", "12"]


def test_a_process_of_another_container_is_never_a_target(tmp_path):
    _process(tmp_path, 500, nspid="500\t12", pgrp=500, cgroup="0::/docker/someoneelse\n")
    assert procfs.locate(500, CONTAINER, proc=tmp_path) is None


def test_a_proc_of_another_pid_namespace_is_never_read_as_the_hosts(tmp_path):
    _process(tmp_path, 500, nspid="77\t12", pgrp=500, cgroup=f"0::/docker/{CONTAINER}\n")  # outermost is not 500
    assert procfs.locate(500, CONTAINER, proc=tmp_path) is None


def test_a_gone_process_or_no_pid_is_none(tmp_path):
    assert procfs.locate(12345, CONTAINER, proc=tmp_path) is None
    assert procfs.locate(0, CONTAINER, proc=tmp_path) is None


def test_parsers_read_this_process():
    pid = os.getpid()
    assert procfs.parse_nspid(Path(f"/proc/{pid}/status").read_text())[0] == pid
    assert procfs.parse_pgrp(Path(f"/proc/{pid}/stat").read_text()) == os.getpgrp()


def test_the_command_name_may_hold_parentheses_and_spaces():
    assert procfs.parse_pgrp("7 (a) b (c) S 1 99 99 0 -1\n") == 99
